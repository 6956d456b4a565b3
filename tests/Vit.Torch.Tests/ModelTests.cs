using Vit.Torch.Model;

namespace Vit.Torch.Tests;

[TestClass]
public sealed class ModelTests
{
    // Published parameter counts (timm's vit_*_224 models with a 1000-class head).
    [TestMethod]
    [DataRow("Ti/16", 5_717_416L)]
    [DataRow("Ti/32", 6_131_560L)]
    [DataRow("S/16", 22_050_664L)]
    [DataRow("S/32", 22_878_952L)]
    [DataRow("B/16", 86_567_656L)]
    [DataRow("B/32", 88_224_232L)]
    [DataRow("L/16", 304_326_632L)]
    [DataRow("L/32", 306_535_400L)]
    public void PresetParameterCountsMatchPublishedOnes(string preset, long expected)
    {
        using var model = new VisionTransformer(VitConfig.FromName(preset));
        Assert.AreEqual(expected, model.ParameterCount());
        Assert.AreEqual(expected, new VitParameterCount(VitConfig.FromName(preset)).Count);
    }

    [TestMethod]
    public void ParameterNamesFollowTimm()
    {
        using var model = new VisionTransformer(Tiny());
        var names = model.NamedParameters().Select(p => p.Name).ToList();
        CollectionAssert.IsSubsetOf(new[]
        {
            "patch_embed.proj.weight", "patch_embed.proj.bias", "cls_token", "pos_embed",
            "blocks.0.norm1.weight", "blocks.0.norm1.bias", "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias",
            "blocks.0.attn.proj.weight", "blocks.0.attn.proj.bias", "blocks.0.norm2.weight", "blocks.0.norm2.bias",
            "blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc1.bias", "blocks.0.mlp.fc2.weight", "blocks.0.mlp.fc2.bias",
            "blocks.1.mlp.fc2.bias", "norm.weight", "norm.bias", "head.weight", "head.bias",
        }, names);
        Assert.AreEqual(4 + 12 * 2 + 4, names.Count);
    }

    [TestMethod]
    [DataRow(225, 16, 192, 3, "image size 225 is not divisible by patch size 16")]
    [DataRow(224, 16, 190, 3, "hidden size 190 is not divisible by head count 3")]
    [DataRow(16, 32, 192, 3, "patch size 32 is larger than image size 16")]
    [DataRow(0, 16, 192, 3, "image size must be positive, got 0")]
    [DataRow(224, 16, 192, 0, "head count must be positive, got 0")]
    public void InvalidConfigsSayWhatIsWrong(int image, int patch, int dim, int heads, string message)
    {
        var cfg = VitConfig.TinyPatch16 with { ImageSize = image, PatchSize = patch, Dim = dim, Heads = heads };
        var e = Assert.Throws<ArgumentException>(() => cfg.Validate());
        Assert.AreEqual(message, e.Message);
        Assert.Throws<ArgumentException>(() => new VisionTransformer(cfg));
    }

    [TestMethod]
    public void OtherInvalidOptionsAreNamed()
    {
        StringAssert.Contains(Assert.Throws<ArgumentException>(() => (Tiny() with { NumClasses = -1 }).Validate()).Message, "class count");
        StringAssert.Contains(Assert.Throws<ArgumentException>(() => (Tiny() with { Dropout = 1.0 }).Validate()).Message, "dropout must be in [0, 1)");
        StringAssert.Contains(Assert.Throws<ArgumentException>(() => (Tiny() with { DropPath = -0.1 }).Validate()).Message, "drop path");
        StringAssert.Contains(Assert.Throws<ArgumentException>(() => VitConfig.FromName("XL/14")).Message, "unknown ViT preset 'XL/14'");
    }

    [TestMethod]
    public void WrongInputShapeIsRejectedWithTheExpectedShape()
    {
        using var model = new VisionTransformer(Tiny());
        using var scope = TensorScope.Begin();
        var e = Assert.Throws<ArgumentException>(() => model.Forward(Tensor.Zeros([2, 3, 8, 8])));
        Assert.AreEqual("expected images of shape (batch, 1, 8, 8), got (2, 3, 8, 8)", e.Message);
    }

    [TestMethod]
    public void ReturnsOneAttentionMapPerBlockWithRowsSummingToOne()
    {
        using var model = new VisionTransformer(Tiny());
        model.Eval();
        using var scope = TensorScope.Begin();
        var maps = new List<Tensor>();
        var logits = model.Forward(Tensor.Randn([3, 1, 8, 8]), maps);
        Assert.HasCount(2, maps);
        foreach (var m in maps)
        {
            CollectionAssert.AreEqual(new long[] { 3, 2, 5, 5 }, m.Shape);  // (B, H, 1 + 4 patches, 1 + 4 patches)
            foreach (var s in m.Sum(-1).ToArray<float>()) Assert.AreEqual(1f, s, 1e-5f);
        }
        CollectionAssert.AreEqual(new long[] { 3, 3 }, logits.Shape);
    }

    [TestMethod]
    public void MeanPoolingHasNoClassTokenAndAveragesTokens()
    {
        using var model = new VisionTransformer(Tiny() with { Pooling = VitPooling.Mean });
        Assert.IsNull(model.ClsToken);
        CollectionAssert.AreEqual(new long[] { 1, 4, 16 }, model.PosEmbed.Shape);
        using var scope = TensorScope.Begin();
        CollectionAssert.AreEqual(new long[] { 2, 3 }, model.Forward(Tensor.Randn([2, 1, 8, 8])).Shape);
    }

    [TestMethod]
    public void EvalModeIsDeterministicAndTrainModeDropsOut()
    {
        Torch.ManualSeed(3);
        using var model = new VisionTransformer(Tiny() with { Dropout = 0.5, DropPath = 0.5 });
        using var scope = TensorScope.Begin();
        var x = Tensor.Randn([4, 1, 8, 8]);
        model.Eval();
        CollectionAssert.AreEqual(model.Forward(x).ToArray<float>(), model.Forward(x).ToArray<float>());
        model.Train();
        CollectionAssert.AreNotEqual(model.Forward(x).ToArray<float>(), model.Forward(x).ToArray<float>());
    }

    [TestMethod]
    public void ReplaceHeadKeepsTheBackboneAndChangesClassCount()
    {
        using var model = new VisionTransformer(Tiny());
        var before = model.PosEmbed.ToArray<float>();
        model.ReplaceHead(7);
        Assert.AreEqual(7, model.Config.NumClasses);
        CollectionAssert.AreEqual(new long[] { 7, 16 }, model.Head!.Weight.Shape);
        CollectionAssert.AreEqual(before, model.PosEmbed.ToArray<float>());
    }

    [TestMethod]
    public void DeviceSelectionExplainsMissingCuda()
    {
        Assert.AreEqual(Device.Cpu, Torch.ResolveDevice(Device.Cpu, fallbackToCpu: false));
        if (Torch.CudaDeviceCount > 0) return;  // the check below is about machines without a GPU
        Assert.AreEqual(Device.Cpu, Torch.ResolveDevice(Device.Cuda(0), fallbackToCpu: true));
        var e = Assert.Throws<TorchException>(() => Torch.ResolveDevice(Device.Cuda(0), fallbackToCpu: false));
        StringAssert.Contains(e.Message, "TorchSharp-cuda");
        var e2 = Assert.Throws<TorchException>(() => Tensor.Zeros([2], device: Device.Cuda(0)));
        StringAssert.Contains(e2.Message, "CUDA");
        Assert.AreEqual(Device.Cuda(1), Device.Parse("cuda:1"));
        Assert.Throws<ArgumentException>(() => Device.Parse("tpu"));
    }

    internal static VitConfig Tiny() => new()
    {
        ImageSize = 8, PatchSize = 4, Channels = 1, Dim = 16, Depth = 2, Heads = 2, MlpDim = 32, NumClasses = 3,
    };

    /// <summary>
    /// On a GPU (the application references TorchSharp-cuda-linux or -windows instead of TorchSharp-cpu): a training
    /// step's loss and gradients on Device.Cuda(0) equal the CPU's on the same weights and inputs. Skipped, with the
    /// reason, where no CUDA device is usable (as on this project's CI, which references TorchSharp-cpu).
    /// </summary>
    [TestMethod]
    public void CudaTrainingStepMatchesTheCpu()
    {
        if (Torch.CudaDeviceCount == 0)
            Assert.Inconclusive("no CUDA device is usable: the tests reference TorchSharp-cpu; reference TorchSharp-cuda-linux on a machine with an NVIDIA GPU to run this");
        var cfg = new VitConfig { ImageSize = 16, PatchSize = 4, Channels = 3, Dim = 32, Depth = 2, Heads = 4, MlpDim = 64, NumClasses = 5 };
        Torch.ManualSeed(5);
        using var cpu = new VisionTransformer(cfg);
        using var gpu = VisionTransformer.ForWeights(cfg);
        foreach (var ((_, from), (_, to)) in cpu.NamedParameters().Zip(gpu.NamedParameters())) to.CopyFrom(from);
        gpu.To(Device.Cuda(0));
        using var scope = TensorScope.Begin();
        var x = Tensor.Randn([4, 3, 16, 16]);
        var y = Tensor.FromArray(new long[] { 0, 1, 2, 3 }, 4);
        var lossCpu = F.CrossEntropy(cpu.Forward(x), y);
        lossCpu.Backward();
        var lossGpu = F.CrossEntropy(gpu.Forward(x.To(Device.Cuda(0))), y.To(Device.Cuda(0)));
        lossGpu.Backward();
        Assert.AreEqual(lossCpu.Item(), lossGpu.Item(), 1e-4);
        var gCpu = cpu.PosEmbed.Grad()!.ToArray<float>();
        var gGpu = gpu.PosEmbed.Grad()!.To(Device.Cpu).ToArray<float>();
        for (int i = 0; i < gCpu.Length; i++) Assert.AreEqual(gCpu[i], gGpu[i], 1e-4, $"pos_embed gradient {i}");
    }

    /// <summary>
    /// TruncNormalInit draws from N(mean, std²) truncated to [lo, hi] (timm's trunc_normal_, the ViT's initialisation):
    /// on 200,000 draws the sample mean and standard deviation equal the truncated normal's closed-form moments, and
    /// every value lies within the bounds. (TorchSharp 0.107's own trunc_normal_ filled tensors with std.)
    /// </summary>
    [TestMethod]
    [DataRow(0.0, 0.02, -2.0, 2.0)]
    [DataRow(0.5, 1.0, -1.0, 1.5)]
    public void TruncNormalInitDrawsTheTruncatedNormal(double mean, double std, double lo, double hi)
    {
        Torch.ManualSeed(3);
        using var t = Tensor.Empty([200_000]);
        t.TruncNormalInit(mean, std, lo, hi);
        var v = t.ToArray<float>().Select(x => (double)x).ToArray();
        Assert.IsTrue(v.All(x => x >= lo && x <= hi), "a value outside the bounds");
        // Closed form with α = (lo - μ)/σ, β = (hi - μ)/σ, Z = Φ(β) - Φ(α):
        // mean μ + σ (φ(α) - φ(β)) / Z; variance σ² (1 + (α φ(α) - β φ(β)) / Z - ((φ(α) - φ(β)) / Z)²).
        static double Phi(double x) => Math.Exp(-x * x / 2) / Math.Sqrt(2 * Math.PI);
        static double Cdf(double x)
        {
            // Φ by Simpson's rule from 0 (independent of the library's erf).
            int n = 20_000;
            double h = x / n, s = Phi(0) + Phi(x);
            for (int i = 1; i < n; i++) s += (i % 2 == 1 ? 4 : 2) * Phi(i * h);
            return 0.5 + s * h / 3;
        }
        double a = (lo - mean) / std, b = (hi - mean) / std, z = Cdf(b) - Cdf(a);
        double expectedMean = mean + std * (Phi(a) - Phi(b)) / z;
        double expectedStd = std * Math.Sqrt(1 + (a * Phi(a) - b * Phi(b)) / z - Math.Pow((Phi(a) - Phi(b)) / z, 2));
        double m = v.Average(), sd = Math.Sqrt(v.Average(x => (x - m) * (x - m)));
        // Standard errors on 200,000 draws: σ/√n ≈ 0.0022σ for the mean, ≈ 0.0016σ for the deviation; 5 of them allowed.
        Assert.AreEqual(expectedMean, m, 5 * 0.0023 * std, "mean");
        Assert.AreEqual(expectedStd, sd, 5 * 0.0017 * std, "standard deviation");
    }
}
