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
        foreach (var name in new[] { "curves.svg", "confusion.svg", "attention.svg", "last.safetensors", "best.safetensors" })
            Assert.IsTrue(File.Exists(Path.Combine(checkpoints, name)), name);
        var curves = XDocument.Load(Path.Combine(checkpoints, "curves.svg"));
        Assert.IsTrue(curves.Descendants().Any(e => (string?)e.Attribute("data-series") == "validation-accuracy"), "validation curves are drawn");

        // On request, for other data: the confusion matrix counts every row once.
        var more = Path.Combine(checkpoints, "test");
        var written = VitPipeline.Find(model, "test").WritePictures(more, loaded, samples: 4);
        CollectionAssert.AreEquivalent(new[] { "curves.svg", "confusion.svg", "attention.svg" }, written.Select(Path.GetFileName).ToArray());
        var cells = XDocument.Load(Path.Combine(more, "confusion.svg")).Descendants()
            .Where(e => e.Attribute("data-count") is not null).Select(e => long.Parse((string)e.Attribute("data-count")!)).ToList();
        Assert.HasCount(9, cells);
        Assert.AreEqual(Rows.Count(loaded), cells.Sum());
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
        Assert.IsTrue(File.Exists(Path.Combine(options.CheckpointDirectory, "curves.svg")), "what could be drawn was");
    }
}
