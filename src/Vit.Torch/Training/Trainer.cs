using System.Diagnostics;
using Vit.Torch.Data;
using Vit.Torch.Distributed;
using Vit.Torch.Model;

namespace Vit.Torch.Training;

/// <summary>
/// Trains a <see cref="VisionTransformer"/> classifier: AdamW, warmup + cosine schedule, label smoothing, gradient
/// clipping and accumulation, an EMA of the weights, per-epoch evaluation, early stopping, and checkpoints that resume
/// bit for bit. Same seed, same data order, same thread count: same losses and weights.
/// </summary>
public sealed class Trainer
{
    private readonly VisionTransformer model;

    /// <summary>The options in use.</summary>
    public TrainerOptions Options { get; }

    /// <summary>Losses of every batch so far (for reproducibility checks and plots).</summary>
    public List<double> StepLosses { get; } = new();

    /// <summary>Creates a trainer for <paramref name="model"/>.</summary>
    public Trainer(VisionTransformer model, TrainerOptions? options = null)
    {
        this.model = model ?? throw new ArgumentNullException(nameof(model));
        Options = (options ?? new TrainerOptions()).Validate();
    }

    /// <summary>Test hook: called after every optimizer step with the step count and the epoch (a test injects a failure).</summary>
    internal static Action<long, int>? AfterStep;

    /// <summary>Test hook: called with the model once its gradients are summed, before they are clipped and applied.</summary>
    internal static Action<VisionTransformer>? BeforeOptimizerStep;

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
        var o = Options;
        if (o.EarlyStopping is not null && evaluation is null)
            throw new ArgumentException("early stopping needs an evaluation (validation) set", nameof(evaluation));
        // This run's own generator (not the process's): a training on another thread neither changes its draws nor
        // sees them.
        using var generator = Torch.UseThreadGenerator(o.Seed);
        var group = o.Distributed;
        bool lead = group is null || group.Rank == 0;  // rank 0 writes the checkpoints and reports
        bool dist = group is { WorldSize: > 1 };
        // Every rank starts from rank 0's weights (as DistributedDataParallel's first broadcast).
        if (dist) group!.Broadcast(model.NamedParameters().Select(p => p.Parameter).ToList());
        int batchesPerEpoch = train.BatchesPerEpoch, k = o.AccumulationSteps;
        long stepsPerEpoch = (batchesPerEpoch + k - 1) / k;
        using var optimizer = new AdamW(model.NamedParameters(), o.LearningRate, o.WeightDecay,
            learningRateScale: o.LayerDecay is { } decay ? AdamW.LayerDecay(decay, model.Config.Depth) : null);
        using var ema = new WeightSnapshot();
        using var best = new WeightSnapshot();
        using var raw = new WeightSnapshot();  // the trained weights while the EMA's are evaluated
        if (o.EmaDecay is not null) ema.Take(model);
        bool keepBest = o.EarlyStopping is not null || cancellationToken.CanBeCanceled || o.CheckpointDirectory is not null;
        var fingerprint = Fingerprint(train, evaluation);
        string? last = o.CheckpointDirectory is null ? null : Path.Combine(o.CheckpointDirectory, "last.safetensors");
        string? bestPath = o.CheckpointDirectory is null ? null : Path.Combine(o.CheckpointDirectory, "best.safetensors");
        if (o.CheckpointDirectory is not null && lead) Directory.CreateDirectory(o.CheckpointDirectory);

        var state = new RunState();
        (int, int)? resumedAt = null;
        long continued = 0;  // optimizer steps of a run this one continues
        bool bestIsThisRuns = false;
        if (o.Resume && File.Exists(last))
        {
            state = TrainingCheckpoint.Restore(last!, model, optimizer, o.EmaDecay is null ? null : ema, best, fingerprint);
            resumedAt = (state.Epoch, state.Batch);
            continued = optimizer.StepCount - state.Step;
            bestIsThisRuns = best.HasWeights && bestPath is not null && File.Exists(bestPath);
        }
        else
        {
            // A new run in this folder: an earlier run's best must not pass for this one's.
            if (lead && bestPath is not null && File.Exists(bestPath)) File.Delete(bestPath);
            if (o.ContinueFrom is not null)
            {
                TrainingCheckpoint.Restore(o.ContinueFrom, model, optimizer, null, null, null, optimizerOnly: true);
                continued = optimizer.StepCount;
            }
        }
        if (dist) AgreeOnStart(group!, resumedAt is not null, state, continued);
        long totalSteps = continued + stepsPerEpoch * o.Epochs;
        var schedule = new LearningRateSchedule(o.LearningRate, totalSteps, (long)(o.WarmupFraction * totalSteps), o.MinLearningRate, o.Schedule);
        string? lastWritten = resumedAt is not null ? last : null;
        bool inStep = false, cancelled = false;
        var runClock = Stopwatch.StartNew();
        var fitClock = Stopwatch.StartNew();
        long stepsThisRun = 0;
        TimeSpan RunTime() => state.RunTime + runClock.Elapsed;
        // The generator as it was after the last whole step: a checkpoint taken midway through an accumulation group (on
        // a failure or a cancellation) resumes from the group's start, before its batches drew their dropout.
        var rng = Torch.GetRngState();
        var checkpointTime = new Stopwatch();
        int checkpoints = 0;
        var syncTime = new Stopwatch();
        void Checkpoint(string path)
        {
            if (!lead) return;
            checkpointTime.Start();
            TrainingCheckpoint.Save(path, model, optimizer, o.EmaDecay is null ? null : ema, best, state, rng, fingerprint, o.CheckpointMetadata);
            checkpointTime.Stop();
            checkpoints++;
            lastWritten = path;
        }

        try
        {
            var checkpointClock = Stopwatch.StartNew();
            while (state.Epoch < o.Epochs && !cancelled && !state.StoppedEarly)
            {
                int epoch = state.Epoch;
                model.Train();
                var epochClock = Stopwatch.StartNew();
                if (state.Batch == 0) (state.LossSum, state.Correct, state.Seen, state.EpochTime) = (0, 0, 0, TimeSpan.Zero);
                TimeSpan EpochTime() => state.EpochTime + epochClock.Elapsed;
                int batch = state.Batch;
                (double Loss, long Correct, long Seen) pending = (0, 0, 0);  // batches since the last optimizer step
                bool stepPending = false;
                void StepGroup(double loss)
                {
                    double lr = schedule.At(continued + state.Step);
                    inStep = true;
                    Step(optimizer, lr, epoch + 1, continued + state.Step, group, syncTime);
                    if (o.EmaDecay is { } d) ema.Update(model, d);
                    inStep = false;
                    // The state moves at step boundaries only, so that a checkpoint is always of a whole step.
                    (state.LossSum, state.Correct, state.Seen) = (state.LossSum + pending.Loss, state.Correct + pending.Correct, state.Seen + pending.Seen);
                    pending = (0, 0, 0);
                    stepPending = false;
                    state.Step++;
                    state.Batch = batch;
                    rng.Dispose();
                    rng = Torch.GetRngState();
                    AfterStep?.Invoke(state.Step, epoch + 1);
                    if (progress is not null && lead)
                    {
                        double ips = state.Seen / Math.Max(1e-9, EpochTime().TotalSeconds);
                        long all = stepsPerEpoch * o.Epochs;
                        stepsThisRun++;
                        var eta = TimeSpan.FromSeconds((all - state.Step) * (fitClock.Elapsed.TotalSeconds / stepsThisRun));
                        progress.Report(new VitTrainingProgress(epoch + 1, o.Epochs, state.Step, all, loss, state.Seen == 0 ? 0 : (double)state.Correct / state.Seen,
                            lr, ips, RunTime(), eta));
                    }
                }
                double lastLoss = double.NaN;
                try
                {
                    // Distributed, every rank visits every batch index (a slice left out still joins the collectives), and a
                    // stop is agreed on at a batch: the loader is not cancelled, so that no rank leaves the others waiting.
                    var batches = dist ? EveryIndex(train.Batches(epoch, state.Batch, CancellationToken.None), state.Batch, batchesPerEpoch)
                        : train.Batches(epoch, state.Batch, cancellationToken).Select(b => (b.Index, (Batch?)b));
                    foreach (var (at, loaded) in batches)
                    {
                        using var b = loaded;
                        if (!dist && cancellationToken.IsCancellationRequested)
                        {
                            cancelled = true;
                            break;
                        }
                        // A source may leave a batch out (every image unreadable): its index keeps the groups in place.
                        int index = at >= 0 ? at : batch;
                        if (stepPending && index / k != (batch - 1) / k) StepGroup(lastLoss);  // the rest of the group was left out
                        var (loss, right, count, stop) = dist
                            ? ForwardShard(b, epoch, index, k, group!, cancellationToken.IsCancellationRequested)
                            : Forward(b!, epoch, index, k);
                        if (stop)
                        {
                            cancelled = true;
                            break;
                        }
                        if (count == 0) continue;  // no rank had an image of this batch: left out
                        StepLosses.Add(loss);
                        lastLoss = loss;
                        pending = (pending.Loss + loss * count, pending.Correct + right, pending.Seen + count);
                        stepPending = true;
                        batch = index + 1;
                        if (batch % k != 0 && batch != batchesPerEpoch) continue;  // accumulate
                        StepGroup(loss);
                        if (last is not null && o.CheckpointInterval is { } every && checkpointClock.Elapsed >= every && batch < batchesPerEpoch)
                        {
                            (state.EpochTime, state.RunTime) = (EpochTime(), RunTime());
                            (epochClock, runClock) = (Stopwatch.StartNew(), Stopwatch.StartNew());
                            Checkpoint(last);
                            checkpointClock.Restart();
                        }
                    }
                    if (!cancelled && stepPending)
                    {
                        batch = batchesPerEpoch;  // the epoch's last batches were left out
                        StepGroup(lastLoss);
                    }
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    cancelled = true;  // stopped while the loader prepared a batch
                }
                if (cancelled) break;
                if (state.Seen == 0)
                    throw new InvalidDataException("no training images could be used in this epoch (all were skipped as unreadable); see the loader's warnings");
                // A cancelled, partial epoch is not evaluated: that would delay the stop by a full pass over the
                // evaluation set, and a partial epoch should not become the "best" one.
                // Distributed, each rank evaluates its shard and the sums are reduced; the evaluation is not cut short.
                var evalToken = dist ? CancellationToken.None : cancellationToken;
                var eval = evaluation is null ? null : Evaluate(model, evaluation, evalToken, o.Precision, group);
                EvaluationResult? emaEval = null;
                if (evaluation is not null && o.EmaDecay is not null && eval is not null)
                {
                    raw.Take(model);
                    ema.Restore(model);
                    try
                    {
                        emaEval = Evaluate(model, evaluation, evalToken, o.Precision, group);
                    }
                    finally
                    {
                        raw.Restore(model);
                    }
                }
                if (evaluation is not null && (eval is null || (o.EmaDecay is not null && emaEval is null)))
                {
                    cancelled = true;  // cancelled during the evaluation
                    break;
                }
                var r = new EpochResult(epoch + 1, state.LossSum / state.Seen, (double)state.Correct / state.Seen, eval,
                    state.Seen / Math.Max(1e-9, EpochTime().TotalSeconds), RunTime(), schedule.At(continued + state.Step - 1)) { EmaEvaluation = emaEval };

                // The epoch's bookkeeping, then its checkpoint, then the caller: a failure before the checkpoint leaves the
                // state as it was (the epoch is evaluated again on resume), a failure after it leaves the next epoch's start.
                var (bestScore, bestEpoch, sinceBest, stoppedEarly) = (state.BestScore, state.BestEpoch, state.SinceBest, false);
                var watched = emaEval ?? eval;
                if (watched is not null)
                {
                    // Higher is better for the score: accuracy, or minus the loss.
                    var metric = o.EarlyStopping?.Metric ?? EarlyStoppingMetric.Accuracy;
                    double score = metric == EarlyStoppingMetric.Accuracy ? watched.Accuracy : -watched.Loss;
                    if (score > bestScore + (o.EarlyStopping?.MinDelta ?? 0))
                    {
                        (bestScore, bestEpoch, sinceBest) = (score, epoch + 1, 0);
                        if (keepBest)
                        {
                            if (o.EmaDecay is null) best.Take(model);
                            else best.Load(model, ema.Tensors);  // with an EMA, the best epoch is the EMA's
                        }
                        if (bestPath is not null && lead)
                        {
                            TrainingCheckpoint.SaveWeights(bestPath, model, best, o.CheckpointMetadata);
                            bestIsThisRuns = true;
                        }
                    }
                    else if (o.EarlyStopping is { } es && ++sinceBest >= es.Patience)
                    {
                        stoppedEarly = true;
                    }
                }
                (state.BestScore, state.BestEpoch, state.SinceBest, state.StoppedEarly) = (bestScore, bestEpoch, sinceBest, stoppedEarly);
                state.History.Add(r);
                (state.Epoch, state.Batch, state.LossSum, state.Correct, state.Seen) = (epoch + 1, 0, 0, 0, 0);  // the next epoch starts afresh
                (state.EpochTime, state.RunTime) = (TimeSpan.Zero, RunTime());
                runClock = Stopwatch.StartNew();
                if (last is not null)
                {
                    Checkpoint(last);
                    checkpointClock.Restart();
                }
                if (lead) onEpoch?.Invoke(r);
            }
            if (cancelled && last is not null)
            {
                // Stopped by the caller (Ctrl+C): keep the last whole step, so that Resume continues from here.
                optimizer.ZeroGrad();
                state.RunTime = RunTime();
                runClock = Stopwatch.StartNew();
                Checkpoint(last);
            }
        }
        catch (TrainingDivergedException e)
        {
            // The bad step was not applied: the model and the optimizer are at the last good step.
            string? saved = SaveRescue(Checkpoint, last) ?? lastWritten;
            throw new TrainingDivergedException(e.Message + (saved is null ? "" : $" The last good state is in {saved}."), saved);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Between steps the state is consistent: checkpoint it; inside an optimizer step it may not be.
            string? saved = (inStep ? null : SaveRescue(Checkpoint, last)) ?? lastWritten;
            throw new TrainingFailedException(
                $"training failed at epoch {state.Epoch + 1}, after {state.Step} optimizer steps: {e.Message.TrimEnd('.')}." +
                (saved is null ? "" : $" The last good state is in {saved}: resume from it with Resume = true, or fine-tune from it with StartFrom."),
                saved, e);
        }
        finally
        {
            rng.Dispose();
        }

        if (o.FinalStatePath is not null && lead) TrainingCheckpoint.SaveOptimizer(o.FinalStatePath, optimizer, state, fingerprint);
        int finalBest = state.BestEpoch;
        if ((state.StoppedEarly || cancelled || o.EarlyStopping is not null) && best.HasWeights)
            best.Restore(model);
        else
        {
            if (o.EmaDecay is not null) ema.Restore(model);
            finalBest = state.History.Count;
        }
        return new TrainingResult(state.History, finalBest, state.StoppedEarly, cancelled)
        {
            LastCheckpoint = lastWritten, BestCheckpoint = bestIsThisRuns ? bestPath : null, ResumedAt = resumedAt,
            Checkpoints = (checkpoints, checkpointTime.Elapsed), GradientSync = syncTime.Elapsed,
        };

        string? SaveRescue(Action<string> write, string? lastPath)
        {
            if (!lead) return null;  // rank 0 keeps the run's state
            var target = lastPath ?? (o.RescueDirectory is null ? null : Path.Combine(o.RescueDirectory, "last.safetensors"));
            if (target is null) return null;
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                write(target);
                return target;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                return null;  // the original error matters more
            }
        }
    }

    /// <summary>What a checkpoint must match to be resumed: the options that shape the run, the model, the data.</summary>
    private Dictionary<string, string> Fingerprint(IBatchSource train, IBatchSource? evaluation)
    {
        var o = Options;
        var f = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["epochs"] = o.Epochs.ToString(), ["learning rate"] = o.LearningRate.ToString("R"), ["weight decay"] = o.WeightDecay.ToString("R"),
            ["warmup"] = o.WarmupFraction.ToString("R"), ["min learning rate"] = o.MinLearningRate.ToString("R"), ["schedule"] = o.Schedule.ToString(),
            ["label smoothing"] = o.LabelSmoothing.ToString("R"), ["gradient clipping"] = o.ClipGradNorm.ToString("R"), ["seed"] = o.Seed.ToString(),
            ["mixing"] = o.Mixing?.ToString() ?? "none", ["early stopping"] = o.EarlyStopping?.ToString() ?? "none",
            ["layer decay"] = o.LayerDecay?.ToString("R") ?? "none", ["accumulation"] = o.AccumulationSteps.ToString(),
            ["EMA"] = o.EmaDecay?.ToString("R") ?? "none", ["model"] = model.Config.ToJson().ToJsonString(),
            ["precision"] = MixedPrecision.Resolve(o.Precision, model.Device).ToString(),
            ["trained parameters"] = string.Join(",", model.NamedParameters().Where(p => p.Parameter.RequiresGrad).Select(p => p.Name)),
            ["evaluation data"] = evaluation is null ? "none" : "given",
        };
        // A rank's shard is its own (rank 0 writes the checkpoint every rank resumes from); the number of processes is the run's.
        foreach (var (key, value) in train.Fingerprint.Where(kv => kv.Key != "shard")) f[$"training data: {key}"] = value;
        if (o.Distributed is { WorldSize: > 1 } g) f["processes"] = g.WorldSize.ToString(System.Globalization.CultureInfo.InvariantCulture);
        // The evaluation's batching does not change its results (up to rounding), so its batch size may change.
        if (evaluation is not null)
            foreach (var (key, value) in evaluation.Fingerprint.Where(kv => kv.Key is not ("batch size" or "shard"))) f[$"evaluation data: {key}"] = value;
        if (o.Fingerprint is not null)
            foreach (var (key, value) in o.Fingerprint) f[key] = value;
        return f;
    }

    /// <summary>Forward and backward of one batch (loss divided by the accumulation count); returns its loss, right
    /// predictions and size.</summary>
    private (double Loss, long Correct, long Count, bool Stop) Forward(Batch b, int epoch, int batchIndex, int accumulation)
    {
        using var scope = TensorScope.Begin();
        var (logits, loss) = Loss(b, epoch, batchIndex, F.Reduction.Mean);
        // Backward runs outside the autocast region, as PyTorch recommends: each op's backward follows its forward's dtypes.
        double value = loss.Item();
        CheckFinite(value, epoch, batchIndex);
        (accumulation == 1 ? loss : loss / accumulation).Backward();
        return (value, Correct(logits, b.Labels), b.Count, false);
    }

    /// <summary>
    /// One rank's part of a batch of data-parallel training: the forward of its slice (none when <paramref name="b"/> is
    /// null), then one small allreduce of the slice's size, summed loss, right predictions and whether this rank wants
    /// to stop; then the backward of its summed loss over the whole batch's size (and the accumulation count), so that
    /// the gradients summed over the ranks are those of one process with the whole batch. Returns the whole batch's
    /// loss, right predictions and size, and whether any rank asked to stop (then nothing is backpropagated).
    /// </summary>
    private (double Loss, long Correct, long Count, bool Stop) ForwardShard(Batch? b, int epoch, int batchIndex, int accumulation,
        ProcessGroup group, bool stopHere)
    {
        using var scope = TensorScope.Begin();
        // Dropout draws from a generator seeded by (seed, rank, epoch, batch): a resumed run draws as an uninterrupted one.
        Torch.ManualSeed(DistributedSeed(Options.Seed, group.Rank, epoch, batchIndex));
        Tensor? logits = null, loss = null;
        double[] sums = [0, 0, 0, stopHere ? 1 : 0];
        if (b is { Count: > 0 } && !stopHere)
        {
            (logits, loss) = Loss(b, epoch, batchIndex, F.Reduction.Sum);
            sums[0] = b.Count;
            sums[1] = loss.Item();
            sums[2] = Correct(logits, b.Labels);
        }
        var total = Tensor.FromArray(sums, sums.Length);
        group.AllReduce([total]);
        var all = total.ToArray<double>();
        long count = (long)all[0];
        if (all[3] > 0) return (0, 0, count, true);
        if (count == 0) return (0, 0, 0, false);
        double value = all[1] / count;
        CheckFinite(value, epoch, batchIndex);  // the same on every rank: all stop together
        if (loss is not null) (loss / ((double)count * accumulation)).Backward();
        return (value, (long)all[2], count, false);
    }

    /// <summary>The generator seed of a rank's batch in data-parallel training.</summary>
    internal static ulong DistributedSeed(ulong seed, int rank, int epoch, int batch) =>
        seed ^ ((ulong)(uint)StableSeed.Combine(rank, epoch, batch) << 16);

    /// <summary>Distributed: checks that every rank resumed the same state (or none did), naming what differs.</summary>
    private static void AgreeOnStart(ProcessGroup group, bool resumed, RunState state, long continued)
    {
        double[] mine = [resumed ? 1 : 0, state.Epoch, state.Batch, state.Step, continued];
        using var lo = Tensor.FromArray(mine, mine.Length);
        using var hi = Tensor.FromArray(mine, mine.Length);
        group.AllReduce([lo], ReduceOp.Min);
        group.AllReduce([hi], ReduceOp.Max);
        var (a, z) = (lo.ToArray<double>(), hi.ToArray<double>());
        if (a[0] != z[0])
            throw new InvalidOperationException("the ranks disagree on resuming: some found the checkpoint to resume from and some did not. " +
                "Every rank must reach the same CheckpointDirectory (one machine, or a shared file system).");
        if (!a.SequenceEqual(z))
            throw new InvalidOperationException($"the ranks resumed different states (epochs {a[1]}..{z[1]}, batches {a[2]}..{z[2]}, steps {a[3]}..{z[3]}): " +
                "they read different checkpoints. Every rank must reach the same CheckpointDirectory.");
    }

    /// <summary>Every batch index from <paramref name="first"/> to <paramref name="count"/> - 1, with the source's batch
    /// or null where it left one out.</summary>
    private static IEnumerable<(int Index, Batch? Batch)> EveryIndex(IEnumerable<Batch> batches, int first, int count)
    {
        int next = first;
        foreach (var b in batches)
        {
            int index = b.Index >= 0 ? b.Index : next;
            for (; next < index; next++) yield return (next, null);
            yield return (index, b);
            next = index + 1;
        }
        for (; next < count; next++) yield return (next, null);
    }

    private void CheckFinite(double loss, int epoch, int batchIndex)
    {
        if (!double.IsFinite(loss))
            throw new TrainingDivergedException(
                $"the training loss became {loss} at epoch {epoch + 1}, batch {batchIndex + 1}; training stopped and the model keeps the " +
                "weights of the last good step. Lower the learning rate or enable gradient clipping.");
    }

    private long Correct(Tensor logits, Tensor labels)
    {
        using var _ = Torch.NoGrad();
        var device = model.Device;
        var target = device.Type == DeviceType.Cpu ? labels : labels.To(device);
        return (long)logits.ArgMax(1).Eq(target).Sum().Item();
    }

    /// <summary>The logits and the loss of a batch (in the caller's tensor scope), with the run's mixing, smoothing and precision.</summary>
    private (Tensor Logits, Tensor Loss) Loss(Batch b, int epoch, int batchIndex, F.Reduction reduction)
    {
        var device = model.Device;
        Tensor images = b.Images, labels = b.Labels, loss, logits;
        if (Options.Mixing is { } mixing)
        {
            // Mixup/CutMix blend the images in place, on the CPU before they move, and return soft targets (B, classes).
            // Each batch's draws are seeded by (seed, epoch, batch), so a resumed run mixes as an uninterrupted one.
            var rng = new Random(Data.StableSeed.Combine((int)Options.Seed ^ (int)(Options.Seed >> 32), epoch, 0x6d1c0000 ^ batchIndex));
            var targets = mixing.Apply(images, labels, model.Config.NumClasses, rng);
            if (device.Type != DeviceType.Cpu) (images, targets) = (images.To(device), targets.To(device));
            using var autocast = MixedPrecision.Autocast(Options.Precision, device);
            logits = model.Forward(images);                                    // (B, classes)
            loss = F.CrossEntropy(logits, targets, 0, reduction);              // float32 under autocast too
        }
        else
        {
            if (device.Type != DeviceType.Cpu) images = images.To(device);
            using var autocast = MixedPrecision.Autocast(Options.Precision, device);
            logits = model.Forward(images);                                    // (B, classes)
            loss = F.CrossEntropy(logits, device.Type == DeviceType.Cpu ? labels : labels.To(device), Options.LabelSmoothing, reduction);
        }
        return (logits, loss);
    }

    /// <summary>Clips the accumulated gradients, refuses non-finite ones, and applies one AdamW step.</summary>
    private void Step(AdamW optimizer, double lr, int epoch, long step, ProcessGroup? group, Stopwatch syncTime)
    {
        if (group is { WorldSize: > 1 })
        {
            // The ranks' gradients summed (each rank's loss already carries its share of the batch): every rank then
            // clips and steps the same numbers, so the weights stay equal without further communication.
            syncTime.Start();
            group.AllReduceGradients(optimizer.Parameters);
            syncTime.Stop();
        }
        BeforeOptimizerStep?.Invoke(model);
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
