using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using Spectre.Console;
using Vit.MLNet;
using Vit.Torch.Imaging;

namespace Vit.Cli;

/// <summary><c>vit predict model.zip &lt;files|folders&gt;</c>: the top-K labels of each image, scored in batches; an
/// unreadable image is reported and the others are still scored (exit code 1 when any failed).</summary>
internal static class PredictCommand
{
    /// <summary>Images scored per batch.</summary>
    private const int Chunk = 64;

    public static Command Create(CliOutput io)
    {
        var model = new Argument<string>("model") { Description = "The model file." };
        var inputs = new Argument<string[]>("images") { Description = "Image files and folders (searched recursively).", Arity = ArgumentArity.OneOrMore };
        var top = new Option<int>("--top") { Description = "Labels to show per image, best first.", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "Write the predictions as one JSON document (see the README for its fields)." };
        var processes = new Option<int>("--nproc") { Description = "Processes to score with (each takes a contiguous share of the images and cores / N threads).", DefaultValueFactory = _ => 1 };
        var command = new Command("predict", "Classify images with a model file.") { model, inputs, top, json, processes };
        command.SetAction(r => Run(io, r.GetValue(model)!, r.GetValue(inputs)!, r.GetValue(top), r.GetValue(json), r.GetValue(processes)));
        return command;
    }

    /// <summary>Where a worker of <c>--nproc</c> writes its share of the predictions (set by the launcher).</summary>
    private const string PartVariable = "VIT_PREDICT_PART";

    /// <summary>The result for one image: the top labels with their probabilities, or the error that kept it from being scored.</summary>
    public sealed record Prediction(string File, IReadOnlyList<(string Label, float Probability)> Top, string? Error);

    public static int Run(CliOutput io, string modelPath, string[] inputs, int top, bool json, int processes = 1)
    {
        if (top < 1) throw new UsageException($"--top must be at least 1, got {top}");
        if (processes < 1) throw new UsageException($"--nproc must be at least 1, got {processes}");
        var files = CliData.ImageFiles(inputs);
        if (!File.Exists(modelPath)) throw new UsageException($"model file not found: {modelPath}");
        IReadOnlyList<string> labels;
        List<Prediction> results;
        if (Launcher.IsWorker && Environment.GetEnvironmentVariable(PartVariable) is { Length: > 0 } part)
        {
            // A worker: score this rank's contiguous share and leave it for the launcher.
            var (rank, world) = (int.Parse(Environment.GetEnvironmentVariable("RANK")!, CultureInfo.InvariantCulture),
                int.Parse(Environment.GetEnvironmentVariable("WORLD_SIZE")!, CultureInfo.InvariantCulture));
            int from = (int)((long)files.Count * rank / world), to = (int)((long)files.Count * (rank + 1) / world);
            (labels, results) = Score(modelPath, files[from..to], top);
            WritePart(part, labels, results);
            return ExitCodes.Ok;
        }
        if (processes > 1 && files.Count > 1)
        {
            var dir = Directory.CreateTempSubdirectory("vit-predict-").FullName;
            try
            {
                int n = Math.Min(processes, files.Count);
                int code = Launcher.Run(io, new LaunchSettings(n, 1, 0, null, null, TimeSpan.FromSeconds(60)), VitCli.Arguments,
                    rank => new Dictionary<string, string> { [PartVariable] = Path.Combine(dir, $"part-{rank}.json") });
                if (code != ExitCodes.Ok) return code;
                (labels, results) = ([], []);
                for (int rank = 0; rank < n; rank++)
                {
                    var (l, r) = ReadPart(Path.Combine(dir, $"part-{rank}.json"));
                    (labels, results) = (l, [.. results, .. r]);
                }
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
        }
        else
        {
            (labels, results) = Score(modelPath, files, top);
        }
        return Write(io, modelPath, labels, results, top, json);
    }

    /// <summary>The predictions of <paramref name="files"/>, in order; an unreadable file gets its error.</summary>
    private static (IReadOnlyList<string> Labels, List<Prediction> Results) Score(string modelPath, IReadOnlyList<string> files, int top)
    {
        var ml = new MLContext();
        var (model, _, vit) = CliData.LoadModel(ml, modelPath);
        using var _model = model as IDisposable;
        var results = new List<Prediction>();
        foreach (var chunk in files.Chunk(Chunk))
        {
            try
            {
                results.AddRange(Score(ml, model, vit, chunk, top));
            }
            catch (Exception e) when (IsBadImage(e))
            {
                // One bad file fails its batch: score the batch's files one at a time to name it and keep the others.
                foreach (var file in chunk)
                {
                    try
                    {
                        results.AddRange(Score(ml, model, vit, [file], top));
                    }
                    catch (Exception one) when (IsBadImage(one))
                    {
                        results.Add(new Prediction(file, [], one.Message.ReplaceLineEndings(" ")));
                    }
                }
            }
        }
        return (vit.Labels, results);
    }

    private static void WritePart(string path, IReadOnlyList<string> labels, List<Prediction> results) =>
        File.WriteAllText(path, new JsonObject
        {
            ["labels"] = new JsonArray(labels.Select(l => (JsonNode?)l).ToArray()),
            ["predictions"] = new JsonArray(results.Select(r => (JsonNode?)new JsonObject
            {
                ["file"] = r.File, ["error"] = r.Error,
                ["top"] = new JsonArray(r.Top.Select(t => (JsonNode?)new JsonObject { ["label"] = t.Label, ["probability"] = t.Probability }).ToArray()),
            }).ToArray()),
        }.ToJsonString());

    private static (IReadOnlyList<string> Labels, List<Prediction> Results) ReadPart(string path)
    {
        var part = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        var labels = part["labels"]!.AsArray().Select(l => (string)l!).ToList();
        var results = part["predictions"]!.AsArray().Select(p => new Prediction((string)p!["file"]!,
            p["top"]!.AsArray().Select(t => ((string)t!["label"]!, (float)t["probability"]!)).ToList(), (string?)p["error"])).ToList();
        return (labels, results);
    }

    private static int Write(CliOutput io, string modelPath, IReadOnlyList<string> labels, List<Prediction> results, int top, bool json)
    {
        int failed = results.Count(r => r.Error is not null);
        if (json)
        {
            io.Json(new JsonObject
            {
                ["model"] = modelPath,
                ["labels"] = new JsonArray(labels.Select(l => (JsonNode?)l).ToArray()),
                ["predictions"] = new JsonArray(results.Select(r => (JsonNode?)(r.Error is null
                    ? new JsonObject
                    {
                        ["file"] = r.File, ["predicted_label"] = r.Top[0].Label, ["probability"] = r.Top[0].Probability,
                        ["top"] = new JsonArray(r.Top.Select(t => (JsonNode?)new JsonObject { ["label"] = t.Label, ["probability"] = t.Probability }).ToArray()),
                    }
                    : new JsonObject { ["file"] = r.File, ["error"] = r.Error })).ToArray()),
                ["classified"] = results.Count - failed,
                ["failed"] = failed,
            });
        }
        else
        {
            var table = new Table().AddColumn("file");
            for (int k = 0; k < Math.Min(top, labels.Count); k++) table.AddColumn(top == 1 ? "label" : $"#{k + 1}");
            foreach (var r in results)
            {
                var cells = r.Error is null
                    ? r.Top.Select(t => Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"{t.Label} {t.Probability:P1}")))
                    : [$"[red]error:[/] {Markup.Escape(r.Error)}"];
                table.AddRow([Markup.Escape(r.File), .. cells, .. Enumerable.Repeat("", Math.Max(0, Math.Min(top, labels.Count) - cells.Count()))]);
            }
            io.Table(table);
            io.Note($"{results.Count - failed} classified, {failed} unreadable");
        }
        return failed == 0 ? ExitCodes.Ok : ExitCodes.Failed;
    }

    // A file that is missing or cannot be decoded: ML.NET's LoadImages throws FileNotFoundException or (SkiaSharp cannot
    // decode it) ArgumentException; our readers InvalidDataException.
    private static bool IsBadImage(Exception e) => e is ImageDecodeException or FileNotFoundException or IOException or InvalidDataException or ArgumentException
        && e is not ArgumentNullException;

    private static IEnumerable<Prediction> Score(MLContext ml, ITransformer model, VitTransformer vit, IReadOnlyList<string> files, int top)
    {
        var scored = model.Transform(CliData.Paths(ml, files));
        var column = scored.Schema[vit.Columns.Score];
        var predictions = new List<Prediction>();
        using var cursor = scored.GetRowCursor([column]);
        var getScore = cursor.GetGetter<VBuffer<float>>(column);
        VBuffer<float> scores = default;
        int i = 0;
        while (cursor.MoveNext())
        {
            getScore(ref scores);
            var p = scores.DenseValues().ToArray();
            // Best first; ties keep label order, as PredictedLabel does.
            var best = Enumerable.Range(0, p.Length).OrderByDescending(j => p[j]).ThenBy(j => j).Take(top)
                .Select(j => (vit.Labels[j], p[j])).ToList();
            predictions.Add(new Prediction(files[i++], best, null));
        }
        return predictions;
    }
}
