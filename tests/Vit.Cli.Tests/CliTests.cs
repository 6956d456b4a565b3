using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.ML;
using Vit.Cli;
using Vit.MLNet;
using Vit.Tests;
using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;

namespace Vit.Cli.Tests;

/// <summary>
/// The `vit` tool end to end: one small model is trained through `vit train` on a generated folder, then evaluated,
/// used for predictions, exported and imported; references are computed here (the metrics from the predictions, the
/// parameter count from the ViT's formula, the scores from ONNX Runtime). Bad usage must be one line and exit code 2;
/// Ctrl+C must leave a checkpoint that --resume finishes to the weights of an uninterrupted run.
/// </summary>
[TestClass]
public sealed class CliTests
{
    private static readonly string[] Classes = ["blue", "green", "red"];
    private const int Side = 16, PerClass = 12;
    private static string root = "", data = "", model = "";
    private static readonly Dictionary<string, byte[]> Pixels = new();

    /// <summary>The architecture options of the small model every test uses.</summary>
    private static string[] Small(string data, string output, int epochs) =>
        ["train", data, "--out", output, "--arch", "custom", "--dim", "32", "--depth", "2", "--heads", "2", "--patch", "8",
         "--image-size", $"{Side}", "--epochs", $"{epochs}", "--batch-size", "8", "--lr", "0.003", "--precision", "float32", "--seed", "1"];

    [ClassInitialize]
    public static void TrainOnce(TestContext _)
    {
        root = Directory.CreateTempSubdirectory("vit-cli-").FullName;
        data = Path.Combine(root, "photos");
        var rng = new Random(3);
        for (int c = 0; c < Classes.Length; c++)
        {
            var dir = Directory.CreateDirectory(Path.Combine(data, Classes[c])).FullName;
            for (int i = 0; i < PerClass; i++)
            {
                // A noisy field of the class's colour: channel (RGB order) red 0, green 1, blue 2.
                int hot = Classes[c] switch { "red" => 0, "green" => 1, _ => 2 };
                var px = new byte[Side * Side * 3];
                for (int p = 0; p < Side * Side; p++)
                    for (int ch = 0; ch < 3; ch++) px[p * 3 + ch] = (byte)(ch == hot ? rng.Next(150, 256) : rng.Next(0, 110));
                var file = Path.Combine(dir, $"{i:D2}.png");
                using var img = Image.FromPixels(px, Side, Side, 3);
                File.WriteAllBytes(file, img.EncodePng());
                Pixels[file] = px;
            }
        }
        model = Path.Combine(root, "model.zip");
        var r = Cli(Small(data, model, epochs: 8));
        Assert.AreEqual(0, r.Code, r.Err);
        StringAssert.Contains(r.Out, "saved");
    }

    [ClassCleanup]
    public static void Cleanup() => Directory.Delete(root, recursive: true);

    private sealed record Result(int Code, string Out, string Err);

    private static Result Cli(params string[] args)
    {
        var (o, e) = (new StringWriter(), new StringWriter());
        int code = VitCli.Run(args, o, e);
        return new Result(code, o.ToString(), e.ToString());
    }

    private static JsonObject Json(Result r)
    {
        Assert.AreEqual(0, r.Code, r.Err);
        return JsonNode.Parse(r.Out)!.AsObject();
    }

    /// <summary>Runs the tool with <paramref name="args"/>, expects bad input (exit code 2, nothing on stdout, one line on
    /// stderr) and returns that line.</summary>
    private static string BadInputLine(string[] args)
    {
        var r = Cli(args);
        string what = string.Join(" ", args);
        Assert.AreEqual(2, r.Code, $"{what}: {r.Err}");
        Assert.AreEqual("", r.Out, what);
        var lines = r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.HasCount(1, lines, $"{what}: {r.Err}");
        return lines[0];
    }

    /// <summary><c>vit predict --json</c> gives the same labels and probabilities (1e-6) with both model files.</summary>
    private static void AssertPredictsAlike(string expected, string actual)
    {
        var a = Json(Cli("predict", expected, data, "--top", "3", "--json"))["predictions"]!.AsArray();
        var b = Json(Cli("predict", actual, data, "--top", "3", "--json"))["predictions"]!.AsArray();
        Assert.HasCount(a.Count, b);
        for (int i = 0; i < a.Count; i++)
        {
            Assert.AreEqual((string)a[i]!["predicted_label"]!, (string)b[i]!["predicted_label"]!);
            Assert.AreEqual((float)a[i]!["probability"]!, (float)b[i]!["probability"]!, 1e-6f);
        }
    }

    [TestMethod]
    public void InfoGivesTheArchitectureLabelsAndTheParameterCountOfTheFormula()
    {
        var info = Json(Cli("info", model, "--json"));
        var arch = info["model"]!["architecture"]!;
        Assert.AreEqual(32, (int)arch["dim"]!);
        CollectionAssert.AreEqual(Classes, info["model"]!["labels"]!.AsArray().Select(l => (string)l!).ToArray());
        // The ViT's parameters by the paper's layout: patch projection, class token, positions, blocks, final norm, head.
        long d = 32, m = 128, n = (Side / 8) * (Side / 8), k = Classes.Length, depth = 2;
        long block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * m + m) + (m * d + d);
        long expected = (3 * 8 * 8 * d + d) + d + (n + 1) * d + depth * block + 2 * d + (d * k + k);
        Assert.AreEqual(expected, (long)info["parameters"]!);
        Assert.AreEqual(8, (int)info["training"]!["epochs"]!);
        var text = Cli("info", model);
        Assert.AreEqual(0, text.Code, text.Err);
        StringAssert.Contains(text.Out, "8 epochs");
    }

    [TestMethod]
    public void EvaluateAgreesWithMetricsComputedFromThePredictions()
    {
        var predictions = Json(Cli("predict", model, data, "--top", "3", "--json"))["predictions"]!.AsArray();
        Assert.HasCount(Classes.Length * PerClass, predictions);
        var cm = new long[3, 3];
        foreach (var p in predictions)
        {
            int truth = Array.IndexOf(Classes, Path.GetFileName(Path.GetDirectoryName((string)p!["file"]!)));
            int predicted = Array.IndexOf(Classes, (string)p["predicted_label"]!);
            cm[truth, predicted]++;
            var top = p["top"]!.AsArray().Select(t => (float)t!["probability"]!).ToArray();
            Assert.HasCount(3, top);
            Assert.IsTrue(top[0] >= top[1] && top[1] >= top[2], "top labels are best first");
            Assert.AreEqual(1.0, top.Sum(), 1e-5, "all three labels: the probabilities sum to 1");
        }
        var eval = Json(Cli("evaluate", model, data, "--json"));
        Assert.AreEqual(Classes.Length * PerClass, (int)eval["rows"]!);
        long correct = cm[0, 0] + cm[1, 1] + cm[2, 2];
        Assert.AreEqual((double)correct / (Classes.Length * PerClass), (double)eval["accuracy"]!, 1e-12);
        Assert.IsGreaterThan(0.9, (double)eval["accuracy"]!, "the colours are easy: the model must have learned them");
        for (int c = 0; c < 3; c++)
        {
            for (int j = 0; j < 3; j++) Assert.AreEqual(cm[c, j], (long)eval["confusion_matrix"]![c]![j]!);
            double tp = cm[c, c], predicted = cm[0, c] + cm[1, c] + cm[2, c], support = cm[c, 0] + cm[c, 1] + cm[c, 2];
            double precision = predicted == 0 ? 0 : tp / predicted, recall = tp / support;
            var pc = eval["per_class"]![c]!;
            Assert.AreEqual(Classes[c], (string)pc["label"]!);
            Assert.AreEqual(precision, (double)pc["precision"]!, 1e-12);
            Assert.AreEqual(recall, (double)pc["recall"]!, 1e-12);
            Assert.AreEqual(precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall), (double)pc["f1"]!, 1e-12);
            Assert.AreEqual((long)support, (long)pc["support"]!);
        }
        var report = Path.Combine(root, "report");
        var text = Cli("evaluate", model, data, "--report", report);
        Assert.AreEqual(0, text.Code, text.Err);
        StringAssert.Contains(text.Out, "precision");
        Assert.IsTrue(File.Exists(Path.Combine(report, "confusion.png")));
    }

    [TestMethod]
    public void EvaluateReadsACsvWithPathsRelativeToIt()
    {
        var csv = Path.Combine(root, "list.csv");
        File.WriteAllLines(csv, ["ImagePath,Label", .. Classes.Select(c => $"photos/{c}/00.png,{c}")]);
        var eval = Json(Cli("evaluate", model, csv, "--json"));
        Assert.AreEqual(3, (int)eval["rows"]!);
        File.WriteAllLines(csv, ["Path,Label", "photos/red/00.png,red"]);
        var bad = Cli("evaluate", model, csv);
        Assert.AreEqual(2, bad.Code);
        StringAssert.Contains(bad.Err, "no ImagePath column");
    }

    [TestMethod]
    public void PredictNamesAnUnreadableFileAndStillScoresTheOthers()
    {
        var folder = Directory.CreateDirectory(Path.Combine(root, "mixed")).FullName;
        var good = Directory.GetFiles(Path.Combine(data, "red")).Order(StringComparer.Ordinal).Take(2).ToList();
        foreach (var f in good) File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
        File.WriteAllBytes(Path.Combine(folder, "broken.png"), [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]);
        var r = Cli("predict", model, folder, "--json");
        Assert.AreEqual(1, r.Code, "a failed image makes the exit code 1");
        var json = JsonNode.Parse(r.Out)!;
        Assert.AreEqual(2, (int)json["classified"]!);
        Assert.AreEqual(1, (int)json["failed"]!);
        var broken = json["predictions"]!.AsArray().Single(p => p!["error"] is not null)!;
        StringAssert.EndsWith((string)broken["file"]!, "broken.png");
        Assert.IsTrue(json["predictions"]!.AsArray().Where(p => p!["error"] is null).All(p => (string)p!["predicted_label"]! == "red"));
    }

    [TestMethod]
    public void PredictOverThreeProcessesGivesTheDocumentOfOne()
    {
        // The whole folder plus a broken file: three workers take contiguous shares; the merged document lists every file in
        // the order one process gives, with the same labels and (to rounding) probabilities, and the same failure.
        var folder = Directory.CreateDirectory(Path.Combine(root, "shared")).FullName;
        foreach (var f in Directory.GetFiles(Path.Combine(data, "green")).Concat(Directory.GetFiles(Path.Combine(data, "blue"))))
            File.Copy(f, Path.Combine(folder, Path.GetFileName(Path.GetDirectoryName(f)) + "-" + Path.GetFileName(f)));
        File.WriteAllBytes(Path.Combine(folder, "green-broken.png"), [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]);
        var one = Cli("predict", model, folder, "--top", "2", "--json");
        var three = Cli("predict", model, folder, "--top", "2", "--json", "--nproc", "3");
        Assert.AreEqual(1, one.Code, one.Err);
        Assert.AreEqual(1, three.Code, three.Err);
        StringAssert.Contains(three.Err, "started 3 workers");
        var (a, b) = (JsonNode.Parse(one.Out)!, JsonNode.Parse(three.Out)!);
        Assert.AreEqual((int)a["classified"]!, (int)b["classified"]!);
        Assert.AreEqual(1, (int)b["failed"]!);
        var (pa, pb) = (a["predictions"]!.AsArray(), b["predictions"]!.AsArray());
        Assert.HasCount(pa.Count, pb);
        for (int i = 0; i < pa.Count; i++)
        {
            Assert.AreEqual((string)pa[i]!["file"]!, (string)pb[i]!["file"]!);
            Assert.AreEqual(pa[i]!["error"] is null, pb[i]!["error"] is null, (string)pa[i]!["file"]!);
            if (pa[i]!["error"] is not null) continue;
            Assert.AreEqual((string)pa[i]!["predicted_label"]!, (string)pb[i]!["predicted_label"]!);
            var (ta, tb) = (pa[i]!["top"]!.AsArray(), pb[i]!["top"]!.AsArray());
            for (int k = 0; k < 2; k++) Assert.AreEqual((double)ta[k]!["probability"]!, (double)tb[k]!["probability"]!, 1e-5);
        }
    }

    [TestMethod]
    public void ExportedOnnxScoresAsThePredictCommandInOnnxRuntime()
    {
        var onnx = Path.Combine(root, "model.onnx");
        var r = Cli("export", model, "--onnx", onnx);
        Assert.AreEqual(0, r.Code, r.Err);
        var files = Directory.GetFiles(Path.Combine(data, "green")).Order(StringComparer.Ordinal).Take(4).ToList();
        var ours = Json(Cli(["predict", model, .. files, "--top", "3", "--json"]))["predictions"]!.AsArray();
        // Planar RGB in [0, 1] from the very bytes the PNGs hold (the images already have the model's size).
        var input = files.SelectMany(f => Enumerable.Range(0, 3).SelectMany(ch =>
            Enumerable.Range(0, Side * Side).Select(p => Pixels[f][p * 3 + ch] / 255f))).ToArray();
        var score = OnnxRuntime.Run(onnx, input, files.Count, 3, Side, Side)["Score"].Values;
        for (int i = 0; i < files.Count; i++)
            foreach (var t in ours[i]!["top"]!.AsArray())
                Assert.AreEqual(score[i * 3 + Array.IndexOf(Classes, (string)t!["label"]!)], (float)t["probability"]!, 1e-5f);
    }

    [TestMethod]
    public void HuggingFaceExportImportsBackToTheSamePredictions()
    {
        var hf = Path.Combine(root, "hf");
        Assert.AreEqual(0, Cli("export", model, "--hf", hf).Code);
        Assert.IsTrue(File.Exists(Path.Combine(hf, "config.json")));
        var imported = Path.Combine(root, "imported.zip");
        var r = Cli("import", hf, "--out", imported, "--precision", "fp32");  // as the trained model scores
        Assert.AreEqual(0, r.Code, r.Err);
        AssertPredictsAlike(model, imported);
    }

    [TestMethod]
    public void BadUsageAndBadInputAreOneLineAndExitCode2()
    {
        var truncated = Path.Combine(root, "truncated.zip");
        var bytes = File.ReadAllBytes(model);
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        var outZip = Path.Combine(root, "never.zip");
        string[][] cases =
        [
            ["frobnicate"],
            ["train", data],                                           // no --out
            ["train", data, "--out", outZip, "--arch", "zz"],
            ["train", data, "--out", outZip, "--epochs", "0"],
            ["train", data, "--out", outZip, "--dim", "32"],           // custom sizes without --arch custom
            ["train", Path.Combine(root, "nowhere"), "--out", outZip],
            ["train", data, "--out", Path.Combine(root, "no-such-dir", "m.zip")],
            ["predict", Path.Combine(root, "missing.zip"), data],
            ["predict", model, Path.Combine(root, "nowhere")],
            ["export", model],                                          // neither --onnx nor --hf
            ["evaluate", truncated, data],
            ["info", truncated],
        ];
        foreach (var args in cases)
            StringAssert.StartsWith(BadInputLine(args), "vit: ", string.Join(" ", args));
        Assert.IsFalse(File.Exists(outZip));
        StringAssert.Contains(Cli("info", truncated).Err, "truncated.zip");
        StringAssert.Contains(Cli("evaluate", truncated, data).Err, "truncated.zip");
        StringAssert.Contains(Cli("predict", truncated, data).Err, "truncated.zip");
    }

    /// <summary>The input row of the tool's model files: an image path.</summary>
    public sealed class PathInput
    {
        public string ImagePath { get; set; } = "";
    }

    /// <summary>The output row of the tool's model files (LoadImages → ResizeImages → ViT; PredictedLabel stays a key).</summary>
    public sealed class Scored
    {
        public float[] Score { get; set; } = [];
    }

    [TestMethod]
    public void ModelFilesAreMLNetsOwnAndScoreAsThePredictCommand()
    {
        // ML.NET's own loader reads what `vit train` saved; its prediction engine over an image path scores as `vit predict`.
        var ml = new MLContext();
        var loaded = ml.Model.Load(model, out var schema);
        using var _loaded = loaded as IDisposable;
        Assert.IsNotNull(schema.GetColumnOrNull("ImagePath"), "the model takes rows of image paths");
        CollectionAssert.AreEqual(new[] { "ImageLoadingTransformer", "ImageResizingTransformer", "VitTransformer" },
            VitPipeline.Steps(loaded).Select(st => st.GetType().Name.Split('`')[0]).ToArray());
        CollectionAssert.AreEqual(Classes, VitPipeline.Find(loaded, "test").Labels.ToArray());
        using var engine = ml.Model.CreatePredictionEngine<PathInput, Scored>(loaded, new PredictionEngineOptions { OwnsTransformer = false });
        var files = Classes.Select(c => Directory.GetFiles(Path.Combine(data, c)).Order(StringComparer.Ordinal).First()).ToList();
        var ours = Json(Cli(["predict", model, .. files, "--top", "3", "--json"]))["predictions"]!.AsArray();
        for (int i = 0; i < files.Count; i++)
        {
            var score = engine.Predict(new PathInput { ImagePath = files[i] }).Score;
            Assert.HasCount(Classes.Length, score);
            foreach (var t in ours[i]!["top"]!.AsArray())
                Assert.AreEqual(score[Array.IndexOf(Classes, (string)t!["label"]!)], (float)t["probability"]!, 1e-6f, files[i]);
        }

        // vit info names the pipeline's steps (in --json, as "pipeline").
        var info = Json(Cli("info", model, "--json"));
        CollectionAssert.AreEqual(new[] { "ImageLoadingTransformer", "ImageResizingTransformer", "VitTransformer" },
            info["pipeline"]!.AsArray().Select(st => (string)st!).ToArray());
        var text = Cli("info", model);
        Assert.AreEqual(0, text.Code, text.Err);
        StringAssert.Contains(text.Out, "ImageLoadingTransformer -> ImageResizingTransformer -> VitTransformer");
    }

    [TestMethod]
    public void AModelZipOfAnEarlierVersionIsRefusedWithTheCommandThatConvertsIt()
    {
        // A model zip as the library wrote it before its models became ML.NET model files: the same weights, labels and
        // preprocessing, in a zip of their own.
        var old = Path.Combine(root, "old-format.zip");
        using (var trained = PretrainedVit.Load(model))
            VitModelZip.Save(old, trained.Model, trained.Labels!, trained.Preprocessing);
        Assert.IsTrue(VitModelZip.IsStandalone(old));
        Assert.IsFalse(VitModelZip.IsStandalone(model), "the tool's model files are ML.NET's, not standalone zips");
        var image = Directory.GetFiles(Path.Combine(data, "red")).Order(StringComparer.Ordinal).First();
        foreach (var args in new[]
                 {
                     new[] { "predict", old, image },
                     ["evaluate", old, data],
                     ["export", old, "--onnx", Path.Combine(root, "never.onnx")],
                 })
            StringAssert.Contains(BadInputLine(args), $"vit import {old} --out", string.Join(" ", args));
        Assert.IsFalse(File.Exists(Path.Combine(root, "never.onnx")));
        // vit info still reads it (it has no ML.NET pipeline).
        var info = Json(Cli("info", old, "--json"));
        CollectionAssert.AreEqual(Classes, info["model"]!["labels"]!.AsArray().Select(l => (string)l!).ToArray());
        Assert.IsNull(info["pipeline"]);

        // Converted by vit import, it predicts as the model it came from (the images already have the model's size).
        var converted = Path.Combine(root, "converted.zip");
        var import = Cli("import", old, "--out", converted, "--precision", "float32");
        Assert.AreEqual(0, import.Code, import.Err);
        Assert.IsFalse(VitModelZip.IsStandalone(converted));
        AssertPredictsAlike(model, converted);
    }

    [TestMethod]
    public void EvaluateLeavesOutRowsWhoseLabelTheModelDoesNotKnowAndSaysSo()
    {
        // Three rows of known classes and two of a class the model never saw: ML.NET's evaluator leaves the two out.
        var csv = Path.Combine(root, "with-unknown.csv");
        File.WriteAllLines(csv, ["ImagePath,Label", .. Classes.Select(c => $"photos/{c}/01.png,{c}"), "photos/red/02.png,purple", "photos/blue/02.png,purple"]);
        var eval = Json(Cli("evaluate", model, csv, "--json"));
        Assert.AreEqual(3, (int)eval["rows"]!, "the rows of unknown labels are not counted");
        Assert.AreEqual(2, (int)eval["unknown_labels"]!["purple"]!);
        Assert.HasCount(1, eval["unknown_labels"]!.AsObject());
        var predictions = Json(Cli(["predict", model, .. Classes.Select(c => Path.Combine(data, c, "01.png")), "--json"]))["predictions"]!.AsArray();
        int correct = predictions.Select((p, i) => (string)p!["predicted_label"]! == Classes[i] ? 1 : 0).Sum();
        Assert.AreEqual(correct / 3.0, (double)eval["accuracy"]!, 1e-12, "accuracy over the known rows only");
        Assert.AreEqual(3L, eval["confusion_matrix"]!.AsArray().Sum(row => row!.AsArray().Sum(v => (long)v!)));
        var text = Cli("evaluate", model, csv);
        Assert.AreEqual(0, text.Code, text.Err);
        StringAssert.StartsWith(text.Out, "3 images:");
        StringAssert.Contains(text.Err, "2 rows have the label 'purple', which the model does not know");

        // Known labels only: no note, and an empty unknown_labels.
        Assert.AreEqual(0, Json(Cli("evaluate", model, data, "--json"))["unknown_labels"]!.AsObject().Count);
        Assert.DoesNotContain("does not know", Cli("evaluate", model, data).Err);
    }

    [TestMethod]
    public void PrecisionTakesItsFullNamesAndTheShortOnes()
    {
        var hf = Path.Combine(root, "hf-precision");
        Assert.AreEqual(0, Cli("export", model, "--hf", hf).Code);
        foreach (var (name, expected) in new[]
                 {
                     ("auto", Vit.Torch.Precision.Auto), ("bfloat16", Vit.Torch.Precision.BFloat16), ("float32", Vit.Torch.Precision.Float32),
                     ("bf16", Vit.Torch.Precision.BFloat16), ("fp32", Vit.Torch.Precision.Float32),
                 })
        {
            var output = Path.Combine(root, $"precision-{name}.zip");
            var r = Cli("import", hf, "--out", output, "--precision", name);
            Assert.AreEqual(0, r.Code, $"{name}: {r.Err}");
            var ml = new MLContext();
            var loaded = ml.Model.Load(output, out _);
            using var _loaded = loaded as IDisposable;
            Assert.AreEqual(expected, VitPipeline.Find(loaded, "test").Precision, $"--precision {name} is saved in the model file");
        }
        foreach (var bad in new[] { "fp16", "float16", "" })
        {
            var r = Cli("import", hf, "--out", Path.Combine(root, "never.zip"), "--precision", bad);
            Assert.AreEqual(2, r.Code, $"'{bad}': {r.Err}");
            Assert.AreEqual(1, r.Err.Trim().Split('\n').Length, r.Err);
            StringAssert.StartsWith(r.Err, "vit: ");
        }
        Assert.IsFalse(File.Exists(Path.Combine(root, "never.zip")));
    }

    [TestMethod]
    public void JsonFieldNamesAreSnakeCase()
    {
        var csv = Path.Combine(root, "snake.csv");
        File.WriteAllLines(csv, ["ImagePath,Label", "photos/red/03.png,red", "photos/red/04.png,Some Other Label"]);
        var documents = new (string What, JsonNode Node)[]
        {
            ("info", Json(Cli("info", model, "--json"))),
            ("predict", Json(Cli("predict", model, Path.Combine(data, "green"), "--top", "2", "--json"))),
            ("evaluate", Json(Cli("evaluate", model, csv, "--json"))),
        };
        var snake = new Regex("^[a-z][a-z0-9]*(_[a-z0-9]+)*$");
        void Walk(string what, string where, JsonNode? node)
        {
            switch (node)
            {
                case JsonObject o:
                    foreach (var (key, value) in o)
                    {
                        // unknown_labels is keyed by the data's own labels, not by field names.
                        if (where != "$.unknown_labels") Assert.IsTrue(snake.IsMatch(key), $"{what}: field '{key}' at {where}");
                        Walk(what, $"{where}.{key}", value);
                    }
                    break;
                case JsonArray a:
                    foreach (var item in a) Walk(what, $"{where}[]", item);
                    break;
            }
        }
        foreach (var (what, node) in documents) Walk(what, "$", node);
        // The walk did look at the fields that used to be camelCase.
        Assert.IsNotNull(documents[1].Node["predictions"]![0]!["predicted_label"]);
        Assert.IsNotNull(documents[2].Node["per_class"]![0]!["log_loss"]);
        Assert.AreEqual(1, (int)documents[2].Node["unknown_labels"]!["Some Other Label"]!);
    }

    /// <summary>Runs `vit <paramref name="args"/>` in its own process, sends it Ctrl+C (SIGINT) once its first checkpoint is
    /// in <paramref name="checkpoints"/>, and checks that it stops with exit code 130 and says how to resume; returns its
    /// stderr.</summary>
    private static string Interrupt(string[] args, string checkpoints)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "vit.dll");
        Assert.IsTrue(File.Exists(dll), dll);
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in new[] { dll }.Concat(args)) psi.ArgumentList.Add(arg);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var last = Path.Combine(checkpoints, "last.safetensors");
        var clock = Stopwatch.StartNew();
        while (!File.Exists(last) && !p.HasExited && clock.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(20);
        Assert.IsFalse(p.HasExited, $"training ended before it could be interrupted: {stderr.Result}");
        using (var kill = Process.Start("kill", ["-INT", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) kill.WaitForExit();
        Assert.IsTrue(p.WaitForExit(TimeSpan.FromMinutes(1)), "the interrupted run must stop");
        Assert.AreEqual(130, p.ExitCode, stderr.Result + stdout.Result);
        StringAssert.Contains(stderr.Result, "--resume");
        return stderr.Result;
    }

    private static float[] Weights(string modelFile)
    {
        using var m = PretrainedVit.Load(modelFile);
        return m.Model.NamedParameters().SelectMany(p => p.Parameter.ToArray<float>()).ToArray();
    }

    [TestMethod]
    public void TwoProcessesTrainTheModelOfOneAndCtrlCStopsBothAtOneCheckpoint()
    {
        // --nproc 2 (the launcher starts two workers, each with half the cores): the model of one process, to rounding.
        // Enough epochs that Ctrl+C below always lands while training runs (see the single-process test).
        const int epochs = 200;
        var one = Path.Combine(root, "one.zip");
        var two = Path.Combine(root, "two.zip");
        var single = Cli(Small(data, one, epochs));
        Assert.AreEqual(0, single.Code, single.Err);
        var pair = Cli([.. Small(data, two, epochs), "--nproc", "2"]);
        Assert.AreEqual(0, pair.Code, pair.Err);
        StringAssert.Contains(pair.Err, "started 2 workers");
        StringAssert.Contains(pair.Out, "saved");
        Assert.DoesNotContain("[rank 1]", pair.Err, "rank 1 is quiet when all goes well");
        var (w1, w2) = (Weights(one), Weights(two));
        Assert.HasCount(w1.Length, w2);
        double worst = w1.Zip(w2).Max(p => Math.Abs(p.First - p.Second));
        Console.WriteLine($"largest weight difference, 2 processes against 1: {worst:E2}");
        Assert.IsLessThanOrEqualTo(1e-4, worst);

        // Ctrl+C to the launcher: both workers stop at the same batch, rank 0 saves the checkpoint, exit code 130; --resume
        // (over two processes again) ends with the uninterrupted two-process model, to the bit.
        var interrupted = Path.Combine(root, "two-interrupted.zip");
        Console.WriteLine(Interrupt([.. Small(data, interrupted, epochs), "--nproc", "2"], Path.Combine(root, "two-interrupted.checkpoints")));
        Assert.IsFalse(File.Exists(interrupted), "an interrupted run writes no model file");
        var resumed = Cli([.. Small(data, interrupted, epochs), "--nproc", "2", "--resume"]);
        Assert.AreEqual(0, resumed.Code, resumed.Err);
        CollectionAssert.AreEqual(w2, Weights(interrupted), "resumed over two processes: the uninterrupted two-process weights");
    }

    /// <summary>Two "hosts" (network namespaces joined by a veth pair; needs root, else skipped with the reason): the same
    /// `vit train --nnodes 2 --node-rank i --master-addr host0` on each trains, over TCP between them, the model of one
    /// process.</summary>
    [TestMethod]
    public void TwoHostsTrainThroughTheLauncherAsOneProcess()
    {
        var (spaces, reason) = NetworkNamespaces.TryCreate();
        if (spaces is null) Assert.Inconclusive("skipped: " + reason);
        using (spaces)
        {
            const int epochs = 10;
            var one = Path.Combine(root, "one-host.zip");
            var two = Path.Combine(root, "two-hosts.zip");
            var single = Cli(Small(data, one, epochs));
            Assert.AreEqual(0, single.Code, single.Err);
            var dll = Path.Combine(AppContext.BaseDirectory, "vit.dll");
            var hosts = Enumerable.Range(0, 2).Select(i =>
            {
                var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
                foreach (var arg in new[] { dll }.Concat(Small(data, two, epochs))
                             .Concat(["--nnodes", "2", "--node-rank", $"{i}", "--master-addr", spaces.Addresses[0], "--master-port", "29518"]))
                    psi.ArgumentList.Add(arg);
                spaces.RunInside(i, psi);
                var p = Process.Start(psi)!;
                return (p, Out: p.StandardOutput.ReadToEndAsync(), Err: p.StandardError.ReadToEndAsync());
            }).ToList();
            foreach (var (p, o, e) in hosts)
            {
                if (!p.WaitForExit(TimeSpan.FromMinutes(3))) p.Kill(entireProcessTree: true);
                Console.WriteLine($"host exit {p.ExitCode}: {o.Result} {e.Result}");
                Assert.AreEqual(0, p.ExitCode, e.Result);
            }
            StringAssert.Contains(hosts[0].Out.Result, "saved", "host 0 runs rank 0, which saves the model");
            var (w1, w2) = (Weights(one), Weights(two));
            double worst = w1.Zip(w2).Max(p => Math.Abs(p.First - p.Second));
            Console.WriteLine($"largest weight difference, 2 hosts against 1 process: {worst:E2}; host 1 received {spaces.ReceivedBytes(1)} bytes");
            Assert.IsLessThanOrEqualTo(1e-4, worst);
            foreach (var (p, _, _) in hosts) p.Dispose();
        }
    }

    [TestMethod]
    public void FailingWorkersEndTheLaunchWithTheirErrorAndExitCode()
    {
        // Every worker meets a data folder that is not there: the launcher passes on rank 0's error line and rank 1's
        // (prefixed), names the failed worker, and exits with its code.
        var r = Cli([.. Small(Path.Combine(root, "no-such-photos"), Path.Combine(root, "never.zip"), 1), "--nproc", "2"]);
        Assert.AreEqual(2, r.Code, r.Err);
        StringAssert.Contains(r.Err, "started 2 workers");
        StringAssert.Contains(r.Err, "vit: error:");
        StringAssert.Contains(r.Err, "[rank 1] vit: error:");
        StringAssert.Contains(r.Err, "failed (exit code 2)");
        Assert.IsFalse(File.Exists(Path.Combine(root, "never.zip")));
    }

    [TestMethod]
    public void BadLaunchOptionsAreOneLineAndExitCode2()
    {
        foreach (var (extra, message) in new[]
                 {
                     (new[] { "--nproc", "0" }, "--nproc must be at least 1"),
                     (new[] { "--nnodes", "2" }, "--master-addr"),
                     (new[] { "--nnodes", "2", "--node-rank", "2", "--master-addr", "10.0.0.1" }, "--node-rank must be in 0..1"),
                     (new[] { "--nproc", "2", "--dist-timeout", "0" }, "--dist-timeout"),
                 })
        {
            var r = Cli([.. Small(data, Path.Combine(root, "never.zip"), 1), .. extra]);
            Assert.AreEqual(2, r.Code, r.Err);
            StringAssert.Contains(r.Err, message);
            Assert.AreEqual(1, r.Err.Trim().Split('\n').Length, r.Err);
        }
    }

    [TestMethod]
    public void CtrlCSavesACheckpointExits130AndResumeEndsAsAnUninterruptedRun()
    {
        // Enough epochs that the signal, sent once the first checkpoint exists, always lands while training runs: the
        // training images are decoded once, so an epoch of this tiny model takes a few milliseconds.
        const int epochs = 300;
        var interrupted = Path.Combine(root, "interrupted.zip");
        var checkpoints = Path.Combine(root, "interrupted.checkpoints");
        Interrupt(Small(data, interrupted, epochs), checkpoints);
        Assert.IsFalse(File.Exists(interrupted), "an interrupted run writes no model file");
        using (var saved = PretrainedVit.Load(Path.Combine(checkpoints, "last.safetensors")))
            Assert.AreEqual(3, saved.Model.Config.NumClasses);

        var resumed = Cli([.. Small(data, interrupted, epochs), "--resume"]);
        Assert.AreEqual(0, resumed.Code, resumed.Err);
        var whole = Path.Combine(root, "whole.zip");
        Assert.AreEqual(0, Cli(Small(data, whole, epochs)).Code);
        using var a = PretrainedVit.Load(interrupted);
        using var b = PretrainedVit.Load(whole);
        var wb = b.Model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.ToArray<float>());
        foreach (var (name, p) in a.Model.NamedParameters())
            CollectionAssert.AreEqual(wb[name], p.ToArray<float>(), name);
    }
}
