using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Vit.Torch;
using Vit.Torch.Checkpoints;
using Vit.Torch.Data;
using Vit.Torch.Imaging;

namespace Vit.MLNet;

/// <summary>
/// Where ML.NET users look for things: <c>mlContext.MulticlassClassification.Trainers.Vit(...)</c>,
/// <c>mlContext.Transforms.FeaturizeImageWithVit(...)</c>, <c>mlContext.Model.LoadPretrainedVit(...)</c>,
/// <c>mlContext.Model.ExportVitToOnnx(...)</c> and <c>ExportVitToHuggingFace(...)</c>, <c>mlContext.Data.LoadFromImageFolder(...)</c>.
/// </summary>
public static class VitCatalog
{
    /// <summary>The ViT trainer: the same estimator as <c>new VitEstimator(mlContext, options)</c>.</summary>
    public static VitEstimator Vit(this MulticlassClassificationCatalog.MulticlassClassificationTrainers trainers, VitEstimator.Options? options = null)
    {
        ArgumentNullException.ThrowIfNull(trainers);
        return new VitEstimator(trainers.GetEnvironment(), options);
    }

    /// <summary>The ViT trainer from flat parameters (see <see cref="VitEstimator.Options"/> for the rest).</summary>
    public static VitEstimator Vit(this MulticlassClassificationCatalog.MulticlassClassificationTrainers trainers, string labelColumnName = "Label",
        string imageColumnName = "Image", VitArchitecture architecture = VitEstimator.Options.Defaults.Architecture,
        int? epochs = null, int batchSize = VitEstimator.Options.Defaults.BatchSize, double? learningRate = null) =>
        trainers.Vit(new VitEstimator.Options
        {
            LabelColumnName = labelColumnName, ImageColumnName = imageColumnName, Architecture = architecture,
            Epochs = epochs, BatchSize = batchSize, LearningRate = learningRate,
        });

    /// <summary>
    /// Image features from a pretrained ViT, for any ML.NET trainer to sit on: adds <paramref name="outputColumnName"/>, the
    /// pooled representation the checkpoint's head would read (a vector of floats of its embedding width), computed from
    /// <paramref name="inputColumnName"/> (images or image bytes) with the checkpoint's own preprocessing. The checkpoint is
    /// anything <see cref="PretrainedVit.Load"/> reads (a Hugging Face folder, a timm or torchvision file, a model file of
    /// ours); it is read when the estimator is made.
    /// </summary>
    public static VitFeaturizingEstimator FeaturizeImageWithVit(this TransformsCatalog catalog, string checkpointPath,
        string outputColumnName = "Features", string inputColumnName = "Image", PretrainedVitOptions? checkpointOptions = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new VitFeaturizingEstimator(catalog.GetEnvironment(), checkpointPath, outputColumnName, inputColumnName, checkpointOptions);
    }

    /// <summary>
    /// ML.NET's <c>Save</c>, made atomic: the model file is written to a temporary file beside <paramref name="filePath"/>
    /// and renamed over it, so a crash or an error while saving leaves any previous file as it was, and a process watching
    /// the file (a prediction-engine pool with hot reload) never reads half a file.
    /// </summary>
    public static void SaveAtomic(this ModelOperationsCatalog catalog, ITransformer model, DataViewSchema inputSchema, string filePath) =>
        SaveAtomicThrough(catalog, model, inputSchema, filePath, wrapStream: null);

    /// <summary>As <see cref="SaveAtomic"/>, writing through <paramref name="wrapStream"/>'s stream over the temporary file
    /// (a test's failing disk).</summary>
    internal static void SaveAtomicThrough(this ModelOperationsCatalog catalog, ITransformer model, DataViewSchema inputSchema, string filePath,
        Func<Stream, Stream>? wrapStream)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(filePath);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(filePath))!);
        AtomicFile.Write(filePath, stream => catalog.Save(model, inputSchema, wrapStream is null ? stream : wrapStream(stream)));
    }

    /// <summary>
    /// ML.NET's <c>Load</c>, with its errors as this library gives them: a file that is not a readable model (truncated,
    /// half written, not a zip: ML.NET says <see cref="FormatException"/>) and a model step that cannot be read (a damaged
    /// or newer-format ViT step: ML.NET wraps our loader's error in <see cref="System.Reflection.TargetInvocationException"/>s)
    /// become an <see cref="InvalidDataException"/> that names the file and the problem.
    /// </summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">The file is not a readable model; the message says why.</exception>
    public static ITransformer LoadWithClearErrors(this ModelOperationsCatalog catalog, string filePath, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrEmpty(filePath);
        if (!File.Exists(filePath)) throw new FileNotFoundException($"model file not found: {filePath}", filePath);
        try
        {
            return catalog.Load(filePath, out inputSchema);
        }
        catch (FormatException e)
        {
            throw new InvalidDataException($"{filePath} is not a readable model file (it may be truncated or damaged): {e.Message}", e);
        }
        catch (Exception e) when (Innermost(e) is var inner && inner != e && inner is InvalidDataException or NotSupportedException or FormatException)
        {
            throw new InvalidDataException($"{filePath}: {inner.Message}", inner);
        }
    }

    private static Exception Innermost(Exception e)
    {
        while (e is System.Reflection.TargetInvocationException or InvalidOperationException && e.InnerException is { } inner) e = inner;
        return e;
    }

    /// <summary>
    /// Evaluates a fitted pipeline with a ViT step on labelled data, with ML.NET's own evaluator (micro and macro accuracy,
    /// log-loss, top-k accuracy, the confusion matrix): the same as
    /// <c>Evaluate(model.Transform(data), labelColumnName, …)</c> on a key label, and for a text label column it first maps
    /// the labels to keys in the model's class order, as ML.NET's evaluator needs them (a label the model does not know
    /// becomes the missing key, which the evaluator leaves out).
    /// </summary>
    public static MulticlassClassificationMetrics EvaluateVit(this MulticlassClassificationCatalog catalog, ITransformer model, IDataView data,
        string labelColumnName = "Label", int topKPredictionCount = 0)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(data);
        var vit = VitPipeline.Find(model, "EvaluateVit");
        var scored = model.Transform(data);
        string keyColumn = labelColumnName;
        if (LabelColumns.Check(scored.Schema, labelColumnName) == LabelColumns.Kind.Text)
        {
            keyColumn = labelColumnName + "Key";
            while (scored.Schema.GetColumnOrNull(keyColumn) is not null) keyColumn += "_";
            var ml = new MLContext();
            var keys = ml.Data.LoadFromEnumerable(vit.Labels.Select(c => new ClassName { Name = c }));
            scored = ml.Transforms.Conversion.MapValueToKey(keyColumn, labelColumnName, keyData: keys).Fit(scored).Transform(scored);
        }
        return catalog.Evaluate(scored, keyColumn, vit.Columns.Score, vit.Columns.PredictedLabel, topKPredictionCount);
    }

    private sealed class ClassName
    {
        public string Name { get; set; } = "";
    }

    /// <summary>
    /// A published classifier as a fitted pipeline step, without training: a Hugging Face folder, a timm or torchvision
    /// checkpoint, or any file <see cref="PretrainedVit.Load"/> reads. It scores with the checkpoint's own labels (Hugging
    /// Face's id2label, timm's label_names; "0", "1", … when it has none) and its own preprocessing. Append it after
    /// <c>LoadImages</c> (and optionally <c>ResizeImages</c>) producing <paramref name="imageColumnName"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The checkpoint has no classification head (a backbone: fine-tune it with
    /// <see cref="VitEstimator.Options.StartFrom"/>, or use <see cref="FeaturizeImageWithVit"/>).</exception>
    public static VitTransformer LoadPretrainedVit(this ModelOperationsCatalog catalog, string path, PretrainedVitOptions? options = null,
        string imageColumnName = "Image", string scoreColumnName = "Score", string predictedLabelColumnName = "PredictedLabel")
    {
        ArgumentNullException.ThrowIfNull(catalog);
        using var pretrained = PretrainedVit.Load(path, options);
        int classes = pretrained.Model.Config.NumClasses;
        if (classes == 0)
            throw new ArgumentException($"{path} has no classification head (it is a backbone); fine-tune it with VitEstimator.Options.StartFrom, or featurize with FeaturizeImageWithVit", nameof(path));
        var labels = pretrained.Labels ?? Enumerable.Range(0, classes).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
        return new VitTransformer(catalog.GetEnvironment(), pretrained.TakeModel(), labels, pretrained.Preprocessing,
            new VitColumns(imageColumnName, scoreColumnName, predictedLabelColumnName), VitEstimator.Options.Defaults.ScoringBatchSize, null,
            Device.Cpu, VitEstimator.Options.Defaults.Precision);
    }

    /// <summary>
    /// Writes the pipeline's ViT as ONNX to <paramref name="stream"/>, for ML.NET's <c>ApplyOnnxModel</c> and ONNX Runtime:
    /// input <c>pixel_values</c>, float32 [N, 3, H, W], planar RGB in [0, 1] (the layout of
    /// <c>ExtractPixels(outputColumnName: "pixel_values", scaleImage: 1f / 255)</c> after LoadImages and ResizeImages); the
    /// per-channel normalisation is inside the graph; outputs <c>logits</c> and <c>Score</c> (softmax), [N, classes], in the
    /// order of <see cref="VitTransformer.Labels"/>. Loading and resizing images stay in the host's pipeline; the file's
    /// <c>vit.preprocessing</c> records the pipeline's own ResizeImages step, if it has one, as the resize to reproduce.
    /// <paramref name="inputSchema"/> is the schema the model takes (<c>mlContext.Model.Load</c> gives it). Not ML.NET's
    /// <c>ConvertToOnnx</c>, which knows only ML.NET's own transforms.
    /// </summary>
    /// <exception cref="ArgumentException">The model has no ViT step, the schema does not fit it, or the stream is not writable.</exception>
    public static void ExportVitToOnnx(this ModelOperationsCatalog catalog, ITransformer model, DataViewSchema inputSchema, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var (vit, pre) = OnnxSource(model, inputSchema);
        if (!stream.CanWrite) throw new ArgumentException("the stream to write the ONNX model to is not writable", nameof(stream));
        vit.Model.ExportOnnx(stream, pre, vit.Labels);
    }

    /// <summary>As <see cref="ExportVitToOnnx(ModelOperationsCatalog, ITransformer, DataViewSchema, Stream)"/>, to a file
    /// written atomically: an error leaves any previous file at <paramref name="path"/> as it was (weights beyond 1 GB go to
    /// <c>&lt;file&gt;.data</c> beside it).</summary>
    public static void ExportVitToOnnx(this ModelOperationsCatalog catalog, ITransformer model, DataViewSchema inputSchema, string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var (vit, pre) = OnnxSource(model, inputSchema);
        vit.Model.ExportOnnx(path, pre, vit.Labels);
    }

    /// <summary>As <see cref="ExportVitToOnnx(ModelOperationsCatalog, ITransformer, DataViewSchema, string)"/>, with the schema of
    /// <paramref name="inputData"/> (ML.NET's <c>ConvertToOnnx</c> takes data the same way).</summary>
    public static void ExportVitToOnnx(this ModelOperationsCatalog catalog, ITransformer model, IDataView inputData, string path) =>
        catalog.ExportVitToOnnx(model, (inputData ?? throw new ArgumentNullException(nameof(inputData))).Schema, path);

    /// <summary>As <see cref="ExportVitToOnnx(ModelOperationsCatalog, ITransformer, DataViewSchema, Stream)"/>, with the schema of
    /// <paramref name="inputData"/>.</summary>
    public static void ExportVitToOnnx(this ModelOperationsCatalog catalog, ITransformer model, IDataView inputData, Stream stream) =>
        catalog.ExportVitToOnnx(model, (inputData ?? throw new ArgumentNullException(nameof(inputData))).Schema, stream);

    private static (VitTransformer Vit, VitPreprocessing Preprocessing) OnnxSource(ITransformer model, DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var source = ExportSource(model, "ExportVitToOnnx");
        model.GetOutputSchema(inputSchema);  // the data must fit the pipeline
        return source;
    }

    /// <summary>
    /// Writes the pipeline's ViT as a Hugging Face folder (<see cref="HuggingFaceExport"/>: config.json, model.safetensors,
    /// preprocessor_config.json), with the preprocessing of the pipeline's own ResizeImages step when it makes images of the
    /// model's size, as <see cref="ExportVitToOnnx(ModelOperationsCatalog, ITransformer, DataViewSchema, string)"/> records it.
    /// </summary>
    /// <exception cref="ArgumentException">The model has no ViT step.</exception>
    /// <exception cref="NotSupportedException">The ViT is one transformers cannot express (mean pooling, fc_norm, no class token).</exception>
    public static void ExportVitToHuggingFace(this ModelOperationsCatalog catalog, ITransformer model, string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        var (vit, pre) = ExportSource(model, "ExportVitToHuggingFace");
        vit.Model.SavePretrained(folder, pre, vit.Labels);
    }

    /// <summary>The ViT step, and its preprocessing with the resize of the pipeline's own ResizeImages step when it makes
    /// images of the model's size (then the ViT step never resizes).</summary>
    private static (VitTransformer Vit, VitPreprocessing Preprocessing) ExportSource(ITransformer model, string what)
    {
        var vit = VitPipeline.Find(model, what);
        var pre = vit.Preprocessing;
        var resize = VitPipeline.Steps(model).OfType<ImageResizingTransformer>().SelectMany(r => r.Columns)
            .LastOrDefault(c => c.Name == vit.Columns.Image);
        if (resize is not null && resize.ImageWidth == pre.ImageSize && resize.ImageHeight == pre.ImageSize)
            pre = pre with
            {
                ResizeMode = resize.Resizing switch
                {
                    ImageResizingEstimator.ResizingKind.IsoPad => ResizeMode.Pad,
                    ImageResizingEstimator.ResizingKind.Fill => ResizeMode.Stretch,
                    _ => ResizeMode.Crop,
                },
                CropFraction = 1,
            };
        return (vit, pre);
    }

    /// <summary>
    /// The ImageFolder convention as a data view: one subfolder per class, named after the class. Columns <c>ImagePath</c>
    /// (text, absolute) and <c>Label</c> (text, the subfolder name), files in a stable (ordinal) order. Append
    /// <c>MapValueToKey("Label")</c> and <c>LoadImages("Image", null, "ImagePath")</c>. A single class is accepted here (a
    /// folder to score may hold one); training refuses one.
    /// </summary>
    public static IDataView LoadFromImageFolder(this DataOperationsCatalog catalog, string folder)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var listing = ImageFolder.List(folder, allowSingleClass: true);
        var rows = listing.Files.Select(f => new ImageFolderRow { ImagePath = Path.GetFullPath(f.Path), Label = listing.ClassNames[f.Label] }).ToList();
        return catalog.LoadFromEnumerable(rows);
    }

    /// <summary>A row of <see cref="LoadFromImageFolder"/>.</summary>
    public sealed class ImageFolderRow
    {
        /// <summary>The image file's absolute path.</summary>
        public string ImagePath { get; set; } = "";

        /// <summary>The class: the name of the image's subfolder.</summary>
        public string Label { get; set; } = "";
    }
}

/// <summary>Walking a fitted pipeline: its steps in order, and its ViT step.</summary>
public static class VitPipeline
{
    /// <summary>The steps of a transformer, chains flattened, in order.</summary>
    public static IEnumerable<ITransformer> Steps(ITransformer model) =>
        model is IEnumerable<ITransformer> chain ? chain.SelectMany(Steps) : [model];

    /// <summary>
    /// The model without its leading <c>LoadImages</c> steps: a model that takes the images themselves (an image column of
    /// <see cref="MLImage"/> values, named as LoadImages named its output) where it took their paths — for images that
    /// arrive in memory, such as uploads (make them with <see cref="MLImage.CreateFromStream"/>; mark the input class's
    /// property <see cref="AnySizeImageAttribute"/>). A model without such a step comes back as it is.
    /// </summary>
    public static ITransformer WithoutImageLoading(ITransformer model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var steps = Steps(model).ToList();
        int loaders = steps.TakeWhile(s => s is ImageLoadingTransformer).Count();
        return loaders == 0 ? model : new TransformerChain<ITransformer>(steps.Skip(loaders).ToArray());
    }

    /// <summary>The one ViT step of a pipeline, or an <see cref="ArgumentException"/> that says what the pipeline holds;
    /// <paramref name="what"/> names the operation that needs it, for the message.</summary>
    public static VitTransformer Find(ITransformer model, string what)
    {
        ArgumentNullException.ThrowIfNull(model);
        var steps = Steps(model).ToList();
        var vits = steps.OfType<VitTransformer>().ToList();
        return vits.Count == 1 ? vits[0] : throw new ArgumentException(
            $"{what} needs a pipeline with one VitTransformer step (a fitted VitEstimator); this one has {vits.Count} among its steps: "
            + string.Join(", ", steps.Select(s => s.GetType().Name)), nameof(model));
    }
}
