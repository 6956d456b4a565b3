using Vit.Torch.Imaging;

namespace Vit.Torch.Data;

/// <summary>One labelled image: where it comes from and its class index.</summary>
public interface IImageSample
{
    /// <summary>Names the image in messages (usually its path).</summary>
    string Name { get; }

    /// <summary>Class index (0-based).</summary>
    long Label { get; }

    /// <summary>Decodes the image; the caller disposes it. Throws <see cref="ImageDecodeException"/> for bad files.</summary>
    Image Load(ImageDecodeOptions options);
}

/// <summary>An image file on disk.</summary>
public sealed record FileImageSample(string Path, long Label) : IImageSample
{
    /// <inheritdoc />
    public string Name => Path;

    /// <inheritdoc />
    public Image Load(ImageDecodeOptions options) => Image.Decode(Path, options);
}

/// <summary>An encoded image held in memory.</summary>
public sealed record BytesImageSample(string Name, byte[] Bytes, long Label) : IImageSample
{
    /// <inheritdoc />
    public Image Load(ImageDecodeOptions options) => Image.Decode(Bytes, options);
}

/// <summary>Pixels already decoded (HWC bytes), e.g. from an IDX file.</summary>
public sealed record PixelImageSample(string Name, byte[] Pixels, int Width, int Height, int Channels, long Label) : IImageSample
{
    /// <inheritdoc />
    public Image Load(ImageDecodeOptions options) => Image.FromPixels(Pixels, Width, Height, Channels);
}

/// <summary>
/// A labelled set of images with class names: from an image folder (one subfolder per class), a CSV/TSV of
/// path,label, IDX files, or a list. Class indices follow the ordinal order of the class names.
/// </summary>
public sealed class ImageDataset
{
    /// <summary>Creates a dataset from samples and class names (index = label).</summary>
    public ImageDataset(IReadOnlyList<IImageSample> samples, IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(samples);
        ArgumentNullException.ThrowIfNull(classNames);
        if (classNames.Count < 2) throw new ArgumentException($"a classifier needs at least two classes, found {classNames.Count}");
        foreach (var s in samples)
            if (s.Label < 0 || s.Label >= classNames.Count)
                throw new ArgumentException($"label {s.Label} of {s.Name} is outside 0..{classNames.Count - 1}");
        Samples = samples;
        ClassNames = classNames;
    }

    /// <summary>The images.</summary>
    public IReadOnlyList<IImageSample> Samples { get; }

    /// <summary>Class names, index = label.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Number of classes.</summary>
    public int NumClasses => ClassNames.Count;

    /// <summary>Number of images.</summary>
    public int Count => Samples.Count;

    /// <summary>Image file extensions picked up from folders (<see cref="ImageFolder.Extensions"/>).</summary>
    public static IReadOnlySet<string> Extensions => ImageFolder.Extensions;

    /// <summary>
    /// The ImageFolder convention: <c>root/class_name/*.jpg</c>; classes in ordinal order of their names (see
    /// <see cref="ImageFolder.List"/>). A single class folder is refused: a classifier needs two classes.
    /// </summary>
    public static ImageDataset FromFolder(string root)
    {
        var listing = ImageFolder.List(root, allowSingleClass: false);
        return new ImageDataset(listing.Files.Select(f => (IImageSample)new FileImageSample(f.Path, f.Label)).ToList(), listing.ClassNames);
    }

    /// <summary>(path, label) pairs; relative paths are resolved against <paramref name="imageFolder"/>.</summary>
    public static ImageDataset FromList(IEnumerable<(string Path, string Label)> items, string? imageFolder = null)
    {
        var list = items.ToList();
        for (int i = 0; i < list.Count; i++)
            if (string.IsNullOrWhiteSpace(list[i].Label)) throw new ArgumentException($"item {i} ({list[i].Path}) has an empty label");
        var classes = list.Select(i => i.Label).Distinct().Order(StringComparer.Ordinal).ToList();
        var index = classes.Select((c, i) => (c, i)).ToDictionary(x => x.c, x => (long)x.i);
        return new ImageDataset(list.Select(i => (IImageSample)new FileImageSample(
            imageFolder is null || Path.IsPathRooted(i.Path) ? i.Path : Path.Combine(imageFolder, i.Path), index[i.Label])).ToList(), classes);
    }

    /// <summary>
    /// A CSV (or TSV with <paramref name="separator"/> '\t') with a header and columns path,label (further columns are
    /// ignored), read by <see cref="Csv"/>: a quoted field may hold the separator, <c>""</c> and line breaks.
    /// </summary>
    public static ImageDataset FromCsv(string csvPath, string? imageFolder = null, char separator = ',')
    {
        if (!File.Exists(csvPath)) throw new FileNotFoundException($"CSV file not found: {csvPath}", csvPath);
        var records = Csv.ReadFile(csvPath, separator);
        if (records.Count < 2) throw new InvalidDataException($"{csvPath} has no data rows (a header line, then path{separator}label lines)");
        var items = new List<(string, string)>();
        foreach (var r in records.Skip(1))
        {
            if (r.Fields.Count < 2) throw new InvalidDataException($"{csvPath}, line {r.Line}: expected path{separator}label, got '{r.Text}'");
            items.Add((r.Fields[0], r.Fields[1]));
        }
        return FromList(items, imageFolder ?? Path.GetDirectoryName(Path.GetFullPath(csvPath)));
    }

    /// <summary>IDX image and label files (MNIST, Fashion-MNIST), plain or gzipped; class names are "0".."9" unless given.</summary>
    public static ImageDataset FromIdx(string imagesPath, string labelsPath, IReadOnlyList<string>? classNames = null)
    {
        var (shape, pixels) = Idx.ReadBytes(imagesPath);
        var (lshape, labels) = Idx.ReadBytes(labelsPath);
        if (shape.Length != 3) throw new InvalidDataException($"{imagesPath}: expected (count, height, width), found {shape.Length} dimensions");
        if (lshape.Length != 1 || lshape[0] != shape[0]) throw new InvalidDataException($"{labelsPath} has {lshape[0]} labels for {shape[0]} images");
        int h = shape[1], w = shape[2];
        int classes = classNames?.Count ?? labels.Max() + 1;
        var names = classNames ?? Enumerable.Range(0, classes).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
        var samples = new IImageSample[shape[0]];
        for (int i = 0; i < samples.Length; i++)
            samples[i] = new PixelImageSample($"{Path.GetFileName(imagesPath)}[{i}]", pixels.AsSpan(i * h * w, h * w).ToArray(), w, h, 1, labels[i]);
        return new ImageDataset(samples, names);
    }

    /// <summary>
    /// A stratified split: every class keeps (about) the same share in both parts; seeded. Returns (train, validation).
    /// </summary>
    public (ImageDataset Train, ImageDataset Validation) StratifiedSplit(double validationFraction, int seed = 0)
    {
        if (!(validationFraction > 0 && validationFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction, "validation fraction must be in (0, 1)");
        var (kept, heldOut) = Stratified.Split(Samples.Select(s => s.Label).ToList(), validationFraction, new Random(seed));
        var train = kept.Select(i => Samples[i]).ToList();
        var val = heldOut.Select(i => Samples[i]).ToList();
        return (new ImageDataset(train, ClassNames), new ImageDataset(val, ClassNames));
    }
}
