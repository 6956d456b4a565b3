using System.Runtime.CompilerServices;
using Vit.Torch.Model;
using Vit.Torch.Training;

namespace Vit.Torch.Tests;

/// <summary>
/// Native handles return to their baseline: after training steps of a tiny ViT, and for each ownership rule of
/// <see cref="TensorScope"/>. <see cref="Tensor.LiveCount"/> is process-wide, so these tests rely on the
/// assembly running one test at a time (MSTestSettings.cs).
/// </summary>
[TestClass]
public sealed class LeakTests
{
    /// <summary>
    /// Lets the finalizers of tensors that other tests dropped without disposing run now, so they cannot
    /// lower the count in the middle of this test.
    /// </summary>
    private static long SettledLiveCount()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return Tensor.LiveCount;
    }

    private static VitConfig TinyConfig => new()
    {
        ImageSize = 8, PatchSize = 4, Channels = 1, Dim = 16, Depth = 2, Heads = 2, MlpDim = 32, NumClasses = 3,
        // Every stochastic path on, so the masks they create are counted too.
        Dropout = 0.1, AttentionDropout = 0.1, DropPath = 0.1,
    };

    [TestMethod]
    public void TinyVit_ForwardBackward_ReturnsToBaseline_AndZeroGradDropsGradients()
    {
        Torch.ManualSeed(3);
        long beforeModel = SettledLiveCount();
        using (var model = new VisionTransformer(TinyConfig))
        {
            var parameters = model.Parameters().ToList();
            long baseline = Tensor.LiveCount;
            Assert.AreEqual(beforeModel + parameters.Count, baseline, "building the model should leave exactly one handle per parameter");

            for (int step = 0; step < 3; step++)
            {
                using (TensorScope.Begin())
                {
                    var images = Tensor.Randn([2, 1, 8, 8]);
                    var labels = Tensor.FromArray(new long[] { 0, 2 }, 2);
                    var maps = new List<Tensor>();
                    var loss = F.CrossEntropy(model.Forward(images, maps), labels, labelSmoothing: 0.1);
                    loss.Backward();
                    Assert.HasCount(2, maps);
                    foreach (var p in parameters)
                        Assert.IsNotNull(p.Grad(), "every parameter takes part in the loss");
                    Assert.IsGreaterThan(baseline, Tensor.LiveCount);
                }
                Assert.AreEqual(baseline, Tensor.LiveCount, $"step {step}: handles left after the scope");

                model.ZeroGrad();
                Assert.AreEqual(baseline, Tensor.LiveCount, $"step {step}: ZeroGrad changed the handle count");
                using (TensorScope.Begin())
                    foreach (var (name, p) in model.NamedParameters())
                        Assert.IsNull(p.Grad(), $"{name} still has a gradient after ZeroGrad");
                Assert.AreEqual(baseline, Tensor.LiveCount);
            }

            // Evaluation without autograd goes through the same scope rules.
            model.Eval();
            using (Torch.NoGrad())
            using (TensorScope.Begin())
                model.Forward(Tensor.Randn([2, 1, 8, 8]));
            Assert.AreEqual(baseline, Tensor.LiveCount);
        }
        Assert.AreEqual(beforeModel, Tensor.LiveCount, "disposing the model should free every parameter");
    }

    [TestMethod]
    public void Scope_DisposesEverythingCreatedInside()
    {
        long before = SettledLiveCount();
        Tensor a, b;
        using (var scope = TensorScope.Begin())
        {
            a = Tensor.Ones([2, 3]);
            b = a * 2.0 + 1.0;  // two tensors: the product and the sum
            Assert.AreEqual(3, scope.Count);
            Assert.AreEqual(before + 3, Tensor.LiveCount);
        }
        Assert.IsTrue(a.IsDisposed);
        Assert.IsTrue(b.IsDisposed);
        Assert.AreEqual(before, Tensor.LiveCount);
        Assert.IsNull(TensorScope.Current);
    }

    [TestMethod]
    public void InnerScope_LeavesTensorsOfOuterScopeAlone()
    {
        long before = SettledLiveCount();
        using (TensorScope.Begin())
        {
            var outer = Tensor.Ones([2]);
            Tensor inner;
            using (TensorScope.Begin())
                inner = outer + 1.0;
            Assert.IsTrue(inner.IsDisposed);
            Assert.IsFalse(outer.IsDisposed);
            CollectionAssert.AreEqual(new float[] { 1, 1 }, outer.ToArray<float>());
        }
        Assert.AreEqual(before, Tensor.LiveCount);
    }

    [TestMethod]
    public void MoveToOuter_KeepsTensorAliveUntilTheEnclosingScopeEnds()
    {
        long before = SettledLiveCount();
        Tensor kept, dropped;
        using (TensorScope.Begin())
        {
            using (var inner = TensorScope.Begin())
            {
                dropped = Tensor.Ones([2]);
                kept = inner.MoveToOuter(dropped * 3.0);
            }
            Assert.IsTrue(dropped.IsDisposed);
            Assert.IsFalse(kept.IsDisposed);
            CollectionAssert.AreEqual(new float[] { 3, 3 }, kept.ToArray<float>());
            Assert.AreEqual(before + 1, Tensor.LiveCount);
        }
        Assert.IsTrue(kept.IsDisposed, "the enclosing scope owns the moved tensor");
        Assert.AreEqual(before, Tensor.LiveCount);
    }

    [TestMethod]
    public void MoveToOuter_WithoutEnclosingScope_CallerOwns()
    {
        long before = SettledLiveCount();
        Tensor kept;
        using (var scope = TensorScope.Begin())
            kept = scope.MoveToOuter(Tensor.Ones([2]));
        Assert.IsFalse(kept.IsDisposed);
        Assert.AreEqual(before + 1, Tensor.LiveCount);
        kept.Dispose();
        Assert.AreEqual(before, Tensor.LiveCount);
    }

    [TestMethod]
    public void DetachFromScope_MakesTheCallerOwnerThroughNestedScopes()
    {
        long before = SettledLiveCount();
        Tensor owned;
        using (TensorScope.Begin())
        {
            using (TensorScope.Begin())
                owned = (Tensor.Ones([2]) + 4.0).DetachFromScope();
            Assert.IsFalse(owned.IsDisposed);
        }
        Assert.IsFalse(owned.IsDisposed, "no scope may free a detached tensor");
        CollectionAssert.AreEqual(new float[] { 5, 5 }, owned.ToArray<float>());
        Assert.AreEqual(before + 1, Tensor.LiveCount);
        owned.Dispose();
        Assert.AreEqual(before, Tensor.LiveCount);
    }

    [TestMethod]
    public void DetachFromScope_OfTensorCreatedInOuterScope_FromInnerScope()
    {
        long before = SettledLiveCount();
        Tensor owned;
        using (TensorScope.Begin())
        {
            owned = Tensor.Ones([2]);
            using (TensorScope.Begin())
                owned.DetachFromScope();
        }
        Assert.IsFalse(owned.IsDisposed);
        owned.Dispose();
        Assert.AreEqual(before, Tensor.LiveCount);
    }

    [TestMethod]
    public void GradientTensors_AreHandlesOwnedByTheScope()
    {
        long before = SettledLiveCount();
        var w = Tensor.Ones([3]).DetachFromScope();
        w.RequiresGrad = true;
        using (TensorScope.Begin())
        {
            (w * 2.0).Sum().Backward();
            var g = w.Grad();
            Assert.IsNotNull(g);
            CollectionAssert.AreEqual(new float[] { 2, 2, 2 }, g.ToArray<float>());
        }
        Assert.AreEqual(before + 1, Tensor.LiveCount, "only the parameter itself remains");
        w.Dispose();
        Assert.AreEqual(before, Tensor.LiveCount);
    }

    [TestMethod]
    public void UndisposedTensorOutsideScopes_IsFreedByItsFinalizer()
    {
        long before = SettledLiveCount();
        CreateAndDrop();
        Assert.AreEqual(before, SettledLiveCount());
    }

    // Not inlined, so the dropped tensor is unreachable once this returns.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void CreateAndDrop()
    {
        Assert.IsNull(TensorScope.Current);
        _ = Tensor.Ones([4]);
    }

    /// <summary>TorchSharp's count of its tensors not yet disposed, on this thread.</summary>
    private static long TorchSharpLive => TorchSharp.DisposeScopeManager.Statistics.TensorStatistics.ThreadTotalLiveCount;

    /// <summary>
    /// Every TorchSharp tensor made inside our ops is disposed, not left to its finalizer: counted by TorchSharp itself,
    /// so an intermediate our wrappers never see (a view, a cast) is caught too. A leaked view made in the forward pass
    /// keeps the step's whole autograd graph, and with it every saved activation, alive until a garbage collection; that
    /// cost ViT-Ti/16 training ~300 MB of fresh pages per step and up to 4x its forward time.
    /// </summary>
    [TestMethod]
    [DataRow(Precision.Float32, 0.0, DisplayName = "float32, fused attention")]
    [DataRow(Precision.BFloat16, 0.0, DisplayName = "bfloat16, composed attention")]
    [DataRow(Precision.Float32, 0.1, DisplayName = "float32, dropout everywhere")]
    public void TrainingAndScoringLeaveNoTorchSharpTensorBehind(Precision precision, double dropout)
    {
        Torch.ManualSeed(5);
        using var model = new VisionTransformer(TinyConfig with { Dropout = dropout, AttentionDropout = dropout, DropPath = dropout });
        using var optimizer = new AdamW(model.NamedParameters(), 1e-3, 0.05);
        using var images = Tensor.Randn([2, 1, 8, 8]).DetachFromScope();
        using var labels = Tensor.FromArray(new long[] { 0, 2 }, 2).DetachFromScope();
        void Step()
        {
            using var scope = TensorScope.Begin();
            Tensor loss;
            using (MixedPrecision.Autocast(precision, Device.Cpu)) loss = F.CrossEntropy(model.Forward(images), labels, 0.1);
            loss.Backward();
            optimizer.ClipGradNorm(1.0);
            optimizer.Step();
            optimizer.ZeroGrad();
            Assert.IsTrue(double.IsFinite(loss.Item()));
        }
        void Score()
        {
            using var scope = TensorScope.Begin();
            using var noGrad = Torch.NoGrad();
            using (MixedPrecision.Autocast(precision, Device.Cpu)) _ = F.CrossEntropy(model.Forward(images), labels).Item();
        }
        Step();  // the optimizer's moments are made in the first step
        Score();
        long baseline = TorchSharpLive;
        for (int i = 0; i < 3; i++)
        {
            Step();
            Assert.AreEqual(baseline, TorchSharpLive, $"training step {i}: TorchSharp tensors left for the finalizer");
            Score();
            Assert.AreEqual(baseline, TorchSharpLive, $"scoring {i}: TorchSharp tensors left for the finalizer");
        }
    }
}
