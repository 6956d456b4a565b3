using Microsoft.ML.Transforms;
using Vit.MLNet;

namespace Vit.MLNet.Tests;

/// <summary>
/// Evaluation is ML.NET's own evaluator. EvaluateVit only maps text labels to keys in the model's class order: it must
/// agree with ML.NET's Evaluate on the same labels mapped by hand, and with accuracy and log-loss computed directly from
/// the scores.
/// </summary>
[TestClass]
public sealed class EvaluationTests
{
    /// <summary>The fixture's rows with the classes in another order than their ordinal one (red, blue, green): a mapping
    /// by occurrence would give other keys than the model's classes.</summary>
    private static IDataView Reordered(MLContext ml)
    {
        var order = new[] { "red", "blue", "green" };
        return Rows.Labeled(ml, order.SelectMany(c => Directory.GetFiles(Path.Combine(Fixtures.Folder, c)).Order(StringComparer.Ordinal).Select(f => (f, c))));
    }

    [TestMethod]
    public void EvaluateVit_AgreesWithMLNetsEvaluateOnKeyLabels_AndWithTheScores()
    {
        var ml = new MLContext(seed: 2);
        var data = Reordered(ml);
        using var model = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 1)).Fit(data);  // one epoch: not perfect
        var vit = VitPipeline.Find(model, "test");
        CollectionAssert.AreEqual(Fixtures.Classes, vit.Labels.ToArray(), "text labels: classes in ordinal order");

        var ours = ml.MulticlassClassification.EvaluateVit(model, data, "Label", topKPredictionCount: 2);

        // The same labels as keys by hand, in ordinal order (= the model's classes), through ML.NET's Evaluate.
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label", keyOrdinality: ValueToKeyMappingEstimator.KeyOrdinality.ByValue).Fit(data).Transform(data);
        var theirs = ml.MulticlassClassification.Evaluate(model.Transform(keyed), "Label", topKPredictionCount: 2);
        Assert.AreEqual(theirs.MicroAccuracy, ours.MicroAccuracy, 1e-12);
        Assert.AreEqual(theirs.MacroAccuracy, ours.MacroAccuracy, 1e-12);
        Assert.AreEqual(theirs.LogLoss, ours.LogLoss, 1e-12);
        Assert.AreEqual(theirs.TopKAccuracy, ours.TopKAccuracy, 1e-12);
        for (int i = 0; i < 3; i++) CollectionAssert.AreEqual(theirs.ConfusionMatrix.Counts[i].ToArray(), ours.ConfusionMatrix.Counts[i].ToArray());

        // Directly from the scores: the label's class is its index in vit.Labels.
        var labels = Rows.Texts(data, "Label");
        var scores = Rows.Vectors(model.Transform(data));
        var truth = labels.Select(l => vit.Labels.ToList().IndexOf(l)).ToList();
        double accuracy = truth.Select((t, i) => Array.IndexOf(scores[i], scores[i].Max()) == t ? 1.0 : 0).Average();
        double logLoss = truth.Select((t, i) => -Math.Log(Math.Max(scores[i][t], 1e-15))).Average();
        Assert.AreEqual(accuracy, ours.MicroAccuracy, 1e-12);
        Assert.AreEqual(logLoss, ours.LogLoss, 1e-5);
        Assert.IsLessThan(1.0, ours.LogLoss, "a model of one epoch: the numbers are not trivial");
        Assert.IsGreaterThan(0.0, ours.LogLoss);
    }

    [TestMethod]
    public void PredictedLabelOnEqualScores_IsTheFirstClass()
    {
        var ml = new MLContext(seed: 4);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        using var model = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 0)).Fit(data);
        // A zero head gives every image logits of exactly 0, so every class scores exactly 1/3.
        using (Vit.Torch.Torch.NoGrad())
            foreach (var (name, p) in VitPipeline.Find(model, "test").Model.NamedParameters())
                if (name.StartsWith("head.", StringComparison.Ordinal))
                    using (var zeros = Vit.Torch.Tensor.Zeros(p.Shape)) p.CopyFrom(zeros);
        var scored = model.Transform(data);
        foreach (var score in Rows.Vectors(scored)) Assert.IsTrue(score.All(s => s == score[0]), "equal scores");
        CollectionAssert.AreEqual(Enumerable.Repeat("blue", 60).ToArray(), Rows.Texts(scored, "PredictedLabel").ToArray());
        var m = ml.MulticlassClassification.EvaluateVit(model, data);
        Assert.AreEqual(1.0 / 3, m.MicroAccuracy, 1e-12, "one class in three is predicted right");
    }

    [TestMethod]
    public void EvaluateVitNamesAPipelineWithoutAVitStep()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        var loadOnly = ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(data);
        var e = Assert.ThrowsExactly<ArgumentException>(() => ml.MulticlassClassification.EvaluateVit(loadOnly, data));
        StringAssert.Contains(e.Message, "EvaluateVit needs a pipeline with one VitTransformer step");
        StringAssert.Contains(e.Message, "ImageLoadingTransformer");
    }
}
