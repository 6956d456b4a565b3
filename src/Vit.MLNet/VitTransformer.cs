using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Vit.MLNet;
using Vit.Torch;
using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;
using Vit.Torch.Model;
using Vit.Torch.Training;

// ML.NET finds the loader of a saved VitTransformer by this attribute (see MLNetInternals.cs).
[assembly: LoadableClass(typeof(VitTransformer), null, typeof(SignatureLoadModel), "Vision Transformer", VitTransformer.LoaderSignature)]

namespace Vit.MLNet;

/// <summary>Column names a <see cref="VitTransformer"/> reads and writes.</summary>
/// <param name="Image">The image column read.</param>
/// <param name="Score">The probabilities column written.</param>
/// <param name="PredictedLabel">The predicted label column written.</param>
public sealed record VitColumns(string Image, string Score, string PredictedLabel);

/// <summary>What training did: per-epoch history, best epoch, stop reason, skipped images.</summary>
/// <param name="Result">The trainer's result.</param>
/// <param name="SkippedImages">Training rows left out because their image could not be read or their label was missing.</param>
/// <param name="Warnings">One line per skipped row.</param>
public sealed record TrainingHistory(TrainingResult Result, int SkippedImages, IReadOnlyList<string> Warnings);

/// <summary>
/// A trained ViT classifier as an ML.NET transformer: adds <c>Score</c> (a vector of the classes' softmax probabilities,
/// its slot names the class names) and <c>PredictedLabel</c> (a key of as many values as classes, whose key values are the
/// class names: <c>MapKeyToValue</c> turns it into the name, and ML.NET's <c>Evaluate</c> pairs it with the key label).
/// Images of another size than the model's are brought to it by the model's own preprocessing (<see cref="VitImageTransformer.Preprocessing"/>).
/// Scores in batches of <see cref="ScoringBatchSize"/>, reading images ahead on several threads. Saved and loaded by
/// <c>mlContext.Model.Save</c>/<c>Load</c> with the rest of the pipeline (weights, labels, preprocessing and training
/// history inside the model file). Safe to use from several threads at once (the model is only read); dispose it to free
/// native memory.
/// </summary>
public sealed class VitTransformer : VitImageTransformer
{
    internal const string LoaderSignature = "VitTransformer";

    internal VitTransformer(IHostEnvironment env, VisionTransformer model, IReadOnlyList<string> labels, VitPreprocessing preprocessing,
        VitColumns columns, int scoringBatchSize, TrainingHistory? history, Device device, Precision precision)
        : base(new ImageScoring(env, columns.Image, new VitScorer(model, preprocessing, device, precision, ScorerOutput.Probabilities), scoringBatchSize,
        [
            OutputColumn.Vector(columns.Score, labels.Count, SlotNames(labels)),
            OutputColumn.ArgMaxKey(columns.PredictedLabel, labels),
        ]))
    {
        if (labels.Count != model.Config.NumClasses)
            throw new ArgumentException($"{labels.Count} labels for a model with {model.Config.NumClasses} classes", nameof(labels));
        Labels = labels;
        Columns = columns;
        History = history;
        model.Eval();
    }

    private static DataViewSchema.Annotations SlotNames(IReadOnlyList<string> labels)
    {
        var builder = new DataViewSchema.Annotations.Builder();
        builder.AddSlotNames(labels.Count, LabelColumns.Names(labels));
        return builder.ToAnnotations();
    }

    /// <summary>The class names, in the order of the <c>Score</c> vector (key value k of PredictedLabel is class k − 1).</summary>
    public IReadOnlyList<string> Labels { get; }

    /// <summary>Columns read and written.</summary>
    public VitColumns Columns { get; }

    /// <summary>Images per forward pass in <see cref="VitImageTransformer.Transform"/>.</summary>
    public int ScoringBatchSize
    {
        get => Scoring.BatchSize;
        set => Scoring.BatchSize = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "ScoringBatchSize must be at least 1");
    }

    /// <summary>Training history (null for a model loaded from a file: its history is in the file, see <c>vit info</c>).</summary>
    public TrainingHistory? History { get; internal set; }

    /// <summary>The optimizer's state at the end of training (a temporary file this transformer owns), which a saved model
    /// file carries so that <see cref="FineTuneMode.Continue"/> resumes the optimizer exactly; null unless
    /// <see cref="VitEstimator.Options.KeepTrainingState"/>.</summary>
    internal string? TrainingState { get; init; }

    /// <summary>The training.json a loaded model was saved with (kept so that saving it again keeps its history).</summary>
    internal string? TrainingJson { get; init; }

    // ------------------------------------------------------------------ ML.NET model files

    private static VersionInfo GetVersionInfo() => Version("VITCLASS", LoaderSignature);

    private protected override VersionInfo VersionInfo => GetVersionInfo();

    private protected override void SaveModel(ModelSaveContext ctx)
    {
        ctx.Writer.Write(Columns.Image);
        ctx.Writer.Write(Columns.Score);
        ctx.Writer.Write(Columns.PredictedLabel);
        ctx.Writer.Write(ScoringBatchSize);
        ctx.Writer.Write(Precision.ToString());
        var training = History is null && TrainingJson is not null ? TrainingJson : TrainingHistoryJson.Of(History);
        ModelEntries.Write(ctx, Model, Labels, Preprocessing, training, TrainingState is { } state && File.Exists(state) ? state : null);
    }

    // Called by ML.NET's loader (found through the LoadableClass attribute above).
    private static VitTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ctx.CheckAtModel(GetVersionInfo());
        var columns = new VitColumns(ctx.Reader.ReadString(), ctx.Reader.ReadString(), ctx.Reader.ReadString());
        int batch = ctx.Reader.ReadInt32();
        var precisionText = ctx.Reader.ReadString();
        if (batch < 1 || !Enum.TryParse<Precision>(precisionText, out var precision) || !Enum.IsDefined(precision))
            throw new InvalidDataException($"the ViT step of the model ({ctx.Directory}) is damaged: scoring batch {batch}, precision '{precisionText}'");
        using var pretrained = ModelEntries.Load(ctx, out var trainingJson);
        if (pretrained.Labels is not { } labels) throw new InvalidDataException($"the ViT step of the model ({ctx.Directory}) has no labels");
        return new VitTransformer(env, pretrained.TakeModel(), labels, pretrained.Preprocessing, columns, batch, null, Device.Cpu, precision)
        {
            TrainingJson = trainingJson,
        };
    }

    // ------------------------------------------------------------------ pictures

    /// <summary>
    /// Writes pictures of the model into <paramref name="folder"/> (created if missing): <c>curves.png</c>, the learning
    /// curves of its training history (when it has one); with labelled <paramref name="data"/> (the image column and
    /// <paramref name="labelColumnName"/>, key or text), <c>confusion.png</c>, the confusion matrix ML.NET's evaluator
    /// computes from its predictions, and <c>attention.svg</c>, the attention rollout (Abnar &amp; Zuidema 2020) over the
    /// first <paramref name="samples"/> images with predicted and true labels. Returns the files written.
    /// </summary>
    public IReadOnlyList<string> WritePictures(string folder, IDataView? data = null, string labelColumnName = "Label", int samples = 8) =>
        Pictures.Write(this, folder, data, labelColumnName, samples);

    /// <summary>
    /// Where the model looks in one image: the attention rollout (Abnar &amp; Zuidema 2020) over its patch grid, row-major,
    /// summing to 1, after the model's own preprocessing (<see cref="VitImageTransformer.Preprocessing"/>). For a heat map over the picture.
    /// </summary>
    public (int Rows, int Columns, float[] Values) AttentionMap(MLImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        using var decoded = ImageColumns.FromMLImage(image, Columns.Image, 0);
        return AttentionMap(decoded);
    }

    /// <summary>As <see cref="AttentionMap(MLImage)"/>, for an image decoded by this library.</summary>
    public (int Rows, int Columns, float[] Values) AttentionMap(Image image)
    {
        ArgumentNullException.ThrowIfNull(image);
        using var input = ImageColumns.ToModelInput(image, Preprocessing);
        using var scope = TensorScope.Begin();
        var batch = ImageBatch.ToTensor([input], Preprocessing.Normalization);
        var rollout = Vit.Torch.Reports.AttentionRollout.Compute(Model, Device.Type == DeviceType.Cpu ? batch : batch.To(Device));
        var shape = rollout.Shape;
        return ((int)shape[1], (int)shape[2], rollout.To(DType.Float32, Device.Cpu).ToArray<float>());
    }

    /// <summary>Frees the model's native memory (and the training state it kept).</summary>
    public override void Dispose()
    {
        base.Dispose();
        if (TrainingState is not null) File.Delete(TrainingState);
    }
}
