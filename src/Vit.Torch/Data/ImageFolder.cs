namespace Vit.Torch.Data;

/// <summary>
/// The ImageFolder convention (torchvision's and timm's): <c>root/class_name/**/*.jpg</c>, one subfolder per class,
/// named after the class. The one reader of such folders: <see cref="ImageDataset.FromFolder"/> and Vit.MLNet's
/// <c>LoadFromImageFolder</c> both list through <see cref="List"/>, so they agree on order, labels and extensions.
/// </summary>
public static class ImageFolder
{
    /// <summary>Image file extensions picked up (compared case-insensitively): .jpg, .jpeg, .png, .bmp, .webp.</summary>
    public static IReadOnlySet<string> Extensions { get; } =
        new HashSet<string>(StringComparer.OrdinalIgnoreCase) { ".jpg", ".jpeg", ".png", ".bmp", ".webp" };

    /// <summary>
    /// Lists the images under <paramref name="root"/>. Every subfolder of the root is a class (one holding no images
    /// too, as torchvision's <c>find_classes</c>); classes are in ordinal order of their names, and
    /// a class's files, found in its subfolder and below, in ordinal order of their paths. Files directly in the root,
    /// and files of other extensions, are ignored. Paths start with <paramref name="root"/> as given.
    /// </summary>
    /// <param name="root">The folder holding one subfolder per class.</param>
    /// <param name="allowSingleClass">
    /// Whether one class folder is accepted. A dataset to train on needs two classes (false, as
    /// <see cref="ImageDataset.FromFolder"/>); a data view to score, or whose labels are checked later (Vit.MLNet
    /// checks them at <c>Fit</c>), may hold one (true).
    /// </param>
    /// <exception cref="DirectoryNotFoundException"><paramref name="root"/> does not exist.</exception>
    /// <exception cref="ArgumentException">No images were found, or only one class folder when that is not allowed.</exception>
    public static ImageFolderListing List(string root, bool allowSingleClass = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"image folder not found: {root}");
        var classes = Directory.GetDirectories(root).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToList();
        var files = new List<(string Path, int Label)>();
        for (int c = 0; c < classes.Count; c++)
            foreach (var f in Directory.EnumerateFiles(Path.Combine(root, classes[c]), "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
                if (Extensions.Contains(Path.GetExtension(f)))
                    files.Add((f, c));
        if (files.Count == 0)
            throw new ArgumentException($"no images in {root}: expected one subfolder per class holding .jpg, .jpeg, .png, .bmp or .webp files");
        if (classes.Count < 2 && !allowSingleClass)
            throw new ArgumentException($"{root} holds one class folder ({classes[0]}); a classifier needs at least two classes, found 1");
        return new ImageFolderListing(classes, files);
    }
}

/// <summary>What <see cref="ImageFolder.List"/> found.</summary>
/// <param name="ClassNames">The class folders' names in ordinal order; index = label.</param>
/// <param name="Files">Every image with its class index, class by class, each class's files in ordinal order of their paths.</param>
public sealed record ImageFolderListing(IReadOnlyList<string> ClassNames, IReadOnlyList<(string Path, int Label)> Files);
