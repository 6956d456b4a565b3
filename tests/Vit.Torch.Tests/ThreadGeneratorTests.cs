using Vit.Torch.Data;
using Vit.Torch.Model;
using Vit.Torch.Training;

namespace Vit.Torch.Tests;

/// <summary>
/// Each training draws from its own generator: two Fits on two threads at once, with dropout and drop path, end with
/// the weights one Fit alone gives (they once shared, and reseeded, libtorch's global generator and disturbed each
/// other), and a thread's generator draws what the global one draws after the same seed.
/// </summary>
[TestClass]
public sealed class ThreadGeneratorTests
{
    private static readonly VitConfig Config = new()
    {
        ImageSize = 8, PatchSize = 4, Channels = 1, Dim = 16, Depth = 2, Heads = 2, MlpDim = 32, NumClasses = 3, Dropout = 0.2, DropPath = 0.2,
    };

    private static float[] Train()
    {
        using var threads = Torch.LocalThreads(1);  // one intra-op thread each: the same arithmetic order alone and together
        VisionTransformer model;
        using (Torch.UseThreadGenerator(7)) model = new VisionTransformer(Config);
        using (model)
        {
            new Trainer(model, new TrainerOptions { Epochs = 3, Seed = 11, Precision = Precision.Float32 })
                .Fit(new InMemoryBatchSource(TrainingTests.Noise(48, 3, seed: 2), 8, shuffle: true, seed: 1));
            return model.NamedParameters().SelectMany(p => p.Parameter.ToArray<float>()).ToArray();
        }
    }

    [TestMethod]
    public void TwoFitsOnTwoThreadsAtOnceEachEndAsOneAlone()
    {
        var alone = Train();
        var results = new float[2][];
        using var start = new Barrier(2);
        var threads = Enumerable.Range(0, 2).Select(i => new Thread(() =>
        {
            start.SignalAndWait();
            results[i] = Train();
        })).ToList();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        CollectionAssert.AreEqual(alone, results[0], "thread 1's Fit, run beside another");
        CollectionAssert.AreEqual(alone, results[1], "thread 2's Fit, run beside another");
    }

    [TestMethod]
    public void AThreadGeneratorDrawsWhatTheGlobalOneDrawsAfterTheSameSeed()
    {
        Torch.ManualSeed(123);
        using var global = Tensor.Randn([64]);
        float[] own, nestedOuter;
        using (Torch.UseThreadGenerator(123))
        {
            using var a = Tensor.Randn([32]);
            using (Torch.UseThreadGenerator(5)) { using var inner = Tensor.Randn([8]); }
            using var b = Tensor.Randn([32]);  // the outer generator continues where it stopped
            own = [.. a.ToArray<float>(), .. b.ToArray<float>()];
            nestedOuter = b.ToArray<float>();
        }
        CollectionAssert.AreEqual(global.ToArray<float>(), own);
        Assert.HasCount(32, nestedOuter);
    }
}

/// <summary>The process-wide settings: applied once on first use, reported, and each left alone when asked.</summary>
[TestClass]
public sealed class ProcessSettingsTests
{
    private static string Child(params (string Key, string Value)[] env)
    {
        var psi = Program.Child("settings");
        foreach (var k in new[] { "VIT_TUNE_MALLOC", "VIT_THREADS", "OMP_NUM_THREADS" }) psi.Environment.Remove(k);
        foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = System.Diagnostics.Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd().Trim();
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.AreEqual(0, p.ExitCode, err);
        return output;
    }

    [TestMethod]
    public void DefaultsAreReportedAndEachOptOutLeavesItsSettingAlone()
    {
        int cores = Environment.ProcessorCount;
        Assert.AreEqual($"malloc True torch {cores} actual {cores}", Child());
        // OMP_NUM_THREADS=1 is libtorch's own default then: kept, it stays 1 instead of becoming every core.
        Assert.AreEqual("malloc False torch kept actual 1",
            Child(("VIT_TUNE_MALLOC", "0"), ("VIT_THREADS", "keep"), ("OMP_NUM_THREADS", "1")));
        Assert.AreEqual("malloc True torch 1 actual 1", Child(("VIT_THREADS", "1")));
    }
}
