using Vit.Torch.Imaging;

namespace Vit.MLNet;

/// <summary>
/// The value of an image column: where the encoded image comes from (a file or bytes) and how it is to be resized.
/// Decoding happens when a consumer needs the pixels (the trainer's background workers, the scorer), not when the
/// column is created, so a pipeline over thousands of files costs nothing until it runs.
/// </summary>
public sealed record ImageSource
{
    /// <summary>Path of the image file, or null for in-memory bytes.</summary>
    public string? Path { get; init; }

    /// <summary>Encoded image bytes, or null for a file.</summary>
    public byte[]? Bytes { get; init; }

    /// <summary>Target size and mode, when a ResizeImages step applies.</summary>
    public ImageResize? Resize { get; init; }

    /// <summary>A file source.</summary>
    public static ImageSource FromFile(string path) => new() { Path = path };

    /// <summary>An in-memory source.</summary>
    public static ImageSource FromBytes(byte[] bytes) => new() { Bytes = bytes };

    /// <summary>Names the image in messages.</summary>
    public string Description => Path ?? $"<in-memory image, {Bytes?.Length ?? 0} bytes>";

    /// <summary>Decodes (and resizes, when asked) the image, converted to <paramref name="channels"/> channels (0: as stored).</summary>
    public Image Decode(int channels, long maxPixels = Image.DefaultMaxPixels)
    {
        var options = new ImageDecodeOptions { MaxPixels = maxPixels };
        var image = Path is not null ? Image.Decode(Path, options)
            : Bytes is not null ? Image.Decode(Bytes, options)
            : throw new InvalidOperationException("an image source needs a path or bytes");
        try
        {
            if (channels != 0 && image.Channels != channels) image = Replace(image, image.ToChannels(channels));
            if (Resize is { } r) image = Replace(image, image.Resize(r.Width, r.Height, r.Mode, r.Interpolation));
            return image;
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    private static Image Replace(Image old, Image replacement)
    {
        old.Dispose();
        return replacement;
    }

    /// <inheritdoc />
    public override string ToString() => Description;
}

/// <summary>How a ResizeImages step resizes.</summary>
/// <param name="Width">Target width.</param>
/// <param name="Height">Target height.</param>
/// <param name="Mode">Stretch, pad (letterbox) or crop (shorter side, then center crop).</param>
/// <param name="Interpolation">Bilinear, bicubic, area or nearest.</param>
public sealed record ImageResize(int Width, int Height, ResizeMode Mode, Interpolation Interpolation);

/// <summary>Adds an image column from a column of paths (Text) or encoded bytes (ML.NET's LoadImages).</summary>
public sealed class ImageLoadingEstimator : IEstimator<ImageLoadingTransformer>, ITransformer
{
    private readonly ImageLoadingTransformer transformer;

    internal ImageLoadingEstimator(string outputColumnName, string? imageFolder, string inputColumnName) =>
        transformer = new ImageLoadingTransformer(outputColumnName, imageFolder, inputColumnName);

    /// <inheritdoc />
    public ImageLoadingTransformer Fit(IDataView input) => transformer;

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => transformer.GetOutputSchema(inputSchema);

    /// <inheritdoc />
    public IDataView Transform(IDataView input) => transformer.Transform(input);
}

/// <summary>The fitted LoadImages step.</summary>
public sealed class ImageLoadingTransformer : ITransformer
{
    internal ImageLoadingTransformer(string outputColumnName, string? imageFolder, string inputColumnName)
    {
        if (string.IsNullOrWhiteSpace(outputColumnName)) throw new ArgumentException("the output column needs a name", nameof(outputColumnName));
        OutputColumnName = outputColumnName;
        ImageFolder = string.IsNullOrEmpty(imageFolder) ? null : imageFolder;
        InputColumnName = inputColumnName;
    }

    /// <summary>The image column added.</summary>
    public string OutputColumnName { get; }

    /// <summary>Folder relative paths are resolved against (null: as given).</summary>
    public string? ImageFolder { get; }

    /// <summary>The column of paths or bytes.</summary>
    public string InputColumnName { get; }

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        inputSchema.Require(InputColumnName, "LoadImages input", t => t is TextDataViewType or BytesDataViewType, "Text (a path) or Bytes");
        return inputSchema.With(new DataViewSchemaColumn(OutputColumnName, new ImageDataViewType(), 0));
    }

    /// <inheritdoc />
    public IDataView Transform(IDataView input)
    {
        var schema = GetOutputSchema(input.Schema);
        int source = input.Schema[InputColumnName].Index;
        return new MappedDataView(input, [schema[^1]], rows => rows.Select(r => new object?[] { ToSource(r[source]) }).ToList());
    }

    private ImageSource? ToSource(object? value) => value switch
    {
        null => null,
        string p when p.Length == 0 => null,
        string p => ImageSource.FromFile(ImageFolder is null || Path.IsPathRooted(p) ? p : Path.Combine(ImageFolder, p)),
        byte[] b => ImageSource.FromBytes(b),
        _ => throw new InvalidOperationException($"unexpected value of type {value.GetType().Name} in column '{InputColumnName}'"),
    };
}

/// <summary>Resizes an image column (ML.NET's ResizeImages); the work happens when the pixels are decoded.</summary>
public sealed class ImageResizingEstimator : IEstimator<ImageResizingTransformer>
{
    private readonly ImageResizingTransformer transformer;

    internal ImageResizingEstimator(string outputColumnName, int width, int height, string inputColumnName, ResizeMode mode, Interpolation interpolation) =>
        transformer = new ImageResizingTransformer(outputColumnName, new ImageResize(width, height, mode, interpolation), inputColumnName);

    /// <inheritdoc />
    public ImageResizingTransformer Fit(IDataView input) => transformer;

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => transformer.GetOutputSchema(inputSchema);
}

/// <summary>The fitted ResizeImages step.</summary>
public sealed class ImageResizingTransformer : ITransformer
{
    internal ImageResizingTransformer(string outputColumnName, ImageResize resize, string inputColumnName)
    {
        if (resize.Width <= 0 || resize.Height <= 0)
            throw new ArgumentException($"resize target {resize.Width}x{resize.Height} must be positive");
        OutputColumnName = outputColumnName;
        Resize = resize;
        InputColumnName = inputColumnName;
    }

    /// <summary>The resized image column.</summary>
    public string OutputColumnName { get; }

    /// <summary>The image column read.</summary>
    public string InputColumnName { get; }

    /// <summary>Target size, mode and interpolation.</summary>
    public ImageResize Resize { get; }

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        inputSchema.Require(InputColumnName, "ResizeImages input", t => t is ImageDataViewType, "an image column (add LoadImages first)");
        return inputSchema.With(new DataViewSchemaColumn(OutputColumnName, new ImageDataViewType(Resize.Height, Resize.Width), 0));
    }

    /// <inheritdoc />
    public IDataView Transform(IDataView input)
    {
        var schema = GetOutputSchema(input.Schema);
        int source = input.Schema[InputColumnName].Index;
        return new MappedDataView(input, [schema[^1]],
            rows => rows.Select(r => new object?[] { r[source] is ImageSource s ? s with { Resize = Resize } : null }).ToList());
    }
}
