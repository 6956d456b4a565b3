using System.Diagnostics;
using Vit.Torch.Data;
using Vit.Torch.Model;

namespace Vit.Torch.Training;

/// <summary>Options of a training run. Every field has a default in <see cref="Defaults"/>.</summary>
public sealed record TrainerOptions
{
    /// <summary>Default values.</summary>
    public static class Defaults
    {
        /// <summary>Passes over the training set.</summary>
        public const int Epochs = 10;
        /// <summary>Peak learning rate.</summary>
        public const double LearningRate = 1e-3;
        /// <summary>AdamW decoupled weight decay.</summary>
        public const double WeightDecay = 0.05;
        /// <summary>Fraction of all steps spent warming up.</summary>
        public const double WarmupFraction = 0.05;
        /// <summary>Learning rate at the end of the schedule.</summary>
        public const double MinLearningRate = 1e-5;
        /// <summary>Label smoothing ε.</summary>
        public const double LabelSmoothing = 0.1;
        /// <summary>Maximum gradient norm (0 = no clipping).</summary>
        public const double ClipGradNorm = 1.0;
        /// <summary>Seed of initialisation, dropout and shuffling.</summary>
        public const ulong Seed = 42;
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

    /// <summary>Layer-wise learning-rate decay for fine-tuning (BEiT/MAE; typical 0.65-0.75): block i of L learns at
    /// decay^(L - i) times the rate, the head at the full rate (<see cref="AdamW.LayerDecay"/>); null = off.</summary>
    public double? LayerDecay { get; init; }

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
        return this;
    }
}

/// <summary>What one epoch did.</summary>
/// <param name="Epoch">1-based epoch number.</param>
/// <param name="TrainLoss">Mean training loss over the epoch.</param>
/// <param name="TrainAccuracy">Training accuracy over the epoch (with augmentation and dropout on).</param>
/// <param name="Evaluation">Held-out metrics, when an evaluation set was given.</param>
/// <param name="ImagesPerSecond">Training throughput of the epoch.</param>
/// <param name="Elapsed">Wall time since training started.</param>
/// <param name="LearningRate">Learning rate of the epoch's last step.</param>
public sealed record EpochResult(int Epoch, double TrainLoss, double TrainAccuracy, EvaluationResult? Evaluation,
    double ImagesPerSecond, TimeSpan Elapsed, double LearningRate);

/// <summary>Progress of training, reported after every step.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Epochs">Planned epochs.</param>
/// <param name="Step">Steps done so far (1-based, over all epochs).</param>
/// <param name="TotalSteps">Planned steps.</param>
/// <param name="Loss">Loss of this step.</param>
/// <param name="Accuracy">Training accuracy of the epoch so far.</param>
/// <param name="LearningRate">Learning rate of this step.</param>
/// <param name="ImagesPerSecond">Training throughput of the epoch so far.</param>
/// <param name="Elapsed">Time since training started.</param>
/// <param name="Eta">Estimated time left for the planned steps (evaluation excluded).</param>
public sealed record VitTrainingProgress(int Epoch, int Epochs, long Step, long TotalSteps, double Loss, double Accuracy,
    double LearningRate, double ImagesPerSecond, TimeSpan Elapsed, TimeSpan Eta);

/// <summary>The metric early stopping watches on the evaluation set.</summary>
public enum EarlyStoppingMetric
{
    /// <summary>Top-1 accuracy (higher is better).</summary>
    Accuracy,
    /// <summary>Mean cross-entropy (lower is better).</summary>
    Loss,
}

/// <summary>Early stopping: stop after <paramref name="Patience"/> epochs without an improvement larger than
/// <paramref name="MinDelta"/> in <paramref name="Metric"/>; the best epoch's weights are restored.</summary>
public sealed record EarlyStopping(EarlyStoppingMetric Metric = EarlyStoppingMetric.Accuracy, int Patience = 3, double MinDelta = 0);

/// <summary>The outcome of <see cref="Trainer.Fit"/>.</summary>
/// <param name="Epochs">Per-epoch history.</param>
/// <param name="BestEpoch">Epoch whose weights the model holds when early stopping or cancellation restored the best one; otherwise the last epoch (0 when none finished).</param>
/// <param name="StoppedEarly">True when early stopping ended training.</param>
/// <param name="Cancelled">True when the cancellation token ended training.</param>
public sealed record TrainingResult(IReadOnlyList<EpochResult> Epochs, int BestEpoch, bool StoppedEarly, bool Cancelled);

/// <summary>Classification metrics on a held-out set.</summary>
/// <param name="Count">Images evaluated.</param>
/// <param name="Loss">Mean cross-entropy (no smoothing).</param>
/// <param name="Accuracy">Top-1 accuracy.</param>
/// <param name="Top5Accuracy">Top-5 accuracy (top-k with k = min(5, classes)).</param>
public sealed record EvaluationResult(int Count, double Loss, double Accuracy, double Top5Accuracy);

/// <summary>Thrown when the loss or the gradients stop being finite; the model keeps its last good weights.</summary>
public sealed class TrainingDivergedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TrainingDivergedException(string message) : base(message)
    {
    }
}

/// <summary>
/// Trains a <see cref="VisionTransformer"/> classifier: AdamW, warmup + cosine schedule, label smoothing,
/// gradient clipping, per-epoch evaluation. Same seed, same data order: same losses.
/// </summary>
public sealed class Trainer
{
    private readonly VisionTransformer model;
    private Random? mixRng;

    /// <summary>The options in use.</summary>
    public TrainerOptions Options { get; }

    /// <summary>Losses of every step so far (for reproducibility checks and plots).</summary>
    public List<double> StepLosses { get; } = new();

    /// <summary>Creates a trainer for <paramref name="model"/>.</summary>
    public Trainer(VisionTransformer model, TrainerOptions? options = null)
    {
        this.model = model ?? throw new ArgumentNullException(nameof(model));
        Options = (options ?? new TrainerOptions()).Validate();
    }

    /// <summary>
    /// Runs the training. Reports every epoch through <paramref name="onEpoch"/> and every step through
    /// <paramref name="progress"/>. When <paramref name="cancellationToken"/> fires, training stops before the next
    /// batch and returns normally with <see cref="TrainingResult.Cancelled"/> set; the model then holds the best
    /// evaluated epoch's weights when an evaluation set was given, else the weights of the last step.
    /// </summary>
    public TrainingResult Fit(IBatchSource train, IBatchSource? evaluation = null, Action<EpochResult>? onEpoch = null,
        IProgress<VitTrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(train);
        if (train.Count == 0) throw new ArgumentException("the training set is empty", nameof(train));
        if (train.NumClasses != model.Config.NumClasses)
            throw new ArgumentException($"the training set has {train.NumClasses} classes but the model's head has {model.Config.NumClasses}", nameof(train));
        var o = Options;
        if (o.EarlyStopping is not null && evaluation is null)
            throw new ArgumentException("early stopping needs an evaluation (validation) set", nameof(evaluation));
        Torch.ManualSeed(o.Seed);
        long stepsPerEpoch = train.BatchesPerEpoch;
        long totalSteps = stepsPerEpoch * o.Epochs;
        var schedule = new LearningRateSchedule(o.LearningRate, totalSteps, (long)(o.WarmupFraction * totalSteps), o.MinLearningRate, o.Schedule);
        using var optimizer = new AdamW(model.NamedParameters(), o.LearningRate, o.WeightDecay,
            learningRateScale: o.LayerDecay is { } decay ? AdamW.LayerDecay(decay, model.Config.Depth) : null);
        using var best = new WeightSnapshot();
        var results = new List<EpochResult>();
        var clock = Stopwatch.StartNew();
        long step = 0;
        int bestEpoch = 0, sinceBest = 0;
        double bestScore = double.NegativeInfinity;
        bool cancelled = false, stoppedEarly = false;
        for (int epoch = 0; epoch < o.Epochs && !cancelled && !stoppedEarly; epoch++)
        {
            model.Train();
            double lossSum = 0;
            long correct = 0, seen = 0;
            var epochClock = Stopwatch.StartNew();
            foreach (var batch in train.Batches(epoch))
            {
                using var b = batch;
                if (cancellationToken.IsCancellationRequested)
                {
                    cancelled = true;
                    break;
                }
                double lr = schedule.At(step);
                var (loss, right) = TrainStep(optimizer, b, lr, epoch + 1, step);
                lossSum += loss * b.Count;
                correct += right;
                seen += b.Count;
                step++;
                StepLosses.Add(loss);
                if (progress is not null)
                {
                    double ips = seen / epochClock.Elapsed.TotalSeconds;
                    var eta = TimeSpan.FromSeconds((totalSteps - step) * (clock.Elapsed.TotalSeconds / step));
                    progress.Report(new VitTrainingProgress(epoch + 1, o.Epochs, step, totalSteps, loss, (double)correct / seen, lr, ips, clock.Elapsed, eta));
                }
            }
            if (seen == 0)
            {
                if (cancelled) break;
                throw new ArgumentException("no training images could be used in this epoch (all were skipped as unreadable); see the loader's warnings", nameof(train));
            }
            // A cancelled, partial epoch is not evaluated: that would delay the stop by a full pass over the
            // evaluation set, and a partial epoch should not become the "best" one.
            var eval = evaluation is null || cancelled ? null : Evaluate(model, evaluation);
            var r = new EpochResult(epoch + 1, lossSum / seen, (double)correct / seen, eval, seen / epochClock.Elapsed.TotalSeconds,
                clock.Elapsed, schedule.At(step - 1));
            results.Add(r);
            onEpoch?.Invoke(r);
            if (eval is not null)
            {
                // Higher is better for the score: accuracy, or minus the loss.
                var metric = o.EarlyStopping?.Metric ?? EarlyStoppingMetric.Accuracy;
                double score = metric == EarlyStoppingMetric.Accuracy ? eval.Accuracy : -eval.Loss;
                if (score > bestScore + (o.EarlyStopping?.MinDelta ?? 0))
                {
                    bestScore = score;
                    bestEpoch = epoch + 1;
                    sinceBest = 0;
                    if (o.EarlyStopping is not null || cancellationToken.CanBeCanceled) best.Take(model);
                }
                else if (o.EarlyStopping is { } es && ++sinceBest >= es.Patience)
                {
                    stoppedEarly = true;
                }
            }
        }
        if ((stoppedEarly || cancelled || o.EarlyStopping is not null) && best.HasWeights)
            best.Restore(model);
        else
            bestEpoch = results.Count;
        return new TrainingResult(results, bestEpoch, stoppedEarly, cancelled);
    }

    private (double Loss, long Correct) TrainStep(AdamW optimizer, Batch b, double lr, int epoch, long step)
    {
        using var scope = TensorScope.Begin();
        var device = model.Device;
        var images = device.Type == DeviceType.Cpu ? b.Images : b.Images.To(device);
        var labels = device.Type == DeviceType.Cpu ? b.Labels : b.Labels.To(device);
        Tensor loss, logits;
        if (Options.Mixing is { } mixing)
        {
            // Mixup/CutMix blend the images in place and return soft targets (B, classes) that sum to 1.
            var targets = mixing.Apply(images, labels, model.Config.NumClasses, mixRng ??= new Random(Data.StableSeed.Combine((int)Options.Seed, (int)(Options.Seed >> 32), 0x6d1c)));
            logits = model.Forward(images);                                    // (B, classes)
            loss = F.CrossEntropy(logits, targets);
        }
        else
        {
            logits = model.Forward(images);                                    // (B, classes)
            loss = F.CrossEntropy(logits, labels, Options.LabelSmoothing);
        }
        double value = loss.Item();
        if (!double.IsFinite(value))
            throw new TrainingDivergedException(
                $"the training loss became {value} at epoch {epoch}, step {step + 1}; training stopped and the model keeps the " +
                "weights of the last good step. Lower the learning rate or enable gradient clipping.");
        loss.Backward();
        double norm = optimizer.ClipGradNorm(Options.ClipGradNorm);
        if (!double.IsFinite(norm))
        {
            optimizer.ZeroGrad();
            throw new TrainingDivergedException(
                $"the gradient norm became {norm} at epoch {epoch}, step {step + 1}; training stopped before applying it, so the " +
                "model keeps the weights of the last good step. Lower the learning rate.");
        }
        optimizer.LearningRate = lr;
        optimizer.Step();
        optimizer.ZeroGrad();
        using (Torch.NoGrad())
        {
            long correct = (long)logits.ArgMax(1).Eq(labels).Sum().Item();
            return (value, correct);
        }
    }

    /// <summary>Top-1 and top-5 accuracy and mean loss of <paramref name="model"/> on <paramref name="data"/> (eval mode, no grad).</summary>
    public static EvaluationResult Evaluate(VisionTransformer model, IBatchSource data)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        bool wasTraining = model.Training;
        model.Eval();
        try
        {
            using var _ = Torch.NoGrad();
            long k = Math.Min(5, model.Config.NumClasses);
            double lossSum = 0;
            long top1 = 0, topk = 0;
            int n = 0;
            foreach (var batch in data.Batches(0))
            {
                using var b = batch;
                using var scope = TensorScope.Begin();
                var device = model.Device;
                var labels = device.Type == DeviceType.Cpu ? b.Labels : b.Labels.To(device);
                var logits = model.Forward(device.Type == DeviceType.Cpu ? b.Images : b.Images.To(device));
                lossSum += F.CrossEntropy(logits, labels, 0, F.Reduction.Sum).Item();
                top1 += (long)logits.ArgMax(1).Eq(labels).Sum().Item();
                var (_, idx) = logits.TopK(k, 1);                                  // (B, k)
                topk += (long)idx.Eq(labels.Unsqueeze(1)).Sum().Item();
                n += b.Count;
            }
            if (n == 0) throw new ArgumentException("the evaluation set is empty", nameof(data));
            return new EvaluationResult(n, lossSum / n, (double)top1 / n, (double)topk / n);
        }
        finally
        {
            model.Train(wasTraining);
        }
    }
}

/// <summary>A copy of a model's parameters, kept in libtorch memory, to restore the best epoch.</summary>
internal sealed class WeightSnapshot : IDisposable
{
    private readonly Dictionary<string, Tensor> copies = new();

    public bool HasWeights => copies.Count > 0;

    public void Take(Modules.Module model)
    {
        using var _ = Torch.NoGrad();
        foreach (var (name, p) in model.NamedParameters())
        {
            if (copies.TryGetValue(name, out var c)) c.CopyFrom(p);
            else copies[name] = p.Detach().Clone().DetachFromScope();
        }
    }

    public void Restore(Modules.Module model)
    {
        foreach (var (name, p) in model.NamedParameters()) p.CopyFrom(copies[name]);
    }

    public void Dispose()
    {
        foreach (var c in copies.Values) c.Dispose();
        copies.Clear();
    }
}
