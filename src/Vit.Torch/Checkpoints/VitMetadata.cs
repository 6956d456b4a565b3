namespace Vit.Torch.Checkpoints;

/// <summary>The keys under which our safetensors files describe the model (values are JSON strings).</summary>
public static class VitMetadata
{
    /// <summary>The <see cref="Model.VitConfig"/> (<see cref="Model.VitConfig.ToJson"/>).</summary>
    public const string Config = "vit.config";

    /// <summary>The <see cref="Imaging.VitPreprocessing"/> (<see cref="Imaging.VitPreprocessing.ToJson"/>).</summary>
    public const string Preprocessing = "vit.preprocessing";

    /// <summary>The labels, a JSON array of strings in the order of the head's outputs.</summary>
    public const string Labels = "vit.labels";
}
