using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Spectre.Console;
using Vit.MLNet;

namespace Vit.Cli;

/// <summary><c>vit evaluate model.zip &lt;folder|csv&gt;</c>: accuracy, log-loss, per-class precision/recall/F1 and the
/// confusion matrix, as tables or JSON; <c>--report DIR</c> adds the pictures (confusion matrix, attention, curves).</summary>
internal static class EvaluateCommand
{
    public static Command Create(CliOutput io)
    {
        var model = new Argument<string>("model") { Description = "The model file (a zip from vit train, vit import or ctx.Model.Save)." };
        var data = new Argument<string>("data") { Description = "Labelled images: a folder with one subfolder per class, or a CSV/TSV with ImagePath and Label." };
        var json = new Option<bool>("--json") { Description = "Write the metrics as one JSON document (see the README for its fields)." };
        var report = new Option<string?>("--report") { Description = "A folder to write confusion.svg, attention.svg and curves.svg into." };
        var command = new Command("evaluate", "Measure a model on labelled images.") { model, data, json, report };
        command.SetAction(r => Run(io, r.GetValue(model)!, r.GetValue(data)!, r.GetValue(json), r.GetValue(report)));
        return command;
    }

    /// <summary>Per-class precision, recall, F1 and support from a confusion matrix (rows: true class, columns:
    /// predicted). A class never predicted has precision 0, one without rows recall 0 (scikit-learn's zero_division=0).</summary>
    public static (double Precision, double Recall, double F1, long Support)[] PerClass(IReadOnlyList<IReadOnlyList<long>> cm)
    {
        int n = cm.Count;
        var result = new (double, double, double, long)[n];
        for (int c = 0; c < n; c++)
        {
            long tp = cm[c][c], support = cm[c].Sum(), predicted = Enumerable.Range(0, n).Sum(r => cm[r][c]);
            double p = predicted == 0 ? 0 : (double)tp / predicted, rec = support == 0 ? 0 : (double)tp / support;
            result[c] = (p, rec, p + rec == 0 ? 0 : 2 * p * rec / (p + rec), support);
        }
        return result;
    }

    public static int Run(CliOutput io, string modelPath, string dataPath, bool json, string? report)
    {
        var ctx = new VitContext();
        var (model, _, vit) = CliData.LoadModel(ctx, modelPath);
        using var _model = model as IDisposable;
        var data = CliData.Labelled(ctx, dataPath, "evaluation data");
        var m = ctx.MulticlassClassification.Evaluate(model.Transform(data), CliData.Label, vit.Columns.Score, vit.Columns.PredictedLabel);
        var perClass = PerClass(m.ConfusionMatrix);
        if (report is not null)
        {
            // The pictures read the image column: the model's own first steps (LoadImages, ResizeImages) make it.
            var steps = Transformers.Steps(model).ToList();
            var imaged = steps.TakeWhile(s => s is not VitTransformer).Aggregate(data, (d, s) => s.Transform(d));
            foreach (var file in vit.WritePictures(report, imaged)) io.Note($"wrote {file}");
        }
        if (json)
        {
            io.Json(new JsonObject
            {
                ["model"] = modelPath,
                ["data"] = dataPath,
                ["rows"] = m.RowCount,
                ["accuracy"] = CliOutput.Num(m.MicroAccuracy),
                ["macro_accuracy"] = CliOutput.Num(m.MacroAccuracy),
                ["top_k"] = m.TopKPredictionCount,
                ["top_k_accuracy"] = CliOutput.Num(m.TopKAccuracy),
                ["log_loss"] = CliOutput.Num(m.LogLoss),
                ["labels"] = new JsonArray(m.Labels.Select(l => (JsonNode?)l).ToArray()),
                ["per_class"] = new JsonArray(m.Labels.Select((l, i) => (JsonNode?)new JsonObject
                {
                    ["label"] = l, ["precision"] = perClass[i].Precision, ["recall"] = perClass[i].Recall, ["f1"] = perClass[i].F1,
                    ["support"] = perClass[i].Support, ["log_loss"] = CliOutput.Num(m.PerClassLogLoss[i]),
                }).ToArray()),
                ["confusion_matrix"] = new JsonArray(m.ConfusionMatrix.Select(row => (JsonNode?)new JsonArray(row.Select(v => (JsonNode?)v).ToArray())).ToArray()),
                ["unknown_labels"] = new JsonObject(m.UnknownLabels.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            });
            return ExitCodes.Ok;
        }
        io.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{m.RowCount} images: accuracy {m.MicroAccuracy:P2}, macro accuracy {m.MacroAccuracy:P2}, top-{m.TopKPredictionCount} {m.TopKAccuracy:P2}, log-loss {m.LogLoss:F4}"));
        var classes = new Table().AddColumns("label", "precision", "recall", "F1", "support");
        for (int i = 0; i < m.Labels.Count; i++)
            classes.AddRow(Markup.Escape(m.Labels[i]), CliOutput.F(perClass[i].Precision), CliOutput.F(perClass[i].Recall), CliOutput.F(perClass[i].F1),
                perClass[i].Support.ToString(CultureInfo.InvariantCulture));
        io.Table(classes);
        var cm = new Table().AddColumn("true \\ predicted");
        foreach (var l in m.Labels) cm.AddColumn(Markup.Escape(l));
        for (int i = 0; i < m.Labels.Count; i++)
            cm.AddRow([Markup.Escape(m.Labels[i]), .. m.ConfusionMatrix[i].Select(v => v.ToString(CultureInfo.InvariantCulture))]);
        io.Table(cm);
        foreach (var (label, count) in m.UnknownLabels)
            io.Note($"note: {count} rows have the label '{label}', which the model does not know (counted as wrong)");
        return ExitCodes.Ok;
    }
}
