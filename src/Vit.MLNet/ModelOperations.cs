using Engine = Vit.Torch.Torch;
using Vit.Torch;
using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.MLNet;

/// <summary>Saving and loading model files, and prediction engines (ML.NET's <c>mlContext.Model</c>).</summary>
public sealed class ModelOperationsCatalog
{
    internal ModelOperationsCatalog() { }

    /// <summary>
    /// Saves a fitted pipeline (LoadImages/ResizeImages steps and the ViT) with the schema of its input to a model
    /// file (a zip: model.json, weights.safetensors, training.json). Atomic: a crash leaves any previous file intact.
    /// </summary>
    public void Save(ITransformer model, DataViewSchema inputSchema, string filePath) => ModelFile.Save(model, inputSchema, filePath);

    /// <summary>Loads a model file to score on the CPU; <paramref name="inputSchema"/> receives the schema it was saved with.</summary>
    public ITransformer Load(string filePath, out DataViewSchema inputSchema) => ModelFile.Load(filePath, out inputSchema, Device.Cpu);

    /// <summary>
    /// Loads a model file to score on <paramref name="device"/> (e.g. <c>Device.Cuda(0)</c>); <paramref name="inputSchema"/>
    /// receives the schema it was saved with. The device is resolved as <see cref="VitEstimator.Options.Device"/> is for
    /// training (<see cref="Engine.ResolveDevice"/>); <see cref="VitTransformer.Device"/> says where the model runs.
    /// </summary>
    /// <param name="filePath">The model file.</param>
    /// <param name="inputSchema">Receives the schema the model was saved with.</param>
    /// <param name="device">Where to score.</param>
    /// <param name="fallbackToCpu">When <paramref name="device"/> is not available: score on the CPU (true, as
    /// <see cref="VitEstimator.Options.FallbackToCpu"/>) or throw (false).</param>
    /// <exception cref="TorchException">The device is not available and <paramref name="fallbackToCpu"/> is false; the
    /// message says why (no CUDA in the linked libtorch, or how many devices are visible).</exception>
    public ITransformer Load(string filePath, out DataViewSchema inputSchema, Device device, bool fallbackToCpu = true) =>
        ModelFile.Load(filePath, out inputSchema, Engine.ResolveDevice(device, fallbackToCpu));

    /// <summary>
    /// A published classifier as a pipeline step, without training: a Hugging Face folder, a timm or torchvision
    /// checkpoint, or any file <see cref="PretrainedVit.Load"/> reads. It scores with the checkpoint's own labels
    /// (Hugging Face's id2label, timm's label_names), or "0", "1", ... when the checkpoint has none, and with the
    /// checkpoint's preprocessing. Append it after LoadImages (and optionally ResizeImages) reading
    /// <paramref name="imageColumnName"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The checkpoint has no classification head (a backbone: fine-tune it with
    /// <see cref="VitEstimator.Options.StartFrom"/>).</exception>
    public VitTransformer Import(string path, PretrainedVitOptions? options = null, string imageColumnName = "Image",
        string scoreColumnName = "Score", string predictedLabelColumnName = "PredictedLabel")
    {
        using var pretrained = PretrainedVit.Load(path, options);
        int classes = pretrained.Model.Config.NumClasses;
        if (classes == 0)
            throw new ArgumentException($"{path} has no classification head (it is a backbone); fine-tune it with VitEstimator.Options.StartFrom", nameof(path));
        var labels = pretrained.Labels ?? Enumerable.Range(0, classes).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
        return new VitTransformer(pretrained.TakeModel(), labels, pretrained.Preprocessing,
            new VitColumns(imageColumnName, scoreColumnName, predictedLabelColumnName), VitEstimator.Options.Defaults.ScoringBatchSize, null, Device.Cpu);
    }

    /// <summary>
    /// Writes the pipeline's ViT as ONNX to <paramref name="stream"/> (ML.NET's <c>ConvertToOnnx</c>), for ML.NET's
    /// <c>ApplyOnnxModel</c> and ONNX Runtime: input <c>pixel_values</c>, float32 [N, 3, H, W], planar RGB in [0, 1]
    /// (the layout of <c>ExtractPixels(outputColumnName: "pixel_values", scaleImage: 1f / 255)</c> after LoadImages and
    /// ResizeImages); the per-channel normalisation is inside the graph; outputs <c>logits</c> and <c>Score</c>
    /// (softmax), [N, classes], in the order of <see cref="VitTransformer.Labels"/>. Loading and resizing images stay in
    /// the host's pipeline; the file's <c>vit.preprocessing</c> records the pipeline's own ResizeImages step, if it has
    /// one, as the resize to reproduce. See <see cref="OnnxExport"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The model has no ViT step, the data does not fit it, or the stream is not writable.</exception>
    public void ConvertToOnnx(ITransformer model, IDataView inputData, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var (vit, pre) = OnnxSource(model, inputData);
        if (!stream.CanWrite) throw new ArgumentException("the stream to write the ONNX model to is not writable", nameof(stream));
        vit.Model.ExportOnnx(stream, pre, vit.Labels);
    }

    /// <summary>As <see cref="ConvertToOnnx(ITransformer, IDataView, Stream)"/>, to a file written atomically: an error leaves
    /// any previous file at <paramref name="path"/> as it was (weights beyond 1 GB go to <c>&lt;file&gt;.data</c> beside it).</summary>
    public void ConvertToOnnx(ITransformer model, IDataView inputData, string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var (vit, pre) = OnnxSource(model, inputData);
        vit.Model.ExportOnnx(path, pre, vit.Labels);
    }

    /// <summary>The ViT step, and its preprocessing with the resize of the pipeline's own ResizeImages step when it makes
    /// images of the model's size (then the ViT step never resizes).</summary>
    private static (VitTransformer Vit, VitPreprocessing Preprocessing) OnnxSource(ITransformer model, IDataView inputData)
    {
        ArgumentNullException.ThrowIfNull(inputData);
        var source = ExportSource(model, "ConvertToOnnx");
        model.GetOutputSchema(inputData.Schema);  // the data must fit the pipeline
        return source;
    }

    /// <summary>
    /// Writes the pipeline's ViT as a Hugging Face folder (<see cref="HuggingFaceExport"/>: config.json,
    /// model.safetensors, preprocessor_config.json), with the preprocessing of the pipeline's own ResizeImages step when
    /// it makes images of the model's size, as <see cref="ConvertToOnnx(ITransformer, IDataView, string)"/> records it.
    /// </summary>
    /// <exception cref="ArgumentException">The model has no ViT step.</exception>
    /// <exception cref="NotSupportedException">The ViT is one transformers cannot express (mean pooling, fc_norm, no class token).</exception>
    public void ExportHuggingFace(ITransformer model, string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        var (vit, pre) = ExportSource(model, "ExportHuggingFace");
        vit.Model.SavePretrained(folder, pre, vit.Labels);
    }

    private static (VitTransformer Vit, VitPreprocessing Preprocessing) ExportSource(ITransformer model, string what)
    {
        var vit = Transformers.Vit(model, what);
        var pre = vit.Preprocessing;
        var resize = Transformers.Steps(model).OfType<ImageResizingTransformer>().LastOrDefault(r => r.OutputColumnName == vit.Columns.Image);
        if (resize is { Resize: var r } && r.Width == pre.ImageSize && r.Height == pre.ImageSize)
            pre = pre with { ResizeMode = r.Mode, Interpolation = r.Interpolation, CropFraction = 1 };
        return (vit, pre);
    }

    /// <summary>
    /// A prediction engine for single items. Not thread-safe: use one per thread, or
    /// <see cref="CreatePredictionEnginePool{TSrc,TDst}"/> in web apps.
    /// </summary>
    public PredictionEngine<TSrc, TDst> CreatePredictionEngine<TSrc, TDst>(ITransformer model)
        where TSrc : class where TDst : class, new() => new(model);

    /// <summary>A thread-safe pool of prediction engines over one model (its default model), for concurrent requests:
    /// at most <see cref="PredictionEnginePoolOptions.MaxEngines"/> at once, each on its share of the cores. For named
    /// models from files reloaded on change, see <see cref="PredictionEnginePoolServiceCollectionExtensions.AddPredictionEnginePool{TSrc,TDst}"/>.
    /// The pool does not dispose <paramref name="model"/>.</summary>
    public PredictionEnginePool<TSrc, TDst> CreatePredictionEnginePool<TSrc, TDst>(ITransformer model, PredictionEnginePoolOptions? options = null)
        where TSrc : class where TDst : class, new()
    {
        var pool = new PredictionEnginePool<TSrc, TDst>(options);
        pool.AddModel(PredictionEnginePool<TSrc, TDst>.DefaultModelName, model);
        return pool;
    }
}

/// <summary>
/// Predicts one item at a time through a fitted pipeline (ML.NET's PredictionEngine). Input properties map to the
/// pipeline's input columns, output properties to its output columns, by name or <see cref="ColumnNameAttribute"/>.
/// Not thread-safe (it reuses buffers); the numbers equal those of <see cref="ITransformer.Transform"/>.
/// </summary>
public sealed class PredictionEngine<TSrc, TDst> where TSrc : class where TDst : class, new()
{
    private readonly ITransformer model;
    private readonly IReadOnlyList<(string Column, System.Reflection.PropertyInfo Property)> inputs;
    private readonly DataViewSchema inputSchema;
    private readonly RowBinder<TDst> binder;
    private readonly object?[][] row = new object?[1][];
    private int busy;

    internal PredictionEngine(ITransformer model)
    {
        this.model = model ?? throw new ArgumentNullException(nameof(model));
        inputs = ColumnMapping.Of(typeof(TSrc)).Where(m => m.Property.CanRead).ToList();
        inputSchema = new DataViewSchema(inputs.Select(m => (m.Column, ColumnMapping.TypeOf(m.Property))));
        // Checks now, not at the first request: every input column the pipeline needs, every output property it fills.
        binder = new RowBinder<TDst>(model.GetOutputSchema(inputSchema));
    }

    /// <summary>Scores one item.</summary>
    public TDst Predict(TSrc example)
    {
        ArgumentNullException.ThrowIfNull(example);
        if (Interlocked.Exchange(ref busy, 1) != 0)
            throw new InvalidOperationException("PredictionEngine is not thread-safe and is already predicting on another thread; use CreatePredictionEnginePool");
        try
        {
            row[0] = inputs.Select(m => m.Property.GetValue(example)).ToArray();
            var output = model.Transform(new TableDataView(inputSchema, row));
            return binder.Read(output.GetRows().Single());
        }
        finally
        {
            Volatile.Write(ref busy, 0);
        }
    }
}
