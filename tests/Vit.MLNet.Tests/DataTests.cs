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

        var rows = new VitContext().Data.LoadFromImageFolder(relative).GetRows()
            .Select(r => ((string)r["ImagePath"]!, (string)r["Label"]!)).ToArray();

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
        var ctx = new VitContext(seed: 1);
        var data = ctx.Data.LoadFromImageFolder(dir);
        CollectionAssert.AreEqual(new[] { "red", "red" }, data.GetRows().Select(r => (string)r["Label"]!).ToArray());
        var e = Assert.ThrowsExactly<ArgumentException>(() => Fixtures.Pipeline(ctx, Fixtures.TinyOptions(epochs: 1)).Fit(data));
        StringAssert.Contains(e.Message, "1 distinct label(s) (red); a classifier needs at least two classes");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ImageDataset.FromFolder(dir)).Message, "at least two classes, found 1");
    }

    [TestMethod]
    public void ImageFolder_MissingOrEmpty_SaysWhatIsWrong()
    {
        var dir = TempFolder();
        var missing = Path.Combine(dir, "nope");
        Assert.AreEqual($"image folder not found: {missing}",
            Assert.ThrowsExactly<DirectoryNotFoundException>(() => new VitContext().Data.LoadFromImageFolder(missing)).Message);
        Touch(Path.Combine(dir, "a", "readme.txt"));
        StringAssert.StartsWith(Assert.ThrowsExactly<ArgumentException>(() => new VitContext().Data.LoadFromImageFolder(dir)).Message,
            $"no images in {dir}: expected one subfolder per class");
    }

    [TestMethod]
    public void TextFile_QuotedFieldsFollowRfc4180()
    {
        var dir = TempFolder();
        var csv = Path.Combine(dir, "data.csv");
        File.WriteAllText(csv, "ImagePath,Label\r\n\"photos/a,b.png\",cat\r\n\r\n\"say \"\"hi\"\".png\",\" dog \"\r\n\"two\r\nlines.png\",cat\r\n");
        var rows = new VitContext().Data.LoadFromTextFile(csv).GetRows().Select(r => ((string)r["ImagePath"]!, (string)r["Label"]!)).ToArray();
        CollectionAssert.AreEqual(new[] { ("photos/a,b.png", "cat"), ("say \"hi\".png", " dog "), ("two\r\nlines.png", "cat") }, rows);

        var noHeader = Path.Combine(dir, "plain.tsv");
        File.WriteAllText(noHeader, "a.png\tcat\n\"b\tc.png\"\tdog\n");
        var view = new VitContext().Data.LoadFromTextFile(noHeader, '\t', hasHeader: false);
        CollectionAssert.AreEqual(new[] { "Column1", "Column2" }, view.Schema.Select(c => c.Name).ToArray());
        CollectionAssert.AreEqual(new[] { "a.png", "b\tc.png" }, view.GetRows().Select(r => (string)r["Column1"]!).ToArray());
    }

    [TestMethod]
    public void TextFile_BrokenQuotingAndShortRows_NameTheFileAndTheLine()
    {
        var dir = TempFolder();
        var open = Path.Combine(dir, "open.csv");
        File.WriteAllText(open, "ImagePath,Label\na.png,cat\nb.png,\"dog\nc.png,cat\n");
        Assert.AreEqual($"{open}, line 3: field 2 opens a quote that is never closed (a \" inside a quoted field is written \"\")",
            Assert.ThrowsExactly<InvalidDataException>(() => new VitContext().Data.LoadFromTextFile(open)).Message);

        // The blank line 3 counts, as in an editor.
        var shortRow = Path.Combine(dir, "short.csv");
        File.WriteAllText(shortRow, "ImagePath,Label\na.png,cat\n\nb.png\n");
        Assert.AreEqual($"{shortRow}, line 4: 1 fields where the header has 2",
            Assert.ThrowsExactly<InvalidDataException>(() => new VitContext().Data.LoadFromTextFile(shortRow)).Message);
    }
}
