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
        var ctx = new VitContext(seed: 12);
        var data = ctx.Data.LoadFromImageFolder(Fixtures.Folder);
        var loaded = ctx.Transforms.LoadImages("Image", "", "ImagePath").Fit(data).Transform(data);
        var checkpoints = Directory.CreateTempSubdirectory("vit-pictures-").FullName;
        var options = Fixtures.TinyOptions(epochs: 3);
        options.CheckpointDirectory = checkpoints;
        options.ValidationSet = loaded;
        using var model = Fixtures.Pipeline(ctx, options).Fit(data);
        foreach (var name in new[] { "curves.svg", "confusion.svg", "attention.svg", "last.safetensors", "best.safetensors" })
            Assert.IsTrue(File.Exists(Path.Combine(checkpoints, name)), name);
        var curves = XDocument.Load(Path.Combine(checkpoints, "curves.svg"));
        Assert.IsTrue(curves.Descendants().Any(e => (string?)e.Attribute("data-series") == "validation-accuracy"), "validation curves are drawn");

        // On request, for other data: the confusion matrix counts every row once.
        var more = Path.Combine(checkpoints, "test");
        var written = model.LastTransformer.WritePictures(more, loaded, samples: 4);
        CollectionAssert.AreEquivalent(new[] { "curves.svg", "confusion.svg", "attention.svg" }, written.Select(Path.GetFileName).ToArray());
        var cells = XDocument.Load(Path.Combine(more, "confusion.svg")).Descendants()
            .Where(e => e.Attribute("data-count") is not null).Select(e => long.Parse((string)e.Attribute("data-count")!)).ToList();
        Assert.HasCount(9, cells);
        Assert.AreEqual(loaded.GetRows().Count(), cells.Sum());
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
        var ctx = new VitContext(seed: 13);
        var validation = ctx.Transforms.LoadImages("Image", "", "ImagePath").Fit(ctx.Data.LoadFromImageFolder(root)).Transform(ctx.Data.LoadFromImageFolder(root));
        var options = Fixtures.TinyOptions(epochs: 1);
        options.CheckpointDirectory = Directory.CreateTempSubdirectory("vit-pictures-run-").FullName;
        options.ValidationSet = validation;  // its broken image is skipped in training's evaluation, and fails scoring
        var error = new StringWriter();
        var original = Console.Error;
        Console.SetError(error);
        try
        {
            using var model = Fixtures.Pipeline(ctx, options).Fit(ctx.Data.LoadFromImageFolder(Fixtures.Folder));
            Assert.IsNotNull(model.LastTransformer.Model.Head, "the trained model is returned");
        }
        finally
        {
            Console.SetError(original);
        }
        StringAssert.Contains(error.ToString(), "warning: the pictures of the run could not be drawn");
        Assert.IsTrue(File.Exists(Path.Combine(options.CheckpointDirectory, "curves.svg")), "what could be drawn was");
    }
}
