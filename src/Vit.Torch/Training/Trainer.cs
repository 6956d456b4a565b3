using Vit.Torch.Data;
using Vit.Torch.Distributed;
using Vit.Torch.Model;

namespace Vit.Torch.Training;

/// <summary>
/// Trains a <see cref="VisionTransformer"/> classifier: AdamW, warmup + cosine schedule, label smoothing, gradient
/// clipping and accumulation, an EMA of the weights, per-epoch evaluation, early stopping, and checkpoints that resume
/// bit for bit. Same seed, same data order, same thread count: same losses and weights.
/// </summary>
public sealed partial class Trainer
{
    private readonly VisionTransformer model;
    private readonly TrainerHooks? hooks;

    /// <summary>The options in use.</summary>
    public TrainerOptions Options { get; }

    /// <summary>Losses of every batch so far (for reproducibility checks and plots).</summary>
    public List<double> StepLosses { get; } = new();

    /// <summary>Creates a trainer for <paramref name="model"/>.</summary>
    public Trainer(VisionTransformer model, TrainerOptions? options = null) : this(model, options, hooks: null)
    {
    }

    /// <summary>Creates a trainer whose runs call <paramref name="hooks"/> (tests: failure injection, watching the steps).</summary>
    internal Trainer(VisionTransformer model, TrainerOptions? options, TrainerHooks? hooks)
    {
        this.model = model ?? throw new ArgumentNullException(nameof(model));
        Options = (options ?? new TrainerOptions()).Validate();
        this.hooks = hooks;
    }

    /// <summary>
    /// Runs the training. Reports every epoch through <paramref name="onEpoch"/> and every optimizer step through
    /// <paramref name="progress"/>. When <paramref name="cancellationToken"/> fires (also while a batch or an evaluation is
    /// being prepared), training stops promptly and returns normally with <see cref="TrainingResult.Cancelled"/> set; the
    /// model then holds the best evaluated epoch's weights when an evaluation set was given, else the weights of the last
    /// step. A failure leaves the last good checkpoint on disk (see <see cref="TrainingFailedException"/>).
    /// </summary>
    /// <exception cref="TrainingFailedException">Training failed; <see cref="TrainingFailedException.LastGoodCheckpoint"/> says where the last good state is.</exception>
    public TrainingResult Fit(IBatchSource train, IBatchSource? evaluation = null, Action<EpochResult>? onEpoch = null,
        IProgress<VitTrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(train);
        if (train.Count == 0) throw new ArgumentException("the training set is empty", nameof(train));
        if (train.NumClasses != model.Config.NumClasses)
            throw new ArgumentException($"the training set has {train.NumClasses} classes but the model's head has {model.Config.NumClasses}", nameof(train));
        if (Options.EarlyStopping is not null && evaluation is null)
            throw new ArgumentException("early stopping needs an evaluation (validation) set", nameof(evaluation));
        // Set-up (generator, optimizer, snapshots, resume), the epochs, the end: the steps of one run, in Trainer.Run.cs.
        using var run = new Run(this, train, evaluation, onEpoch, progress, cancellationToken);
        run.TrainEpochs();
        return run.Finish();
    }

    /// <summary>Top-1 and top-5 accuracy and mean loss of <paramref name="model"/> on <paramref name="data"/> (eval mode,
    /// inference mode, forward passes at <paramref name="precision"/>).</summary>
    public static EvaluationResult Evaluate(VisionTransformer model, IBatchSource data, Precision precision = Precision.Auto) =>
        Evaluate(model, data, CancellationToken.None, precision)!;

    /// <summary>As <see cref="Evaluate(VisionTransformer, IBatchSource, Precision)"/>; null when <paramref name="cancellationToken"/>
    /// fires first (checked before every batch and while the loader prepares one).</summary>
    /// <remarks>With <paramref name="group"/>, each rank evaluates its shard of <paramref name="data"/> and the sums
    /// are reduced: every rank returns the whole set's metrics (a cancellation then returns null on the ranks whose token
    /// fired and leaves the others waiting, so pass <see cref="CancellationToken.None"/>).</remarks>
    public static EvaluationResult? Evaluate(VisionTransformer model, IBatchSource data, CancellationToken cancellationToken, Precision precision = Precision.Auto,
        ProcessGroup? group = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        bool wasTraining = model.Training;
        model.Eval();
        try
        {
            using var _ = Torch.InferenceMode();
            long k = Math.Min(5, model.Config.NumClasses);
            double lossSum = 0;
            long top1 = 0, topk = 0;
            int n = 0;
            try
            {
            foreach (var batch in data.Batches(0, 0, cancellationToken))
            {
                using var b = batch;
                if (cancellationToken.IsCancellationRequested) return null;
                using var scope = TensorScope.Begin();
                var device = model.Device;
                var labels = device.Type == DeviceType.Cpu ? b.Labels : b.Labels.To(device);
                Tensor logits;
                using (MixedPrecision.Autocast(precision, device)) logits = model.Forward(device.Type == DeviceType.Cpu ? b.Images : b.Images.To(device));
                logits = logits.To(DType.Float32);
                lossSum += F.CrossEntropy(logits, labels, 0, F.Reduction.Sum).Item();
                // The rules of Classification, as scored data is evaluated (libtorch's topk breaks ties arbitrarily).
                var scores = logits.To(DType.Float32, Device.Cpu).ToArray<float>();   // (B, classes)
                var truth = b.Labels.ToArray<long>();
                int classes = model.Config.NumClasses;
                for (int i = 0; i < truth.Length; i++)
                {
                    var row = scores.AsSpan(i * classes, classes);
                    if (Classification.ArgMax(row) == truth[i]) top1++;
                    if (Classification.InTopK(row, (int)truth[i], (int)k)) topk++;
                }
                n += b.Count;
            }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return null;
            }
            if (group is { WorldSize: > 1 })
            {
                double[] sums = [lossSum, top1, topk, n];
                using var t = Tensor.FromArray(sums, sums.Length);
                group.AllReduce([t]);
                sums = t.ToArray<double>();
                (lossSum, top1, topk, n) = (sums[0], (long)sums[1], (long)sums[2], (int)sums[3]);
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
