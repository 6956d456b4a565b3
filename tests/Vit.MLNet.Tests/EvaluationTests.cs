using Vit.MLNet;

namespace Vit.MLNet.Tests;

/// <summary>Evaluate on scores written out by hand, so that every expected number can be counted on the page.</summary>
[TestClass]
public sealed class EvaluationTests
{
    private static readonly string[] Labels = ["a", "b", "c", "d"];

    /// <summary>A scored view as a VitTransformer writes it: Label, Score (with SlotNames), PredictedLabel.</summary>
    private static IDataView Scored(params (string Label, float[] Score, string? Predicted)[] rows)
    {
        var slots = new Dictionary<string, object> { ["SlotNames"] = Labels };
        var schema = new DataViewSchema([
            new DataViewSchemaColumn("Label", TextDataViewType.Instance, 0),
            new DataViewSchemaColumn("Score", new VectorDataViewType(NumberDataViewType.Single, Labels.Length), 1) { Annotations = slots },
            new DataViewSchemaColumn("PredictedLabel", TextDataViewType.Instance, 2),
        ]);
        return new TableDataView(schema, rows.Select(r => new object?[] { r.Label, r.Score, r.Predicted }).ToList());
    }

    [TestMethod]
    public void TopK_TiesCountInTheLabelsFavour_PredictedLabelTakesTheFirstTied()
    {
        // No PredictedLabel: Evaluate predicts the highest score, the first in label order on ties.
        var data = Scored(
            ("a", [0.25f, 0.25f, 0.25f, 0.25f], null),  // all tie: predicted a (right); 0 higher -> in the top 1 and 2
            ("d", [0.4f, 0.2f, 0.2f, 0.2f], null),      // d ties b and c for 2nd: 1 higher -> in the top 2, not the top 1
            ("c", [0.3f, 0.3f, 0.3f, 0.1f], null),      // three tie for two places: 0 higher -> in the top 1 and 2
            ("d", [0.3f, 0.3f, 0.2f, 0.2f], null),      // 2 higher -> in neither
            ("b", [0.5f, 0.5f, 0f, 0f], null));         // a and b tie: predicted a (wrong); 0 higher -> in the top 1 and 2
        var ctx = new VitContext();

        var top2 = ctx.MulticlassClassification.Evaluate(data, topKPredictionCount: 2);
        Assert.AreEqual(2, top2.TopKPredictionCount);
        Assert.AreEqual(4.0 / 5, top2.TopKAccuracy, 1e-12);
        Assert.AreEqual(1.0 / 5, top2.MicroAccuracy, 1e-12);
        CollectionAssert.AreEqual(new long[] { 1, 0, 0, 0 }, top2.ConfusionMatrix[0].ToArray());
        CollectionAssert.AreEqual(new long[] { 1, 0, 0, 0 }, top2.ConfusionMatrix[1].ToArray(), "b's row was predicted a, the first tied");
        CollectionAssert.AreEqual(new long[] { 2, 0, 0, 0 }, top2.ConfusionMatrix[3].ToArray());

        // At k = 1 the tie rule lets TopKAccuracy exceed MicroAccuracy: rows 1, 3 and 5 count, only row 1 is predicted right.
        var top1 = ctx.MulticlassClassification.Evaluate(data, topKPredictionCount: 1);
        Assert.AreEqual(3.0 / 5, top1.TopKAccuracy, 1e-12);
        Assert.AreEqual(1.0 / 5, top1.MicroAccuracy, 1e-12);

        // k above the label count is the label count: every row counts.
        var top9 = ctx.MulticlassClassification.Evaluate(data, topKPredictionCount: 9);
        Assert.AreEqual(4, top9.TopKPredictionCount);
        Assert.AreEqual(1.0, top9.TopKAccuracy);
    }

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
