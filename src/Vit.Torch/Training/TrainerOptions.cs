namespace Vit.Torch.Training;

/// <summary>Options of a training run. Every field has a default in <see cref="Defaults"/>.</summary>
public sealed record TrainerOptions
{
    /// <summary>
    /// Default values: the one set of training defaults, shared by <see cref="Trainer"/>, the ML.NET estimator
    /// (<c>VitEstimator.Options.Defaults</c> refers to these) and the <c>vit</c> tool. They are the estimator's
    /// measured settings (see the README's few-image figures); a recipe such as the Fashion-MNIST job sets its own.
    /// </summary>
    public static class Defaults
    {
        /// <summary>Passes over the training set.</summary>
        public const int Epochs = 10;
        /// <summary>Peak learning rate.</summary>
        public const double LearningRate = 1e-3;
        /// <summary>AdamW decoupled weight decay.</summary>
        public const double WeightDecay = 0.05;
        /// <summary>Fraction of all steps spent warming up.</summary>
        public const double WarmupFraction = 0.1;
        /// <summary>Learning rate at the end of the schedule.</summary>
        public const double MinLearningRate = 1e-6;
        /// <summary>Label smoothing ε.</summary>
        public const double LabelSmoothing = 0.1;
        /// <summary>Maximum gradient norm (0 = no clipping).</summary>
        public const double ClipGradNorm = 1.0;
        /// <summary>Seed of initialisation, dropout and shuffling.</summary>
        public const ulong Seed = 42;
        /// <summary>bfloat16 where the hardware has it natively (see <see cref="Vit.Torch.Precision.Auto"/>).</summary>
        public const Precision Precision = Vit.Torch.Precision.Auto;
    }

    /// <summary>Passes over the training set.</summary>
    public int Epochs { get; init; } = Defaults.Epochs;

    /// <summary>Peak learning rate (after warmup).</summary>
    public double LearningRate { get; init; } = Defaults.LearningRate;

    /// <summary>AdamW decoupled weight decay (not applied to biases, norms, position embedding, class token).</summary>
    public double WeightDecay { get; init; } = Defaults.WeightDecay;

    /// <summary>Fraction of all steps with linear warmup.</summary>
    public double WarmupFraction { get; init; } = Defaults.WarmupFraction;

    /// <summary>Learning rate at the end of the decay.</summary>
    public double MinLearningRate { get; init; } = Defaults.MinLearningRate;

    /// <summary>Decay shape after warmup.</summary>
    public ScheduleKind Schedule { get; init; } = ScheduleKind.Cosine;

    /// <summary>Label smoothing ε of the cross-entropy.</summary>
    public double LabelSmoothing { get; init; } = Defaults.LabelSmoothing;

    /// <summary>Gradients are scaled down to this total L2 norm when larger (0 = off).</summary>
    public double ClipGradNorm { get; init; } = Defaults.ClipGradNorm;

    /// <summary>Seed of libtorch's generator (dropout, drop path) set at the start of training.</summary>
    public ulong Seed { get; init; } = Defaults.Seed;

    /// <summary>Batch-level mixup/cutmix (soft targets; label smoothing then comes from the mixing); null = off.</summary>
    public Imaging.BatchMixing? Mixing { get; init; }

    /// <summary>Stop when the evaluation metric has not improved for a while, and restore the best epoch's weights (null = off).</summary>
    public EarlyStopping? EarlyStopping { get; init; }

    /// <summary>Batches whose gradients are summed before each optimizer step (the effective batch is this many loader
    /// batches; each one's loss is divided by it, as timm does). The schedule counts optimizer steps.</summary>
    public int AccumulationSteps { get; init; } = 1;

    /// <summary>Decay of an exponential moving average of the weights, updated after every optimizer step (timm's
    /// ModelEmaV2; 0.999-0.9999 is usual); null = off. With it, epochs are evaluated with both weights, the best epoch
    /// is the EMA's, and the model ends with the EMA weights.</summary>
    public double? EmaDecay { get; init; }

    /// <summary>Folder of the run's checkpoints: <c>last.safetensors</c> after every epoch (and every
    /// <see cref="CheckpointInterval"/> inside one), <c>best.safetensors</c> when an evaluation finds a new best; each
    /// written atomically. Null: no checkpoints.</summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>Wall time between checkpoints inside an epoch (taken at optimizer-step boundaries); null: at epoch ends
    /// only; <see cref="TimeSpan.Zero"/>: after every optimizer step.</summary>
    public TimeSpan? CheckpointInterval { get; init; }

    /// <summary>Continue from <see cref="CheckpointDirectory"/>'s <c>last.safetensors</c> when it exists: weights,
    /// optimizer, schedule, every generator and the data position are restored, so that the run ends bit-identical to
    /// an uninterrupted one (same seed, data and thread count). A checkpoint of other options or data is refused,
    /// naming what differs.</summary>
    public bool Resume { get; init; }

    /// <summary>Where to write the checkpoint of the last good step when training fails and no
    /// <see cref="CheckpointDirectory"/> is set (null: nowhere).</summary>
    public string? RescueDirectory { get; init; }

    /// <summary>Metadata written into every checkpoint besides the model's config (e.g. its preprocessing and labels,
    /// so that a checkpoint loads as a complete model).</summary>
    public IReadOnlyDictionary<string, string>? CheckpointMetadata { get; init; }

    /// <summary>What else must match for <see cref="Resume"/> (e.g. the caller's augmentation and image size); the
    /// trainer adds its own options, the model's config and the data's fingerprints.</summary>
    public IReadOnlyDictionary<string, string>? Fingerprint { get; init; }

    /// <summary>Where to write, at the end of training, the optimizer's state alone (AdamW's moments and step), for a
    /// model file to carry (null: nowhere).</summary>
    public string? FinalStatePath { get; init; }

    /// <summary>A checkpoint whose optimizer state (AdamW's moments and step) and step count this run continues from
    /// (the weights are the model's): the schedule covers the saved steps and this run's, so warmup is not repeated.</summary>
    public string? ContinueFrom { get; init; }

    /// <summary>Layer-wise learning-rate decay for fine-tuning (BEiT/MAE; typical 0.65-0.75): block i of L learns at
    /// decay^(L - i) times the rate, the head at the full rate (<see cref="AdamW.LayerDecay"/>); null = off.</summary>
    public double? LayerDecay { get; init; }

    /// <summary>The arithmetic of the forward passes (training and evaluation): bfloat16 mixed precision keeps float32
    /// weights, optimizer state, loss and gradient clipping (see <see cref="Vit.Torch.Precision"/>).</summary>
    public Precision Precision { get; init; } = Defaults.Precision;

    /// <summary>
    /// Data-parallel training over a process group (null: this process alone). Every rank runs the same
    /// <see cref="Trainer.Fit"/> with the same options and data, each with its loader's
    /// <see cref="Data.ImageLoaderOptions.Shard"/> (or <see cref="Data.InMemoryBatchSource.Shard"/>) set to its rank:
    /// the trainer starts every rank from rank 0's weights, sums the gradients in float32 buckets before each step,
    /// scales each rank's loss by its share of the whole batch (so that W ranks at batch B train as one process at
    /// batch B), evaluates the shards and reduces the metrics, and lets rank 0 alone write checkpoints and report
    /// progress. A stop (cancellation) is agreed on at the next batch. Resuming needs the checkpoint folder on every rank.
    /// </summary>
    public Distributed.ProcessGroup? Distributed { get; init; }

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public TrainerOptions Validate()
    {
        if (EarlyStopping is { } es)
        {
            if (es.Patience < 1) throw new ArgumentException($"early-stopping patience must be at least 1 epoch, got {es.Patience}");
            if (!(es.MinDelta >= 0)) throw new ArgumentException($"early-stopping minimum delta must be >= 0, got {es.MinDelta}");
        }
        if (Epochs < 1) throw new ArgumentException($"epochs must be at least 1, got {Epochs}");
        if (!(LearningRate > 0)) throw new ArgumentException($"learning rate must be positive, got {LearningRate}");
        if (!(WeightDecay >= 0)) throw new ArgumentException($"weight decay must be >= 0, got {WeightDecay}");
        if (!(WarmupFraction >= 0 && WarmupFraction < 1)) throw new ArgumentException($"warmup fraction must be in [0, 1), got {WarmupFraction}");
        if (!(MinLearningRate >= 0 && MinLearningRate <= LearningRate))
            throw new ArgumentException($"minimum learning rate must be in [0, {LearningRate}], got {MinLearningRate}");
        if (!(LabelSmoothing >= 0 && LabelSmoothing < 1)) throw new ArgumentException($"label smoothing must be in [0, 1), got {LabelSmoothing}");
        if (!(ClipGradNorm >= 0)) throw new ArgumentException($"gradient clipping norm must be >= 0, got {ClipGradNorm}");
        if (LayerDecay is { } ld && !(ld > 0 && ld <= 1)) throw new ArgumentException($"layer decay must be in (0, 1], got {ld}");
        if (AccumulationSteps < 1) throw new ArgumentException($"accumulation steps must be at least 1, got {AccumulationSteps}");
        if (EmaDecay is { } ema && !(ema > 0 && ema < 1)) throw new ArgumentException($"EMA decay must be in (0, 1), got {ema}");
        if (CheckpointInterval is { } ci && ci < TimeSpan.Zero) throw new ArgumentException($"checkpoint interval must be >= 0, got {ci}");
        if (Resume && CheckpointDirectory is null) throw new ArgumentException("Resume needs a CheckpointDirectory to resume from");
        if (Resume && ContinueFrom is not null) throw new ArgumentException("Resume and ContinueFrom exclude each other: resume a run, or continue from a saved one");
        return this;
    }
}
