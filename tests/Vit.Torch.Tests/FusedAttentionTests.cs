using Vit.Torch.Model;

namespace Vit.Torch.Tests;

/// <summary>
/// The fused attention node (F.SelfAttention, used by <see cref="Attention"/>) against the chain of tensor ops it
/// replaces (<see cref="ComposedAttention"/>), on the same weights: outputs and every parameter's gradient,
/// in float32 and under bfloat16 autocast (where the fused node's softmax runs on oneDNN).
/// </summary>
[TestClass]
public sealed class FusedAttentionTests
{
    private static VitConfig Config(int dim = 24, int heads = 3) =>
        new() { ImageSize = 8, PatchSize = 4, Channels = 1, Dim = dim, Depth = 1, Heads = heads, MlpDim = 2 * dim, NumClasses = 3 };

    /// <summary>
    /// The layer's attention (ViT eq. 5-8) written as the chain of plain tensor ops the fused node replaces, with the
    /// layer's own projections: softmax(q kᵀ / √Dh) v per head, heads concatenated, projected. Evaluation mode only (no
    /// dropout), as the comparisons run.
    /// </summary>
    private static Tensor ComposedAttention(Attention attn, Tensor x, int heads)
    {
        Assert.IsFalse(attn.Training, "the composed chain has no dropout: compare in evaluation mode");
        var s = x.Shape;
        long b = s[0], n = s[1], d = s[2], dh = d / heads;
        var qkv = attn.Qkv.Forward(x)                  // (B, N, 3D)
            .Reshape(b, n, 3, heads, dh)               // (B, N, 3, H, Dh)
            .Permute(2, 0, 3, 1, 4);                   // (3, B, H, N, Dh)
        var q = qkv.Select(0, 0);                      // (B, H, N, Dh)
        var k = qkv.Select(0, 1);
        var v = qkv.Select(0, 2);
        var logits = (q * (1.0 / Math.Sqrt(dh))).MatMul(k.Transpose(-2, -1));  // (B, H, N, N)
        var o = F.Softmax(logits, -1).MatMul(v)        // (B, H, N, Dh)
            .Transpose(1, 2)                           // (B, N, H, Dh)
            .Reshape(b, n, d);                         // (B, N, D): heads concatenated
        return attn.Proj.Forward(o);
    }

    private static (double[] Output, Dictionary<string, double[]> Grads) Run(Attention attn, Tensor x, int heads, bool fused, Precision precision)
    {
        using var scope = TensorScope.Begin();
        attn.ZeroGrad();
        Tensor y;
        using (MixedPrecision.Autocast(precision, Device.Cpu)) y = fused ? attn.Forward(x) : ComposedAttention(attn, x, heads);
        var w = Tensor.Randn(y.Shape);  // same draw in both runs: the caller reseeds
        (y.To(DType.Float32) * w).Sum().Backward();
        var grads = attn.NamedParameters().ToDictionary(p => p.Name, p => ReferenceMath.ToDouble(p.Parameter.Grad()!.To(DType.Float32).ToArray<float>()));
        return (ReferenceMath.ToDouble(y.To(DType.Float32).ToArray<float>()), grads);
    }

    private static void Compare(Precision precision, double tol, int dim, int heads, int n, Precision reference = Precision.Float32)
    {
        Torch.ManualSeed(3);
        using var attn = new Attention(Config(dim, heads));
        // Weights of std 1.5/√D: q, k of O(1), logits of O(1) whatever the width, so that the softmax is far from uniform
        // yet not so peaked that bfloat16's rounding of a logit flips which token dominates.
        foreach (var p in attn.Parameters()) p.NormalInit(0, 1.5 / Math.Sqrt(dim));
        attn.Eval();
        using var x = Tensor.Randn([2, n, dim]).DetachFromScope();
        Torch.ManualSeed(4);
        var fused = Run(attn, x, heads, fused: true, precision);
        Torch.ManualSeed(4);
        var composed = Run(attn, x, heads, fused: false, reference);
        ReferenceMath.AssertClose(composed.Output, fused.Output, tol, tol, $"{precision} attention output");
        foreach (var (name, g) in composed.Grads)
        {
            Assert.IsGreaterThan(1e-3, g.Max(Math.Abs), $"the gradient of {name} is not trivially small");
            ReferenceMath.AssertClose(g, fused.Grads[name], tol * Math.Max(1, g.Max(Math.Abs)), tol, $"{precision} gradient of {name}");
        }
    }

    [TestMethod]
    public void Float32_EqualsTheComposedOps() => Compare(Precision.Float32, 1e-5, dim: 24, heads: 3, n: 7);

    /// <summary>Above <see cref="AttentionKernel.ComposedUpToTokens"/> tokens the layer takes libtorch's fused kernel
    /// (below, the same chain as the reference): both kernels are held to the chain.</summary>
    [TestMethod]
    public void Float32_LongSequenceThroughTheFusedKernelEqualsTheComposedOps() =>
        Compare(Precision.Float32, 1e-5, dim: 24, heads: 3, n: (int)AttentionKernel.ComposedUpToTokens + 3);

    /// <summary>bfloat16's rounding grows with the number of tokens each output sums over: at 259 tokens the composed
    /// chain in bfloat16 came 5.4e-2 from float32 and the fused kernel 4.5e-2 (at 17 tokens, under 4e-2). A wrong
    /// scale, mask or head order is off by O(1).</summary>
    [TestMethod]
    public void BFloat16_LongSequenceThroughTheFusedKernelStaysWithinBFloat16RoundingOfFloat32() =>
        Compare(Precision.BFloat16, 8e-2, dim: 64, heads: 2, n: (int)AttentionKernel.ComposedUpToTokens + 3);

    [TestMethod]
    public void Float32_OneHeadAndOneToken() => Compare(Precision.Float32, 1e-5, dim: 8, heads: 1, n: 1);

    [TestMethod]
    public void BFloat16_StaysWithinBFloat16RoundingOfFloat32()
    {
        // bfloat16 keeps 8 significant bits (relative rounding 2^-9 ≈ 2e-3); through two products and a softmax of
        // O(1) values the results stay within a few 1e-2 of float32's.
        Compare(Precision.BFloat16, 4e-2, dim: 64, heads: 2, n: 17);
    }

    [TestMethod]
    public void BFloat16_EqualsTheComposedOpsInBFloat16()
    {
        // Both in bfloat16 with the same products: what differs is only the softmax kernel (oneDNN's here, ATen's in the
        // chain) and where roundings fall, so they agree far closer than either does with float32.
        Compare(Precision.BFloat16, 1e-2, dim: 64, heads: 2, n: 17, reference: Precision.BFloat16);
    }

    [TestMethod]
    public void BFloat16_RunsInBFloat16AndKeepsFloat32Gradients()
    {
        Torch.ManualSeed(5);
        using var attn = new Attention(Config());
        using var scope = TensorScope.Begin();
        var x = Tensor.Randn([2, 5, 24]);
        Tensor y;
        using (MixedPrecision.Autocast(Precision.BFloat16, Device.Cpu)) y = attn.Forward(x, true, out var map);
        Assert.AreEqual(DType.BFloat16, y.DType, "under autocast the projections run in bfloat16");
        y.To(DType.Float32).Sum().Backward();
        foreach (var p in attn.Parameters())
        {
            Assert.AreEqual(DType.Float32, p.DType, "master weights stay float32");
            Assert.AreEqual(DType.Float32, p.Grad()!.DType, "gradients reach the float32 weights in float32");
        }
    }

    [TestMethod]
    public void MapOfTheFusedNodeEqualsTheComposedSoftmax()
    {
        Torch.ManualSeed(6);
        using var attn = new Attention(Config());
        foreach (var p in attn.Parameters()) p.NormalInit(0, 0.3);
        using var scope = TensorScope.Begin();
        var x = Tensor.Randn([2, 5, 24]);
        attn.Forward(x, true, out var map);
        var qkv = attn.Qkv.Forward(x).Reshape(2, 5, 3, 3, 8).Permute(2, 0, 3, 1, 4);
        var expected = F.Softmax((qkv.Select(0, 0) / Math.Sqrt(8)).MatMul(qkv.Select(0, 1).Transpose(-2, -1)), -1);
        ReferenceMath.AssertClose(ReferenceMath.ToDouble(expected.ToArray<float>()), ReferenceMath.ToDouble(map!.ToArray<float>()), 1e-6, 1e-6, "attention map");
    }

    [TestMethod]
    public void AttentionDropout_DropsWholeProbabilitiesAndScalesTheRest()
    {
        // With dropout p, every probability is either dropped or divided by 1 - p: with v = identity-like values the
        // output rows are the kept probabilities, so a row's entries are 0 or P / (1 - p).
        Torch.ManualSeed(7);
        using var scope = TensorScope.Begin();
        const int n = 6, heads = 1, d = 6;
        var qk = Tensor.Randn([1, n, 2 * d]);
        var eye = new float[n * n];
        for (int i = 0; i < n; i++) eye[i * n + i] = 1;
        var v = Tensor.FromArray(eye, 1, n, n);                                // (1, N, D = N): o = P
        var qkv = Tensor.Cat([qk, v], 2);                                      // (1, N, 3D)
        var p = F.SelfAttention(qkv, heads, 0.5, 0, false, out _, false).ToArray<float>();
        var dropped = F.SelfAttention(qkv, heads, 0.5, 0.5, true, out _, false).ToArray<float>();
        int zeros = 0;
        for (int i = 0; i < p.Length; i++)
            if (dropped[i] == 0) zeros++;
            else Assert.AreEqual(p[i] / 0.5, dropped[i], 1e-5, $"a kept probability is scaled by 1 / (1 - p) (element {i})");
        Assert.IsTrue(zeros > 5 && zeros < 31, $"about half of 36 probabilities are dropped, got {zeros}");
    }

    [TestMethod]
    public void BadShapesAreRefusedByName()
    {
        using var scope = TensorScope.Begin();
        var e = Assert.ThrowsExactly<TorchException>(() => F.SelfAttention(Tensor.Randn([2, 3, 10]), 2, 1, 0, false, out _, false));
        Assert.Contains("not 3 x heads x head size", e.Message);
        e = Assert.ThrowsExactly<TorchException>(() => F.SelfAttention(Tensor.Randn([6, 12]), 2, 1, 0, false, out _, false));
        Assert.Contains("(B, N, 3D)", e.Message);
        e = Assert.ThrowsExactly<TorchException>(() => F.SelfAttention(Tensor.Randn([2, 3, 12]), 2, 1, 1.0, true, out _, false));
        Assert.Contains("dropout", e.Message);
    }
}

/// <summary>
/// F.LinearGelu and F.Linear when scoring in bfloat16 (one oneDNN product with the bias and GELU in its epilogue)
/// against ATen's linear and gelu on the same bfloat16 operands (the path taken while autograd records).
/// </summary>
[TestClass]
public sealed class FusedLinearTests
{
    private static double[] Floats(Tensor t) => ReferenceMath.ToDouble(t.To(DType.Float32).ToArray<float>());

    [TestMethod]
    [DataRow(true, true)]
    [DataRow(true, false)]
    [DataRow(false, true)]
    [DataRow(false, false)]
    public void BFloat16Scoring_EqualsAtenOnTheSameOperands(bool gelu, bool bias)
    {
        Torch.ManualSeed(11);
        using var scope = TensorScope.Begin();
        var x = Tensor.Randn([3, 7, 40]);   // (B, N, in): a 3-D input as the blocks give it
        var w = Tensor.Randn([24, 40]) * 0.2;
        var b = bias ? Tensor.Randn([24]) : null;
        Tensor fused, aten;
        using (MixedPrecision.Autocast(Precision.BFloat16, Device.Cpu))
        {
            using (Torch.InferenceMode()) fused = gelu ? F.LinearGelu(x, w, b) : F.Linear(x, w, b);
            var xg = x.Detach();
            xg.RequiresGrad = true;                                    // autograd records: ATen's kernels
            aten = gelu ? F.Gelu(F.Linear(xg, w, b)) : F.Linear(xg, w, b);
        }
        Assert.AreEqual(DType.BFloat16, fused.DType);
        CollectionAssert.AreEqual(new long[] { 3, 7, 24 }, fused.Shape);
        // Same bfloat16 products; they differ by where the sum is rounded (and the bias, float32 here, bfloat16 in ATen's).
        ReferenceMath.AssertClose(Floats(aten), Floats(fused), 3e-2, 1e-2, $"linear (gelu {gelu}, bias {bias})");
        using (Torch.NoGrad())
        {
            var exact = F.Linear(x, w, b);
            if (gelu) exact = F.Gelu(exact);
            ReferenceMath.AssertClose(Floats(exact), Floats(fused), 6e-2, 2e-2, "bfloat16 scoring against float32");
        }
    }

    [TestMethod]
    public void Float32Scoring_IsAtensLinearExactly()
    {
        Torch.ManualSeed(12);
        using var scope = TensorScope.Begin();
        var x = Tensor.Randn([5, 16]);
        var w = Tensor.Randn([8, 16]);
        var b = Tensor.Randn([8]);
        Tensor y, expected;
        using (Torch.InferenceMode()) y = F.LinearGelu(x, w, b);
        var xg = x.Detach();
        xg.RequiresGrad = true;
        expected = F.Gelu(F.Linear(xg, w, b));
        CollectionAssert.AreEqual(expected.Detach().ToArray<float>(), y.ToArray<float>(), "float32 takes ATen's kernels either way");
    }

    [TestMethod]
    public void LinearGelu_IsDifferentiable()
    {
        GradCheck.Check(xs => F.LinearGelu(xs[0], xs[1], xs[2]),
            new GradCheck.Input([0.3, -1.2, 0.8, 0.1, -0.4, 2.0], [2, 3]),
            new GradCheck.Input([0.5, -0.2, 0.9, -1.1, 0.3, 0.7, 0.2, -0.6, 1.4, -0.8, 0.05, 0.6], [4, 3]),
            new GradCheck.Input([0.1, -0.3, 0.2, 0.0], [4]));
    }
}
