using System.Diagnostics;
using System.Security.Cryptography;
using Vit.Torch.Checkpoints;
using Vit.Torch.Data;
using Vit.Torch.Imaging;
using Vit.Torch.Model;
using Vit.Torch.Training;

namespace Vit.Torch.Tests;

/// <summary>
/// Training that survives: checkpoints resume bit for bit (also after a SIGKILL, in a child process), refuse another
/// run's checkpoint, leave the last good state on a failure; early stopping and cancellation restore the best epoch's
/// weights; the EMA and gradient accumulation follow their formulas; mixing runs end to end.
/// </summary>
[TestClass]
public sealed class ResumeTests : TempDirectoryTests
{
    /// <summary>Dropout, drop path, augmentation, mixup, an EMA and accumulation: every source of randomness and state.</summary>
    private static readonly VitConfig Config = new()
    {
        ImageSize = 8, PatchSize = 4, Channels = 1, Dim = 16, Depth = 2, Heads = 2, MlpDim = 32, NumClasses = 3, Dropout = 0.1, DropPath = 0.1,
    };

    private static TrainerOptions Options(string? checkpoints, TimeSpan? interval = null, bool resume = false) => new()
    {
        Epochs = 4, LearningRate = 3e-3, WarmupFraction = 0.2, Seed = 11, EmaDecay = 0.9, AccumulationSteps = 2,
        Mixing = new BatchMixing { MixupAlpha = 0.4 }, CheckpointDirectory = checkpoints, CheckpointInterval = interval, Resume = resume,
    };

    /// <summary><paramref name="count"/> random 1x8x8 images of 3 classes, each with a bright pixel at its class's place.</summary>
    internal static InMemoryDataset Data(int seed = 5, int count = 96)
    {
        var rng = new Random(seed);
        var pixels = new float[count * 64];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (float)(rng.NextDouble() * 2 - 1);
        var labels = Enumerable.Range(0, count).Select(i => (long)(i % 3)).ToArray();
        for (int i = 0; i < count; i++) pixels[i * 64 + labels[i] * 5] += 3;  // something to learn
        return new InMemoryDataset(pixels, labels, (1, 8, 8), 3);
    }

    private static InMemoryBatchSource Batches(InMemoryDataset data, int batch = 16) =>
        new(data, batch, shuffle: true, seed: 3, maxShift: 1, horizontalFlip: true);

    private static VisionTransformer NewModel(ulong seed = 1, VitConfig? config = null)
    {
        Torch.ManualSeed(seed);
        return new VisionTransformer(config ?? Config);
    }

    /// <summary>Without dropout: two forwards of 8 draw the generator otherwise than one of 16.</summary>
    private static readonly VitConfig Deterministic = Config with { Dropout = 0, DropPath = 0 };

    private static byte[] Weights(VisionTransformer model)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (_, p) in model.NamedParameters())
        {
            var bytes = new byte[p.NumElements * 4];
            p.CopyBytesTo(bytes);
            sha.AppendData(bytes);
        }
        return sha.GetHashAndReset();
    }

    /// <summary>The run of the kill test: 4 epochs, checkpoints after every step in <paramref name="directory"/>, resuming
    /// when there is one; returns the final weights' SHA-256.</summary>
    internal static string TrainResumable(string directory, Action<long, int> onStep)
    {
        Torch.SetThreads(1);
        using var model = NewModel();
        new Trainer(model, Options(directory, TimeSpan.Zero, resume: true), new TrainerHooks { AfterStep = onStep }).Fit(Batches(Data()));
        return Convert.ToHexString(Weights(model));
    }

    [TestMethod]
    [DataRow(true, DisplayName = "checkpoints after every step, stopped midway through epoch 3")]
    [DataRow(false, DisplayName = "checkpoints at epoch ends only, stopped midway through epoch 3")]
    public void ResumedRunEndsBitIdenticalToAnUninterruptedOne(bool everyStep)
    {
        var data = Data();
        byte[] expected;
        List<double> expectedLosses;
        using (var model = NewModel())
        {
            var trainer = new Trainer(model, Options(null));
            trainer.Fit(Batches(data));
            expected = Weights(model);
            expectedLosses = trainer.StepLosses;
        }

        var checkpoints = Path.Combine(Dir, "run");
        // 3 steps per epoch: step 8 is epoch 3's second. After a step the state is whole, and the failure writes it; inside
        // one it may not be, and the last periodic checkpoint (here the end of epoch 2) is the last good one.
        long steps = 0;
        var failure = everyStep
            ? new TrainerHooks
            {
                AfterStep = (step, epoch) =>
                {
                    if (epoch == 3 && step == 8) throw new IOException("the disk went away");
                },
            }
            : new TrainerHooks
            {
                AfterStep = (step, _) => steps = step,
                BeforeOptimizerStep = _ =>
                {
                    if (steps == 7) throw new IOException("the disk went away");
                },
            };
        using (var model = NewModel())
        {
            var e = Assert.Throws<TrainingFailedException>(() => new Trainer(model, Options(checkpoints, everyStep ? TimeSpan.Zero : null), failure).Fit(Batches(data)));
            TestContext.WriteLine(e.Message);
            StringAssert.Contains(e.Message, "the disk went away");
            Assert.IsInstanceOfType<IOException>(e.InnerException);
            Assert.AreEqual(Path.Combine(checkpoints, "last.safetensors"), e.LastGoodCheckpoint);
            StringAssert.Contains(e.Message, e.LastGoodCheckpoint!);
        }
        using (var model = NewModel(seed: 99))  // other initial weights: everything comes from the checkpoint
        {
            var trainer = new Trainer(model, Options(checkpoints, everyStep ? TimeSpan.Zero : null, resume: true));
            var result = trainer.Fit(Batches(data));
            Assert.AreEqual(everyStep ? (2, 4) : (2, 0), result.ResumedAt, "resumed at the last good checkpoint (epoch 3 has 6 batches, 3 steps)");
            Assert.HasCount(4, result.Epochs);
            CollectionAssert.AreEqual(expectedLosses.TakeLast(trainer.StepLosses.Count).ToList(), trainer.StepLosses, "the same batches, mixed and dropped out alike");
            CollectionAssert.AreEqual(expected, Weights(model), "bit-identical weights");
        }
    }

    [TestMethod]
    public void StoppedMidwayThroughAnAccumulationGroupItResumesFromTheGroupsStart()
    {
        // Batch 3 of epoch 2 is the first of a group of 2: its dropout has drawn when the run stops, its step has not.
        var data = Data();
        byte[] expected;
        using (var model = NewModel())
        {
            new Trainer(model, Options(null)).Fit(Batches(data));
            expected = Weights(model);
        }
        var checkpoints = Path.Combine(Dir, "run");
        using (var model = NewModel())
        {
            using var cts = new CancellationTokenSource();
            var source = new Interrupting(Batches(data), epoch: 1, batch: 2, cts.Cancel);
            Assert.IsTrue(new Trainer(model, Options(checkpoints)).Fit(source, cancellationToken: cts.Token).Cancelled);
        }
        using (var model = NewModel(seed: 7))
        {
            var result = new Trainer(model, Options(checkpoints, resume: true)).Fit(Batches(data));
            Assert.AreEqual((1, 2), result.ResumedAt, "from the start of the group");
            CollectionAssert.AreEqual(expected, Weights(model));
        }
    }

    /// <summary>Passes batches through and calls <paramref name="action"/> once the given batch has gone to the trainer.</summary>
    private sealed class Interrupting(IBatchSource inner, int epoch, int batch, Action action) : IBatchSource
    {
        public int Count => inner.Count;
        public int NumClasses => inner.NumClasses;
        public int BatchesPerEpoch => inner.BatchesPerEpoch;
        public IReadOnlyDictionary<string, string> Fingerprint => inner.Fingerprint;
        public IEnumerable<Batch> Batches(int e) => Batches(e, 0, CancellationToken.None);

        public IEnumerable<Batch> Batches(int e, int firstBatch, CancellationToken cancellationToken)
        {
            foreach (var b in inner.Batches(e, firstBatch, cancellationToken))
            {
                yield return b;
                if (e == epoch && b.Index == batch) action();
            }
        }
    }

    /// <summary>Leaves out one batch of every epoch, as a loader does whose images in it are all unreadable.</summary>
    private sealed class LeavingOut(IBatchSource inner, int left) : IBatchSource
    {
        public int Count => inner.Count;
        public int NumClasses => inner.NumClasses;
        public int BatchesPerEpoch => inner.BatchesPerEpoch;
        public IEnumerable<Batch> Batches(int e) => Batches(e, 0, CancellationToken.None);

        public IEnumerable<Batch> Batches(int e, int firstBatch, CancellationToken cancellationToken)
        {
            foreach (var b in inner.Batches(e, firstBatch, cancellationToken))
            {
                if (b.Index == left)
                {
                    b.Dispose();
                    continue;
                }
                yield return b;
            }
        }
    }

    [TestMethod]
    [DataRow(5, DisplayName = "the epoch's last batch left out")]
    [DataRow(2, DisplayName = "a batch midway left out")]
    public void ABatchLeftOutKeepsTheStepsInPlace(int left)
    {
        using var model = NewModel(config: Deterministic);
        long steps = 0;
        new Trainer(model, Options(null) with { Mixing = null, EmaDecay = null, Epochs = 2 }, new TrainerHooks { AfterStep = (s, _) => steps = s })
            .Fit(new LeavingOut(Batches(Data()), left));
        Assert.AreEqual(6, steps, "3 groups of 2 batches per epoch, the one short of a batch included");
        Assert.IsTrue(model.Parameters().All(p => p.Grad() is null || p.Grad()!.Abs().Sum().Item() == 0), "no gradient is left over");
    }

    [TestMethod]
    public void AFailureInTheEpochCallbackResumesWithoutRepeatingTheEpoch()
    {
        var checkpoints = Path.Combine(Dir, "run");
        using (var model = NewModel())
            Assert.Throws<TrainingFailedException>(() => new Trainer(model, Options(checkpoints)).Fit(Batches(Data()), onEpoch: r =>
            {
                if (r.Epoch == 2) throw new InvalidOperationException("the progress window was closed");
            }));
        using var resumed = NewModel();
        var result = new Trainer(resumed, Options(checkpoints, resume: true)).Fit(Batches(Data()));
        CollectionAssert.AreEqual(new[] { 1, 2, 3, 4 }, result.Epochs.Select(e => e.Epoch).ToArray());
    }

    [TestMethod]
    public void ANewRunDoesNotReportAnEarlierRunsBest()
    {
        var checkpoints = Path.Combine(Dir, "run");
        var evaluation = new InMemoryBatchSource(Data(seed: 8, count: 30), 30, shuffle: false);
        using (var model = NewModel())
            Assert.IsNotNull(new Trainer(model, Options(checkpoints) with { Epochs = 1 }).Fit(Batches(Data()), evaluation).BestCheckpoint);
        using var again = NewModel();
        var result = new Trainer(again, Options(checkpoints) with { Epochs = 1 }).Fit(Batches(Data()));
        Assert.IsNull(result.BestCheckpoint);
        Assert.IsFalse(File.Exists(Path.Combine(checkpoints, "best.safetensors")), "the earlier run's best is gone with it");
    }

    [TestMethod]
    public void NanScoresAreLowestInBothRules()
    {
        Assert.AreEqual(1, Classification.ArgMax([float.NaN, 5, 1]));
        Assert.AreEqual(0, Classification.ArgMax([float.NaN, float.NaN]));
        Assert.IsFalse(Classification.InTopK([1, 5, float.NaN], 2, 1));
        Assert.IsTrue(Classification.InTopK([float.NaN, 5, 1], 1, 1));
        Assert.IsTrue(Classification.InTopK([3, 3, 1], 1, 1), "a tie counts in the label's favour");
    }

    [TestMethod]
    public void AKilledProcessResumesAndEndsBitIdentical()
    {
        var uninterrupted = RunChild(Path.Combine(Dir, "whole"), killAt: null);
        var killed = Path.Combine(Dir, "killed");
        var partial = RunChild(killed, killAt: "epoch 3");
        Assert.IsNull(partial, "the child was killed during epoch 3");
        Assert.IsTrue(File.Exists(Path.Combine(killed, "last.safetensors")), "the kill left a checkpoint");
        var resumed = RunChild(killed, killAt: null);
        TestContext.WriteLine($"uninterrupted {uninterrupted}, resumed after SIGKILL {resumed}");
        Assert.AreEqual(uninterrupted, resumed);
    }

    /// <summary>Runs <see cref="TrainResumable"/> in a fresh process; with <paramref name="killAt"/>, kills it (SIGKILL) at the
    /// first line that names that epoch and returns null; else returns the weights' hash it printed.</summary>
    private static string? RunChild(string directory, string? killAt)
    {
        using var child = Process.Start(Program.Child("train-resumable", directory))!;
        var stderr = child.StandardError.ReadToEndAsync();
        string? line, last = null;
        while ((line = child.StandardOutput.ReadLine()) is not null)
        {
            if (killAt is not null && line.EndsWith(killAt, StringComparison.Ordinal))
            {
                child.Kill();  // SIGKILL: no finally, no flush, no handler runs
                child.WaitForExit();
                return null;
            }
            last = line;
        }
        Assert.IsTrue(child.WaitForExit(120_000), "the child finished");
        Assert.AreEqual(0, child.ExitCode, stderr.Result);
        Assert.IsNull(killAt, $"the child never reached {killAt}");
        return last;
    }

    [TestMethod]
    public void ResumeRefusesAnotherRunsCheckpointNamingTheDifferences()
    {
        var checkpoints = Path.Combine(Dir, "run");
        using (var model = NewModel())
            new Trainer(model, Options(checkpoints) with { Epochs = 1 }).Fit(Batches(Data()));
        using var other = NewModel();
        var e = Assert.Throws<ArgumentException>(() =>
            new Trainer(other, Options(checkpoints, resume: true) with { Epochs = 1, LearningRate = 1e-3 }).Fit(Batches(Data(seed: 6))));
        StringAssert.Contains(e.Message, "cannot resume from");
        StringAssert.Contains(e.Message, "learning rate was 0.003, now 0.001");
        StringAssert.Contains(e.Message, "training data: images was");
    }

    [TestMethod]
    public void ADivergingGradientLeavesTheLastGoodStepOnDisk()
    {
        var checkpoints = Path.Combine(Dir, "run");
        byte[]? good = null;
        long steps = 0;
        var infinity = new TrainerHooks
        {
            AfterStep = (step, _) => steps = step,
            BeforeOptimizerStep = model =>
            {
                if (good is null && steps >= 4)
                {
                    good = Weights(model);
                    using var scope = TensorScope.Begin();
                    model.Blocks[0].Mlp.Fc1.Weight.Grad()!.Fill(double.PositiveInfinity);  // a finite loss, an infinite gradient
                }
            },
        };
        using var run = NewModel();
        var e = Assert.Throws<TrainingDivergedException>(() => new Trainer(run, Options(checkpoints), infinity).Fit(Batches(Data())));
        StringAssert.Contains(e.Message, "gradient norm became");
        Assert.IsNotNull(good);
        CollectionAssert.AreEqual(good, Weights(run), "the bad step was not applied");
        using var loaded = PretrainedVit.Load(e.LastGoodCheckpoint!, new PretrainedVitOptions { Heads = 2 });
        CollectionAssert.AreEqual(good, Weights(loaded.Model), "the checkpoint holds the last good step's weights and loads as a model");
    }

    [TestMethod]
    public void EarlyStoppingAndCancellationEndWithTheBestEpochsWeights()
    {
        var data = Data();
        var evaluation = new InMemoryBatchSource(Data(seed: 8, count: 30), 30, shuffle: false);
        foreach (bool cancel in new[] { false, true })
        {
            var perEpoch = new List<byte[]>();
            using var cts = new CancellationTokenSource();
            using var model = NewModel(config: Deterministic);
            var options = Options(Path.Combine(Dir, cancel ? "cancel" : "stop")) with
            {
                Epochs = 8, EarlyStopping = cancel ? null : new EarlyStopping(Patience: 2), EmaDecay = null, Mixing = null, LearningRate = 1e-2,
                AccumulationSteps = 1,
            };
            var result = new Trainer(model, options).Fit(new InMemoryBatchSource(data, 16, shuffle: true, seed: 3), evaluation, onEpoch: r =>
            {
                perEpoch.Add(Weights(model));
                if (cancel && r.Epoch == 6) cts.Cancel();  // after a worse epoch than the best
            }, cancellationToken: cts.Token);
            TestContext.WriteLine($"cancel {cancel}: {result.Epochs.Count} epochs, best {result.BestEpoch}, accuracies "
                + string.Join(" ", result.Epochs.Select(r => r.Evaluation!.Accuracy.ToString("F3"))));
            var best = result.Epochs.MaxBy(r => r.Evaluation!.Accuracy)!.Epoch;
            Assert.AreEqual(best, result.BestEpoch);
            CollectionAssert.AreEqual(perEpoch[best - 1], Weights(model), "the model holds the best epoch's weights");
            using var saved = PretrainedVit.Load(result.BestCheckpoint!, new PretrainedVitOptions { Heads = 2 });
            CollectionAssert.AreEqual(perEpoch[best - 1], Weights(saved.Model), "best.safetensors holds them too");
            Assert.AreEqual(cancel, result.Cancelled);
        }
    }

    /// <summary>A source whose batches never come (a stuck file share): only cancellation ends the wait.</summary>
    private sealed class StuckSource(IBatchSource inner) : IBatchSource
    {
        public int Count => inner.Count;
        public int NumClasses => inner.NumClasses;
        public int BatchesPerEpoch => inner.BatchesPerEpoch;
        public IEnumerable<Batch> Batches(int epoch) => throw new InvalidOperationException("the trainer must pass its cancellation token");

        public IEnumerable<Batch> Batches(int epoch, int firstBatch, CancellationToken cancellationToken)
        {
            cancellationToken.WaitHandle.WaitOne(TimeSpan.FromMinutes(2));
            cancellationToken.ThrowIfCancellationRequested();
            throw new TimeoutException("never cancelled");
        }
    }

    [TestMethod]
    public void CancellationStopsAWaitForTheFirstBatchAndAnEvaluation()
    {
        using var model = NewModel();
        using (var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300)))
        {
            var r = new Trainer(model, Options(null)).Fit(new StuckSource(Batches(Data())), cancellationToken: cts.Token);
            Assert.IsTrue(r.Cancelled);
            Assert.IsEmpty(r.Epochs);
        }
        using (var cts = new CancellationTokenSource())
        {
            // The first epoch trains, then its evaluation waits for a batch that only cancellation ends.
            var r = new Trainer(model, Options(null) with { Epochs = 2 }).Fit(Batches(Data()), new StuckSource(Batches(Data(seed: 8, count: 30))),
                progress: new SyncProgress<VitTrainingProgress>(p =>
                {
                    if (p.Step == 3) cts.CancelAfter(200);  // the epoch's last step: the evaluation comes next
                }), cancellationToken: cts.Token);
            Assert.IsTrue(r.Cancelled);
            Assert.IsEmpty(r.Epochs, "an epoch whose evaluation was cancelled is not recorded");
        }
    }

    [TestMethod]
    public void TheEmaFollowsItsFormulaAndIsWhatTheModelEndsWith()
    {
        const double decay = 0.8;
        using var model = NewModel();
        var ema = model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.ToArray<float>().Select(v => (double)v).ToArray());
        var byFormula = new TrainerHooks
        {
            AfterStep = (_, _) =>
            {
                foreach (var (name, p) in model.NamedParameters())
                {
                    var w = p.ToArray<float>();
                    var e = ema[name];
                    for (int i = 0; i < w.Length; i++) e[i] = decay * e[i] + (1 - decay) * w[i];
                }
            },
        };
        new Trainer(model, Options(null) with { Epochs = 2, EmaDecay = decay }, byFormula).Fit(Batches(Data()));
        double diff = 0;
        foreach (var (name, p) in model.NamedParameters())
            diff = Math.Max(diff, p.ToArray<float>().Zip(ema[name], (a, b) => Math.Abs(a - b)).Max());
        TestContext.WriteLine($"max |model - EMA by formula| = {diff:E2}");
        Assert.IsLessThanOrEqualTo(1e-5, diff);
    }

    [TestMethod]
    public void AccumulatingTwoBatchesOfEightStepsAsOneBatchOfSixteen()
    {
        var data = Data();
        // Float32: the sums of 16 and of 2 x 8 differ only by rounding order, which bfloat16's rounding would swamp.
        var plain = new TrainerOptions { Epochs = 2, LearningRate = 3e-3, WarmupFraction = 0, Seed = 2, Precision = Precision.Float32 };
        using var a = NewModel(config: Deterministic);
        using var b = NewModel(config: Deterministic);
        new Trainer(a, plain).Fit(new InMemoryBatchSource(data, 16, shuffle: true, seed: 3));
        new Trainer(b, plain with { AccumulationSteps = 2 }).Fit(new InMemoryBatchSource(data, 8, shuffle: true, seed: 3));
        double diff = a.NamedParameters().Zip(b.NamedParameters(), (x, y) => x.Parameter.ToArray<float>().Zip(y.Parameter.ToArray<float>(), (u, v) => Math.Abs(u - v)).Max()).Max();
        TestContext.WriteLine($"max |batch 16 - 2 x 8 accumulated| = {diff:E2}");
        Assert.IsLessThanOrEqualTo(1e-5, diff);
        using var c = NewModel(config: Deterministic);
        new Trainer(c, plain).Fit(new InMemoryBatchSource(data, 8, shuffle: true, seed: 3));
        Assert.IsGreaterThan(1e-4, a.NamedParameters().Zip(c.NamedParameters(), (x, y) => x.Parameter.ToArray<float>().Zip(y.Parameter.ToArray<float>(), (u, v) => Math.Abs(u - v)).Max()).Max(),
            "steps of 8 without accumulation differ: the comparison can fail");
    }

    [TestMethod]
    public void MixupAndCutMixTrainEndToEndReproducibly()
    {
        foreach (var mixing in new[] { new BatchMixing { MixupAlpha = 0.8 }, new BatchMixing { CutMixAlpha = 1.0 } })
        {
            List<double> Losses()
            {
                using var model = NewModel();
                var t = new Trainer(model, Options(null) with { Mixing = mixing, EmaDecay = null, Epochs = 2 });
                var r = t.Fit(Batches(Data()));
                Assert.IsTrue(r.Epochs.All(e => double.IsFinite(e.TrainLoss)));
                return t.StepLosses;
            }
            var first = Losses();
            CollectionAssert.AreEqual(first, Losses(), $"{mixing}: the same seed mixes the same way");
            using var plainModel = NewModel();
            var plain = new Trainer(plainModel, Options(null) with { Mixing = null, EmaDecay = null, Epochs = 2 });
            plain.Fit(Batches(Data()));
            CollectionAssert.AreNotEqual(plain.StepLosses, first, $"{mixing} changes the training");
        }
    }
}
