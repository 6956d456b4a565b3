namespace Vit.Torch.Data;

/// <summary>A labelled image set held in memory as normalised planar float pixels (C, H, W) per image.</summary>
public sealed class InMemoryDataset
{
    private readonly float[] pixels;
    private readonly long[] labels;

    /// <summary>Channels, height, width of every image.</summary>
    public (int Channels, int Height, int Width) ImageShape { get; }

    /// <summary>Number of classes (labels are 0..NumClasses-1).</summary>
    public int NumClasses { get; }

    /// <summary>Optional class names, index = label.</summary>
    public IReadOnlyList<string>? ClassNames { get; }

    /// <summary>Number of images.</summary>
    public int Count => labels.Length;

    /// <summary>Floats per image.</summary>
    public int ImageSize => ImageShape.Channels * ImageShape.Height * ImageShape.Width;

    /// <summary>Wraps pixels (Count·C·H·W floats, image after image) and labels.</summary>
    public InMemoryDataset(float[] pixels, long[] labels, (int Channels, int Height, int Width) shape, int numClasses,
        IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(labels);
        if (shape.Channels <= 0 || shape.Height <= 0 || shape.Width <= 0)
            throw new ArgumentException($"image shape ({shape.Channels}, {shape.Height}, {shape.Width}) must be positive", nameof(shape));
        long per = (long)shape.Channels * shape.Height * shape.Width;
        if (pixels.LongLength != per * labels.Length)
            throw new ArgumentException($"{pixels.LongLength} pixel values do not make {labels.Length} images of {per} values", nameof(pixels));
        if (numClasses < 2) throw new ArgumentException($"a classifier needs at least two classes, got {numClasses}", nameof(numClasses));
        for (int i = 0; i < labels.Length; i++)
            if (labels[i] < 0 || labels[i] >= numClasses)
                throw new ArgumentException($"label {labels[i]} of image {i} is outside 0..{numClasses - 1}", nameof(labels));
        if (classNames is not null && classNames.Count != numClasses)
            throw new ArgumentException($"{classNames.Count} class names for {numClasses} classes", nameof(classNames));
        this.pixels = pixels;
        this.labels = labels;
        ImageShape = shape;
        NumClasses = numClasses;
        ClassNames = classNames;
    }

    /// <summary>The normalised pixels of image <paramref name="index"/>.</summary>
    public ReadOnlySpan<float> Image(int index) => pixels.AsSpan(index * ImageSize, ImageSize);

    /// <summary>Every pixel of every image, image after image.</summary>
    internal ReadOnlySpan<float> Pixels => pixels;

    /// <summary>The label of image <paramref name="index"/>.</summary>
    public long Label(int index) => labels[index];
}
