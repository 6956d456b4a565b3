using Engine = Vit.Torch.Torch;
using Vit.Torch;
using Vit.Torch.Imaging;
using Vit.Torch.Model;
using Vit.Torch.Training;

namespace Vit.MLNet;

/// <summary>Column names a <see cref="VitTransformer"/> reads and writes.</summary>
/// <param name="Image">The image column read.</param>
/// <param name="Score">The probabilities column written.</param>
/// <param name="PredictedLabel">The label column written.</param>
public sealed record VitColumns(string Image, string Score, string PredictedLabel);

/// <summary>What training did: per-epoch history, best epoch, stop reason, skipped images.</summary>
/// <param name="Result">The trainer's result.</param>
/// <param name="SkippedImages">Training images left out because they could not be read.</param>
/// <param name="Warnings">One line per skipped image.</param>
public sealed record TrainingHistory(TrainingResult Result, int SkippedImages, IReadOnlyList<string> Warnings);

/// <summary>
/// A trained ViT classifier as a pipeline step: adds <c>Score</c> (float[] of softmax probabilities in the order of
/// <see cref="Labels"/>) and <c>PredictedLabel</c>. Scores in batches of <see cref="ScoringBatchSize"/>. Safe to use
/// from several threads at once (the model is only read); dispose it to free native memory.
/// </summary>
public sealed class VitTransformer : ITransformer, IDisposable
{
    internal VitTransformer(VisionTransformer model, IReadOnlyList<string> labels, VitPreprocessing preprocessing, VitColumns columns,
        int scoringBatchSize, TrainingHistory? history, Device device)
    {
        Model = model;
        Labels = labels;
        Preprocessing = preprocessing;
        Columns = columns;
        ScoringBatchSize = scoringBatchSize;
        History = history;
        Device = device;
        model.Eval();
    }

    /// <summary>The network.</summary>
    public VisionTransformer Model { get; }

    /// <summary>The labels, in the order of the <c>Score</c> vector.</summary>
    public IReadOnlyList<string> Labels { get; }

    /// <summary>Input size, channels, normalisation, and how images of another size are resized.</summary>
    public VitPreprocessing Preprocessing { get; }

    /// <summary>Columns read and written.</summary>
    public VitColumns Columns { get; }

    /// <summary>Images per forward pass in <see cref="Transform"/>.</summary>
    public int ScoringBatchSize { get; set; }

    /// <summary>Arithmetic of scoring (saved with the model): <see cref="Vit.Torch.Precision.Auto"/> scores in bfloat16 mixed
    /// precision where the hardware has native bfloat16; <see cref="Vit.Torch.Precision.Float32"/> gives float32's exact scores.</summary>
    public Precision Precision { get; set; } = Precision.Auto;

    /// <summary>Training history (null for a model loaded without one).</summary>
    public TrainingHistory? History { get; internal set; }

    /// <summary>The optimizer's state at the end of training (a temporary file this transformer owns), which a saved model
    /// file carries so that <see cref="FineTuneMode.Continue"/> resumes the optimizer exactly; null unless
    /// <see cref="VitEstimator.Options.KeepTrainingState"/>.</summary>
    internal string? TrainingState { get; init; }

    /// <summary>The training.json a loaded model was saved with (kept so that saving it again keeps its history).</summary>
    internal string? TrainingJson { get; init; }

    /// <summary>Device the model runs on.</summary>
    public Device Device { get; }

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        inputSchema.Require(Columns.Image, "image", t => t is ImageDataViewType, "an image column (add LoadImages first)");
        var slotNames = new Dictionary<string, object> { ["SlotNames"] = Labels };
        return inputSchema.With(
            new DataViewSchemaColumn(Columns.Score, new VectorDataViewType(NumberDataViewType.Single, Labels.Count), 0) { Annotations = slotNames },
            new DataViewSchemaColumn(Columns.PredictedLabel, TextDataViewType.Instance, 0) { Annotations = slotNames });
    }

    /// <inheritdoc />
    public IDataView Transform(IDataView input)
    {
        var schema = GetOutputSchema(input.Schema);
        int image = input.Schema[Columns.Image].Index;
        return new MappedDataView(input, [schema[^2], schema[^1]],
            rows => Score(rows.Select(r => r[image] as ImageSource).ToList()), ScoringBatchSize);
    }

    /// <summary>Scores images: (probabilities, predicted label) per image.</summary>
    internal IReadOnlyList<object?[]> Score(IReadOnlyList<ImageSource?> sources)
    {
        if (sources.Any(s => s is null))
            throw new ArgumentException($"a row to score has no image in column '{Columns.Image}' (an empty path or no bytes); every row needs an image");
        var results = new object?[sources.Count][];
        var present = Enumerable.Range(0, sources.Count).Where(i => sources[i] is not null).ToList();
        for (int i = 0; i < results.Length; i++) results[i] = [null, null];
        if (present.Count == 0) return results;
        var p = Preprocessing;
        var images = new Image?[present.Count];
        try
        {
            // Decoding and resizing are native and independent per image: spread them over the cores. A failure is the
            // first failing row's, whatever order the workers ran in.
            var errors = new Exception?[present.Count];
            Parallel.For(0, present.Count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, j =>
            {
                try
                {
                    var s = sources[present[j]]!;
                    if (s.Path is not null && !File.Exists(s.Path))
                        throw new FileNotFoundException($"image file not found: {s.Path}", s.Path);
                    using var decoded = s.Decode(p.Channels);
                    images[j] = p.Resize(decoded);
                }
                catch (Exception e)
                {
                    errors[j] = e;
                }
            });
            if (errors.FirstOrDefault(e => e is not null) is { } first)
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(first).Throw();
            using var scope = TensorScope.Begin();
            using var inference = Engine.InferenceMode();
            var batch = Tensor.Empty([images.Length, p.Channels, p.ImageSize, p.ImageSize]);
            ImageBatch.WriteNormalized(images!, p.Normalization, batch);
            var input = Device.Type == DeviceType.Cpu ? batch : batch.To(Device);
            Tensor logits;
            using (MixedPrecision.Autocast(Precision, Device)) logits = Model.Forward(input);
            var probs = F.Softmax(logits.To(DType.Float32), 1).To(DType.Float32, Vit.Torch.Device.Cpu).ToArray<float>();  // (B, classes)
            int k = Labels.Count;
            for (int j = 0; j < present.Count; j++)
            {
                var score = probs.AsSpan(j * k, k).ToArray();
                results[present[j]] = [score, Labels[Classification.ArgMax(score)]];
            }
            return results;
        }
        finally
        {
            foreach (var im in images) im?.Dispose();
        }
    }

    /// <summary>
    /// Writes pictures of the model into <paramref name="folder"/> (created if missing): <c>curves.svg</c>, the learning
    /// curves of its training history (when it has one); with labelled <paramref name="data"/> (image and label
    /// columns), <c>confusion.svg</c>, the confusion matrix of its predictions, and <c>attention.svg</c>, the attention
    /// rollout (Abnar &amp; Zuidema 2020) over the first <paramref name="samples"/> images with predicted and true labels.
    /// Returns the files written.
    /// </summary>
    public IReadOnlyList<string> WritePictures(string folder, IDataView? data = null, string labelColumnName = "Label", int samples = 8)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        Directory.CreateDirectory(folder);
        var written = new List<string>();
        if (History is { Result.Epochs.Count: > 0 } h)
        {
            written.Add(Path.Combine(folder, "curves.svg"));
            Vit.Torch.Reports.TrainingCurves.Write(written[^1], h.Result.Epochs);
        }
        if (data is null) return written;
        var scored = Transform(data);
        var metrics = new MulticlassClassificationCatalog().Evaluate(scored, labelColumnName, Columns.Score, Columns.PredictedLabel);
        written.Add(Path.Combine(folder, "confusion.svg"));
        Vit.Torch.Reports.ConfusionMatrixPicture.Write(written[^1], metrics.Labels, metrics.ConfusionMatrix);

        int image = data.Schema[Columns.Image].Index, label = data.Schema[labelColumnName].Index;
        var rows = scored.GetRows().Take(samples).Select(r => (Source: (ImageSource?)r[image], Truth: r[label] as string ?? "", Predicted: (string)r[Columns.PredictedLabel]!)).ToList();
        if (rows.Count == 0) return written;
        var images = new List<Image>();
        try
        {
            foreach (var r in rows)
            {
                using var decoded = r.Source!.Decode(Preprocessing.Channels);
                images.Add(Preprocessing.Resize(decoded));
            }
            using var scope = TensorScope.Begin();
            var batch = ImageBatch.ToTensor(images, Preprocessing.Normalization);
            var rollout = Vit.Torch.Reports.AttentionRollout.Compute(Model, Device.Type == DeviceType.Cpu ? batch : batch.To(Device));
            written.Add(Path.Combine(folder, "attention.svg"));
            Vit.Torch.Reports.AttentionRollout.WriteOverlays(written[^1], images, rollout.To(DType.Float32, Vit.Torch.Device.Cpu),
                rows.Select(r => r.Predicted).ToList(), rows.Select(r => r.Truth).ToList());
        }
        finally
        {
            foreach (var im in images) im.Dispose();
        }
        return written;
    }

    /// <summary>
    /// Where the model looks in one image: the attention rollout (Abnar &amp; Zuidema 2020) over its patch grid, row-major,
    /// summing to 1, after the model's own preprocessing (<see cref="Preprocessing"/>). For a heat map over the picture.
    /// </summary>
    /// <exception cref="Vit.Torch.Imaging.ImageDecodeException">The image cannot be decoded.</exception>
    public (int Rows, int Columns, float[] Values) AttentionMap(ImageSource image)
    {
        ArgumentNullException.ThrowIfNull(image);
        using var decoded = image.Decode(Preprocessing.Channels);
        using var resized = Preprocessing.Resize(decoded);
        using var scope = TensorScope.Begin();
        var batch = ImageBatch.ToTensor([resized], Preprocessing.Normalization);
        var rollout = Vit.Torch.Reports.AttentionRollout.Compute(Model, Device.Type == DeviceType.Cpu ? batch : batch.To(Device));
        var shape = rollout.Shape;
        return ((int)shape[1], (int)shape[2], rollout.To(DType.Float32, Vit.Torch.Device.Cpu).ToArray<float>());
    }

    /// <summary>Frees the model's native memory (and the training state it kept).</summary>
    public void Dispose()
    {
        Model.Dispose();
        if (TrainingState is not null) File.Delete(TrainingState);
    }
}
