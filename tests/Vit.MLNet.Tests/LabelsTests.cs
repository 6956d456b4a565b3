using System.Diagnostics;
using Vit.MLNet;
using Vit.Torch.Training;

namespace Vit.MLNet.Tests;

/// <summary>The label column: a key (classes in key order, their names the key values), text (classes in ordinal order),
/// or anything else refused before training.</summary>
[TestClass]
public sealed class LabelsTests
{
    private static readonly string[] RedBlueGreen = ["red", "blue", "green"];

    /// <summary>The fixture's rows, red first, then blue, then green: neither ordinal nor the folder's order.</summary>
    private static IDataView Reordered(MLContext ml) => Rows.Labeled(ml,
        RedBlueGreen.SelectMany(c => Directory.GetFiles(Path.Combine(Fixtures.Folder, c)).Order(StringComparer.Ordinal).Select(f => (f, c))));

    [TestMethod]
    public void KeyLabels_ClassesInKeyOrder_PredictedLabelsKeyValuesAreTheirNames()
    {
        var ml = new MLContext(seed: 1);
        var data = Reordered(ml);
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")  // by occurrence: red = 1, blue = 2, green = 3
            .Append(ml.Transforms.LoadImages("Image", null, "ImagePath"))
            .Append(ml.Transforms.ResizeImages("Image", 16, 16))
            .Append(ml.MulticlassClassification.Trainers.Vit(Fixtures.TinyOptions(epochs: 4)));
        using var model = pipeline.Fit(data);
        var vit = VitPipeline.Find(model, "test");
        CollectionAssert.AreEqual(RedBlueGreen, vit.Labels.ToArray(), "the classes are the keys, in key order");

        var scored = model.Transform(data);
        Assert.AreEqual(new KeyDataViewType(typeof(uint), 3), scored.Schema["PredictedLabel"].Type);
        CollectionAssert.AreEqual(RedBlueGreen, Rows.Annotation(scored.Schema["PredictedLabel"], "KeyValues"));
        CollectionAssert.AreEqual(RedBlueGreen, Rows.Annotation(scored.Schema["Score"], "SlotNames"));

        var predicted = Rows.Keys(scored, "PredictedLabel");
        var truth = Rows.Keys(scored, "Label");
        double accuracy = predicted.Zip(truth).Count(p => p.First == p.Second) / (double)truth.Count;
        Assert.IsGreaterThanOrEqualTo(0.9, accuracy, "PredictedLabel's keys are the label's keys");
        var scores = Rows.Vectors(scored);
        for (int i = 0; i < scores.Count; i++)
            Assert.AreEqual((uint)Array.IndexOf(scores[i], scores[i].Max()) + 1, predicted[i], $"row {i}: the key of the highest score");

        // MapKeyToValue gives the names, and they are the right ones for the images.
        var names = Rows.Texts(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel").Fit(scored).Transform(scored), "PredictedLabel");
        CollectionAssert.AreEqual(predicted.Select(k => vit.Labels[(int)k - 1]).ToArray(), names.ToArray());
        var texts = Rows.Texts(data, "Label");
        Assert.AreEqual(accuracy, names.Zip(texts).Count(p => p.First == p.Second) / (double)texts.Count, 1e-12);

        // ML.NET's evaluator pairs PredictedLabel with the key label.
        Assert.AreEqual(accuracy, ml.MulticlassClassification.Evaluate(scored).MicroAccuracy, 1e-12);
    }

    [TestMethod]
    public void TextLabels_ClassesInOrdinalOrder()
    {
        var ml = new MLContext(seed: 1);
        var data = Reordered(ml);
        using var model = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 4)).Fit(data);
        var vit = VitPipeline.Find(model, "test");
        CollectionAssert.AreEqual(Fixtures.Classes, vit.Labels.ToArray(), "blue, green, red: ordinal, not the data's order");
        var scored = model.Transform(data);
        CollectionAssert.AreEqual(Fixtures.Classes, Rows.Annotation(scored.Schema["Score"], "SlotNames"));
        var names = Rows.Texts(scored, "PredictedLabel");
        var texts = Rows.Texts(data, "Label");
        Assert.IsGreaterThanOrEqualTo(0.9, names.Zip(texts).Count(p => p.First == p.Second) / (double)texts.Count);
    }

    private sealed class FloatLabel
    {
        public string ImagePath { get; set; } = "";
        public float Label { get; set; }
    }

    /// <summary>A float label is refused by the schema check ML.NET's EstimatorChain.Fit runs before fitting any step:
    /// no image is read (the files do not exist) and no step is trained.</summary>
    [TestMethod]
    public void ALabelOfAnotherType_IsRefusedBeforeAnyTraining()
    {
        var ml = new MLContext(seed: 1);
        var nowhere = Directory.CreateTempSubdirectory("vit-nowhere-").FullName;
        var data = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 8).Select(i => new FloatLabel { ImagePath = Path.Combine(nowhere, $"{i}.png"), Label = i % 2 }).ToList());
        var options = Fixtures.TinyOptions(epochs: 2);
        long steps = 0;
        options.Progress = new SyncProgress<VitTrainingProgress>(_ => steps++);
        var clock = Stopwatch.StartNew();
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Fixtures.Pipeline(ml, options).Fit(data));
        clock.Stop();
        StringAssert.Contains(e.Message, "Label column 'Label' has type Single; expected a key");
        Assert.AreEqual(0L, steps, "no training step");
        Assert.IsLessThan(TimeSpan.FromSeconds(10), clock.Elapsed);

        // The estimator says it from the schema alone, and names a missing label column.
        var images = ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(data).Transform(data);
        var estimator = new VitEstimator(ml, options);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(Shapes.Of(images.Schema))).Message,
            "Label column 'Label' has type Single");
        var unlabeled = ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(data).Transform(ml.Data.LoadFromEnumerable(new[] { new ImageInput() }));
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(Shapes.Of(unlabeled.Schema))).Message,
            "Label column 'Label' not found");
    }

    private sealed class KeyName
    {
        public string Label { get; set; } = "";
    }

    /// <summary>Rows whose key label is missing (a value the key mapping does not know) are skipped with a warning each.</summary>
    [TestMethod]
    public void RowsWithAMissingKeyAreSkippedWithAWarning()
    {
        var ml = new MLContext(seed: 1);
        var warnings = Rows.Warnings(ml);
        var keys = ml.Data.LoadFromEnumerable(new[] { new KeyName { Label = "red" }, new KeyName { Label = "blue" } });
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label", keyData: keys)   // green has no key: missing
            .Append(ml.Transforms.LoadImages("Image", null, "ImagePath"))
            .Append(ml.Transforms.ResizeImages("Image", 16, 16))
            .Append(new VitEstimator(ml, Fixtures.TinyOptions(epochs: 1)));
        using var model = pipeline.Fit(Reordered(ml));
        var vit = VitPipeline.Find(model, "test");
        CollectionAssert.AreEqual(new[] { "red", "blue" }, vit.Labels.ToArray());
        Assert.AreEqual(20, vit.History!.SkippedImages);
        var skipped = warnings.Where(w => w.Contains("no label in column 'Label'; row skipped")).ToList();
        Assert.HasCount(20, skipped);
        Assert.IsTrue(skipped.Any(w => w.Contains("row 40:")), "the first green row");
    }
}
