using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Vit.Torch.Imaging;

namespace Vit.MLNet;

/// <summary>
/// Image columns as ML.NET gives them, to the model's input: images (<see cref="ImageDataViewType"/>, <see cref="MLImage"/>
/// values from <c>LoadImages</c>/<c>ResizeImages</c>) and encoded bytes (a vector of <see cref="byte"/>, from
/// <c>LoadRawImageBytes</c>). An image of another size than the model's is brought to it by the model's preprocessing
/// (<see cref="VitPreprocessing.Resize"/>); an image already of the model's size is used as it is.
/// </summary>
internal static class ImageColumns
{
    /// <summary>What a pipeline's image column holds.</summary>
    public enum Kind
    {
        /// <summary><see cref="MLImage"/> values.</summary>
        Image,
        /// <summary>Encoded image files (vectors of bytes).</summary>
        Bytes,
    }

    private const string Expected = "an image (add mlContext.Transforms.LoadImages) or the bytes of an image file (LoadRawImageBytes)";

    /// <summary>The kind of image column <paramref name="name"/> of <paramref name="schema"/>, or an exception naming the column and what it found.</summary>
    public static Kind Check(DataViewSchema schema, string name)
    {
        var column = schema.GetColumnOrNull(name) ?? throw new ArgumentOutOfRangeException(nameof(schema),
            $"Image column '{name}' not found; expected {Expected}. The data has: {Describe(schema)}");
        return KindOf(column.Type) ?? throw new ArgumentOutOfRangeException(nameof(schema),
            $"Image column '{name}' has type {column.Type}; expected {Expected}");
    }

    /// <summary>As <see cref="Check(DataViewSchema, string)"/>, on the schema shape an estimator sees before fitting.</summary>
    public static Kind Check(SchemaShape schema, string name)
    {
        if (!schema.TryFindColumn(name, out var column))
            throw new ArgumentOutOfRangeException(nameof(schema), $"Image column '{name}' not found; expected {Expected}. The data has: {Describe(schema)}");
        if (column.Kind == SchemaShape.Column.VectorKind.Scalar && column.ItemType is ImageDataViewType) return Kind.Image;
        if (column.Kind != SchemaShape.Column.VectorKind.Scalar && column.ItemType == NumberDataViewType.Byte) return Kind.Bytes;
        throw new ArgumentOutOfRangeException(nameof(schema), $"Image column '{name}' has type {Shape(column)}; expected {Expected}");
    }

    private static Kind? KindOf(DataViewType type) => type switch
    {
        ImageDataViewType => Kind.Image,
        VectorDataViewType v when v.ItemType == NumberDataViewType.Byte => Kind.Bytes,
        _ => null,
    };

    /// <summary>The columns of a schema, named with their types, for messages.</summary>
    public static string Describe(DataViewSchema schema) => string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => $"{c.Name} ({c.Type})"));

    /// <summary>The columns of a schema shape, named with their types, for messages.</summary>
    public static string Describe(SchemaShape schema) => string.Join(", ", schema.Select(c => $"{c.Name} ({Shape(c)})"));

    /// <summary>A column of a schema shape as ML.NET prints types.</summary>
    public static string Shape(SchemaShape.Column c) => c.Kind switch
    {
        SchemaShape.Column.VectorKind.Scalar => c.IsKey ? $"Key<{c.ItemType}>" : c.ItemType.ToString() ?? "",
        _ => $"Vector<{(c.IsKey ? $"Key<{c.ItemType}>" : c.ItemType.ToString())}>",
    };

    /// <summary>
    /// A reader of the current row's image on <paramref name="row"/>, at the model's size and channels as HWC bytes: it
    /// writes them into the span it is given (<see cref="VitPreprocessing"/>: ImageSize² × Channels bytes). Throws
    /// <see cref="InvalidDataException"/> naming the column and row for an image that is missing or cannot be decoded.
    /// </summary>
    public static Action<Span<byte>> PixelReader(DataViewRow row, DataViewSchema.Column column, VitPreprocessing preprocessing, long maxPixels = Image.DefaultMaxPixels)
    {
        var kind = KindOf(column.Type) ?? throw new ArgumentOutOfRangeException(nameof(column), $"Image column '{column.Name}' has type {column.Type}; expected {Expected}");
        var read = ImageReader(row, column, kind, maxPixels);
        return destination =>
        {
            using var image = read();
            using var converted = ToModelInput(image, preprocessing);
            converted.CopyTo(destination);
        };
    }

    /// <summary>A reader of the current row's decoded image (which the caller disposes); see <see cref="PixelReader"/>.</summary>
    public static Func<Image> ImageReader(DataViewRow row, DataViewSchema.Column column, long maxPixels = Image.DefaultMaxPixels)
    {
        var kind = KindOf(column.Type) ?? throw new ArgumentOutOfRangeException(nameof(column), $"Image column '{column.Name}' has type {column.Type}; expected {Expected}");
        return ImageReader(row, column, kind, maxPixels);
    }

    private static Func<Image> ImageReader(DataViewRow row, DataViewSchema.Column column, Kind kind, long maxPixels)
    {
        if (kind == Kind.Image)
        {
            var get = row.GetGetter<MLImage>(column);
            MLImage value = null!;
            return () =>
            {
                // LoadImages' getter disposes the value it gave for the previous row when it makes the next one: the
                // pixels are copied out now, never kept.
                get(ref value);
                if (value is null)
                    throw new InvalidDataException($"row {row.Position}: image column '{column.Name}' has no image (an empty path?)");
                return FromMLImage(value, column.Name, row.Position);
            };
        }
        var getBytes = row.GetGetter<VBuffer<byte>>(column);
        VBuffer<byte> bytes = default;
        var options = new ImageDecodeOptions { MaxPixels = maxPixels };
        return () =>
        {
            getBytes(ref bytes);
            if (bytes.Length == 0)
                throw new InvalidDataException($"row {row.Position}: image column '{column.Name}' has no bytes (a missing or unreadable file?)");
            try
            {
                return Image.Decode(bytes.GetValues(), options, $"row {row.Position} of column '{column.Name}'");
            }
            catch (ImageDecodeException e)
            {
                throw new InvalidDataException(e.Message, e);
            }
        };
    }

    /// <summary>Copies an <see cref="MLImage"/>'s pixels (Bgra32 or Rgba32, as its <see cref="MLImage.PixelFormat"/> says) into an RGBA image.</summary>
    public static Image FromMLImage(MLImage image, string columnName, long row)
    {
        int width = image.Width, height = image.Height;
        var pixels = image.PixelFormat is MLPixelFormat.Bgra32 or MLPixelFormat.Rgba32 ? image.Pixels
            : throw new InvalidDataException($"row {row}: image column '{columnName}' has pixel format {image.PixelFormat}; Bgra32 or Rgba32 is supported");
        long rowBytes = (long)width * 4;
        if (height <= 0 || width <= 0 || pixels.Length % height != 0 || pixels.Length / height < rowBytes)
            throw new InvalidDataException($"row {row}: image column '{columnName}' holds {pixels.Length} bytes of pixels for a {width}x{height} image");
        int stride = pixels.Length / height;
        var rgba = GC.AllocateUninitializedArray<byte>(checked((int)(rowBytes * height)));
        bool swap = image.PixelFormat == MLPixelFormat.Bgra32;
        for (int y = 0; y < height; y++)
        {
            var source = pixels.Slice(y * stride, (int)rowBytes);
            var target = rgba.AsSpan((int)(y * rowBytes), (int)rowBytes);
            source.CopyTo(target);
            if (swap)
                for (int i = 0; i < target.Length; i += 4)
                    (target[i], target[i + 2]) = (target[i + 2], target[i]);
        }
        return Image.FromPixels(rgba, width, height, 4);
    }

    /// <summary>An image at the model's channels and size (a new image the caller disposes).</summary>
    public static Image ToModelInput(Image image, VitPreprocessing preprocessing)
    {
        using var channels = image.ToChannels(preprocessing.Channels);
        return preprocessing.Resize(channels);
    }
}
