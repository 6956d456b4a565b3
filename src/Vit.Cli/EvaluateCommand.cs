using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Spectre.Console;
using Vit.MLNet;

namespace Vit.Cli;

/// <summary><c>vit evaluate model.zip &lt;folder|csv&gt;</c>: accuracy, log-loss, per-class precision/recall/F1 and the
/// confusion matrix, as tables or JSON; <c>--report DIR</c> adds the pictures (confusion matrix, attention, curves).</summary>
internal static class EvaluateCommand
{
    public static Command Create(CliOutput io)
    {
        var model = new Argument<string>("model") { Description = "The model file (a zip from vit train, vit import or mlContext.Model.Save)." };
        var data = new Argument<string>("data") { Description = "Labelled images: a folder with one subfolder per class, or a CSV/TSV with ImagePath and Label." };
        var json = new Option<bool>("--json") { Description = "Write the metrics as one JSON document (see the README for its fields)." };
        var report = new Option<string?>("--report") { Description = "A folder to write confusion.png, attention.svg and curves.png into." };
        var command = new Command("evaluate", "Measure a model on labelled images.") { model, data, json, report };
        command.SetAction(r => Run(io, r.GetValue(model)!, r.GetValue(data)!, r.GetValue(json), r.GetValue(report)));
        return command;
    }

    /// <summary>Per class: precision and recall (ML.NET's), F1 from them, and support (the row sums of ML.NET's confusion matrix).</summary>
    public static (double Precision, double Recall, double F1, long Support)[] PerClass(Microsoft.ML.Data.ConfusionMatrix cm) =>
        Enumerable.Range(0, cm.NumberOfClasses).Select(c =>
        {
            double p = cm.PerClassPrecision[c], r = cm.PerClassRecall[c];
            return (p, r, p + r == 0 ? 0 : 2 * p * r / (p + r), (long)Math.Round(cm.Counts[c].Sum()));
        }).ToArray();

    public static int Run(CliOutput io, string modelPath, string dataPath, bool json, string? report)
    {
        var ml = new MLContext();
        var (model, _, vit) = CliData.LoadModel(ml, modelPath);
        using var _model = model as IDisposable;
        var data = CliData.Labelled(ml, dataPath, "evaluation data");
        // ML.NET's evaluator leaves out rows whose label the model does not know: count them to say so.
        var known = vit.Labels.ToHashSet(StringComparer.Ordinal);
        var unknown = ml.Data.CreateEnumerable<VitCatalog.ImageFolderRow>(data, reuseRowObject: false)
            .Where(r => !known.Contains(r.Label)).GroupBy(r => r.Label).ToDictionary(g => g.Key, g => (long)g.Count());
        int topK = Math.Min(5, vit.Labels.Count);
        var m = ml.MulticlassClassification.EvaluateVit(model, data, CliData.Label, topK);
        var perClass = PerClass(m.ConfusionMatrix);
        long rows = perClass.Sum(c => c.Support);
        if (report is not null)
        {
            // The pictures read the image column: the model's own first steps (LoadImages, ResizeImages) make it.
            var steps = VitPipeline.Steps(model).ToList();
            var imaged = steps.TakeWhile(s => s is not VitTransformer).Aggregate(data, (d, s) => s.Transform(d));
            foreach (var file in vit.WritePictures(report, imaged)) io.Note($"wrote {file}");
        }
        if (json)
        {
            io.Json(new JsonObject
            {
                ["model"] = modelPath,
                ["data"] = dataPath,
                ["rows"] = rows,
                ["accuracy"] = CliOutput.Num(m.MicroAccuracy),
                ["macro_accuracy"] = CliOutput.Num(m.MacroAccuracy),
                ["top_k"] = topK,
                ["top_k_accuracy"] = CliOutput.Num(m.TopKAccuracy),
                ["log_loss"] = CliOutput.Num(m.LogLoss),
                ["labels"] = new JsonArray(vit.Labels.Select(l => (JsonNode?)l).ToArray()),
                ["per_class"] = new JsonArray(vit.Labels.Select((l, i) => (JsonNode?)new JsonObject
                {
                    ["label"] = l, ["precision"] = perClass[i].Precision, ["recall"] = perClass[i].Recall, ["f1"] = perClass[i].F1,
                    ["support"] = perClass[i].Support, ["log_loss"] = CliOutput.Num(m.PerClassLogLoss[i]),
                }).ToArray()),
                ["confusion_matrix"] = new JsonArray(m.ConfusionMatrix.Counts.Select(row => (JsonNode?)new JsonArray(row.Select(v => (JsonNode?)(long)Math.Round(v)).ToArray())).ToArray()),
                ["unknown_labels"] = new JsonObject(unknown.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            });
            return ExitCodes.Ok;
        }
        io.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{rows} images: accuracy {m.MicroAccuracy:P2}, macro accuracy {m.MacroAccuracy:P2}, top-{topK} {m.TopKAccuracy:P2}, log-loss {m.LogLoss:F4}"));
        var classes = new Table().AddColumns("label", "precision", "recall", "F1", "support");
        for (int i = 0; i < vit.Labels.Count; i++)
            classes.AddRow(Markup.Escape(vit.Labels[i]), CliOutput.F(perClass[i].Precision), CliOutput.F(perClass[i].Recall), CliOutput.F(perClass[i].F1),
                perClass[i].Support.ToString(CultureInfo.InvariantCulture));
        io.Table(classes);
        var cm = new Table().AddColumn("true \\ predicted");
        foreach (var l in vit.Labels) cm.AddColumn(Markup.Escape(l));
        for (int i = 0; i < vit.Labels.Count; i++)
            cm.AddRow([Markup.Escape(vit.Labels[i]), .. m.ConfusionMatrix.Counts[i].Select(v => ((long)Math.Round(v)).ToString(CultureInfo.InvariantCulture))]);
        io.Table(cm);
        foreach (var (label, count) in unknown)
            io.Note($"note: {count} rows have the label '{label}', which the model does not know (ML.NET's evaluator leaves them out)");
        return ExitCodes.Ok;
    }
}
