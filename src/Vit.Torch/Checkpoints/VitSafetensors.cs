using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.Torch.Checkpoints;

/// <summary>
/// Our safetensors files of a model: the weights under timm's names, with the config and, when given, the preprocessing
/// and labels in the file's metadata (<see cref="VitMetadata"/>), so that <see cref="PretrainedVit.Load"/> reads a model
/// back exactly, with nothing to guess. The model itself knows no file format.
/// </summary>
public static class VitSafetensors
{
    /// <summary>
    /// Saves <paramref name="model"/>'s weights with its config and, when given, <paramref name="preprocessing"/> and
    /// <paramref name="labels"/> in the file's metadata (plus <paramref name="metadata"/>'s own entries, which do not
    /// replace ours), atomically (a temporary file, then a rename).
    /// </summary>
    /// <exception cref="ArgumentException">The preprocessing or the labels do not fit the model.</exception>
    public static void Save(string path, VisionTransformer model, VitPreprocessing? preprocessing = null, IReadOnlyList<string>? labels = null,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(model);
        var all = VitMetadata.Of(model.Config, preprocessing, labels);
        if (metadata is not null)
            foreach (var (k, v) in metadata) all.TryAdd(k, v);
        model.SaveSafetensors(path, all);
    }
}
