namespace Vit.Torch.Data;

/// <summary>
/// Fashion-MNIST (Xiao et al., 2017): 28×28 grayscale clothing images in 10 classes, 60,000 for training and
/// 10,000 for testing, read from the IDX files of Debian's <c>dataset-fashion-mnist</c> package.
/// </summary>
public static class FashionMnist
{
    /// <summary>Where Debian's package puts the files.</summary>
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";

    /// <summary>Mean and standard deviation of the training pixels scaled to [0, 1].</summary>
    public const float Mean = 0.2860f, Std = 0.3530f;

    /// <summary>The class names, index = label.</summary>
    public static readonly IReadOnlyList<string> ClassNames =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>The normalisation of the example and tests: the training set's mean and std.</summary>
    public static Imaging.Normalization Normalization { get; } = new([Mean], [Std]);

    /// <summary>The training or test split as images for an <see cref="ImageBatchLoader"/> (decoded pixels, 1 channel).</summary>
    public static ImageDataset LoadImages(bool train, string? directory = null)
    {
        var (images, labels) = Files(train, directory);
        return ImageDataset.FromIdx(images, labels, ClassNames);
    }

    /// <summary>Loads the training or test split in memory, pixels normalised as (p/255 - mean) / std.</summary>
    public static InMemoryDataset Load(bool train, string? directory = null)
    {
        var (imagesPath, labelsPath) = Files(train, directory);
        var (shape, images) = Idx.ReadBytes(imagesPath);
        var (lshape, labelBytes) = Idx.ReadBytes(labelsPath);
        if (shape.Length != 3) throw new InvalidDataException($"{imagesPath}: expected 3 dimensions, found {shape.Length}");
        if (lshape.Length != 1 || lshape[0] != shape[0])
            throw new InvalidDataException($"{labelsPath} has {lshape[0]} labels for {shape[0]} images");
        var pixels = new float[images.Length];
        for (int i = 0; i < images.Length; i++) pixels[i] = (images[i] / 255f - Mean) / Std;
        var labels = labelBytes.Select(b => (long)b).ToArray();
        return new InMemoryDataset(pixels, labels, (1, shape[1], shape[2]), 10, ClassNames);
    }

    private static (string Images, string Labels) Files(bool train, string? directory)
    {
        directory ??= DefaultDirectory;
        var prefix = train ? "train" : "t10k";
        var imagesPath = Path.Combine(directory, $"{prefix}-images-idx3-ubyte.gz");
        var labelsPath = Path.Combine(directory, $"{prefix}-labels-idx1-ubyte.gz");
        if (!File.Exists(imagesPath) || !File.Exists(labelsPath))
            throw new FileNotFoundException(
                $"Fashion-MNIST not found in {directory} (looked for {Path.GetFileName(imagesPath)} and {Path.GetFileName(labelsPath)}). " +
                "Install it with `sudo bash eng/install-deps.sh` (Debian package dataset-fashion-mnist).");
        return (imagesPath, labelsPath);
    }
}
