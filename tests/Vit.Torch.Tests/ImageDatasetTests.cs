using Vit.Torch.Data;
using Vit.Torch.Imaging;
using static Vit.Torch.Tests.ImageFixtures;

namespace Vit.Torch.Tests;

/// <summary>
/// <see cref="ImageDataset"/>: the ImageFolder convention, CSV/TSV lists, in-memory lists, IDX files written here
/// byte by byte, and the stratified split. Expected labels and paths are written out from the layout each test
/// creates, not read back from the code under test.
/// </summary>
[TestClass]
public sealed class ImageDatasetTests
{
    private static void WriteImage(string path, byte value, string format)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var img = Image.Filled(4, 3, 3, value);
        File.WriteAllBytes(path, format switch
        {
            "png" => img.EncodePng(),
            "jpg" => img.EncodeJpeg(),
            "bmp" => img.EncodeBmp(),
            "webp" => img.EncodeWebP(lossless: true),
            _ => throw new ArgumentException(format),
        });
    }

    // ------------------------------------------------------------------ image folder

    [TestMethod]
    public void FromFolder_TakesImagesInClassSubfolders_ClassesInOrdinalOrder()
    {
        using var dir = new TempDir();
        string P(params string[] parts) => Path.Combine([dir.Path, .. parts]);
        // Ordinal order puts "Dog" (upper case) before "cat" before "dog"; a culture-aware sort would not.
        WriteImage(P("cat", "b.png"), 10, "png");
        WriteImage(P("cat", "a.jpg"), 20, "jpg");
        WriteImage(P("cat", "c.JPEG"), 30, "jpg");             // extensions are case-insensitive
        WriteImage(P("cat", "nested", "d.webp"), 40, "webp");  // subfolders of a class belong to it
        WriteImage(P("Dog", "x.bmp"), 50, "bmp");
        WriteImage(P("dog", "y.webp"), 60, "webp");
        WriteImage(P("dog", "z.png"), 70, "png");
        File.WriteAllText(P("cat", "notes.txt"), "not an image");
        File.WriteAllText(P("cat", "README"), "no extension");
        File.WriteAllBytes(P("dog", "y.webp.bak"), [1, 2, 3]);
        File.WriteAllText(P("labels.md"), "a file next to the class folders, not in one");
        WriteImage(P("stray.png"), 80, "png");                 // an image outside any class folder

        var data = ImageDataset.FromFolder(dir.Path);

        CollectionAssert.AreEqual(new[] { "Dog", "cat", "dog" }, data.ClassNames.ToArray());
        Assert.AreEqual(3, data.NumClasses);
        var expected = new[]
        {
            (P("Dog", "x.bmp"), 0L),
            (P("cat", "a.jpg"), 1L), (P("cat", "b.png"), 1L), (P("cat", "c.JPEG"), 1L), (P("cat", "nested", "d.webp"), 1L),
            (P("dog", "y.webp"), 2L), (P("dog", "z.png"), 2L),
        };
        CollectionAssert.AreEquivalent(expected, data.Samples.Select(s => (s.Name, s.Label)).ToArray());
        Assert.AreEqual(7, data.Count);
        CollectionAssert.AreEqual(data.Samples.Select(s => s.Name).ToArray(),
            ImageDataset.FromFolder(dir.Path).Samples.Select(s => s.Name).ToArray(), "the same folder gives the same sample order");

        // Every sample is the file it names: the lossless ones decode to the value written to that file.
        foreach (var (file, value) in new[] { (P("cat", "b.png"), 10), (P("cat", "nested", "d.webp"), 40), (P("Dog", "x.bmp"), 50), (P("dog", "z.png"), 70) })
        {
            using var img = data.Samples.Single(s => s.Name == file).Load(ImageDecodeOptions.Default);
            Assert.AreEqual((4, 3), (img.Width, img.Height), file);
            Assert.IsTrue(img.ToBytes().All(b => b == value), file);
        }
    }

    [TestMethod]
    public void FromFolder_MissingEmptyOrSingleClassFolder_SaysWhatIsWrong()
    {
        using var dir = new TempDir();
        var missing = Path.Combine(dir.Path, "no-such-folder");
        var e1 = Assert.ThrowsExactly<DirectoryNotFoundException>(() => ImageDataset.FromFolder(missing));
        Assert.AreEqual($"image folder not found: {missing}", e1.Message);

        var empty = Path.Combine(dir.Path, "empty");
        Directory.CreateDirectory(empty);
        var e2 = Assert.ThrowsExactly<ArgumentException>(() => ImageDataset.FromFolder(empty));
        Assert.Contains($"no images in {empty}", e2.Message);
        Assert.Contains("one subfolder per class", e2.Message);

        // Class folders holding only files that are not images count as empty too.
        var textOnly = Path.Combine(dir.Path, "text-only");
        Directory.CreateDirectory(Path.Combine(textOnly, "a"));
        Directory.CreateDirectory(Path.Combine(textOnly, "b"));
        File.WriteAllText(Path.Combine(textOnly, "a", "x.txt"), "x");
        File.WriteAllText(Path.Combine(textOnly, "b", "y.csv"), "y");
        Assert.Contains($"no images in {textOnly}", Assert.ThrowsExactly<ArgumentException>(() => ImageDataset.FromFolder(textOnly)).Message);

        var oneClass = Path.Combine(dir.Path, "one-class");
        WriteImage(Path.Combine(oneClass, "only", "a.png"), 1, "png");
        Assert.Contains("at least two classes, found 1", Assert.ThrowsExactly<ArgumentException>(() => ImageDataset.FromFolder(oneClass)).Message);
    }

    [TestMethod]
    public void ImageFolderList_SingleClassIsAPolicy_AnEmptyClassFolderIsStillAClass()
    {
        using var dir = new TempDir();
        var one = Path.Combine(dir.Path, "one");
        WriteImage(Path.Combine(one, "only", "b.png"), 1, "png");
        WriteImage(Path.Combine(one, "only", "a.png"), 2, "png");
        var listing = ImageFolder.List(one, allowSingleClass: true);
        CollectionAssert.AreEqual(new[] { "only" }, listing.ClassNames.ToArray());
        CollectionAssert.AreEqual(new[] { (Path.Combine(one, "only", "a.png"), 0), (Path.Combine(one, "only", "b.png"), 0) }, listing.Files.ToArray());
        var e = Assert.ThrowsExactly<ArgumentException>(() => ImageFolder.List(one));
        Assert.AreEqual($"{one} holds one class folder (only); a classifier needs at least two classes, found 1", e.Message);

        // A class folder without images keeps its index, so "b" stays class 2 whether "a2" holds images or not.
        var gap = Path.Combine(dir.Path, "gap");
        WriteImage(Path.Combine(gap, "a1", "x.png"), 1, "png");
        Directory.CreateDirectory(Path.Combine(gap, "a2"));
        WriteImage(Path.Combine(gap, "b", "y.png"), 2, "png");
        var data = ImageDataset.FromFolder(gap);
        CollectionAssert.AreEqual(new[] { "a1", "a2", "b" }, data.ClassNames.ToArray());
        CollectionAssert.AreEqual(new[] { 0L, 2L }, data.Samples.Select(s => s.Label).ToArray());
        Assert.AreSame(ImageFolder.Extensions, ImageDataset.Extensions);
    }

    // ------------------------------------------------------------------ CSV and lists

    [TestMethod]
    public void FromCsv_ResolvesRelativePathsAgainstTheCsvFolder_AndReadsQuotedFieldsAndTsv()
    {
        using var dir = new TempDir();
        WriteImage(dir.File(Path.Combine("imgs", "a.png")), 1, "png");
        WriteImage(dir.File(Path.Combine("imgs", "b.png")), 2, "png");
        using var elsewhere = new TempDir();
        var absolute = elsewhere.File("c.png");
        WriteImage(absolute, 3, "png");
        var csv = dir.File("labels.csv");
        File.WriteAllText(csv, $"path,label\nimgs/a.png,cat\n\"imgs/b.png\", \"dog\" \n{absolute},cat\n");
        Assert.AreNotEqual(Path.GetFullPath(dir.Path), Path.GetFullPath(Environment.CurrentDirectory), "relative paths must not resolve by accident");

        var data = ImageDataset.FromCsv(csv);

        CollectionAssert.AreEqual(new[] { "cat", "dog" }, data.ClassNames.ToArray());
        CollectionAssert.AreEqual(
            new[] { (Path.Combine(dir.Path, "imgs/a.png"), 0L), (Path.Combine(dir.Path, "imgs/b.png"), 1L), (absolute, 0L) },
            data.Samples.Select(s => (s.Name, s.Label)).ToArray());
        foreach (var s in data.Samples)
            using (s.Load(ImageDecodeOptions.Default)) { }  // every resolved path is a real file

        // An explicit image folder wins over the CSV's own folder; TSV works with '\t'.
        var tsv = elsewhere.File("list.tsv");
        File.WriteAllText(tsv, "file\tclass\na.png\tx\nb.png\ty\n");
        var fromTsv = ImageDataset.FromCsv(tsv, imageFolder: Path.Combine(dir.Path, "imgs"), separator: '\t');
        CollectionAssert.AreEqual(new[] { Path.Combine(dir.Path, "imgs", "a.png"), Path.Combine(dir.Path, "imgs", "b.png") },
            fromTsv.Samples.Select(s => s.Name).ToArray());
        CollectionAssert.AreEqual(new[] { "x", "y" }, fromTsv.ClassNames.ToArray());
    }

    [TestMethod]
    public void FromCsv_BadLines_NameTheFileAndTheLine()
    {
        using var dir = new TempDir();
        var csv = dir.File("bad.csv");
        // Line 5 has no label; the blank line 3 still counts, as in any editor.
        File.WriteAllText(csv, "path,label\na.png,cat\n\nb.png,dog\nc.png\nd.png,cat\n");
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ImageDataset.FromCsv(csv));
        Assert.AreEqual($"{csv}, line 5: expected path,label, got 'c.png'", e.Message);

        var tsv = dir.File("bad.tsv");
        File.WriteAllText(tsv, "path\tlabel\na.png,cat\n");  // commas in a TSV
        Assert.Contains($"{tsv}, line 2: expected path\tlabel", Assert.ThrowsExactly<InvalidDataException>(() => ImageDataset.FromCsv(tsv, separator: '\t')).Message);

        var headerOnly = dir.File("header.csv");
        File.WriteAllText(headerOnly, "path,label\n\n");
        Assert.Contains("has no data rows", Assert.ThrowsExactly<InvalidDataException>(() => ImageDataset.FromCsv(headerOnly)).Message);

        var missing = dir.File("missing.csv");
        Assert.AreEqual(missing, Assert.ThrowsExactly<FileNotFoundException>(() => ImageDataset.FromCsv(missing)).FileName);

        var emptyLabel = dir.File("empty-label.csv");
        File.WriteAllText(emptyLabel, "path,label\na.png,cat\nb.png,\n");
        Assert.Contains("(b.png) has an empty label", Assert.ThrowsExactly<ArgumentException>(() => ImageDataset.FromCsv(emptyLabel)).Message);
    }

    [TestMethod]
    public void FromCsv_QuotedPathsWithCommasQuotesAndLineBreaks_AndAnUnclosedQuoteNamesItsLine()
    {
        using var dir = new TempDir();
        var csv = dir.File("labels.csv");
        File.WriteAllText(csv, "path,label,note\n\"imgs/a,b.png\",cat,\"a comma\"\n\"imgs/say \"\"hi\"\".png\",\"dog, big\"\n" +
            "\"imgs/two\nlines.png\",cat,\"a line break\"\n");
        var data = ImageDataset.FromCsv(csv);
        CollectionAssert.AreEqual(new[] { "cat", "dog, big" }, data.ClassNames.ToArray());
        CollectionAssert.AreEqual(
            new[] { (Path.Combine(dir.Path, "imgs/a,b.png"), 0L), (Path.Combine(dir.Path, "imgs/say \"hi\".png"), 1L), (Path.Combine(dir.Path, "imgs/two\nlines.png"), 0L) },
            data.Samples.Select(s => (s.Name, s.Label)).ToArray());

        var open = dir.File("open.csv");
        File.WriteAllText(open, "path,label\na.png,cat\n\n\"b.png,dog\nc.png,cat\n");
        Assert.AreEqual($"{open}, line 4: field 1 opens a quote that is never closed (a \" inside a quoted field is written \"\")",
            Assert.ThrowsExactly<InvalidDataException>(() => ImageDataset.FromCsv(open)).Message);

        // After a quoted line break, errors still name the line an editor shows.
        var later = dir.File("later.csv");
        File.WriteAllText(later, "path,label\n\"x\ny.png\",cat\nz.png\n");
        Assert.AreEqual($"{later}, line 4: expected path,label, got 'z.png'", Assert.ThrowsExactly<InvalidDataException>(() => ImageDataset.FromCsv(later)).Message);
    }

    [TestMethod]
    public void FromList_LabelsInOrdinalOrder_EmptyLabelIsAnError()
    {
        var data = ImageDataset.FromList([("x/1.png", "zebra"), ("/abs/2.png", "ant"), ("3.png", "zebra"), ("4.png", "Bee")], imageFolder: "/data");
        CollectionAssert.AreEqual(new[] { "Bee", "ant", "zebra" }, data.ClassNames.ToArray());
        CollectionAssert.AreEqual(
            new[] { (Path.Combine("/data", "x/1.png"), 2L), ("/abs/2.png", 1L), (Path.Combine("/data", "3.png"), 2L), (Path.Combine("/data", "4.png"), 0L) },
            data.Samples.Select(s => (s.Name, s.Label)).ToArray());
        Assert.AreEqual("x/1.png", ImageDataset.FromList([("x/1.png", "a"), ("y.png", "b")]).Samples[0].Name, "no folder: paths stay as given");

        var e = Assert.ThrowsExactly<ArgumentException>(() => ImageDataset.FromList([("a.png", "cat"), ("b.png", " "), ("c.png", "dog")]));
        Assert.AreEqual("item 1 (b.png) has an empty label", e.Message);
        Assert.Contains("item 0 (a.png) has an empty label", Assert.ThrowsExactly<ArgumentException>(() => ImageDataset.FromList([("a.png", ""), ("b.png", "x")])).Message);
        Assert.Contains("at least two classes, found 1", Assert.ThrowsExactly<ArgumentException>(() => ImageDataset.FromList([("a.png", "cat"), ("b.png", "cat")])).Message);
    }

    // ------------------------------------------------------------------ IDX

    private static byte[] Idx(byte[] data, params int[] shape) => DataTests.IdxBytes(data, shape);

    [TestMethod]
    public void FromIdx_ReadsImagesRowMajorWithTheirLabels()
    {
        using var dir = new TempDir();
        const int n = 5, h = 2, w = 3;  // not square, so a swapped width and height shows
        var pixels = Enumerable.Range(0, n * h * w).Select(i => (byte)(i * 5 + 1)).ToArray();
        var images = dir.File("images-idx3-ubyte");
        var labels = dir.File("labels-idx1-ubyte");
        File.WriteAllBytes(images, Idx(pixels, n, h, w));
        File.WriteAllBytes(labels, Idx([2, 0, 1, 2, 0], n));

        var data = ImageDataset.FromIdx(images, labels);

        Assert.AreEqual(n, data.Count);
        CollectionAssert.AreEqual(new[] { "0", "1", "2" }, data.ClassNames.ToArray());
        CollectionAssert.AreEqual(new long[] { 2, 0, 1, 2, 0 }, data.Samples.Select(s => s.Label).ToArray());
        for (int i = 0; i < n; i++)
        {
            using var img = data.Samples[i].Load(ImageDecodeOptions.Default);
            Assert.AreEqual((w, h, 1), (img.Width, img.Height, img.Channels), $"image {i}");
            // Image i holds bytes [i*h*w, (i+1)*h*w): rows of width w, top to bottom.
            var expected = Enumerable.Range(i * h * w, h * w).Select(k => (byte)(k * 5 + 1)).ToArray();
            CollectionAssert.AreEqual(expected, img.ToBytes(), $"image {i}");
            Assert.AreEqual($"images-idx3-ubyte[{i}]", data.Samples[i].Name);
        }

        var named = ImageDataset.FromIdx(images, labels, ["shirt", "shoe", "bag"]);
        CollectionAssert.AreEqual(new[] { "shirt", "shoe", "bag" }, named.ClassNames.ToArray());

        File.WriteAllBytes(labels, Idx([0, 1, 0, 1], 4));
        Assert.AreEqual($"{labels} has 4 labels for 5 images", Assert.ThrowsExactly<InvalidDataException>(() => ImageDataset.FromIdx(images, labels)).Message);
        var flat = dir.File("flat-idx2");
        File.WriteAllBytes(flat, Idx(new byte[6], 2, 3));
        Assert.Contains("expected (count, height, width), found 2 dimensions", Assert.ThrowsExactly<InvalidDataException>(() => ImageDataset.FromIdx(flat, labels)).Message);
        File.WriteAllBytes(labels, Idx([0, 1, 0, 1, 7], 5));
        Assert.Contains("label 7", Assert.ThrowsExactly<ArgumentException>(() => ImageDataset.FromIdx(images, labels, ["a", "b"])).Message);
    }

    // ------------------------------------------------------------------ stratified split

    private static ImageDataset Classes(params int[] counts)
    {
        // Samples of the classes interleaved, so a split that ignored the labels would mix the shares.
        var samples = new List<IImageSample>();
        for (int k = 0; samples.Count < counts.Sum(); k++)
            for (int c = 0; c < counts.Length; c++)
                if (k < counts[c]) samples.Add(new PixelImageSample($"c{c}-{k}", [0], 1, 1, 1, c));
        return new ImageDataset(samples, counts.Select((_, c) => $"class{c}").ToList());
    }

    [TestMethod]
    public void StratifiedSplit_KeepsEachClassShare_IsDisjointAndComplete_AndSeeded()
    {
        var data = Classes(10, 20);
        var (train, val) = data.StratifiedSplit(0.2, seed: 1);

        Assert.AreEqual(2, val.Samples.Count(s => s.Label == 0));
        Assert.AreEqual(4, val.Samples.Count(s => s.Label == 1));
        Assert.AreEqual(8, train.Samples.Count(s => s.Label == 0));
        Assert.AreEqual(16, train.Samples.Count(s => s.Label == 1));
        var trainNames = train.Samples.Select(s => s.Name).ToHashSet();
        var valNames = val.Samples.Select(s => s.Name).ToHashSet();
        Assert.IsFalse(trainNames.Overlaps(valNames), "no sample in both parts");
        CollectionAssert.AreEquivalent(data.Samples.Select(s => s.Name).ToArray(), trainNames.Concat(valNames).ToArray(), "every sample in one part");
        Assert.AreEqual(30, train.Count + val.Count);
        CollectionAssert.AreEqual(data.ClassNames.ToArray(), train.ClassNames.ToArray());
        CollectionAssert.AreEqual(data.ClassNames.ToArray(), val.ClassNames.ToArray());

        var again = data.StratifiedSplit(0.2, seed: 1);
        CollectionAssert.AreEqual(val.Samples.Select(s => s.Name).ToArray(), again.Validation.Samples.Select(s => s.Name).ToArray(), "same seed, same split");
        CollectionAssert.AreEqual(train.Samples.Select(s => s.Name).ToArray(), again.Train.Samples.Select(s => s.Name).ToArray());
        var other = data.StratifiedSplit(0.2, seed: 2);
        Assert.IsFalse(valNames.SetEquals(other.Validation.Samples.Select(s => s.Name)), "another seed, another split");
        Assert.AreEqual(6, other.Validation.Count);

        // Uneven classes: 7, 13 and 50 samples at 0.3 -> 2, 4 and 15 held out (2.1, 3.9, 15 rounded).
        var (_, v3) = Classes(7, 13, 50).StratifiedSplit(0.3, seed: 5);
        CollectionAssert.AreEqual(new[] { 2, 4, 15 }, Enumerable.Range(0, 3).Select(c => v3.Samples.Count(s => s.Label == c)).ToArray());
    }

    [TestMethod]
    public void StratifiedSplit_FractionOutsideZeroOne_IsRejected()
    {
        var data = Classes(4, 4);
        foreach (var f in new[] { 0, 1, -0.1, 1.5, double.NaN })
        {
            var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => data.StratifiedSplit(f), $"fraction {f}");
            Assert.Contains("validation fraction must be in (0, 1)", e.Message);
        }
    }
}
