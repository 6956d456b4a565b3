using Vit.Torch.Data;
using Vit.Torch.Model;
using Vit.Torch.Training;

namespace Vit.Torch.Tests;

/// <summary>Precision: what Auto resolves to, autocast regions, and bfloat16 training and evaluation.</summary>
[TestClass]
public sealed class PrecisionTests
{
    [TestMethod]
    public void ParseTakesTheToolSpellingsAndNamesABadOne()
    {
        Assert.AreEqual(Precision.Auto, MixedPrecision.Parse("auto"));
        Assert.AreEqual(Precision.BFloat16, MixedPrecision.Parse("BF16"));
        Assert.AreEqual(Precision.BFloat16, MixedPrecision.Parse("bfloat16"));
        Assert.AreEqual(Precision.Float32, MixedPrecision.Parse(" fp32 "));
        Assert.AreEqual(Precision.Float32, MixedPrecision.Parse("float32"));
        var e = Assert.Throws<ArgumentException>(() => MixedPrecision.Parse("fp16"));
        StringAssert.Contains(e.Message, "unknown precision 'fp16': use auto, bf16 or fp32");
    }

    /// <summary>CPUID as this library reads it against the flags the Linux kernel reports for the same CPU.</summary>
    [TestMethod]
    public void AutoFollowsTheBFloat16FlagsTheKernelReports()
    {
        var flags = File.ReadLines("/proc/cpuinfo").First(l => l.StartsWith("flags", StringComparison.Ordinal)).Split(' ');
        bool native = flags.Contains("avx512f") && (flags.Contains("avx512_bf16") || flags.Contains("amx_bf16"));
        Assert.AreEqual(native, MixedPrecision.CpuHasNativeBFloat16);
        Assert.AreEqual(native ? Precision.BFloat16 : Precision.Float32, MixedPrecision.Resolve(Precision.Auto, Device.Cpu));
        Assert.AreEqual(Precision.Float32, MixedPrecision.Resolve(Precision.Float32, Device.Cpu));
        Assert.AreEqual(Precision.BFloat16, MixedPrecision.Resolve(Precision.BFloat16, Device.Cpu));
    }

    [TestMethod]
    public void AutocastRegionsNestAndRestoreWhatWasThere()
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.Randn([4, 8]);
        var w = Tensor.Randn([3, 8]);
        Assert.IsFalse(MixedPrecision.IsAutocastEnabled(DeviceType.Cpu));
        Assert.AreEqual(DType.Float32, F.Linear(x, w, null).DType);
        using (MixedPrecision.Autocast(Precision.BFloat16, Device.Cpu))
        {
            Assert.IsTrue(MixedPrecision.IsAutocastEnabled(DeviceType.Cpu));
            Assert.AreEqual(DType.BFloat16, F.Linear(x, w, null).DType);
            using (MixedPrecision.Autocast(Precision.Float32, Device.Cpu))
            {
                Assert.IsFalse(MixedPrecision.IsAutocastEnabled(DeviceType.Cpu));
                Assert.AreEqual(DType.Float32, F.Linear(x, w, null).DType);
            }
            Assert.IsTrue(MixedPrecision.IsAutocastEnabled(DeviceType.Cpu));
            Assert.AreEqual(DType.BFloat16, F.Linear(x, w, null).DType);
        }
        Assert.IsFalse(MixedPrecision.IsAutocastEnabled(DeviceType.Cpu));
        Assert.AreEqual(DType.Float32, F.Linear(x, w, null).DType);
    }

    private static VitConfig Small => new() { ImageSize = 8, PatchSize = 4, Channels = 1, Dim = 32, Depth = 2, Heads = 2, MlpDim = 64, NumClasses = 4 };

    private static (VisionTransformer Model, TrainingResult Result) Train(Precision precision, InMemoryDataset data)
    {
        Torch.ManualSeed(5);
        var model = new VisionTransformer(Small);
        // The schedule this test was tuned with, pinned: it does not follow TrainerOptions.Defaults.
        var options = new TrainerOptions
        {
            Epochs = 40, LearningRate = 3e-3, WeightDecay = 0, WarmupFraction = 0.05, MinLearningRate = 1e-5, Precision = precision, Seed = 2,
        };
        var result = new Trainer(model, options)
            .Fit(new InMemoryBatchSource(data, 16, shuffle: true, seed: 1));
        return (model, result);
    }

    /// <summary>bfloat16 training: float32 master weights, the same losses for the same seed, and it learns what float32 learns.</summary>
    [TestMethod]
    public void BFloat16TrainingKeepsFloat32WeightsRepeatsItselfAndLearns()
    {
        var data = TrainingTests.Noise(64, 4, seed: 3);
        var (a, ra) = Train(Precision.BFloat16, data);
        var (b, rb) = Train(Precision.BFloat16, data);
        var (c, rc) = Train(Precision.Float32, data);
        using (a) using (b) using (c)
        {
            foreach (var (name, p) in a.NamedParameters()) Assert.AreEqual(DType.Float32, p.DType, name);
            CollectionAssert.AreEqual(ra.Epochs.Select(e => e.TrainLoss).ToArray(), rb.Epochs.Select(e => e.TrainLoss).ToArray());
            Assert.AreNotEqual(rc.Epochs[^1].TrainLoss, ra.Epochs[^1].TrainLoss, "bfloat16 ran as float32");
            var all = new InMemoryBatchSource(data, 64, shuffle: false);
            var bf = Trainer.Evaluate(a, all, Precision.BFloat16);
            var fp = Trainer.Evaluate(c, all, Precision.Float32);
            Assert.IsLessThan(ra.Epochs[0].TrainLoss * 0.5, ra.Epochs[^1].TrainLoss, "bfloat16 training lowers the loss");
            Assert.IsGreaterThan(fp.Accuracy - 0.1, bf.Accuracy, $"bfloat16 {bf.Accuracy:P1} against float32 {fp.Accuracy:P1} on the training images");
            // The same weights evaluated both ways: bfloat16 products shift the loss by a bfloat16 rounding, not more.
            var same = Trainer.Evaluate(a, all, Precision.Float32);
            Assert.AreEqual(same.Loss, bf.Loss, 0.02 * Math.Max(1, same.Loss));
        }
    }
}
