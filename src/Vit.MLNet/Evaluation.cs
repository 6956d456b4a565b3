using Vit.Torch.Training;
namespace Vit.MLNet;

/// <summary>Multiclass metrics, named as in ML.NET's MulticlassClassificationMetrics.</summary>
public sealed record MulticlassClassificationMetrics
{
    /// <summary>
    /// Share of rows whose predicted label is right (rows with labels the model never saw count as wrong). The predicted
    /// label is the <c>PredictedLabel</c> column's; where it is missing, the highest score's, the first in label order on ties.
    /// </summary>
    public double MicroAccuracy { get; init; }

    /// <summary>Mean over classes of per-class accuracy (recall).</summary>
    public double MacroAccuracy { get; init; }

    /// <summary>
    /// Share of rows whose label is among the <see cref="TopKPredictionCount"/> highest scores. Ties count in the label's
    /// favour: a row counts when fewer than k classes score strictly higher than its label. So with tied scores this
    /// can exceed <see cref="MicroAccuracy"/> even at k = 1, where the predicted label is only the first of the tied.
    /// </summary>
    public double TopKAccuracy { get; init; }

    /// <summary>k of <see cref="TopKAccuracy"/>: the k asked for, at most the number of labels.</summary>
    public int TopKPredictionCount { get; init; }

    /// <summary>Mean of -ln(probability of the true label), over rows with known labels (probabilities clamped at 1e-15).</summary>
    public double LogLoss { get; init; }

    /// <summary>Per-class -ln p averaged over that class's rows, in label order.</summary>
    public IReadOnlyList<double> PerClassLogLoss { get; init; } = [];

    /// <summary>Counts[true class][predicted class], in the order of <see cref="Labels"/>.</summary>
    public IReadOnlyList<IReadOnlyList<long>> ConfusionMatrix { get; init; } = [];

    /// <summary>The model's labels (the order of the confusion matrix and Score).</summary>
    public IReadOnlyList<string> Labels { get; init; } = [];

    /// <summary>Rows evaluated.</summary>
    public long RowCount { get; init; }

    /// <summary>Rows whose label the model never saw, by label (reported, counted as wrong, left out of log-loss).</summary>
    public IReadOnlyDictionary<string, long> UnknownLabels { get; init; } = new Dictionary<string, long>();
}

/// <summary>Evaluation of scored data (ML.NET's <c>mlContext.MulticlassClassification</c>).</summary>
public sealed class MulticlassClassificationCatalog
{
    internal MulticlassClassificationCatalog() { }

    /// <summary>
    /// Computes accuracy, top-k accuracy, log-loss and the confusion matrix of scored data (the output of a
    /// <see cref="VitTransformer"/>, which carries the label order in the Score column's SlotNames).
    /// </summary>
    public MulticlassClassificationMetrics Evaluate(IDataView data, string labelColumnName = "Label", string scoreColumnName = "Score",
        string predictedLabelColumnName = "PredictedLabel", int topKPredictionCount = 5)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (topKPredictionCount < 1) throw new ArgumentOutOfRangeException(nameof(topKPredictionCount), topKPredictionCount, "k must be at least 1");
        var labelCol = data.Schema.Require(labelColumnName, "label", t => t is TextDataViewType, "Text");
        var scoreCol = data.Schema.Require(scoreColumnName, "score", t => t is VectorDataViewType, "a float vector (run the model's Transform first)");
        var predCol = data.Schema.Require(predictedLabelColumnName, "predicted label", t => t is TextDataViewType, "Text");
        if (!scoreCol.Annotations.TryGetValue("SlotNames", out var slots) || slots is not IReadOnlyList<string> labels)
            throw new ArgumentException($"score column '{scoreColumnName}' does not carry the label order (SlotNames); evaluate the output of a VitTransformer");
        int k = labels.Count, topK = Math.Min(topKPredictionCount, k);
        var index = labels.Select((l, i) => (l, i)).ToDictionary(x => x.l, x => x.i);
        var confusion = new long[k][];
        for (int i = 0; i < k; i++) confusion[i] = new long[k];
        var unknown = new Dictionary<string, long>();
        var classLoss = new double[k];
        var classCount = new long[k];
        long rows = 0, correct = 0, inTopK = 0;
        double logLoss = 0;
        foreach (var row in data.GetRows())
        {
            rows++;
            var label = row[labelCol.Index] as string ?? "";
            var score = row[scoreCol.Index] as float[] ?? throw new ArgumentException($"row {rows - 1} has no score");
            var predicted = row[predCol.Index] as string;
            if (!index.TryGetValue(label, out var t))
            {
                unknown[label] = unknown.GetValueOrDefault(label) + 1;
                continue;
            }
            int p = predicted is not null && index.TryGetValue(predicted, out var pi) ? pi : Classification.ArgMax(score);
            confusion[t][p]++;
            if (p == t) correct++;
            if (Classification.InTopK(score, t, topK)) inTopK++;  // ties count in the label's favour (see TopKAccuracy)
            double loss = -Math.Log(Math.Max(score[t], 1e-15));
            logLoss += loss;
            classLoss[t] += loss;
            classCount[t]++;
        }
        if (rows == 0) throw new ArgumentException("there are no rows to evaluate");
        long known = rows - unknown.Values.Sum();
        var perClassAcc = Enumerable.Range(0, k).Where(c => classCount[c] > 0).Select(c => (double)confusion[c][c] / classCount[c]).ToList();
        return new MulticlassClassificationMetrics
        {
            MicroAccuracy = (double)correct / rows,
            MacroAccuracy = perClassAcc.Count > 0 ? perClassAcc.Average() : 0,
            TopKAccuracy = (double)inTopK / rows,
            TopKPredictionCount = topK,
            LogLoss = known > 0 ? logLoss / known : double.NaN,
            PerClassLogLoss = Enumerable.Range(0, k).Select(c => classCount[c] > 0 ? classLoss[c] / classCount[c] : double.NaN).ToList(),
            ConfusionMatrix = confusion.Select(r => (IReadOnlyList<long>)r).ToList(),
            Labels = labels,
            RowCount = rows,
            UnknownLabels = unknown,
        };
    }
}
