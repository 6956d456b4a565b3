using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using Spectre.Console;
using Vit.MLNet;
using Vit.Torch.Checkpoints;

namespace Vit.Cli;

/// <summary><c>vit export</c>, <c>vit import</c> and <c>vit info</c>: model files to ONNX and Hugging Face folders, published
/// checkpoints to model files, and what a model file holds.</summary>
internal static class ModelCommands
{
    public static Command Export(CliOutput io)
    {
        var model = new Argument<string>("model") { Description = "The model file." };
        var onnx = new Option<string?>("--onnx") { Description = "Write an ONNX file (for ML.NET's ApplyOnnxModel and ONNX Runtime)." };
        var hf = new Option<string?>("--hf") { Description = "Write a Hugging Face folder (transformers' ViTForImageClassification.from_pretrained)." };
        var command = new Command("export", "Export a model file as ONNX or as a Hugging Face folder.") { model, onnx, hf };
        command.SetAction(r =>
        {
            string path = r.GetValue(model)!, onnxPath = r.GetValue(onnx) ?? "", hfPath = r.GetValue(hf) ?? "";
            if ((onnxPath.Length > 0) == (hfPath.Length > 0)) throw new UsageException("give one of --onnx <file> or --hf <folder>");
            var ml = new MLContext();
            var (loaded, schema, _) = CliData.LoadModel(ml, path);
            using var _loaded = loaded as IDisposable;
            if (onnxPath.Length > 0)
            {
                ml.Model.ExportVitToOnnx(loaded, schema, onnxPath);
                io.Out.WriteLine($"wrote {onnxPath} ({new FileInfo(onnxPath).Length / 1e6:F1} MB): input pixel_values [N, 3, H, W] RGB in [0, 1], outputs logits and Score");
            }
            else
            {
                ml.Model.ExportVitToHuggingFace(loaded, hfPath);
                io.Out.WriteLine($"wrote {hfPath}: config.json, model.safetensors, preprocessor_config.json");
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    public static Command Import(CliOutput io)
    {
        var source = new Argument<string>("checkpoint") { Description = "A Hugging Face folder, a timm/torchvision .pth or .safetensors file (with a classification head), or a model zip of an earlier Vit for .NET." };
        var output = new Option<string>("--out", "-o") { Description = "The model file to write.", Required = true };
        var heads = new Option<int?>("--heads") { Description = "Attention heads, when the checkpoint does not say and its width is not a published one." };
        var size = new Option<int?>("--image-size") { Description = "Score at another image size (position embeddings resampled)." };
        var precision = VitCli.PrecisionOption("Scoring precision saved in the model file");
        var command = new Command("import", "Turn a published classifier into a model file, without training.") { source, output, heads, size, precision };
        command.SetAction(r =>
        {
            string src = r.GetValue(source)!, outPath = r.GetValue(output)!;
            if (!File.Exists(src) && !Directory.Exists(src)) throw new UsageException($"no such file or folder: {src}");
            var ml = new MLContext();
            var vit = ml.Model.LoadPretrainedVit(src, new PretrainedVitOptions { Heads = r.GetValue(heads), ImageSize = r.GetValue(size) }, CliData.Image);
            vit.Precision = Vit.Torch.MixedPrecision.Parse(r.GetValue(precision)!);
            var paths = CliData.Paths(ml, []);
            using var chain = new TransformerChain<ITransformer>(
                ml.Transforms.LoadImages(CliData.Image, imageFolder: null, inputColumnName: CliData.ImagePath).Fit(paths), vit);
            ml.Model.SaveAtomic(chain, paths.Schema, outPath);
            io.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"wrote {outPath}: {vit.Labels.Count} classes, {vit.Model.ParameterCount():N0} parameters, {vit.Preprocessing.ImageSize}x{vit.Preprocessing.ImageSize}"));
            return ExitCodes.Ok;
        });
        return command;
    }

    public static Command Info(CliOutput io)
    {
        var model = new Argument<string>("model") { Description = "The model file." };
        var json = new Option<bool>("--json") { Description = "Write model.json and a training summary as one JSON document." };
        var command = new Command("info", "Show a model file's architecture, labels, preprocessing and training history.") { model, json };
        command.SetAction(r => ShowInfo(io, r.GetValue(model)!, r.GetValue(json)));
        return command;
    }

    private static int ShowInfo(CliOutput io, string path, bool json)
    {
        if (!File.Exists(path)) throw new UsageException($"model file not found: {path}");
        // Loading checks the whole file (weights included); the JSON entries are then shown as they are.
        long parameters;
        JsonObject modelJson;
        string? trainingJson;
        using (var pretrained = VitModelZip.Load(path, null, out modelJson, out trainingJson))
            parameters = pretrained.Model.ParameterCount();
        var history = trainingJson is null ? null : JsonNode.Parse(trainingJson)?["history"] as JsonObject;
        var epochs = history?["epochs"] as JsonArray;
        var last = epochs?.LastOrDefault() as JsonObject;
        if (json)
        {
            io.Json(new JsonObject
            {
                ["file"] = path,
                ["parameters"] = parameters,
                ["model"] = modelJson.DeepClone(),
                ["pipeline"] = PipelineSteps(path) is { } pipeline ? new JsonArray(pipeline.Select(st => (JsonNode?)st).ToArray()) : null,
                ["training"] = history is null ? null : new JsonObject
                {
                    ["epochs"] = epochs?.Count ?? 0,
                    ["best_epoch"] = history["best_epoch"]?.DeepClone(),
                    ["stopped_early"] = history["stopped_early"]?.DeepClone(),
                    ["cancelled"] = history["cancelled"]?.DeepClone(),
                    ["last_epoch"] = last?.DeepClone(),
                },
            });
            return ExitCodes.Ok;
        }
        var arch = modelJson["architecture"] as JsonObject;
        var pre = modelJson["preprocessing"] as JsonObject;
        var labels = (modelJson["labels"] as JsonArray)?.Select(l => (string?)l ?? "").ToList() ?? [];
        var table = new Table().AddColumns("", "").HideHeaders();
        table.AddRow("file", Markup.Escape(path));
        table.AddRow("parameters", parameters.ToString("N0", CultureInfo.InvariantCulture));
        table.AddRow("architecture", Markup.Escape(arch is null ? "?" : string.Join(", ", arch.Select(kv => $"{kv.Key} {kv.Value?.ToJsonString()}"))));
        table.AddRow("labels", Markup.Escape($"{labels.Count}: {string.Join(", ", labels.Take(20))}{(labels.Count > 20 ? ", ..." : "")}"));
        table.AddRow("preprocessing", Markup.Escape(pre is null ? "?" : string.Join(", ", pre.Select(kv => $"{kv.Key} {kv.Value?.ToJsonString()}"))));
        if (PipelineSteps(path) is { } steps) table.AddRow("pipeline", Markup.Escape(string.Join(" -> ", steps)));
        table.AddRow("training", Markup.Escape(epochs is not { Count: > 0 } ? "none recorded (imported or saved without history)"
            : string.Create(CultureInfo.InvariantCulture,
                $"{epochs.Count} epochs, best {history!["best_epoch"]}; last: train loss {(double?)last?["train_loss"]:F4}, train accuracy {(double?)last?["train_accuracy"]:P2}")
              + (last?["validation_accuracy"] is { } va ? string.Create(CultureInfo.InvariantCulture, $", validation accuracy {(double)va:P2}") : "")
              + string.Create(CultureInfo.InvariantCulture,
                $", {(double?)last?["images_per_second"]:F1} images/s, {TimeSpan.FromSeconds((double?)last?["elapsed_seconds"] ?? 0):hh\\:mm\\:ss}")));
        io.Table(table);
        return ExitCodes.Ok;
    }

    /// <summary>The step types of an ML.NET model file, in order (null for a model zip of an earlier version).</summary>
    private static List<string>? PipelineSteps(string path)
    {
        if (VitModelZip.IsStandalone(path)) return null;
        var ml = new MLContext();
        var model = ml.Model.Load(path, out _);
        using var _model = model as IDisposable;
        return VitPipeline.Steps(model).Select(s => s.GetType().Name.Split('`')[0]).ToList();
    }
}
