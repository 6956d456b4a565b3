using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms.Image;
using Engine = Vit.Torch.Torch;
using Vit.Torch;
using Vit.Torch.Checkpoints;
using Vit.Torch.Data;
using Vit.Torch.Distributed;
using Vit.Torch.Imaging;
using Vit.Torch.Model;
using Vit.Torch.Training;

namespace Vit.MLNet;

/// <summary>The ViT presets of the paper (and DeiT's Tiny), or a custom <see cref="VitConfig"/>.</summary>
public enum VitArchitecture
{
    /// <summary>ViT-Ti/16.</summary>
    TinyPatch16,
    /// <summary>ViT-Ti/32.</summary>
    TinyPatch32,
    /// <summary>ViT-S/16.</summary>
    SmallPatch16,
    /// <summary>ViT-S/32.</summary>
    SmallPatch32,
    /// <summary>ViT-B/16.</summary>
    BasePatch16,
    /// <summary>ViT-B/32.</summary>
    BasePatch32,
    /// <summary>ViT-L/16.</summary>
    LargePatch16,
    /// <summary>ViT-L/32.</summary>
    LargePatch32,
    /// <summary>Use <see cref="VitEstimator.Options.CustomConfig"/>.</summary>
    Custom,
}

/// <summary>How training starts from a saved model (<see cref="VitEstimator.Options.StartFrom"/>).</summary>
public enum FineTuneMode
{
    /// <summary>Train every weight; a new head when the label set differs from the saved model's.</summary>
    Full,
    /// <summary>Freeze the backbone and train only a new head (linear probing): the backbone stays bit-identical and in
    /// evaluation mode (no dropout or drop path).</summary>
    HeadOnly,
    /// <summary>Continue training the saved model as it is (same labels required).</summary>
    Continue,
}

/// <summary>
/// Trains a Vision Transformer image classifier from an image column and a label column, as an ML.NET trainer:
/// <c>new VitEstimator(mlContext, options)</c> or <c>mlContext.MulticlassClassification.Trainers.Vit(options)</c>, appended
/// after <c>LoadImages</c>/<c>ResizeImages</c> (or <c>LoadRawImageBytes</c>) and usually <c>MapValueToKey</c> on the label.
/// <see cref="Fit"/> returns a <see cref="VitTransformer"/> that adds <c>Score</c> (softmax probabilities, slot names =
/// class names) and <c>PredictedLabel</c> (a key of the classes). The training images are read once, decoded and resized on
/// several threads by the pipeline, and kept at the model's size for every epoch (in memory up to a budget, beyond it in a
/// temporary file). Messages (skipped rows, warnings) go to ML.NET's log (<c>mlContext.Log</c>).
/// </summary>
public sealed class VitEstimator : IEstimator<VitTransformer>
{
    private readonly IHostEnvironment env;

    /// <summary>All options, each with a default in <see cref="Defaults"/>.</summary>
    public sealed class Options
    {
        /// <summary>Default values. The training ones are <see cref="TrainerOptions.Defaults"/>, the one set the trainer, this
        /// estimator and the <c>vit</c> tool share; the rest are the estimator's own.</summary>
        public static class Defaults
        {
            /// <summary>Preset.</summary>
            public const VitArchitecture Architecture = VitArchitecture.TinyPatch16;
            /// <summary>The least passes over the training data when <see cref="Options.Epochs"/> is chosen from the data.</summary>
            public const int Epochs = 10;
            /// <summary>The least optimizer steps when <see cref="Options.Epochs"/> is chosen from the data: a ViT from scratch
            /// needs about this many to converge on a small data set (Fashion-MNIST classes 5-9 from 500 images, our 28-pixel ViT
            /// in PyTorch: 91.2% after 480 steps of 64, 77.3% after 80; here 92.1% after 1,000).</summary>
            public const int MinimumSteps = 1000;
            /// <summary>The most passes when <see cref="Options.Epochs"/> is chosen from the data.</summary>
            public const int MaxEpochs = 300;
            /// <summary>Images per step (on 500 Fashion-MNIST images, 1,000 steps of 64 gave 92.1% where steps of 32 gave 90.7%).</summary>
            public const int BatchSize = 64;
            /// <summary>Peak learning rate from scratch, and for a new head on a frozen backbone (HeadOnly).</summary>
            public const double LearningRate = TrainerOptions.Defaults.LearningRate;
            /// <summary>Peak learning rate when every weight starts from a checkpoint (Full, Continue): ten times lower, so
            /// that the pretrained features are adjusted rather than overwritten.</summary>
            public const double FineTuneLearningRate = 1e-4;
            /// <summary>AdamW weight decay.</summary>
            public const double WeightDecay = TrainerOptions.Defaults.WeightDecay;
            /// <summary>Warmup share of all steps.</summary>
            public const double WarmupFraction = TrainerOptions.Defaults.WarmupFraction;
            /// <summary>Learning rate at the end of the schedule (lowered to the peak learning rate when that is lower).</summary>
            public const double MinLearningRate = TrainerOptions.Defaults.MinLearningRate;
            /// <summary>Label smoothing.</summary>
            public const double LabelSmoothing = TrainerOptions.Defaults.LabelSmoothing;
            /// <summary>Gradient clipping norm.</summary>
            public const double ClipGradNorm = TrainerOptions.Defaults.ClipGradNorm;
            /// <summary>Seed when neither <see cref="Options.Seed"/> nor the MLContext has one.</summary>
            public const int Seed = (int)TrainerOptions.Defaults.Seed;
            /// <summary>Images per forward pass when scoring.</summary>
            public const int ScoringBatchSize = 64;
            /// <summary>bfloat16 mixed precision where the hardware computes bfloat16 natively.</summary>
            public const Precision Precision = TrainerOptions.Defaults.Precision;
        }

        /// <summary>The preset (ignored when <see cref="CustomConfig"/> is set).</summary>
        public VitArchitecture Architecture { get; set; } = Defaults.Architecture;

        /// <summary>A custom shape; its image size must match the image column's size when that is fixed.</summary>
        public VitConfig? CustomConfig { get; set; }

        /// <summary>The image column: images (from <c>LoadImages</c>/<c>ResizeImages</c>) or the bytes of image files (from
        /// <c>LoadRawImageBytes</c>). Images of another size than the model's are resized by the model's preprocessing.</summary>
        public string ImageColumnName { get; set; } = "Image";

        /// <summary>The label column: a key (after <c>MapValueToKey</c>; its key values name the classes) or text (its
        /// distinct values, in ordinal order, become the classes). Rows without a label are skipped.</summary>
        public string LabelColumnName { get; set; } = "Label";

        /// <summary>Name of the probabilities column added.</summary>
        public string ScoreColumnName { get; set; } = "Score";

        /// <summary>Name of the predicted label column added.</summary>
        public string PredictedLabelColumnName { get; set; } = "PredictedLabel";

        /// <summary>Input channels, 3 (RGB) or 1 (grayscale); images are converted as they are decoded. Null: the
        /// saved model's (with <see cref="StartFrom"/>), else <see cref="CustomConfig"/>'s, else 3.</summary>
        public int? Channels { get; set; }

        /// <summary>Per-channel normalisation. Null: the saved model's (with <see cref="StartFrom"/>), else ImageNet's
        /// mean/std for RGB and 0.5/0.5 for grayscale.</summary>
        public Normalization? Normalization { get; set; }

        /// <summary>Mixup's Beta(α, α) parameter (0 = off; DeiT uses 0.8). With mixup or cutmix on, targets are soft.</summary>
        public double MixupAlpha { get; set; }

        /// <summary>CutMix's Beta(α, α) parameter (0 = off; DeiT uses 1.0).</summary>
        public double CutMixAlpha { get; set; }

        /// <summary>Passes over the training data; 0 builds the model (e.g. a fresh head on a saved backbone) without training.
        /// Null (the default): chosen from the data's size — enough passes for <see cref="Defaults.MinimumSteps"/> optimizer
        /// steps, at least <see cref="Defaults.Epochs"/> and at most <see cref="Defaults.MaxEpochs"/> — so that a few hundred
        /// images train as long as they need (500 images at batch 64 make 8 steps a pass: 125 passes) while a large set
        /// gets ten.</summary>
        public int? Epochs { get; set; }

        /// <summary>Images per training step.</summary>
        public int BatchSize { get; set; } = Defaults.BatchSize;

        /// <summary>Peak learning rate of AdamW. Null: <see cref="Defaults.LearningRate"/>, or
        /// <see cref="Defaults.FineTuneLearningRate"/> when <see cref="StartFrom"/> trains every weight.</summary>
        public double? LearningRate { get; set; }

        /// <summary>Folder of the run's checkpoints (<c>last.safetensors</c> every epoch and every
        /// <see cref="CheckpointInterval"/>, <c>best.safetensors</c> on a new best, each atomically): a crash, a kill or
        /// Ctrl+C loses at most that much, and each checkpoint loads as a model (StartFrom, <c>PretrainedVit.Load</c>).
        /// Null: no checkpoints (a failure still saves the last good state, to a folder under the temporary folder).</summary>
        public string? CheckpointDirectory { get; set; }

        /// <summary>Wall time between checkpoints inside an epoch (null: at the end of each epoch only).</summary>
        public TimeSpan? CheckpointInterval { get; set; }

        /// <summary>Continue from <see cref="CheckpointDirectory"/>'s last checkpoint when there is one: the run ends with
        /// the weights an uninterrupted run would have (same seed, data and thread count). Checkpoints of other options or
        /// data are refused, naming what differs.</summary>
        public bool Resume { get; set; }

        /// <summary>Decay of an exponential moving average of the weights (0.999-0.9999; timm's model EMA): evaluated and
        /// saved alongside, and the fitted model's weights. Null: off.</summary>
        public double? EmaDecay { get; set; }

        /// <summary>Keep the optimizer's state (AdamW's moments and step, two copies of the trained weights' size) with the
        /// fitted model, so that its model file carries it and <see cref="FineTuneMode.Continue"/> from that file resumes
        /// the optimizer exactly. Off by default: a deployed model needs no optimizer.</summary>
        public bool KeepTrainingState { get; set; }

        /// <summary>Batches whose gradients are summed before each optimizer step (an effective batch of
        /// <see cref="BatchSize"/> × this, in the memory of one batch).</summary>
        public int AccumulationSteps { get; set; } = 1;

        /// <summary>Layer-wise learning-rate decay when fine-tuning (BEiT/MAE; 0.65-0.75 is typical): block i of L
        /// learns at decay^(L - i) times the rate, the head at the full rate; null = off.</summary>
        public double? LayerDecay { get; set; }

        /// <summary>AdamW decoupled weight decay.</summary>
        public double WeightDecay { get; set; } = Defaults.WeightDecay;

        /// <summary>Share of the steps with linear warmup.</summary>
        public double WarmupFraction { get; set; } = Defaults.WarmupFraction;

        /// <summary>Learning rate at the end of the decay. Null: <see cref="Defaults.MinLearningRate"/>, or the peak
        /// learning rate when that is lower.</summary>
        public double? MinLearningRate { get; set; }

        /// <summary>Learning-rate shape after warmup.</summary>
        public ScheduleKind Schedule { get; set; } = ScheduleKind.Cosine;

        /// <summary>Label smoothing ε.</summary>
        public double LabelSmoothing { get; set; } = Defaults.LabelSmoothing;

        /// <summary>Gradient clipping norm (0 = off).</summary>
        public double ClipGradNorm { get; set; } = Defaults.ClipGradNorm;

        /// <summary>Per-image augmentation while training: None (resize only), Light (random resized crop, flip,
        /// colour jitter) or Standard (DeiT's: crop, flip, RandAugment, random erasing).</summary>
        public AugmentPreset Augmentation { get; set; } = AugmentPreset.Light;

        /// <summary>Whether augmentation may flip images left-right (turn off for text, digits, left/right classes).</summary>
        public bool HorizontalFlip { get; set; } = true;

        /// <summary>Held-out data to evaluate after every epoch (for early stopping and the history).</summary>
        public IDataView? ValidationSet { get; set; }

        /// <summary>When no <see cref="ValidationSet"/> is given: the share of the training rows held out (stratified; 0 = none).</summary>
        public double ValidationFraction { get; set; }

        /// <summary>Early stopping on the validation set (restores the best epoch's weights); null = off.</summary>
        public EarlyStopping? EarlyStopping { get; set; }

        /// <summary>Receives epoch, step, loss, accuracy, learning rate, images/s and ETA after every step.</summary>
        public IProgress<VitTrainingProgress>? Progress { get; set; }

        /// <summary>Stops training within one batch; Fit still returns the best model so far.</summary>
        public CancellationToken CancellationToken { get; set; }

        /// <summary>A checkpoint to start from, anything <see cref="PretrainedVit.Load"/> reads: a model file (from
        /// <c>ctx.Model.Save</c>), a Hugging Face folder, a timm or torchvision checkpoint (<c>.safetensors</c>, <c>.pth</c>),
        /// our safetensors. Its normalisation and resize interpolation become the defaults; an image column of another
        /// size resamples its position embeddings. Null = from scratch.</summary>
        public string? StartFrom { get; set; }

        /// <summary>What <see cref="StartFrom"/> cannot tell (e.g. the head count of an unpublished size); the image size
        /// comes from the image column.</summary>
        public PretrainedVitOptions? StartFromOptions { get; set; }

        /// <summary>How to start from <see cref="StartFrom"/>.</summary>
        public FineTuneMode FineTune { get; set; } = FineTuneMode.Full;

        /// <summary>Device to train and score on.</summary>
        public Device Device { get; set; } = Device.Cpu;

        /// <summary>When the device is not available: fall back to the CPU (true) or fail (false).</summary>
        public bool FallbackToCpu { get; set; } = true;

        /// <summary>Images per forward pass when scoring (Transform).</summary>
        public int ScoringBatchSize { get; set; } = Defaults.ScoringBatchSize;

        /// <summary>Arithmetic of training and scoring: <see cref="Precision.Auto"/> (bfloat16 mixed precision where the
        /// hardware has native bfloat16, float32 elsewhere), <see cref="Precision.BFloat16"/> or <see cref="Precision.Float32"/>.
        /// Weights and optimizer state are float32 in every mode. The fitted transformer scores at the same precision.</summary>
        public Precision Precision { get; set; } = Defaults.Precision;

        /// <summary>Decode/augment worker threads.</summary>
        public int Workers { get; set; } = Math.Max(1, Environment.ProcessorCount - 1);

        /// <summary>What to do with an unreadable training image.</summary>
        public BadImagePolicy OnBadImage { get; set; } = BadImagePolicy.Skip;

        /// <summary>Seed of initialisation, dropout, shuffling, augmentation and the validation split. Null (the default):
        /// the MLContext's seed, else <see cref="Defaults.Seed"/>.</summary>
        public int? Seed { get; set; }

        /// <summary>
        /// Data-parallel training over processes and hosts (null: this process alone): every process of the group runs
        /// the same Fit with the same options and data; each loads and trains on its share of every batch, the gradients
        /// are summed before each step, so <see cref="BatchSize"/> is the whole batch over all processes and the result is
        /// that of one process with that batch. Rank 0 writes the checkpoints and the pictures and reports
        /// <see cref="Progress"/>; save the fitted model on rank 0. Make the group with
        /// <see cref="ProcessGroup.Create"/> (e.g. from torchrun's variables, <see cref="DistributedOptions.FromEnvironment"/>).
        /// </summary>
        public ProcessGroup? Distributed { get; set; }
    }

    /// <summary>Creates the estimator with <paramref name="options"/> (defaults when null).</summary>
    public VitEstimator(MLContext mlContext, Options? options = null)
        : this((IHostEnvironment)(mlContext ?? throw new ArgumentNullException(nameof(mlContext))), options)
    {
    }

    internal VitEstimator(IHostEnvironment env, Options? options)
    {
        this.env = env;
        TrainingOptions = options ?? new Options();
    }

    /// <summary>Creates the estimator from flat parameters.</summary>
    public VitEstimator(MLContext mlContext, VitArchitecture architecture, int? epochs = null,
        int batchSize = Options.Defaults.BatchSize, double? learningRate = null,
        string labelColumnName = "Label", string imageColumnName = "Image")
        : this(mlContext, new Options
        {
            Architecture = architecture, Epochs = epochs, BatchSize = batchSize, LearningRate = learningRate,
            LabelColumnName = labelColumnName, ImageColumnName = imageColumnName,
        })
    {
    }

    /// <summary>The options in use.</summary>
    public Options TrainingOptions { get; }

    /// <summary>
    /// The schema the fitted transformer will produce, checked without training (ML.NET calls this before fitting a
    /// pipeline): the image column must be an image or image bytes and the label column a key or text; Score (a vector of
    /// floats, with the label's key values as slot names) and PredictedLabel (a key) are added.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or has another type; the message names it, the
    /// type expected and the type found.</exception>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var o = TrainingOptions;
        ImageColumns.Check(inputSchema, o.ImageColumnName);
        LabelColumns.Check(inputSchema, o.LabelColumnName);
        var columns = inputSchema.ToDictionary(c => c.Name);
        inputSchema.TryFindColumn(o.LabelColumnName, out var label);
        var slotNames = label.IsKey && label.Annotations.TryFindColumn(AnnotationUtils.Kinds.KeyValues, out var kv) && kv.ItemType is TextDataViewType
            ? new SchemaShape([new SchemaShape.Column(AnnotationUtils.Kinds.SlotNames, SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance, false)])
            : new SchemaShape([]);
        var keyValues = new SchemaShape([new SchemaShape.Column(AnnotationUtils.Kinds.KeyValues, SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance, false)]);
        columns[o.ScoreColumnName] = new SchemaShape.Column(o.ScoreColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false, slotNames);
        columns[o.PredictedLabelColumnName] = new SchemaShape.Column(o.PredictedLabelColumnName, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.UInt32, true, keyValues);
        return new SchemaShape(columns.Values);
    }

    private VitConfig BaseConfig() => TrainingOptions.Architecture switch
    {
        VitArchitecture.Custom => TrainingOptions.CustomConfig ?? throw new ArgumentException("Architecture is Custom but CustomConfig is not set"),
        _ when TrainingOptions.CustomConfig is not null => TrainingOptions.CustomConfig,
        VitArchitecture.TinyPatch16 => VitConfig.TinyPatch16,
        VitArchitecture.TinyPatch32 => VitConfig.TinyPatch32,
        VitArchitecture.SmallPatch16 => VitConfig.SmallPatch16,
        VitArchitecture.SmallPatch32 => VitConfig.SmallPatch32,
        VitArchitecture.BasePatch16 => VitConfig.BasePatch16,
        VitArchitecture.BasePatch32 => VitConfig.BasePatch32,
        VitArchitecture.LargePatch16 => VitConfig.LargePatch16,
        VitArchitecture.LargePatch32 => VitConfig.LargePatch32,
        _ => throw new ArgumentException($"unknown architecture {TrainingOptions.Architecture}"),
    };

    private void ValidateOptions()
    {
        var o = TrainingOptions;
        if (o.Epochs < 0) throw new ArgumentException($"Epochs must be 0 or more, got {o.Epochs}");
        if (o.BatchSize < 1) throw new ArgumentException($"BatchSize must be at least 1, got {o.BatchSize}");
        if (o.ScoringBatchSize < 1) throw new ArgumentException($"ScoringBatchSize must be at least 1, got {o.ScoringBatchSize}");
        if (o.Channels is not (null or 1 or 3)) throw new ArgumentException($"Channels must be 1 or 3, got {o.Channels}");
        if (o.Workers < 1) throw new ArgumentException($"Workers must be at least 1, got {o.Workers}");
        if (!(o.MixupAlpha >= 0) || !(o.CutMixAlpha >= 0)) throw new ArgumentException("MixupAlpha and CutMixAlpha must be >= 0");
        if (o.Normalization is { } n && o.Channels is { } c && n.Mean.Length != 1 && n.Mean.Length != c)
            throw new ArgumentException($"Normalization has {n.Mean.Length} means for {c} channels");
        if (!(o.ValidationFraction >= 0 && o.ValidationFraction < 1)) throw new ArgumentException($"ValidationFraction must be in [0, 1), got {o.ValidationFraction}");
        if (o.EarlyStopping is not null && o.ValidationSet is null && o.ValidationFraction == 0)
            throw new ArgumentException("EarlyStopping needs a ValidationSet or a ValidationFraction > 0");
        if (o.LearningRate is { } lr && !(lr > 0)) throw new ArgumentException($"LearningRate must be positive, got {lr}");
        if (o.MinLearningRate is { } min && !(min >= 0 && min <= PeakLearningRate()))
            throw new ArgumentException($"MinLearningRate must be in [0, {PeakLearningRate()}] (the peak learning rate), got {min}");
        if (o.AccumulationSteps < 1) throw new ArgumentException($"AccumulationSteps must be at least 1, got {o.AccumulationSteps}");
        if (o.EmaDecay is { } ema && !(ema > 0 && ema < 1)) throw new ArgumentException($"EmaDecay must be in (0, 1), got {ema}");
        if (o.Resume && o.CheckpointDirectory is null) throw new ArgumentException("Resume needs a CheckpointDirectory to resume from");
        if (o.LayerDecay is { } ld && !(ld > 0 && ld <= 1)) throw new ArgumentException($"LayerDecay must be in (0, 1], got {ld}");
    }

    /// <summary>The peak learning rate: <see cref="Options.LearningRate"/>, else the default for where training starts.</summary>
    private double PeakLearningRate() => TrainingOptions.LearningRate
        ?? (TrainingOptions.StartFrom is not null && TrainingOptions.FineTune != FineTuneMode.HeadOnly
            ? Options.Defaults.FineTuneLearningRate : Options.Defaults.LearningRate);

    /// <summary>Trains the model and returns the fitted transformer.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or mistyped (checked before anything is read).</exception>
    /// <exception cref="ArgumentException">An option is invalid, or the data has fewer than two classes.</exception>
    public VitTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ValidateOptions();
        GetOutputSchema(SchemaShape.Create(input.Schema));
        var o = TrainingOptions;
        int seed = o.Seed ?? (env as IHostEnvironmentInternal)?.Seed ?? Options.Defaults.Seed;
        using var ch = env.Start("VitEstimator");

        // The classes: the label's key values, or the distinct texts (one pass over the label column only).
        var labelColumn = input.Schema[o.LabelColumnName];
        bool keyed = LabelColumns.Check(input.Schema, o.LabelColumnName) == LabelColumns.Kind.Key;
        var labels = keyed ? LabelColumns.KeyNames(labelColumn) : LabelColumns.DistinctText(input, o.LabelColumnName);
        var textClasses = keyed ? null : labels.Select((l, i) => (l, i)).ToDictionary(x => x.l, x => x.i, StringComparer.Ordinal);
        if (labels.Count < 2)
            throw new ArgumentException($"the training data has {labels.Count} class(es) ({string.Join(", ", labels)}) in label column '{o.LabelColumnName}'; a classifier needs at least two");
        if (o.ValidationSet is { } vs)
        {
            GetOutputSchema(SchemaShape.Create(vs.Schema));
            if (LabelColumns.Check(vs.Schema, o.LabelColumnName) == LabelColumns.Kind.Key
                && !LabelColumns.KeyNames(vs.Schema[o.LabelColumnName]).SequenceEqual(labels))
                throw new ArgumentException($"the validation set's label column '{o.LabelColumnName}' has other keys ({string.Join(", ", LabelColumns.KeyNames(vs.Schema[o.LabelColumnName]))}) " +
                                            $"than the training data's ({string.Join(", ", labels)}); map both with the same MapValueToKey");
        }

        var device = Engine.ResolveDevice(o.Device, o.FallbackToCpu);
        var imageType = input.Schema[o.ImageColumnName].Type as ImageDataViewType;
        // The model's initialisation and the training draw from this Fit's own generator (see Torch.UseThreadGenerator).
        using var generator = Engine.UseThreadGenerator((ulong)seed);
        var (model, preprocessing, continueFrom) = CreateModel(labels, imageType);
        VitTransformer fitted;
        var stores = new List<PixelStore>();
        try
        {
            model.To(device);
            var cfg = model.Config;
            var warnings = new List<string>();
            var (train, skipped) = ReadImages(input, "training data", labels, textClasses, preprocessing, stores, warnings, ch);
            ImageDataset? validation = null;
            if (o.ValidationSet is { } vset)
            {
                (validation, _) = ReadImages(vset, "validation set", labels, textClasses, preprocessing, stores, warnings, ch);
            }
            else if (o.ValidationFraction > 0)
            {
                (train, validation) = train.StratifiedSplit(o.ValidationFraction, seed);
                if (validation.Count == 0)
                    throw new ArgumentException($"ValidationFraction {o.ValidationFraction} of {train.Count} rows leaves no validation rows; raise it or pass a ValidationSet");
            }
            var present = train.Samples.Select(x => x.Label).ToHashSet();
            if (present.Count < 2)
                throw new ArgumentException($"the training rows hold {present.Count} class(es); a classifier needs at least two");
            if (!keyed && labels.Where((_, i) => !present.Contains(i)).ToList() is { Count: > 0 } missing)
                throw new ArgumentException($"ValidationFraction {o.ValidationFraction} leaves no training rows for: {string.Join(", ", missing)}; lower it or add images");

            double learningRate = PeakLearningRate();
            // The stored images are already at the model's size: the loader only augments and normalises them.
            var loaderOptions = new ImageLoaderOptions
            {
                BatchSize = o.BatchSize, Shuffle = true, Seed = seed, Workers = o.Workers, Channels = cfg.Channels,
                ImageSize = cfg.ImageSize, Normalization = preprocessing.Normalization, OnBadImage = o.OnBadImage,
                ResizeMode = preprocessing.ResizeMode, Interpolation = preprocessing.Interpolation, CropFraction = preprocessing.CropFraction,
                Augment = o.Augmentation == AugmentPreset.None ? null
                    : AugmentationPipeline.Training(o.Augmentation, cfg.ImageSize, cfg.ImageSize, cfg.Channels, o.HorizontalFlip).Apply,
            };
            if (o.Distributed is { } g) loaderOptions = loaderOptions with { Shard = (g.Rank, g.WorldSize) };
            var trainLoader = new ImageBatchLoader(train, loaderOptions) { OnWarning = w => Warn(ch, warnings, w) };
            var evalLoader = validation is null ? null
                : new ImageBatchLoader(validation, loaderOptions with { Shuffle = false, Augment = null, BatchSize = o.ScoringBatchSize }) { OnWarning = w => Warn(ch, warnings, w) };
            int epochs = o.Epochs ?? EpochsFor(train.Count);
            if (o.Epochs is null) ch.Info(MessageSensitivity.None, "{0}", $"{train.Count} training images at batch {o.BatchSize}: {epochs} epochs");
            string? finalState = o.KeepTrainingState && epochs > 0
                ? Path.Combine(Path.GetTempPath(), $"vit-optimizer-{Guid.NewGuid():N}.safetensors")
                : null;
            // Every checkpoint is a complete model file: the config (the trainer adds it), the preprocessing and labels.
            var metadata = VitMetadata.Of(model.Config, preprocessing, labels);
            var trainer = new Trainer(model, new TrainerOptions
            {
                Epochs = Math.Max(1, epochs), LearningRate = learningRate, WeightDecay = o.WeightDecay, WarmupFraction = o.WarmupFraction,
                MinLearningRate = o.MinLearningRate ?? Math.Min(Options.Defaults.MinLearningRate, learningRate), Schedule = o.Schedule, LabelSmoothing = o.LabelSmoothing,
                ClipGradNorm = o.ClipGradNorm, Seed = (ulong)seed, EarlyStopping = o.EarlyStopping, LayerDecay = o.LayerDecay,
                Mixing = o.MixupAlpha > 0 || o.CutMixAlpha > 0
                    ? new BatchMixing { MixupAlpha = o.MixupAlpha, CutMixAlpha = o.CutMixAlpha, LabelSmoothing = o.LabelSmoothing }
                    : null,
                AccumulationSteps = o.AccumulationSteps, EmaDecay = o.EmaDecay, CheckpointDirectory = o.CheckpointDirectory,
                CheckpointInterval = o.CheckpointInterval, Resume = o.Resume, ContinueFrom = continueFrom,
                FinalStatePath = finalState, Precision = o.Precision, Distributed = o.Distributed,
                RescueDirectory = Path.Combine(Path.GetTempPath(), "vit-rescue", DateTime.UtcNow.ToString("yyyyMMdd-HHmmss-fff", System.Globalization.CultureInfo.InvariantCulture)),
                CheckpointMetadata = metadata,
                Fingerprint = new Dictionary<string, string>
                {
                    ["augmentation"] = $"{o.Augmentation}, flip {o.HorizontalFlip}", ["preprocessing"] = metadata[VitMetadata.Preprocessing],
                    ["labels"] = metadata[VitMetadata.Labels], ["start"] = o.StartFrom is null ? "scratch" : $"{o.StartFrom} ({o.FineTune})",
                },
            });
            TrainingResult result;
            try
            {
                result = epochs == 0 ? new TrainingResult([], 0, false, false)
                    : trainer.Fit(trainLoader, evalLoader, progress: o.Progress, cancellationToken: o.CancellationToken);
            }
            catch (Exception e) when (continueFrom is not null && e is InvalidDataException or ArgumentException && e.Message.Contains(continueFrom))
            {
                // The carried state is read from a temporary copy: name the model file the user gave.
                throw new InvalidDataException(e.Message.Replace(continueFrom, $"{o.StartFrom} ({VitModelZip.TrainingStateEntry})"), e);
            }
            catch
            {
                if (finalState is not null) File.Delete(finalState);
                throw;
            }
            finally
            {
                if (continueFrom is not null) File.Delete(continueFrom);
            }
            model.Eval();
            var history = new TrainingHistory(result, skipped + trainLoader.SkippedCount, warnings);
            fitted = new VitTransformer(env, model, labels, preprocessing,
                new VitColumns(o.ImageColumnName, o.ScoreColumnName, o.PredictedLabelColumnName), o.ScoringBatchSize, history, device, o.Precision)
            {
                TrainingState = finalState is not null && File.Exists(finalState) ? finalState : null,
            };
        }
        catch
        {
            model.Dispose();
            throw;
        }
        finally
        {
            foreach (var store in stores) store.Dispose();
        }
        // The pictures of the run next to its checkpoints: learning curves; with a validation set, its confusion matrix and
        // attention. Drawing them cannot cost the trained model: a failure is a warning.
        if (o.CheckpointDirectory is not null && fitted.History!.Result.Epochs.Count > 0 && o.Distributed is not { Rank: > 0 })
        {
            try
            {
                fitted.WritePictures(o.CheckpointDirectory, o.ValidationSet, o.LabelColumnName);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                ch.Warning(MessageSensitivity.None, "{0}", $"the pictures of the run could not be drawn in {o.CheckpointDirectory}: {e.Message}");
            }
        }
        return fitted;
    }

    /// <summary>The passes over <paramref name="rows"/> training rows when <see cref="Options.Epochs"/> is null.</summary>
    internal int EpochsFor(int rows)
    {
        var o = TrainingOptions;
        long batch = (long)o.BatchSize * o.AccumulationSteps;
        long stepsPerEpoch = Math.Max(1, (rows + batch - 1) / batch);
        return (int)Math.Clamp((Options.Defaults.MinimumSteps + stepsPerEpoch - 1) / stepsPerEpoch, Options.Defaults.Epochs, Options.Defaults.MaxEpochs);
    }

    private static void Warn(IChannel ch, List<string> warnings, string warning)
    {
        lock (warnings) warnings.Add(warning);
        ch.Warning(MessageSensitivity.None, "{0}", warning);
    }

    /// <summary>
    /// Reads a data set's images and labels once, in the data's order, into a store at the model's size: decoded and resized
    /// by the pipeline on several threads (<see cref="PixelRows"/>), then converted by the model's preprocessing. Rows
    /// without a label, and (with <see cref="BadImagePolicy.Skip"/>) rows whose image cannot be read, are left out with a
    /// warning each.
    /// </summary>
    private (ImageDataset Data, int Skipped) ReadImages(IDataView data, string what, IReadOnlyList<string> labels,
        IReadOnlyDictionary<string, int>? textClasses, VitPreprocessing preprocessing, List<PixelStore> stores, List<string> warnings, IChannel ch)
    {
        var o = TrainingOptions;
        var store = new PixelStore(preprocessing.ImageSize, preprocessing.ImageSize, preprocessing.Channels);
        stores.Add(store);
        var samples = new List<IImageSample>();
        int skipped = 0;
        var unknown = new SortedSet<string>(StringComparer.Ordinal);
        using (var rows = new PixelRows(env, data, o.ImageColumnName, preprocessing, Math.Max(2, o.Workers), data.Schema[o.LabelColumnName]))
        {
            var label = LabelColumns.IndexReader(rows.Cursor, rows.Extra!.Value, textClasses);
            var text = textClasses is null ? null : LabelColumns.TextReader(rows.Cursor, rows.Extra!.Value);
            while (rows.MoveNext())
            {
                o.CancellationToken.ThrowIfCancellationRequested();
                int c = label();
                if (c == -2)
                {
                    unknown.Add(text!());
                    continue;
                }
                if (c < 0 || rows.Error is not null)
                {
                    if (c >= 0 && o.OnBadImage == BadImagePolicy.Throw) throw PixelRows.Failure(rows.Index, o.ImageColumnName, rows.Error!);
                    skipped++;
                    Warn(ch, warnings, c < 0 ? $"{what}, row {rows.Index}: no label in column '{o.LabelColumnName}'; row skipped"
                        : $"{what}, row {rows.Index}: {rows.Error}; row skipped");
                    continue;
                }
                if (c >= labels.Count) throw new InvalidDataException($"{what}, row {rows.Index}: label key {c + 1} is beyond the key count {labels.Count}");
                samples.Add(new StoredImageSample(store, store.Add(rows.Pixels), $"{what}, row {rows.Index}", c));
            }
        }
        if (unknown.Count > 0)
            throw new ArgumentException($"the {what} has labels the training data lacks: {string.Join(", ", unknown)}");
        if (samples.Count == 0)
            throw new ArgumentException($"the {what} has no usable rows ({skipped} skipped: {string.Join("; ", warnings.Take(3))})");
        return (new ImageDataset(samples, labels), skipped);
    }

    private (VisionTransformer Model, VitPreprocessing Preprocessing, string? ContinueFrom) CreateModel(IReadOnlyList<string> labels, ImageDataViewType? imageType)
    {
        var o = TrainingOptions;
        // A square image column of a fixed size sets the model's input size; images of any other size are brought to the
        // model's size by its preprocessing.
        int columnSize = imageType is { Height: > 0 } t && t.Height == t.Width ? t.Height : 0;
        if (o.StartFrom is null)
        {
            var cfg = BaseConfig() with { NumClasses = labels.Count };
            if (o.Channels is { } c) cfg = cfg with { Channels = c };
            if (columnSize > 0) cfg = cfg with { ImageSize = columnSize };
            var pre = VitPreprocessing.Default(cfg.ImageSize, cfg.Channels);
            if (o.Normalization is { } n0) pre = pre with { Normalization = n0.ForChannels(cfg.Channels) };
            return (new VisionTransformer(cfg.Validate()), pre, null);
        }
        // The image column's size wins: the checkpoint's position embeddings are resampled to it.
        var startOptions = (o.StartFromOptions ?? new PretrainedVitOptions()) with
        {
            ImageSize = columnSize > 0 ? columnSize : o.StartFromOptions?.ImageSize,
        };
        using var start = PretrainedVit.Load(o.StartFrom, startOptions);
        var model = start.TakeModel();
        try
        {
            var cfg = model.Config;
            if (o.Channels is { } ch && ch != cfg.Channels)
                throw new ArgumentException($"Channels is {ch} but the checkpoint {o.StartFrom} takes {cfg.Channels}-channel images");
            // Keep the input scaling and resizing the backbone was trained with, unless the user says otherwise.
            var pre = start.Preprocessing;
            if (o.Normalization is { } n) pre = pre with { Normalization = n.ForChannels(cfg.Channels) };
            bool sameLabels = start.Labels is not null && start.Labels.SequenceEqual(labels);
            if (o.FineTune == FineTuneMode.Continue)
            {
                if (!sameLabels)
                    throw new ArgumentException(start.Labels is null
                        ? $"FineTune = Continue needs a checkpoint with labels; {o.StartFrom} has none (use Full or HeadOnly for a new head)"
                        : $"FineTune = Continue needs the saved model's labels ({string.Join(", ", start.Labels)}); the data has {string.Join(", ", labels)}");
            }
            else if (!sameLabels || o.FineTune == FineTuneMode.HeadOnly)
            {
                model.ReplaceHead(labels.Count);
            }
            if (o.FineTune == FineTuneMode.HeadOnly) model.FreezeBackbone();
            // A model file that carries its training state continues with AdamW's moments and step, not afresh.
            string? continueFrom = o.FineTune == FineTuneMode.Continue ? VitModelZip.ExtractTrainingState(o.StartFrom) : null;
            return (model, pre, continueFrom);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

}
