using System.Xml.Linq;
using Vit.MLNet;

namespace Vit.MLNet.Tests;

/// <summary>The pictures of a run: written next to its checkpoints, and on request for any labelled data.</summary>
[TestClass]
public sealed class PicturesTests
{
    [TestMethod]
    public void ARunWithCheckpointsDrawsItsCurvesConfusionAndAttention()
    {
        var ml = new MLContext(seed: 12);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        var loaded = ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(data).Transform(data);
        var checkpoints = Directory.CreateTempSubdirectory("vit-pictures-").FullName;
        var options = Fixtures.TinyOptions(epochs: 3);
        options.CheckpointDirectory = checkpoints;
        options.ValidationSet = loaded;
        using var model = Fixtures.Pipeline(ml, options).Fit(data);
        foreach (var name in new[] { "curves.png", "confusion.png", "attention.svg", "last.safetensors", "best.safetensors" })
            Assert.IsTrue(File.Exists(Path.Combine(checkpoints, name)), name);
        AssertPicture(Path.Combine(checkpoints, "curves.png"), minWidth: 3 * 300);  // three panels side by side
        Assert.IsNotNull(XDocument.Load(Path.Combine(checkpoints, "attention.svg")).Root);

        // On request, for other data.
        var more = Path.Combine(checkpoints, "test");
        var written = VitPipeline.Find(model, "test").WritePictures(more, loaded, samples: 4);
        CollectionAssert.AreEquivalent(new[] { "curves.png", "confusion.png", "attention.svg" }, written.Select(Path.GetFileName).ToArray());
        AssertPicture(Path.Combine(more, "confusion.png"), minWidth: 300);
    }

    /// <summary>A PNG that decodes, of a plausible size, with ink on it (not one flat colour).</summary>
    private static void AssertPicture(string path, int minWidth)
    {
        using var bitmap = SkiaSharp.SKBitmap.Decode(path);
        Assert.IsNotNull(bitmap, $"{path} decodes as an image");
        Assert.IsGreaterThanOrEqualTo(minWidth, bitmap.Width, path);
        var colours = new HashSet<uint>();
        for (int y = 0; y < bitmap.Height; y += 7)
            for (int x = 0; x < bitmap.Width; x += 7)
                colours.Add((uint)bitmap.GetPixel(x, y));
        Assert.IsGreaterThan(5, colours.Count, $"{path} has more than a background");
    }

    [TestMethod]
    public void PicturesThatCannotBeDrawnCostAWarningNotTheModel()
    {
        var root = Directory.CreateTempSubdirectory("vit-pictures-bad-").FullName;
        foreach (var c in Fixtures.Classes)
        {
            var target = Directory.CreateDirectory(Path.Combine(root, c)).FullName;
            foreach (var f in Directory.GetFiles(Path.Combine(Fixtures.Folder, c)).Take(4)) File.Copy(f, Path.Combine(target, Path.GetFileName(f)));
        }
        File.WriteAllBytes(Path.Combine(root, "red", "broken.png"), [0x89, 0x50, 0x4e, 0x47]);
        var ml = new MLContext(seed: 13);
        var warnings = Rows.Warnings(ml);
        var listing = ml.Data.LoadFromImageFolder(root);
        var validation = ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(listing).Transform(listing);
        var options = Fixtures.TinyOptions(epochs: 1);
        options.CheckpointDirectory = Directory.CreateTempSubdirectory("vit-pictures-run-").FullName;
        options.ValidationSet = validation;  // its broken image is skipped in training's evaluation, and fails scoring
        using (var model = Fixtures.Pipeline(ml, options).Fit(ml.Data.LoadFromImageFolder(Fixtures.Folder)))
            Assert.IsNotNull(VitPipeline.Find(model, "test").Model.Head, "the trained model is returned");
        Assert.IsTrue(warnings.Any(w => w.Contains("the pictures of the run could not be drawn")), string.Join("\n", warnings));
        Assert.IsTrue(warnings.Any(w => w.Contains("validation set, row") && w.Contains("row skipped")), "the broken image was skipped in validation");
        Assert.IsTrue(File.Exists(Path.Combine(options.CheckpointDirectory, "curves.png")), "what could be drawn was");
    }
}
