using System.Globalization;
using Vit.Torch.Data;
using Vit.Torch.Distributed;
using Vit.Torch.Model;
using Vit.Torch.Training;
using Vit.Tests;

namespace Vit.Torch.Tests;

/// <summary>
/// Data-parallel training between real processes (this assembly run as workers): two ranks at global batch B end with
/// the weights, losses and evaluation of one process at batch B (the reference is that process, run here); every
/// sample is in exactly one shard, with the augmentation one process gives it; a rank killed mid-run makes the other
/// fail with a named error within the timeout, and the checkpoint left behind resumes over two ranks to the
/// uninterrupted result.
/// </summary>
[TestClass]
public sealed class DataParallelTests : TempDirectoryTests
{
    /// <summary>No dropout: one forward of 16 draws the generator otherwise than two of 8. Everything else that has state
    /// is on: augmentation, accumulation, an EMA, an evaluation set.</summary>
    private static readonly VitConfig Config = new()
    {
        ImageSize = 8, PatchSize = 4, Channels = 1, Dim = 16, Depth = 2, Heads = 2, MlpDim = 32, NumClasses = 3,
    };

    /// <summary>97 = 6 x 16 + 1: the last batch has one image, so rank 0's slice of it is empty (it still joins the collectives).</summary>
    private const int TrainCount = 97, BatchSize = 16;

    private static InMemoryBatchSource Train((int, int)? shard) =>
        new(ResumeTests.Data(5, TrainCount), BatchSize, shuffle: true, seed: 3, maxShift: 1, horizontalFlip: true) { Shard = shard };

    private static InMemoryBatchSource Evaluation((int, int)? shard) => new(ResumeTests.Data(6, 30), 8, shuffle: false) { Shard = shard };

    private static TrainerOptions Options(ProcessGroup? group, string? checkpoints = null, bool resume = false) => new()
    {
        Epochs = 2, LearningRate = 3e-3, WarmupFraction = 0.2, Seed = 11, AccumulationSteps = 2, EmaDecay = 0.9,
        Precision = Precision.Float32, Distributed = group, CheckpointDirectory = checkpoints,
        CheckpointInterval = checkpoints is null ? null : TimeSpan.Zero, Resume = resume,
    };

    private static float[] Weights(VisionTransformer model) =>
        model.NamedParameters().SelectMany(p => p.Parameter.ToArray<float>()).ToArray();

    private static VisionTransformer NewModel(ulong seed)
    {
        Torch.ManualSeed(seed);
        return new VisionTransformer(Config);
    }

    /// <summary>
    /// The worker: rank <paramref name="rank"/> of <paramref name="world"/> trains and writes its weights, step losses and
    /// evaluation into <paramref name="output"/>. Modes: <c>run</c>; <c>checkpoint</c> (a checkpoint after every step
    /// in output/run); <c>kill</c> (as checkpoint, and rank 1 kills itself after step 5); <c>resume</c> (resumes
    /// output/run). Rank 1 starts from other initial weights: rank 0's broadcast must replace them.
    /// </summary>
    public static int Worker(string store, int rank, int world, string output, string mode)
    {
        Torch.SetThreads(1);
        // "tcp:HOST:PORT": rendezvous with rank 0 at HOST over TCP; anything else is a file store's path.
        var group = ProcessGroup.Create(store.Split(':') is ["tcp", var host, var port]
            ? new DistributedOptions { Rank = rank, WorldSize = world, MasterAddress = host, MasterPort = int.Parse(port, CultureInfo.InvariantCulture), Timeout = TimeSpan.FromSeconds(20) }
            : new DistributedOptions { Rank = rank, WorldSize = world, StoreFile = store, Timeout = TimeSpan.FromSeconds(20) });
        var hooks = mode == "kill" && rank == 1
            ? new TrainerHooks
            {
                AfterStep = (step, _) =>
                {
                    if (step == 5) System.Diagnostics.Process.GetCurrentProcess().Kill();  // SIGKILL: nothing runs after it
                },
            }
            : null;
        try
        {
            using var model = NewModel(rank == 0 ? 1UL : 77UL);
            string? checkpoints = mode == "run" ? null : Path.Combine(output, "run");
            var trainer = new Trainer(model, Options(group, checkpoints, resume: mode == "resume"), hooks);
            var result = trainer.Fit(Train((rank, world)), Evaluation((rank, world)));
            var eval = result.Epochs[^1].Evaluation!;
            File.WriteAllBytes(Path.Combine(output, $"weights-{rank}.bin"), System.Runtime.InteropServices.MemoryMarshal.AsBytes(Weights(model).AsSpan()).ToArray());
            File.WriteAllLines(Path.Combine(output, $"losses-{rank}.txt"), trainer.StepLosses.Select(l => l.ToString("R", CultureInfo.InvariantCulture)));
            File.WriteAllText(Path.Combine(output, $"eval-{rank}.txt"),
                string.Create(CultureInfo.InvariantCulture, $"{eval.Count} {eval.Loss:R} {eval.Accuracy:R} {eval.Top5Accuracy:R}"));
            Console.Out.WriteLine($"rank {rank} done, gradient sync {result.GradientSync.TotalMilliseconds:F1} ms");
            group.Dispose();
            return 0;
        }
        catch (Exception e)
        {
            return DistributedTests.Abandon($"{e.GetType().Name}: {e.Message}");
        }
    }

    private (int Code, string Out, string Err, TimeSpan Took)[] RunRanks(string mode, string store, Action<int, System.Diagnostics.ProcessStartInfo>? configure = null)
    {
        var results = DistributedTests.RunWorkers(2, r => ["dist-train", store, r.ToString(CultureInfo.InvariantCulture), "2", Dir, mode], configure: configure);
        foreach (var (code, o, e, took) in results) TestContext.WriteLine($"exit {code} after {took.TotalSeconds:F1} s: {o.Trim()} {e.Trim()}");
        return results;
    }

    /// <summary>One process at batch 16, here: the reference.</summary>
    private static (float[] Weights, List<double> Losses, EvaluationResult Eval) Reference()
    {
        using var model = NewModel(1);
        var trainer = new Trainer(model, Options(null));
        var result = trainer.Fit(Train(null), Evaluation(null));
        return (Weights(model), trainer.StepLosses, result.Epochs[^1].Evaluation!);
    }

    private void AssertMatchesReference((float[] Weights, List<double> Losses, EvaluationResult Eval) expected, int? resumedLosses = null)
    {
        var w0 = File.ReadAllBytes(Path.Combine(Dir, "weights-0.bin"));
        var w1 = File.ReadAllBytes(Path.Combine(Dir, "weights-1.bin"));
        CollectionAssert.AreEqual(w0, w1, "both ranks must hold the same weights, to the bit");
        var weights = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(w0).ToArray();
        Assert.HasCount(expected.Weights.Length, weights);
        double worst = 0;
        for (int i = 0; i < weights.Length; i++) worst = Math.Max(worst, Math.Abs(weights[i] - expected.Weights[i]));
        TestContext.WriteLine($"largest weight difference from one process: {worst:E2} over {weights.Length} weights");
        Assert.IsLessThanOrEqualTo(1e-5, worst);
        Assert.IsGreaterThan(1e-3, expected.Weights.Zip(Weights(NewModel(1))).Max(p => Math.Abs(p.First - p.Second)), "the run must have trained");

        var losses = File.ReadAllLines(Path.Combine(Dir, "losses-0.txt")).Select(l => double.Parse(l, CultureInfo.InvariantCulture)).ToList();
        // A resumed run has the losses of the batches after its checkpoint: the last ones of the reference.
        Assert.HasCount(resumedLosses ?? expected.Losses.Count, losses, "one loss per batch (the empty slice's batch included)");
        var tail = expected.Losses.Skip(expected.Losses.Count - losses.Count).ToList();
        for (int i = 0; i < losses.Count; i++) Assert.AreEqual(tail[i], losses[i], 1e-5, $"loss of batch {i}");

        var eval = File.ReadAllText(Path.Combine(Dir, "eval-1.txt")).Split(' ').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        Assert.AreEqual(expected.Eval.Count, (int)eval[0], "the shards' evaluation covers the whole set once");
        Assert.AreEqual(expected.Eval.Loss, eval[1], 1e-5);
        Assert.AreEqual(expected.Eval.Accuracy, eval[2], 1e-12);
        Assert.AreEqual(expected.Eval.Top5Accuracy, eval[3], 1e-12);
    }

    [TestMethod]
    public void TwoRanksAtGlobalBatchBTrainAsOneProcessAtBatchB()
    {
        var expected = Reference();
        var results = RunRanks("run", Path.Combine(Dir, "store"));
        for (int r = 0; r < 2; r++) Assert.AreEqual(0, results[r].Code, $"rank {r}: {results[r].Err}");
        AssertMatchesReference(expected);
    }

    [TestMethod]
    public void ARankKilledMidRunStopsTheOtherAndTheCheckpointResumesOverTwoRanks()
    {
        var expected = Reference();
        var killed = RunRanks("kill", Path.Combine(Dir, "store1"));
        Assert.AreNotEqual(0, killed[1].Code, "rank 1 killed itself");
        Assert.AreEqual(3, killed[0].Code, $"rank 0 must fail with an error: {killed[0].Out} {killed[0].Err}");
        StringAssert.Contains(killed[0].Err, "TrainingFailedException");
        StringAssert.Contains(killed[0].Err, "after 5 optimizer steps");
        StringAssert.Contains(killed[0].Err, "allreduce failed");
        StringAssert.Contains(killed[0].Err, Path.Combine(Dir, "run", "last.safetensors"), "the error names the last good state");
        Assert.IsLessThan(TimeSpan.FromSeconds(60), killed[0].Took, "well within the 20 s timeout after the start-up");
        Assert.IsFalse(File.Exists(Path.Combine(Dir, "weights-0.bin")));

        // A checkpoint of two processes is not resumed by one (another split of the batches), and says why.
        using (var alone = NewModel(1))
        {
            var e = Assert.Throws<Exception>(() => new Trainer(alone, Options(null, Path.Combine(Dir, "run"), resume: true)).Fit(Train(null), Evaluation(null)));
            StringAssert.Contains(e.Message, "processes");
        }

        // The checkpoint rank 0 left: two new processes resume it and end where an uninterrupted run ends.
        var resumed = RunRanks("resume", Path.Combine(Dir, "store2"));
        for (int r = 0; r < 2; r++) Assert.AreEqual(0, resumed[r].Code, $"rank {r}: {resumed[r].Err}");
        // 7 batches an epoch, 2 per step: 4 steps an epoch, so step 5 is epoch 2's first, and 5 batches are left.
        AssertMatchesReference(expected, resumedLosses: 5);
    }

    /// <summary>
    /// Two "hosts": two network namespaces joined by a veth pair (<see cref="NetworkNamespaces"/>), each rank in its own,
    /// training over real TCP between them (rank 1 reaches rank 0's rendezvous at 10.250.N.1 from 10.250.N.2). Needs
    /// root (to make the namespaces); skipped otherwise, with the reason.
    /// </summary>
    [TestMethod]
    public void TwoRanksInTwoNetworkNamespacesTrainOverTcpAsOneProcess()
    {
        var (spaces, reason) = NetworkNamespaces.TryCreate();
        if (spaces is null) Assert.Inconclusive("skipped: " + reason);
        using (spaces)
        {
            var expected = Reference();
            var results = RunRanks("run", $"tcp:{spaces.Addresses[0]}:29517", spaces.RunInside);
            for (int r = 0; r < 2; r++) Assert.AreEqual(0, results[r].Code, $"rank {r}: {results[r].Err}");
            AssertMatchesReference(expected);
            // The gradients crossed the veth pair: rank 1's side received at least one float32 copy of them per step (8 steps).
            long received = spaces.ReceivedBytes(1);
            TestContext.WriteLine($"rank 1's veth received {received} bytes");
            Assert.IsGreaterThan(8L * expected.Weights.Length * 4, received);
        }
    }

    [TestMethod]
    public void ShardsHoldEverySampleOnceWithTheAugmentationOfOneProcess()
    {
        var whole = Train(null).Batches(1).ToList();
        try
        {
        for (int shards = 2; shards <= 3; shards++)
        {
            var parts = Enumerable.Range(0, shards).Select(s => Train((s, shards)).Batches(1).ToList()).ToList();
            try
            {
                foreach (var b in whole)
                {
                    // The shards' slices of batch b, in rank order, are batch b: the same images (augmented alike) and labels.
                    var slices = parts.SelectMany(p => p.Where(x => x.Index == b.Index)).ToList();
                    Assert.IsTrue(slices.All(x => x.GlobalCount == b.Count), "each slice knows its whole batch's size");
                    CollectionAssert.AreEqual(b.Labels.ToArray<long>(), slices.SelectMany(x => x.Labels.ToArray<long>()).ToArray(), $"labels of batch {b.Index}, {shards} shards");
                    CollectionAssert.AreEqual(b.Images.ToArray<float>(), slices.SelectMany(x => x.Images.ToArray<float>()).ToArray(), $"images of batch {b.Index}, {shards} shards");
                }
                Assert.AreEqual(TrainCount, parts.Sum(p => p.Sum(x => x.Count)), "every sample once per epoch");
                Assert.IsTrue(parts.Any(p => p.Count < whole.Count), "the last batch's single image leaves a shard's slice empty");
            }
            finally
            {
                foreach (var b in parts.SelectMany(p => p)) b.Dispose();
            }
        }
        }
        finally
        {
            foreach (var b in whole) b.Dispose();
        }
        Assert.ThrowsExactly<ArgumentException>(() => Train((2, 2)));
    }

    [TestMethod]
    public void AGroupOfOneTrainsAsNoGroup()
    {
        var expected = Reference();
        using var group = ProcessGroup.Create(new DistributedOptions { StoreFile = Path.Combine(Dir, "store") });
        using var model = NewModel(1);
        new Trainer(model, Options(group)).Fit(Train((0, 1)), Evaluation((0, 1)));
        CollectionAssert.AreEqual(expected.Weights, Weights(model), "a group of one is one process, to the bit");
    }
}
