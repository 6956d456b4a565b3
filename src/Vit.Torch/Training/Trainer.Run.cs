using System.Diagnostics;
using Vit.Torch.Data;
using Vit.Torch.Distributed;
using Vit.Torch.Model;

namespace Vit.Torch.Training;

public sealed partial class Trainer
{
    /// <summary>
    /// One call of <see cref="Fit"/>: its state, and its steps in the order they run. The constructor sets the run up
    /// (generator, optimizer, snapshots, resume or continue, schedule); <see cref="TrainEpochs"/> runs the epochs — each
    /// one <see cref="TrainEpoch"/> of batches (<see cref="TrainBatch"/>) and optimizer steps (<see cref="StepGroup"/>),
    /// then <see cref="EvaluateEpoch"/> and <see cref="EndEpoch"/> (best weights, checkpoint, the caller's callback) —
    /// and saves the last good state on a failure; <see cref="Finish"/> leaves the model with the weights the run ends
    /// with and says what happened. Disposing frees the optimizer and the snapshots and restores the thread's generator.
    /// </summary>
    private sealed class Run : IDisposable
    {
        // What the run was given.
        private readonly Trainer trainer;
        private readonly VisionTransformer model;
        private readonly TrainerOptions o;
        private readonly IBatchSource train;
        private readonly IBatchSource? evaluation;
        private readonly Action<EpochResult>? onEpoch;
        private readonly IProgress<VitTrainingProgress>? progress;
        private readonly CancellationToken cancellationToken;

        // Set up once.
        private readonly IDisposable generator;
        private readonly ProcessGroup? group;
        private readonly bool lead;  // rank 0 writes the checkpoints and reports
        private readonly bool dist;
        private readonly int batchesPerEpoch, k;
        private readonly long stepsPerEpoch;
        private readonly AdamW optimizer;
        private readonly WeightSnapshot ema = new(), best = new();
        private readonly WeightSnapshot raw = new();  // the trained weights while the EMA's are evaluated
        private readonly bool keepBest;
        private readonly Dictionary<string, string> fingerprint;
        private readonly string? last, bestPath;
        private readonly RunState state = new();
        private readonly (int, int)? resumedAt;
        private readonly long continued;  // optimizer steps of a run this one continues
        private readonly LearningRateSchedule schedule;

        // Where the run is.
        private bool bestIsThisRuns;
        private string? lastWritten;
        private bool inStep, cancelled;
        private Stopwatch runClock;
        private readonly Stopwatch fitClock;
        private long stepsThisRun;
        // The generator as it was after the last whole step: a checkpoint taken midway through an accumulation group (on
        // a failure or a cancellation) resumes from the group's start, before its batches drew their dropout.
        private Tensor rng;
        private readonly Stopwatch checkpointTime = new();
        private int checkpoints;
        private readonly Stopwatch syncTime = new();
        private Stopwatch checkpointClock = new();

        // The epoch in progress.
        private int epoch;
        private Stopwatch epochClock = new();
        private int batch;
        private (double Loss, long Correct, long Seen) pending;  // batches since the last optimizer step
        private bool stepPending;
        private double lastLoss;

        /// <summary>Sets the run up: its own generator, every rank on rank 0's weights, the optimizer and the snapshots,
        /// the state resumed from a checkpoint or continued from a saved optimizer, and the schedule.</summary>
        public Run(Trainer trainer, IBatchSource train, IBatchSource? evaluation, Action<EpochResult>? onEpoch,
            IProgress<VitTrainingProgress>? progress, CancellationToken cancellationToken)
        {
            (this.trainer, model, o) = (trainer, trainer.model, trainer.Options);
            (this.train, this.evaluation, this.onEpoch, this.progress, this.cancellationToken) = (train, evaluation, onEpoch, progress, cancellationToken);
            // This run's own generator (not the process's): a training on another thread neither changes its draws nor
            // sees them.
            generator = Torch.UseThreadGenerator(o.Seed);
            try
            {
                group = o.Distributed;
                lead = group is null || group.Rank == 0;
                dist = group is { WorldSize: > 1 };
                // Every rank starts from rank 0's weights (as DistributedDataParallel's first broadcast).
                if (dist) group!.Broadcast(model.NamedParameters().Select(p => p.Parameter).ToList());
                (batchesPerEpoch, k) = (train.BatchesPerEpoch, o.AccumulationSteps);
                stepsPerEpoch = (batchesPerEpoch + k - 1) / k;
                optimizer = new AdamW(model.NamedParameters(), o.LearningRate, o.WeightDecay,
                    learningRateScale: o.LayerDecay is { } decay ? AdamW.LayerDecay(decay, model.Config.Depth) : null);
                if (o.EmaDecay is not null) ema.Take(model);
                keepBest = o.EarlyStopping is not null || cancellationToken.CanBeCanceled || o.CheckpointDirectory is not null;
                fingerprint = Fingerprint();
                last = o.CheckpointDirectory is null ? null : Path.Combine(o.CheckpointDirectory, "last.safetensors");
                bestPath = o.CheckpointDirectory is null ? null : Path.Combine(o.CheckpointDirectory, "best.safetensors");
                if (o.CheckpointDirectory is not null && lead) Directory.CreateDirectory(o.CheckpointDirectory);

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
                schedule = new LearningRateSchedule(o.LearningRate, totalSteps, (long)(o.WarmupFraction * totalSteps), o.MinLearningRate, o.Schedule);
                lastWritten = resumedAt is not null ? last : null;
                runClock = Stopwatch.StartNew();
                fitClock = Stopwatch.StartNew();
                rng = Torch.GetRngState();
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        /// <summary>Training time of the run so far, carried over a resume.</summary>
        private TimeSpan RunTime() => state.RunTime + runClock.Elapsed;

        /// <summary>Training time of the epoch in progress so far, carried over a resume.</summary>
        private TimeSpan EpochTime() => state.EpochTime + epochClock.Elapsed;

        /// <summary>
        /// The epochs left, until the last, a cancellation or early stopping; a cancelled run then checkpoints its last
        /// whole step. A failure is rethrown saying where the last good state is: a checkpoint of it written now (when the
        /// run is between steps), else the last one written.
        /// </summary>
        public void TrainEpochs()
        {
            try
            {
                checkpointClock = Stopwatch.StartNew();
                while (state.Epoch < o.Epochs && !cancelled && !state.StoppedEarly)
                {
                    TrainEpoch();
                    if (cancelled) break;
                    if (state.Seen == 0)
                        throw new InvalidDataException("no training images could be used in this epoch (all were skipped as unreadable); see the loader's warnings");
                    // A cancelled, partial epoch is not evaluated: that would delay the stop by a full pass over the
                    // evaluation set, and a partial epoch should not become the "best" one.
                    var (eval, emaEval) = EvaluateEpoch();
                    if (evaluation is not null && (eval is null || (o.EmaDecay is not null && emaEval is null)))
                    {
                        cancelled = true;  // cancelled during the evaluation
                        break;
                    }
                    EndEpoch(eval, emaEval);
                }
                if (cancelled && last is not null) CheckpointCancelled();
            }
            catch (TrainingDivergedException e)
            {
                // The bad step was not applied: the model and the optimizer are at the last good step.
                string? saved = SaveRescue() ?? lastWritten;
                throw new TrainingDivergedException(e.Message + (saved is null ? "" : $" The last good state is in {saved}."), saved);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Between steps the state is consistent: checkpoint it; inside an optimizer step it may not be.
                string? saved = (inStep ? null : SaveRescue()) ?? lastWritten;
                throw new TrainingFailedException(
                    $"training failed at epoch {state.Epoch + 1}, after {state.Step} optimizer steps: {e.Message.TrimEnd('.')}." +
                    (saved is null ? "" : $" The last good state is in {saved}: resume from it with Resume = true, or fine-tune from it with StartFrom."),
                    saved, e);
            }
            finally
            {
                rng.Dispose();
            }
        }

        /// <summary>The batches of the epoch in progress, from where it stands; sets <see cref="cancelled"/> when the
        /// caller (or, distributed, any rank) asks to stop.</summary>
        private void TrainEpoch()
        {
            epoch = state.Epoch;
            model.Train();
            epochClock = Stopwatch.StartNew();
            if (state.Batch == 0) (state.LossSum, state.Correct, state.Seen, state.EpochTime) = (0, 0, 0, TimeSpan.Zero);
            batch = state.Batch;
            (pending, stepPending, lastLoss) = ((0, 0, 0), false, double.NaN);
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
                    if (!TrainBatch(b, index))
                    {
                        cancelled = true;
                        break;
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
        }

        /// <summary>
        /// Forward and backward of the batch at <paramref name="index"/> (this rank's slice of it when distributed; null
        /// when the slice was left out): its gradients join the pending group, which steps once complete, followed by a
        /// checkpoint when <see cref="TrainerOptions.CheckpointInterval"/> has passed. False when a rank asked to stop.
        /// </summary>
        private bool TrainBatch(Batch? b, int index)
        {
            var (loss, right, count, stop) = dist
                ? ForwardShard(b, index, group!, cancellationToken.IsCancellationRequested)
                : Forward(b!, index);
            if (stop) return false;
            if (count == 0) return true;  // no rank had an image of this batch: left out
            trainer.StepLosses.Add(loss);
            lastLoss = loss;
            pending = (pending.Loss + loss * count, pending.Correct + right, pending.Seen + count);
            stepPending = true;
            batch = index + 1;
            if (batch % k != 0 && batch != batchesPerEpoch) return true;  // accumulate
            StepGroup(loss);
            if (last is not null && o.CheckpointInterval is { } every && checkpointClock.Elapsed >= every && batch < batchesPerEpoch)
            {
                (state.EpochTime, state.RunTime) = (EpochTime(), RunTime());
                (epochClock, runClock) = (Stopwatch.StartNew(), Stopwatch.StartNew());
                Checkpoint(last);
                checkpointClock.Restart();
            }
            return true;
        }

        /// <summary>One optimizer step over the pending group's summed gradients (and the EMA's update); then the state
        /// moves to the step's end, the generator's state is kept, and progress is reported.</summary>
        private void StepGroup(double loss)
        {
            double lr = schedule.At(continued + state.Step);
            inStep = true;
            ClipAndStep(lr);
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
            trainer.hooks?.AfterStep?.Invoke(state.Step, epoch + 1);
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

        /// <summary>Sums the ranks' gradients (distributed), clips them, refuses non-finite ones, and applies one AdamW step.</summary>
        private void ClipAndStep(double lr)
        {
            if (dist)
            {
                // The ranks' gradients summed (each rank's loss already carries its share of the batch): every rank then
                // clips and steps the same numbers, so the weights stay equal without further communication.
                syncTime.Start();
                group!.AllReduceGradients(optimizer.Parameters);
                syncTime.Stop();
            }
            trainer.hooks?.BeforeOptimizerStep?.Invoke(model);
            double norm = optimizer.ClipGradNorm(o.ClipGradNorm);
            if (!double.IsFinite(norm))
            {
                optimizer.ZeroGrad();
                throw new TrainingDivergedException(
                    $"the gradient norm became {norm} at epoch {epoch + 1}, step {continued + state.Step + 1}; training stopped before applying it, so the " +
                    "model keeps the weights of the last good step. Lower the learning rate.");
            }
            optimizer.LearningRate = lr;
            optimizer.Step();
            optimizer.ZeroGrad();
        }

        /// <summary>The epoch's evaluation (null without an evaluation set), and the EMA weights' (with an EMA); either
        /// is null when cancelled. Distributed, each rank evaluates its shard and the sums are reduced; the evaluation
        /// is not cut short.</summary>
        private (EvaluationResult? Eval, EvaluationResult? EmaEval) EvaluateEpoch()
        {
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
            return (eval, emaEval);
        }

        /// <summary>
        /// The epoch's bookkeeping, then its checkpoint, then the caller: a failure before the checkpoint leaves the
        /// state as it was (the epoch is evaluated again on resume), a failure after it leaves the next epoch's start.
        /// </summary>
        private void EndEpoch(EvaluationResult? eval, EvaluationResult? emaEval)
        {
            var r = new EpochResult(epoch + 1, state.LossSum / state.Seen, (double)state.Correct / state.Seen, eval,
                state.Seen / Math.Max(1e-9, EpochTime().TotalSeconds), RunTime(), schedule.At(continued + state.Step - 1)) { EmaEvaluation = emaEval };
            var (bestScore, bestEpoch, sinceBest, stoppedEarly) = TrackBest(emaEval ?? eval);
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

        /// <summary>
        /// Early stopping's bookkeeping after an epoch evaluated as <paramref name="watched"/> (the EMA's evaluation when
        /// there is one): on a new best, its weights are kept (and written to <c>best.safetensors</c>); returns the values
        /// the state takes, which the caller assigns.
        /// </summary>
        private (double BestScore, int BestEpoch, int SinceBest, bool StoppedEarly) TrackBest(EvaluationResult? watched)
        {
            var (bestScore, bestEpoch, sinceBest, stoppedEarly) = (state.BestScore, state.BestEpoch, state.SinceBest, false);
            if (watched is null) return (bestScore, bestEpoch, sinceBest, stoppedEarly);
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
            return (bestScore, bestEpoch, sinceBest, stoppedEarly);
        }

        /// <summary>Stopped by the caller (Ctrl+C): keep the last whole step, so that Resume continues from here.</summary>
        private void CheckpointCancelled()
        {
            optimizer.ZeroGrad();
            state.RunTime = RunTime();
            runClock = Stopwatch.StartNew();
            Checkpoint(last!);
        }

        /// <summary>Writes a checkpoint of the run's last whole step (rank 0 only).</summary>
        private void Checkpoint(string path)
        {
            if (!lead) return;
            checkpointTime.Start();
            TrainingCheckpoint.Save(path, model, optimizer, o.EmaDecay is null ? null : ema, best, state, rng, fingerprint, o.CheckpointMetadata);
            checkpointTime.Stop();
            checkpoints++;
            lastWritten = path;
        }

        /// <summary>After a failure: the checkpoint of the last good state, to <c>last.safetensors</c> or the rescue
        /// folder; null when there is nowhere to write it, on ranks other than 0, or when writing it failed too.</summary>
        private string? SaveRescue()
        {
            if (!lead) return null;  // rank 0 keeps the run's state
            var target = last ?? (o.RescueDirectory is null ? null : Path.Combine(o.RescueDirectory, "last.safetensors"));
            if (target is null) return null;
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                Checkpoint(target);
                return target;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                return null;  // the original error matters more
            }
        }

        /// <summary>The end: the optimizer's state for a model file, the model left with the best epoch's weights (early
        /// stopping, cancellation) or the EMA's, and what the run did.</summary>
        public TrainingResult Finish()
        {
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
        }

        /// <summary>Frees the snapshots and the optimizer, and gives the thread back its generator (in the reverse order
        /// of the set-up).</summary>
        public void Dispose()
        {
            raw.Dispose();
            best.Dispose();
            ema.Dispose();
            optimizer?.Dispose();
            generator.Dispose();
        }

        /// <summary>What a checkpoint must match to be resumed: the options that shape the run, the model, the data.</summary>
        private Dictionary<string, string> Fingerprint()
        {
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
        private (double Loss, long Correct, long Count, bool Stop) Forward(Batch b, int batchIndex)
        {
            using var scope = TensorScope.Begin();
            var (logits, loss) = Loss(b, batchIndex, F.Reduction.Mean);
            // Backward runs outside the autocast region, as PyTorch recommends: each op's backward follows its forward's dtypes.
            double value = loss.Item();
            CheckFinite(value, batchIndex);
            (k == 1 ? loss : loss / k).Backward();
            return (value, Correct(logits, b.Labels), b.Count, false);
        }

        /// <summary>
        /// One rank's part of a batch of data-parallel training: the forward of its slice (none when <paramref name="b"/> is
        /// null), then one small allreduce of the slice's size, summed loss, right predictions and whether this rank wants
        /// to stop; then the backward of its summed loss over the whole batch's size (and the accumulation count), so that
        /// the gradients summed over the ranks are those of one process with the whole batch. Returns the whole batch's
        /// loss, right predictions and size, and whether any rank asked to stop (then nothing is backpropagated).
        /// </summary>
        private (double Loss, long Correct, long Count, bool Stop) ForwardShard(Batch? b, int batchIndex, ProcessGroup group, bool stopHere)
        {
            using var scope = TensorScope.Begin();
            // Dropout draws from a generator seeded by (seed, rank, epoch, batch): a resumed run draws as an uninterrupted one.
            Torch.ManualSeed(DistributedSeed(o.Seed, group.Rank, epoch, batchIndex));
            Tensor? logits = null, loss = null;
            double[] sums = [0, 0, 0, stopHere ? 1 : 0];
            if (b is { Count: > 0 } && !stopHere)
            {
                (logits, loss) = Loss(b, batchIndex, F.Reduction.Sum);
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
            CheckFinite(value, batchIndex);  // the same on every rank: all stop together
            if (loss is not null) (loss / ((double)count * k)).Backward();
            return (value, (long)all[2], count, false);
        }

        private void CheckFinite(double loss, int batchIndex)
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
        private (Tensor Logits, Tensor Loss) Loss(Batch b, int batchIndex, F.Reduction reduction)
        {
            var device = model.Device;
            Tensor images = b.Images, labels = b.Labels, loss, logits;
            if (o.Mixing is { } mixing)
            {
                // Mixup/CutMix blend the images in place, on the CPU before they move, and return soft targets (B, classes).
                // Each batch's draws are seeded by (seed, epoch, batch), so a resumed run mixes as an uninterrupted one.
                var draws = new Random(StableSeed.Combine((int)o.Seed ^ (int)(o.Seed >> 32), epoch, 0x6d1c0000 ^ batchIndex));
                var targets = mixing.Apply(images, labels, model.Config.NumClasses, draws);
                if (device.Type != DeviceType.Cpu) (images, targets) = (images.To(device), targets.To(device));
                using var autocast = MixedPrecision.Autocast(o.Precision, device);
                logits = model.Forward(images);                                    // (B, classes)
                loss = F.CrossEntropy(logits, targets, 0, reduction);              // float32 under autocast too
            }
            else
            {
                if (device.Type != DeviceType.Cpu) images = images.To(device);
                using var autocast = MixedPrecision.Autocast(o.Precision, device);
                logits = model.Forward(images);                                    // (B, classes)
                loss = F.CrossEntropy(logits, device.Type == DeviceType.Cpu ? labels : labels.To(device), o.LabelSmoothing, reduction);
            }
            return (logits, loss);
        }

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
    }

    /// <summary>The generator seed of a rank's batch in data-parallel training.</summary>
    internal static ulong DistributedSeed(ulong seed, int rank, int epoch, int batch) =>
        seed ^ ((ulong)(uint)StableSeed.Combine(rank, epoch, batch) << 16);
}
