using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vit.Torch;
using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.MLNet;

/// <summary>
/// The model file: one zip readable without this library — <c>model.json</c> (format version, architecture,
/// labels, preprocessing, pipeline steps, input schema), <c>weights.safetensors</c>, <c>training.json</c> (options
/// and per-epoch history). No code runs on load. Saving writes a temporary file and renames it over the target.
/// </summary>
internal static class ModelFile
{
    public const int FormatVersion = 1;
    public const string Magic = "vit-dotnet-model";
    private const long MaxJsonBytes = 16 << 20;

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static void Save(ITransformer model, DataViewSchema inputSchema, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputSchema);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var steps = Flatten(model).ToList();
        var vit = steps.OfType<VitTransformer>().SingleOrDefault()
            ?? throw new ArgumentException("the model has no VitTransformer step; only pipelines ending in a VitEstimator can be saved");
        model.GetOutputSchema(inputSchema);  // the schema must fit the model

        var json = new JsonObject
        {
            ["format"] = Magic,
            ["format_version"] = FormatVersion,
            ["library"] = "Vit for .NET",
            ["architecture"] = ConfigJson(vit.Model.Config),
            ["labels"] = new JsonArray(vit.Labels.Select(l => (JsonNode?)l).ToArray()),
            ["preprocessing"] = new JsonObject
            {
                ["image_size"] = vit.Preprocessing.ImageSize,
                ["channels"] = vit.Preprocessing.Channels,
                ["mean"] = new JsonArray(vit.Preprocessing.Normalization.Mean.Select(v => (JsonNode?)v).ToArray()),
                ["std"] = new JsonArray(vit.Preprocessing.Normalization.Std.Select(v => (JsonNode?)v).ToArray()),
                ["layout"] = "planar CHW float32, RGB, (pixel / 255 - mean) / std",
            },
            ["pipeline"] = new JsonArray(steps.Select(StepJson).ToArray()),
            ["input_schema"] = new JsonArray(inputSchema.Select(c => (JsonNode?)new JsonObject { ["name"] = c.Name, ["type"] = TypeName(c.Type) }).ToArray()),
        };
        var training = vit.History is null && vit.TrainingJson is not null
            ? JsonNode.Parse(vit.TrainingJson)!   // a loaded model keeps the history it was saved with
            : new JsonObject { ["history"] = HistoryJson(vit.History) };

        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        var weightsTmp = tmp + ".safetensors";
        try
        {
            vit.Model.SaveSafetensors(weightsTmp);
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
            {
                using (var zip = new ZipArchive(fs, ZipArchiveMode.Create, leaveOpen: true))
                {
                    WriteEntry(zip, "model.json", json.ToJsonString(Indented));
                    zip.CreateEntryFromFile(weightsTmp, "weights.safetensors", CompressionLevel.NoCompression);
                    WriteEntry(zip, "training.json", training.ToJsonString(Indented));
                }
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            File.Delete(weightsTmp);
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    public static TransformerChain<ITransformer> Load(string path, out DataViewSchema inputSchema)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"model file not found: {path}", path);
        ZipArchive zip;
        try
        {
            zip = ZipFile.OpenRead(path);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path} is not a Vit for .NET model file (not a readable zip archive: {e.Message}); it may be truncated or damaged", e);
        }
        using (zip)
        {
            var modelEntry = zip.GetEntry("model.json") ?? throw new InvalidDataException(
                $"{path} is not a Vit for .NET model file: it has no model.json (entries: {string.Join(", ", zip.Entries.Take(10).Select(e => e.FullName))})");
            var json = ReadJson(modelEntry, path);
            try
            {
                if (json is not JsonObject || (string?)json["format"] != Magic)
                    throw new InvalidDataException($"{path} is not a Vit for .NET model file: model.json does not say format '{Magic}'");
                int version = Need(json, "format_version").GetValue<int>();
                if (version > FormatVersion)
                    throw new InvalidDataException($"{path} has model format version {version}, newer than this library reads ({FormatVersion}); update Vit for .NET");
                if (version < 1) throw new InvalidDataException($"{path}: invalid format_version {version}");
                var config = ConfigFromJson(Need(json, "architecture"));
                var labels = Need(json, "labels").AsArray().Select(n => n!.GetValue<string>()).ToList();
                if (labels.Count != config.NumClasses)
                    throw new InvalidDataException($"model.json lists {labels.Count} labels for a {config.NumClasses}-class head");
                var pre = Need(json, "preprocessing");
                var normalization = new Normalization(
                    Need(pre, "mean").AsArray().Select(n => n!.GetValue<float>()).ToArray(), Need(pre, "std").AsArray().Select(n => n!.GetValue<float>()).ToArray());
                var preprocessing = new VitPreprocessing(Need(pre, "image_size").GetValue<int>(), Need(pre, "channels").GetValue<int>(), normalization);
                if (preprocessing.ImageSize != config.ImageSize || preprocessing.Channels != config.Channels)
                    throw new InvalidDataException($"preprocessing ({preprocessing.ImageSize}px, {preprocessing.Channels} channels) does not match the architecture ({config.ImageSize}px, {config.Channels} channels)");
                normalization.ForChannels(config.Channels);
                inputSchema = new DataViewSchema(Need(json, "input_schema").AsArray()
                    .Select(c => (Need(c!, "name").GetValue<string>(), TypeFromName(Need(c!, "type").GetValue<string>()))));

                var weightsEntry = zip.GetEntry("weights.safetensors") ?? throw new InvalidDataException("it has no weights.safetensors");
                // The weights of this architecture in float32, plus room for the header: a larger entry is not ours.
                long expected = new VitParameterCount(config).Bytes;
                if (weightsEntry.Length > expected + (1 << 20))
                    throw new InvalidDataException($"weights.safetensors is {weightsEntry.Length} bytes, more than this architecture's {expected}");
                string? trainingJson = null;
                if (zip.GetEntry("training.json") is { } te && te.Length <= MaxJsonBytes)
                    using (var r = new StreamReader(te.Open())) trainingJson = r.ReadToEnd();
                var model = new VisionTransformer(config);
                try
                {
                    var tmp = Path.Combine(Path.GetTempPath(), $"vit-{Guid.NewGuid():N}.safetensors");
                    try
                    {
                        weightsEntry.ExtractToFile(tmp);
                        model.LoadSafetensors(tmp);
                    }
                    finally
                    {
                        File.Delete(tmp);
                    }
                    var steps = new List<ITransformer>();
                    foreach (var node in Need(json, "pipeline").AsArray())
                    {
                        var step = node ?? throw new InvalidDataException("an empty pipeline step");
                        var type = Need(step, "type").GetValue<string>();
                        string S(string key) => Need(step, key).GetValue<string>();
                        steps.Add(type switch
                        {
                            "LoadImages" => new ImageLoadingTransformer(S("output"), (string?)step["image_folder"], S("input")),
                            "ResizeImages" => new ImageResizingTransformer(S("output"), new ImageResize(Need(step, "width").GetValue<int>(), Need(step, "height").GetValue<int>(),
                                Enum.Parse<ResizeMode>(S("mode")), Enum.Parse<Interpolation>(S("interpolation"))), S("input")),
                            "Vit" when steps.OfType<VitTransformer>().Any() => throw new InvalidDataException("its pipeline has two Vit steps"),
                            "Vit" => new VitTransformer(model, labels, preprocessing, new VitColumns(S("image_column"), S("score_column"), S("predicted_label_column")),
                                (int?)step["scoring_batch_size"] ?? 64, null, Device.Cpu) { TrainingJson = trainingJson },
                            _ => throw new InvalidDataException($"unknown pipeline step '{type}'"),
                        });
                    }
                    if (!steps.OfType<VitTransformer>().Any()) throw new InvalidDataException("its pipeline has no Vit step");
                    return new TransformerChain<ITransformer>(steps);
                }
                catch
                {
                    model.Dispose();
                    throw;
                }
            }
            catch (Exception e) when (e is not InvalidDataException and not OutOfMemoryException)
            {
                throw new InvalidDataException($"{path} is damaged: {e.Message}", e);
            }
            catch (InvalidDataException e) when (!e.Message.Contains(path, StringComparison.Ordinal))
            {
                throw new InvalidDataException($"{path} is damaged: {e.Message}", e);
            }
        }
    }

    private static JsonNode Need(JsonNode node, string key) =>
        (node as JsonObject ?? throw new InvalidDataException($"model.json: expected an object holding '{key}'"))[key]
        ?? throw new InvalidDataException($"model.json lacks '{key}'");

    /// <summary>Reads the labels and config of a model file (for StartFrom) and builds the model with its weights.</summary>
    public static (VisionTransformer Model, IReadOnlyList<string> Labels, VitPreprocessing Preprocessing) LoadModel(string path)
    {
        var chain = Load(path, out _);
        var vit = chain.Transformers.OfType<VitTransformer>().Single();
        return (vit.Model, vit.Labels, vit.Preprocessing);
    }

    private static IEnumerable<ITransformer> Flatten(ITransformer t) =>
        t is ITransformerChain c ? c.Transformers.SelectMany(Flatten) : [t];

    private static JsonNode StepJson(ITransformer t) => t switch
    {
        ImageLoadingTransformer l => new JsonObject { ["type"] = "LoadImages", ["output"] = l.OutputColumnName, ["input"] = l.InputColumnName, ["image_folder"] = l.ImageFolder },
        ImageResizingTransformer r => new JsonObject
        {
            ["type"] = "ResizeImages", ["output"] = r.OutputColumnName, ["input"] = r.InputColumnName, ["width"] = r.Resize.Width,
            ["height"] = r.Resize.Height, ["mode"] = r.Resize.Mode.ToString(), ["interpolation"] = r.Resize.Interpolation.ToString(),
        },
        VitTransformer v => new JsonObject
        {
            ["type"] = "Vit", ["image_column"] = v.Columns.Image, ["score_column"] = v.Columns.Score,
            ["predicted_label_column"] = v.Columns.PredictedLabel, ["scoring_batch_size"] = v.ScoringBatchSize,
        },
        _ => throw new ArgumentException($"pipeline step {t.GetType().Name} cannot be saved in a model file"),
    };

    private static JsonObject ConfigJson(VitConfig c) => new()
    {
        ["image_size"] = c.ImageSize, ["patch_size"] = c.PatchSize, ["channels"] = c.Channels, ["dim"] = c.Dim, ["depth"] = c.Depth,
        ["heads"] = c.Heads, ["mlp_dim"] = c.MlpDim, ["num_classes"] = c.NumClasses, ["dropout"] = c.Dropout,
        ["attention_dropout"] = c.AttentionDropout, ["drop_path"] = c.DropPath, ["pooling"] = c.Pooling.ToString(),
        ["qkv_bias"] = c.QkvBias, ["layer_norm_eps"] = c.LayerNormEps,
    };

    private static VitConfig ConfigFromJson(JsonNode j) => new VitConfig
    {
        ImageSize = (int)j["image_size"]!, PatchSize = (int)j["patch_size"]!, Channels = (int)j["channels"]!, Dim = (int)j["dim"]!,
        Depth = (int)j["depth"]!, Heads = (int)j["heads"]!, MlpDim = (int)j["mlp_dim"]!, NumClasses = (int)j["num_classes"]!,
        Dropout = (double)j["dropout"]!, AttentionDropout = (double)j["attention_dropout"]!, DropPath = (double)j["drop_path"]!,
        Pooling = Enum.Parse<VitPooling>((string)j["pooling"]!), QkvBias = (bool)j["qkv_bias"]!, LayerNormEps = (double)j["layer_norm_eps"]!,
    }.Validate();

    private static JsonNode HistoryJson(TrainingHistory? h) => h is null ? new JsonObject() : new JsonObject
    {
        ["best_epoch"] = h.Result.BestEpoch,
        ["stopped_early"] = h.Result.StoppedEarly,
        ["cancelled"] = h.Result.Cancelled,
        ["skipped_images"] = h.SkippedImages,
        ["epochs"] = new JsonArray(h.Result.Epochs.Select(e => (JsonNode?)new JsonObject
        {
            ["epoch"] = e.Epoch, ["train_loss"] = Finite(e.TrainLoss), ["train_accuracy"] = Finite(e.TrainAccuracy),
            ["validation_accuracy"] = e.Evaluation?.Accuracy, ["validation_loss"] = e.Evaluation?.Loss,
            ["images_per_second"] = e.ImagesPerSecond, ["elapsed_seconds"] = e.Elapsed.TotalSeconds, ["learning_rate"] = e.LearningRate,
        }).ToArray()),
    };

    private static double? Finite(double v) => double.IsFinite(v) ? v : null;

    private static string TypeName(DataViewType t) => t switch
    {
        TextDataViewType => "text",
        BytesDataViewType => "bytes",
        ImageDataViewType => "image",
        VectorDataViewType => "float_vector",
        NumberDataViewType n when n.RawType == typeof(float) => "single",
        NumberDataViewType n when n.RawType == typeof(double) => "double",
        NumberDataViewType n when n.RawType == typeof(int) => "int32",
        NumberDataViewType n when n.RawType == typeof(long) => "int64",
        NumberDataViewType => "boolean",
        _ => throw new ArgumentException($"column type {t} cannot be saved"),
    };

    private static DataViewType TypeFromName(string name) => name switch
    {
        "text" => TextDataViewType.Instance,
        "bytes" => BytesDataViewType.Instance,
        "image" => new ImageDataViewType(),
        "float_vector" => new VectorDataViewType(NumberDataViewType.Single),
        "single" => NumberDataViewType.Single,
        "double" => NumberDataViewType.Double,
        "int32" => NumberDataViewType.Int32,
        "int64" => NumberDataViewType.Int64,
        "boolean" => NumberDataViewType.Boolean,
        _ => throw new InvalidDataException($"unknown column type '{name}' in model.json"),
    };

    private static void WriteEntry(ZipArchive zip, string name, string text)
    {
        using var w = new StreamWriter(zip.CreateEntry(name, CompressionLevel.Optimal).Open());
        w.Write(text);
    }

    private static JsonNode ReadJson(ZipArchiveEntry entry, string path)
    {
        if (entry.Length > MaxJsonBytes) throw new InvalidDataException($"{path}: {entry.FullName} is {entry.Length} bytes, more than a model description can be");
        try
        {
            using var s = entry.Open();
            return JsonNode.Parse(s) ?? throw new InvalidDataException($"{path}: {entry.FullName} is empty");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: {entry.FullName} is not valid JSON ({e.Message})", e);
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith(path, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{path} is damaged: {entry.FullName} cannot be read ({e.Message})", e);
        }
    }
}
