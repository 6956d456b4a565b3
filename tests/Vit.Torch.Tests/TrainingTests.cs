using Vit.Torch.Data;
using Vit.Torch.Model;
using Vit.Torch.Training;

namespace Vit.Torch.Tests;

[TestClass]
public sealed class TrainingTests
{
    /// <summary>64 images of pure noise with random labels: only memorisation can fit them.</summary>
    internal static InMemoryDataset Noise(int count, int classes, int seed, int size = 8)
    {
        var rng = new Random(seed);
        var px = new float[count * size * size];
        for (int i = 0; i < px.Length; i++) px[i] = (float)(rng.NextDouble() * 2 - 1);
        var labels = Enumerable.Range(0, count).Select(i => (long)(i % classes)).ToArray();
        rng.Shuffle(labels);
        return new InMemoryDataset(px, labels, (1, size, size), classes);
    }

    private static VitConfig Small(int classes) => new()
    {
        ImageSize = 8, PatchSize = 4, Channels = 1, Dim = 32, Depth = 2, Heads = 2, MlpDim = 64, NumClasses = classes,
    };

    [TestMethod]
    public void TinyVitOverfits64SyntheticImages()
    {
        var data = Noise(64, 4, seed: 7);
        Torch.ManualSeed(1);
        using var model = new VisionTransformer(Small(4));
        var trainer = new Trainer(model, new TrainerOptions
        {
            Epochs = 150, LearningRate = 3e-3, WeightDecay = 0, LabelSmoothing = 0, WarmupFraction = 0.02, MinLearningRate = 1e-4,
        });
        trainer.Fit(new InMemoryBatchSource(data, 32, shuffle: true, seed: 1));
        var eval = Trainer.Evaluate(model, new InMemoryBatchSource(data, 64, shuffle: false));
        Assert.AreEqual(1.0, eval.Accuracy, $"training accuracy {eval.Accuracy:P1}, loss {eval.Loss}");
    }

    private static List<double> Losses(ulong seed)
    {
        var data = Noise(32, 3, seed: 5);
        Torch.ManualSeed(seed);
        using var model = new VisionTransformer(Small(3) with { Dropout = 0.1, DropPath = 0.1 });
        var trainer = new Trainer(model, new TrainerOptions { Epochs = 3, Seed = seed });
        trainer.Fit(new InMemoryBatchSource(data, 8, shuffle: true, seed: (int)seed, maxShift: 1, horizontalFlip: true));
        return trainer.StepLosses;
    }

    [TestMethod]
    public void SameSeedGivesIdenticalLosses()
    {
        var a = Losses(11);
        var b = Losses(11);
        var c = Losses(12);
        Assert.HasCount(12, a);
        CollectionAssert.AreEqual(a, b);
        CollectionAssert.AreNotEqual(a, c);
    }

    [TestMethod]
    public void NanLossStopsTrainingAndKeepsTheLastGoodWeights()
    {
        var good = Noise(16, 2, seed: 3);
        Torch.ManualSeed(2);
        using var model = new VisionTransformer(Small(2));
        new Trainer(model, new TrainerOptions { Epochs = 1 }).Fit(new InMemoryBatchSource(good, 8, shuffle: false));
        var before = model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.ToArray<float>());

        var px = new float[16 * 64];
        px[100] = float.NaN;
        var bad = new InMemoryDataset(px, Enumerable.Range(0, 16).Select(i => (long)(i % 2)).ToArray(), (1, 8, 8), 2);
        var e = Assert.Throws<TrainingDivergedException>(() =>
            new Trainer(model, new TrainerOptions { Epochs = 1 }).Fit(new InMemoryBatchSource(bad, 8, shuffle: false)));
        StringAssert.Contains(e.Message, "NaN");
        StringAssert.Contains(e.Message, "last good");
        foreach (var (name, p) in model.NamedParameters())
            CollectionAssert.AreEqual(before[name], p.ToArray<float>(), name);
    }

    [TestMethod]
    public void MemoryStaysFlatOver500Steps()
    {
        var data = Noise(32, 4, seed: 9);
        Torch.ManualSeed(4);
        using var model = new VisionTransformer(Small(4));
        long liveBefore = Tensor.LiveCount;
        long rssAt100 = 0;
        var trainer = new Trainer(model, new TrainerOptions { Epochs = 125 });
        trainer.Fit(new InMemoryBatchSource(data, 8, shuffle: true), progress: new SyncProgress<VitTrainingProgress>(s =>
        {
            if (s.Step == 100)
            {
                GC.Collect();
                rssAt100 = Rss();
            }
        }));
        Assert.HasCount(500, trainer.StepLosses);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long growth = Rss() - rssAt100;
        Assert.AreEqual(liveBefore, Tensor.LiveCount, "tensor handles leaked");
        Assert.IsLessThan(16L << 20, growth, $"RSS grew by {growth >> 10} KiB over 400 steps");
    }

    private static long Rss()
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }

    [TestMethod]
    public void ScheduleWarmsUpLinearlyThenFollowsTheCosine()
    {
        var s = new LearningRateSchedule(1.0, TotalSteps: 110, WarmupSteps: 10, MinLearningRate: 0.1);
        Assert.AreEqual(0.1, s.At(0), 1e-12);
        Assert.AreEqual(0.5, s.At(4), 1e-12);
        Assert.AreEqual(1.0, s.At(10), 1e-12);
        Assert.AreEqual(0.1 + 0.9 * 0.5 * (1 + Math.Cos(Math.PI * 0.5)), s.At(60), 1e-12);
        Assert.AreEqual(0.1, s.At(110), 1e-12);
        var lin = s with { Kind = ScheduleKind.Linear };
        Assert.AreEqual(0.1 + 0.9 * 0.75, lin.At(35), 1e-12);
    }

    [TestMethod]
    public void AdamWStepMatchesTheFormula()
    {
        using var scope = TensorScope.Begin();
        double[] w0 = [0.5, -1.0, 2.0], c = [0.3, -0.2, 0.1];
        var w = Tensor.FromArray(w0, 3).DetachFromScope();
        w.RequiresGrad = true;
        using var _ = w;
        const double lr = 0.01, wd = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8;
        using var opt = new AdamW([("blocks.0.mlp.fc1.weight", w)], lr, wd, b1, b2, eps, decays: (_, _) => true);
        var expected = (double[])w0.Clone();
        double[] m = new double[3], v = new double[3];
        for (int t = 1; t <= 3; t++)
        {
            // loss = sum(w^2 * c) so grad = 2 w c, computed from the current weights.
            (w * w * Tensor.FromArray(c, 3)).Sum().Backward();
            opt.Step();
            opt.ZeroGrad();
            for (int i = 0; i < 3; i++)
            {
                double g = 2 * expected[i] * c[i];
                expected[i] *= 1 - lr * wd;
                m[i] = b1 * m[i] + (1 - b1) * g;
                v[i] = b2 * v[i] + (1 - b2) * g * g;
                double mh = m[i] / (1 - Math.Pow(b1, t)), vh = v[i] / (1 - Math.Pow(b2, t));
                expected[i] -= lr * mh / (Math.Sqrt(vh) + eps);
            }
        }
        var got = w.ToArray<double>();
        for (int i = 0; i < 3; i++) Assert.AreEqual(expected[i], got[i], 1e-12);
    }

    [TestMethod]
    public void LayerDecayScalesEachBlocksLearningRate()
    {
        var scale = AdamW.LayerDecay(0.5, depth: 2);
        Assert.AreEqual(0.125, scale("pos_embed"));            // layer 0: decay^(depth + 1)
        Assert.AreEqual(0.125, scale("cls_token"));
        Assert.AreEqual(0.125, scale("patch_embed.proj.weight"));
        Assert.AreEqual(0.25, scale("blocks.0.attn.qkv.weight"));  // layer 1
        Assert.AreEqual(0.5, scale("blocks.1.mlp.fc2.bias"));      // layer 2
        Assert.AreEqual(1.0, scale("norm.weight"));               // layer depth + 1: the full rate
        Assert.AreEqual(1.0, scale("fc_norm.bias"));
        Assert.AreEqual(1.0, scale("head.weight"));
        Assert.Throws<ArgumentOutOfRangeException>(() => AdamW.LayerDecay(1.5, 2));
    }

    [TestMethod]
    public void AdamWWithLayerDecayStepsEachParameterAtItsScaledRate()
    {
        // The formula of AdamWStepMatchesTheFormula with lr_i = lr * scale_i, which scales the decoupled decay too.
        using var scope = TensorScope.Begin();
        string[] names = ["pos_embed", "blocks.0.mlp.fc1.weight", "head.weight"];
        double[] scales = [0.125, 0.25, 1.0], w0 = [0.5, -1.0, 2.0], c = [0.3, -0.2, 0.1];
        var ws = w0.Select(x => Tensor.FromArray(new[] { x }, 1).DetachFromScope()).ToArray();
        foreach (var w in ws) w.RequiresGrad = true;
        const double lr = 0.01, wd = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8;
        using var opt = new AdamW(names.Zip(ws), lr, wd, b1, b2, eps, decays: (_, _) => true, learningRateScale: AdamW.LayerDecay(0.5, 2));
        CollectionAssert.AreEqual(scales, opt.Groups.Select(g => g.LearningRateScale).ToArray());
        var expected = (double[])w0.Clone();
        double[] m = new double[3], v = new double[3];
        for (int t = 1; t <= 3; t++)
        {
            for (int i = 0; i < 3; i++) (ws[i] * ws[i] * c[i]).Sum().Backward();
            opt.Step();
            opt.ZeroGrad();
            for (int i = 0; i < 3; i++)
            {
                double g = 2 * expected[i] * c[i], lri = lr * scales[i];
                expected[i] *= 1 - lri * wd;
                m[i] = b1 * m[i] + (1 - b1) * g;
                v[i] = b2 * v[i] + (1 - b2) * g * g;
                double mh = m[i] / (1 - Math.Pow(b1, t)), vh = v[i] / (1 - Math.Pow(b2, t));
                expected[i] -= lri * mh / (Math.Sqrt(vh) + eps);
            }
        }
        for (int i = 0; i < 3; i++) Assert.AreEqual(expected[i], ws[i].ToArray<double>()[0], 1e-12, names[i]);
        foreach (var w in ws) w.Dispose();
    }

    [TestMethod]
    public void FrozenBackboneStaysInEvaluationModeWhileTheHeadTrains()
    {
        using var model = new VisionTransformer(ModelTests.Tiny() with { Dropout = 0.5, AttentionDropout = 0.5, DropPath = 0.5 });
        using var scope = TensorScope.Begin();
        var images = Tensor.Randn([4, 1, 8, 8]);
        model.Train();
        CollectionAssert.AreNotEqual(model.ForwardFeatures(images).ToArray<float>(), model.ForwardFeatures(images).ToArray<float>(),
            "dropout is on in training mode");
        model.FreezeBackbone();
        model.Train();
        Assert.IsTrue(model.Training);
        Assert.IsTrue(model.Head!.Training);
        Assert.IsFalse(model.Blocks[0].Training);
        Assert.IsFalse(model.NamedParameters().Any(p => p.Parameter.RequiresGrad && !p.Name.StartsWith("head.")));
        CollectionAssert.AreEqual(model.ForwardFeatures(images).ToArray<float>(), model.ForwardFeatures(images).ToArray<float>(),
            "the frozen backbone has no dropout");
        model.ReplaceHead(5);
        Assert.IsTrue(model.Head!.Training);
        Assert.IsTrue(model.Head.Weight.RequiresGrad);
    }

    [TestMethod]
    public void WeightDecaySkipsBiasesNormsPositionEmbeddingAndClassToken()
    {
        using var model = new VisionTransformer(ModelTests.Tiny());
        using var opt = new AdamW(model.NamedParameters(), weightDecay: 0.05);
        var decayed = opt.Groups.Where(g => g.WeightDecay > 0).Select(g => g.Name).ToHashSet();
        Assert.Contains("blocks.0.attn.qkv.weight", decayed);
        Assert.Contains("patch_embed.proj.weight", decayed);
        Assert.Contains("head.weight", decayed);
        foreach (var n in new[] { "pos_embed", "cls_token", "blocks.0.attn.qkv.bias", "blocks.0.norm1.weight", "norm.weight", "head.bias" })
            Assert.DoesNotContain(n, decayed);
    }

    [TestMethod]
    public void ClipGradNormScalesToTheLimitAndReportsTheNorm()
    {
        using var scope = TensorScope.Begin();
        var a = Tensor.FromArray(new double[] { 1, 2 }, 2).DetachFromScope();
        var b = Tensor.FromArray(new double[] { 3 }, 1).DetachFromScope();
        using var _a = a;
        using var _b = b;
        a.RequiresGrad = b.RequiresGrad = true;
        // grads: d/da sum(a * [3, 4]) = [3, 4]; d/db sum(b * 12) = [12]; norm = 13.
        ((a * Tensor.FromArray(new double[] { 3, 4 }, 2)).Sum() + (b * 12.0).Sum()).Backward();
        using var opt = new AdamW([("a", a), ("b", b)]);
        Assert.AreEqual(13.0, opt.ClipGradNorm(1.3), 1e-12);
        var ga = a.Grad()!.ToArray<double>();
        Assert.AreEqual(0.3, ga[0], 1e-6);
        Assert.AreEqual(0.4, ga[1], 1e-6);
        Assert.AreEqual(1.2, b.Grad()!.ToArray<double>()[0], 1e-6);
    }

    [TestMethod]
    public void EvaluationBreaksTiesAsScoredDataDoes()
    {
        // A zero head scores every class alike: the first class is predicted, and every label is in the top k.
        using var model = new VisionTransformer(ModelTests.Tiny() with { NumClasses = 8 });
        model.Head!.Weight.Fill(0);
        using var scope = TensorScope.Begin();
        var pixels = new float[6 * 64];
        var labels = new long[] { 0, 1, 2, 3, 5, 7 };
        var data = new Data.InMemoryBatchSource(new Data.InMemoryDataset(pixels, labels, (1, 8, 8), 8), 6, shuffle: false);
        var r = Trainer.Evaluate(model, data);
        Assert.AreEqual(1.0 / 6, r.Accuracy, 1e-12, "only label 0 is the first of the tied classes");
        Assert.AreEqual(1.0, r.Top5Accuracy, 1e-12, "no class scores strictly higher than any label");
    }

    [TestMethod]
    public void InvalidTrainerOptionsAreNamed()
    {
        StringAssert.Contains(Assert.Throws<ArgumentException>(() => new TrainerOptions { Epochs = 0 }.Validate()).Message, "epochs");
        StringAssert.Contains(Assert.Throws<ArgumentException>(() => new TrainerOptions { LearningRate = -1 }.Validate()).Message, "learning rate");
        StringAssert.Contains(Assert.Throws<ArgumentException>(() => new TrainerOptions { LabelSmoothing = 1 }.Validate()).Message, "label smoothing");
    }
}

/// <summary>Reports on the calling thread (Progress&lt;T&gt; would post to the thread pool).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
