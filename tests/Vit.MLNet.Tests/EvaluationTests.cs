using Vit.MLNet;

namespace Vit.MLNet.Tests;

/// <summary>Evaluate and the predicted label.</summary>
[TestClass]
public sealed class EvaluationTests
{
    [TestMethod]
    public void PredictedLabelOnEqualScores_IsTheFirstLabel_InTransformAndEvaluate()
    {
        var ctx = new VitContext(seed: 4);
        var data = ctx.Data.LoadFromImageFolder(Fixtures.Folder);
        using var model = Fixtures.Pipeline(ctx, Fixtures.TinyOptions(epochs: 0)).Fit(data);
        // A zero head gives every image logits of exactly 0, so every class scores exactly 1/3.
        using (Vit.Torch.Torch.NoGrad())
            foreach (var (name, p) in model.LastTransformer.Model.NamedParameters())
                if (name.StartsWith("head.", StringComparison.Ordinal))
                    using (var zeros = Vit.Torch.Tensor.Zeros(p.Shape)) p.CopyFrom(zeros);
        var scored = model.Transform(data);
        foreach (var row in scored.GetRows())
        {
            var score = (float[])row["Score"]!;
            Assert.IsTrue(score.All(s => s == score[0]), "equal scores");
            Assert.AreEqual("blue", (string)row["PredictedLabel"]!);
        }
        var m = ctx.MulticlassClassification.Evaluate(scored, topKPredictionCount: 1);
        Assert.AreEqual(1.0 / 3, m.MicroAccuracy, 1e-12, "only the blue third is predicted right");
        Assert.AreEqual(1.0, m.TopKAccuracy, "every label ties for the top place");
    }
}
