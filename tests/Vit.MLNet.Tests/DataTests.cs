using Vit.MLNet;
using Vit.Torch.Data;

namespace Vit.MLNet.Tests;

/// <summary>
/// Loading data: the image folder as the engine's <see cref="ImageDataset"/> reads it. Expected rows are written out
/// from the layout each test creates.
/// </summary>
[TestClass]
public sealed class DataTests
{
    private static string TempFolder() => Directory.CreateTempSubdirectory("vit-data-").FullName;

    private static void Touch(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, [1]);  // listing never decodes
    }

    private static (string, string)[] RowsOf(MLContext ml, IDataView data) =>
        ml.Data.CreateEnumerable<VitCatalog.ImageFolderRow>(data, reuseRowObject: false).Select(r => (r.ImagePath, r.Label)).ToArray();

    [TestMethod]
    public void ImageFolder_RowsAreTheEnginesSamples_WithAbsolutePaths()
    {
        var dir = TempFolder();
        string P(params string[] parts) => Path.Combine([dir, .. parts]);
        foreach (var f in new[] { P("cat", "b.png"), P("cat", "a.JPG"), P("cat", "nested", "c.webp"), P("Dog", "x.bmp"), P("dog", "y.jpeg"),
                     P("cat", "notes.txt"), P("dog", "y.jpeg.bak"), P("stray.png") })
            Touch(f);
        Directory.CreateDirectory(P("empty"));
        var relative = Path.GetRelativePath(Environment.CurrentDirectory, dir);
        Assert.IsFalse(Path.IsPathRooted(relative));

        var ml = new MLContext();
        var data = ml.Data.LoadFromImageFolder(relative);
        CollectionAssert.AreEqual(new[] { "ImagePath", "Label" }, data.Schema.Select(c => c.Name).ToArray());
        Assert.AreEqual(TextDataViewType.Instance, data.Schema["Label"].Type);
        var rows = RowsOf(ml, data);

        // Ordinal order: "Dog" before "cat" before "dog"; inside a class, paths in ordinal order, subfolders included.
        CollectionAssert.AreEqual(new[]
        {
            (P("Dog", "x.bmp"), "Dog"), (P("cat", "a.JPG"), "cat"), (P("cat", "b.png"), "cat"), (P("cat", "nested", "c.webp"), "cat"),
            (P("dog", "y.jpeg"), "dog"),
        }, rows);
        var engine = ImageDataset.FromFolder(dir);
        CollectionAssert.AreEqual(engine.Samples.Select(s => (s.Name, engine.ClassNames[(int)s.Label])).ToArray(), rows);
    }

    [TestMethod]
    public void ImageFolder_OneClassLoads_ButFitRefusesIt()
    {
        var dir = TempFolder();
        foreach (var f in Directory.GetFiles(Path.Combine(Fixtures.Folder, "red")).Order(StringComparer.Ordinal).Take(2))
            File.Copy(f, Path.Combine(Directory.CreateDirectory(Path.Combine(dir, "red")).FullName, Path.GetFileName(f)));
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromImageFolder(dir);
        CollectionAssert.AreEqual(new[] { "red", "red" }, RowsOf(ml, data).Select(r => r.Item2).ToArray());
        var e = Assert.ThrowsExactly<ArgumentException>(() => Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 1)).Fit(data));
        StringAssert.Contains(e.Message, "the training data has 1 class(es) (red) in label column 'Label'; a classifier needs at least two");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ImageDataset.FromFolder(dir)).Message, "at least two classes, found 1");
    }

    [TestMethod]
    public void ImageFolder_MissingOrEmpty_SaysWhatIsWrong()
    {
        var dir = TempFolder();
        var missing = Path.Combine(dir, "nope");
        Assert.AreEqual($"image folder not found: {missing}",
            Assert.ThrowsExactly<DirectoryNotFoundException>(() => new MLContext().Data.LoadFromImageFolder(missing)).Message);
        Touch(Path.Combine(dir, "a", "readme.txt"));
        StringAssert.StartsWith(Assert.ThrowsExactly<ArgumentException>(() => new MLContext().Data.LoadFromImageFolder(dir)).Message,
            $"no images in {dir}: expected one subfolder per class");
    }
}
