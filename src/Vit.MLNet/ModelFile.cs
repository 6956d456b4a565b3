using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vit.Torch;
using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.MLNet;

/// <summary>
/// The model file of a pipeline: <see cref="VitModelZip"/> (model.json with the architecture, labels and
/// preprocessing; weights.safetensors; training.json), to which this adds the pipeline steps and the input schema in
/// model.json, and the training history. No code runs on load; saving is atomic.
/// </summary>
internal static class ModelFile
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static void Save(ITransformer model, DataViewSchema inputSchema, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputSchema);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var steps = Transformers.Steps(model).ToList();
        var vit = Transformers.Vit(model, "Save");
        model.GetOutputSchema(inputSchema);  // the schema must fit the model

        var pipeline = new JsonObject
        {
            ["pipeline"] = new JsonArray(steps.Select(StepJson).ToArray()),
            ["input_schema"] = new JsonArray(inputSchema.Select(c => (JsonNode?)new JsonObject { ["name"] = c.Name, ["type"] = TypeName(c.Type) }).ToArray()),
        };
        var training = vit.History is null && vit.TrainingJson is not null
            ? vit.TrainingJson   // a loaded model keeps the history it was saved with
            : new JsonObject { ["history"] = HistoryJson(vit.History) }.ToJsonString(Indented);
        VitModelZip.Save(path, vit.Model, vit.Labels, vit.Preprocessing, pipeline, training,
            vit.TrainingState is { } state && File.Exists(state) ? state : null);
    }

    /// <summary>Loads a model file onto <paramref name="device"/>, which the caller has resolved (Torch.ResolveDevice).</summary>
    public static TransformerChain<ITransformer> Load(string path, out DataViewSchema inputSchema, Device device)
    {
        var pretrained = VitModelZip.Load(path, null, out var json, out var trainingJson);
        var model = pretrained.TakeModel();
        try
        {
            model.To(device);
            string src = $"{path} ({VitModelZip.ModelEntry})";
            try
            {
                inputSchema = new DataViewSchema(Need(json, "input_schema").AsArray()
                    .Select(c => (Need(c!, "name").GetValue<string>(), TypeFromName(Need(c!, "type").GetValue<string>()))));
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
                        "Vit" => new VitTransformer(model, pretrained.Labels!, pretrained.Preprocessing,
                            new VitColumns(S("image_column"), S("score_column"), S("predicted_label_column")),
                            (int?)step["scoring_batch_size"] ?? 64, null, device) { TrainingJson = trainingJson, Precision = PrecisionOf(step) },
                        _ => throw new InvalidDataException($"unknown pipeline step '{type}'"),
                    });
                }
                if (!steps.OfType<VitTransformer>().Any()) throw new InvalidDataException("its pipeline has no Vit step");
                return new TransformerChain<ITransformer>(steps);
            }
            catch (Exception e) when (e is not InvalidDataException and not OutOfMemoryException)
            {
                throw new InvalidDataException($"{src} is damaged: {e.Message}", e);
            }
            catch (InvalidDataException e) when (!e.Message.Contains(path, StringComparison.Ordinal))
            {
                throw new InvalidDataException($"{src} is damaged: {e.Message}", e);
            }
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    // Scoring precision of a Vit step; files written before it was saved score at the default.
    private static Precision PrecisionOf(JsonNode step)
    {
        if (step["precision"] is not { } node) return VitEstimator.Options.Defaults.Precision;
        var text = (string?)node;
        return Enum.TryParse<Precision>(text, ignoreCase: false, out var p) && Enum.IsDefined(p)
            ? p
            : throw new InvalidDataException($"model.json: unknown precision '{text}' (expected Float32, BFloat16 or Auto)");
    }

    private static JsonNode Need(JsonNode node, string key) =>
        (node as JsonObject ?? throw new InvalidDataException($"model.json: expected an object holding '{key}'"))[key]
        ?? throw new InvalidDataException($"model.json lacks '{key}'");

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
            ["precision"] = v.Precision.ToString(),
        },
        _ => throw new ArgumentException($"pipeline step {t.GetType().Name} cannot be saved in a model file"),
    };

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
}
