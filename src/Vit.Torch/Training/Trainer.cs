using System.Diagnostics;
using Vit.Torch.Data;
using Vit.Torch.Model;

namespace Vit.Torch.Training;

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
