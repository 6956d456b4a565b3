using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
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
            var ctx = new VitContext();
            var (loaded, schema, _) = CliData.LoadModel(ctx, path);
            using var _loaded = loaded as IDisposable;
            if (onnxPath.Length > 0)
            {
                ctx.Model.ConvertToOnnx(loaded, CliData.Empty(schema), onnxPath);
                io.Out.WriteLine($"wrote {onnxPath} ({new FileInfo(onnxPath).Length / 1e6:F1} MB): input pixel_values [N, 3, H, W] RGB in [0, 1], outputs logits and Score");
            }
            else
            {
                ctx.Model.ExportHuggingFace(loaded, hfPath);
                io.Out.WriteLine($"wrote {hfPath}: config.json, model.safetensors, preprocessor_config.json");
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    public static Command Import(CliOutput io)
    {
        var source = new Argument<string>("checkpoint") { Description = "A Hugging Face folder, a timm/torchvision .pth or .safetensors file (with a classification head)." };
        var output = new Option<string>("--out", "-o") { Description = "The model file to write.", Required = true };
        var heads = new Option<int?>("--heads") { Description = "Attention heads, when the checkpoint does not say and its width is not a published one." };
        var size = new Option<int?>("--image-size") { Description = "Score at another image size (position embeddings resampled)." };
        var precision = new Option<string>("--precision") { Description = "Scoring precision saved in the model file: auto (bfloat16 where the CPU has it), bf16 or fp32.", DefaultValueFactory = _ => "auto" };
        precision.AcceptOnlyFromAmong("auto", "bf16", "bfloat16", "fp32", "float32");
        var command = new Command("import", "Turn a published classifier into a model file, without training.") { source, output, heads, size, precision };
        command.SetAction(r =>
        {
            string src = r.GetValue(source)!, outPath = r.GetValue(output)!;
            if (!File.Exists(src) && !Directory.Exists(src)) throw new UsageException($"no such file or folder: {src}");
            var ctx = new VitContext();
            var vit = ctx.Model.Import(src, new PretrainedVitOptions { Heads = r.GetValue(heads), ImageSize = r.GetValue(size) });
            vit.Precision = Vit.Torch.MixedPrecision.Parse(r.GetValue(precision)!);
            var schema = new DataViewSchema([(CliData.ImagePath, TextDataViewType.Instance)]);
            using var chain = new TransformerChain<ITransformer>(
                [ctx.Transforms.LoadImages(vit.Columns.Image, imageFolder: "", inputColumnName: CliData.ImagePath).Fit(CliData.Empty(schema)), vit]);
            ctx.Model.Save(chain, schema, outPath);
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
        if (modelJson["pipeline"] is JsonArray steps)
            table.AddRow("pipeline", Markup.Escape(string.Join(" -> ", steps.Select(st => (string?)st?["type"] ?? "?"))));
        table.AddRow("training", Markup.Escape(epochs is not { Count: > 0 } ? "none recorded (imported or saved without history)"
            : string.Create(CultureInfo.InvariantCulture,
                $"{epochs.Count} epochs, best {history!["best_epoch"]}; last: train loss {(double?)last?["train_loss"]:F4}, train accuracy {(double?)last?["train_accuracy"]:P2}")
              + (last?["validation_accuracy"] is { } va ? string.Create(CultureInfo.InvariantCulture, $", validation accuracy {(double)va:P2}") : "")
              + string.Create(CultureInfo.InvariantCulture,
                $", {(double?)last?["images_per_second"]:F1} images/s, {TimeSpan.FromSeconds((double?)last?["elapsed_seconds"] ?? 0):hh\\:mm\\:ss}")));
        io.Table(table);
        return ExitCodes.Ok;
    }
}
