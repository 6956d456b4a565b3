using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.MLNet;

/// <summary>
/// Our model inside ML.NET's model files: a ViT step writes <see cref="VitModelZip"/>'s entries (model.json,
/// weights.safetensors, training.json, and the optimizer's state when kept) as binary streams in its own folder of the
/// zip, beside ML.NET's Model.key. So the file is ML.NET's own, and our readers (<c>PretrainedVit.Load</c>,
/// <c>StartFrom</c>, <c>vit info</c>) find the model in it too.
/// </summary>
internal static class ModelEntries
{
    public static void Write(ModelSaveContext ctx, VisionTransformer model, IReadOnlyList<string> labels, VitPreprocessing preprocessing,
        string? trainingJson, string? trainingState) =>
        VitModelZip.Write((name, write) => ctx.SaveBinaryStream(name, w =>
        {
            w.Flush();
            write(w.BaseStream);
        }), model, labels, preprocessing, trainingJson: trainingJson, trainingState: trainingState);

    public static PretrainedVit Load(ModelLoadContext ctx, out string? trainingJson) =>
        VitModelZip.Load((name, read) => ctx.TryLoadBinaryStream(name, r => read(r.BaseStream, r.BaseStream.Length)),
            $"the ViT step of the model ({ctx.Directory})", null, out _, out trainingJson);
}

/// <summary>A training history as the training.json of a model file.</summary>
internal static class TrainingHistoryJson
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static string Of(TrainingHistory? h) => new JsonObject { ["history"] = h is null ? new JsonObject() : new JsonObject
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
    } }.ToJsonString(Indented);

    private static double? Finite(double v) => double.IsFinite(v) ? v : null;
}
