using Vit.Torch.Imaging;

namespace Vit.MLNet;

/// <summary>
/// The entry point, like ML.NET's MLContext: catalogs of data operations, transforms, evaluation and model files.
/// </summary>
public sealed class VitContext
{
    /// <summary>Creates a context; <paramref name="seed"/> makes splits, initialisation and shuffling repeatable.</summary>
    public VitContext(int? seed = null)
    {
        Seed = seed;
        Data = new DataOperationsCatalog(this);
        Transforms = new TransformsCatalog();
        MulticlassClassification = new MulticlassClassificationCatalog();
        Model = new ModelOperationsCatalog();
    }

    /// <summary>The seed, or null for a fixed default.</summary>
    public int? Seed { get; }

    /// <summary>Loading and splitting data.</summary>
    public DataOperationsCatalog Data { get; }

    /// <summary>Image loading and resizing.</summary>
    public TransformsCatalog Transforms { get; }

    /// <summary>Evaluation of scored data.</summary>
    public MulticlassClassificationCatalog MulticlassClassification { get; }

    /// <summary>Saving and loading model files, prediction engines.</summary>
    public ModelOperationsCatalog Model { get; }
}

/// <summary>Pipeline steps for images (ML.NET's <c>mlContext.Transforms</c>).</summary>
public sealed class TransformsCatalog
{
    internal TransformsCatalog() { }

    /// <summary>
    /// Adds image column <paramref name="outputColumnName"/> from paths (Text) or encoded bytes in
    /// <paramref name="inputColumnName"/>; relative paths are resolved against <paramref name="imageFolder"/> ("" or null: as given).
    /// </summary>
    public ImageLoadingEstimator LoadImages(string outputColumnName, string? imageFolder, string? inputColumnName = null) =>
        new(outputColumnName, imageFolder, inputColumnName ?? outputColumnName);

    /// <summary>
    /// Resizes image column <paramref name="inputColumnName"/> (default: the output column) to width x height. The default,
    /// <see cref="ResizeMode.Crop"/>, is ML.NET's <c>IsoCrop</c>: scaled to cover the target, then the centre kept.
    /// </summary>
    public ImageResizingEstimator ResizeImages(string outputColumnName, int imageWidth, int imageHeight, string? inputColumnName = null,
        ResizeMode resizing = ResizeMode.Crop, Interpolation interpolation = Interpolation.Bilinear) =>
        new(outputColumnName, imageWidth, imageHeight, inputColumnName ?? outputColumnName, resizing, interpolation);
}
