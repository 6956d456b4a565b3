using System.Text.Json.Nodes;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

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

    /// <summary>
    /// The metadata entries that describe a model (config; preprocessing and labels when given), after checking that the
    /// preprocessing fits the model and that there is one label per class: what every file we write carries.
    /// </summary>
    /// <exception cref="ArgumentException">The preprocessing or the labels do not fit the model.</exception>
    public static Dictionary<string, string> Of(VitConfig config, VitPreprocessing? preprocessing, IReadOnlyList<string>? labels)
    {
        ArgumentNullException.ThrowIfNull(config);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal) { [Config] = config.ToJson().ToJsonString() };
        if (preprocessing is not null)
        {
            preprocessing.Validate();
            if (preprocessing.Channels != config.Channels || preprocessing.ImageSize != config.ImageSize)
                throw new ArgumentException(
                    $"the preprocessing ({preprocessing.ImageSize}px, {preprocessing.Channels} channels) does not fit the model ({config.ImageSize}px, {config.Channels} channels)",
                    nameof(preprocessing));
            metadata[Preprocessing] = preprocessing.ToJson().ToJsonString();
        }
        if (labels is not null)
        {
            if (labels.Count != config.NumClasses)
                throw new ArgumentException($"{labels.Count} labels for a model with {config.NumClasses} classes", nameof(labels));
            metadata[Labels] = new JsonArray(labels.Select(l => (JsonNode?)l).ToArray()).ToJsonString();
        }
        return metadata;
    }
}
