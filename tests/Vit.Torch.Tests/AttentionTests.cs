using Vit.Torch.Model;
using Vit.Torch.Modules;

namespace Vit.Torch.Tests;

/// <summary>
/// The model's attention and encoder block against a direct computation with loops over double[]: the module
/// runs in float32, the reference in float64 from the same float32 weights and inputs.
/// </summary>
[TestClass]
public sealed class AttentionTests
{
    // Float32 results of O(1) through a few dot products of length ≤ 16 are good to ~1e-6.
    private const double Tol = 1e-5;

    private const int B = 2, N = 5, D = 8, H = 2, Dh = D / H, Mlp = 16;

    private static VitConfig Config(bool qkvBias = true) =>
        new() { ImageSize = 8, PatchSize = 4, Channels = 1, Dim = D, Depth = 1, Heads = H, MlpDim = Mlp, NumClasses = 3, QkvBias = qkvBias };

    /// <summary>
    /// Replaces the default initialisation (std .02, which makes attention nearly uniform and biases zero) with
    /// N(0, std²) values, so that every weight, bias and the softmax really shape the result.
    /// </summary>
    private static void Randomize(Module m, double std)
    {
        foreach (var p in m.Parameters()) p.NormalInit(0, std);
    }

    /// <summary>
    /// Multi-head self-attention of x (B, N, D), written from Vaswani et al. eq. 1 and timm's weight layout:
    /// the qkv output's columns are [q | k | v], each split into H heads of Dh columns.
    /// Returns (B, N, D); <paramref name="probs"/> receives softmax(q kᵀ/√Dh) as (B, H, N, N).
    /// </summary>
    private static double[] DirectAttention(double[] x, Attention attn, out double[] probs)
    {
        var wqkv = attn.Qkv.Weight.ToArray<float>();
        var bqkv = attn.Qkv.Bias?.ToArray<float>();
        var wp = attn.Proj.Weight.ToArray<float>();
        var bp = attn.Proj.Bias!.ToArray<float>();
        var qkv = ReferenceMath.Linear(x, B * N, D, wqkv, bqkv, 3 * D);  // (B·N, 3D)
        double Q(int b, int n, int h, int j, int which) => qkv[(b * N + n) * 3 * D + which * D + h * Dh + j];

        probs = new double[B * H * N * N];
        var heads = new double[B * N * D];  // (B, N, H·Dh): heads concatenated
        var row = new double[N];
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < N; i++)
                {
                    for (int t = 0; t < N; t++)
                    {
                        double dot = 0;
                        for (int j = 0; j < Dh; j++) dot += Q(b, i, h, j, 0) * Q(b, t, h, j, 1);
                        row[t] = dot / Math.Sqrt(Dh);
                    }
                    var p = ReferenceMath.Softmax(row);
                    p.CopyTo(probs, ((b * H + h) * N + i) * N);
                    for (int j = 0; j < Dh; j++)
                    {
                        double s = 0;
                        for (int t = 0; t < N; t++) s += p[t] * Q(b, t, h, j, 2);
                        heads[(b * N + i) * D + h * Dh + j] = s;
                    }
                }
        return ReferenceMath.Linear(heads, B * N, D, wp, bp, D);
    }

    private static (double[] X, Tensor T) Input()
    {
        var t = Tensor.Randn([B, N, D]);
        return (ReferenceMath.ToDouble(t.ToArray<float>()), t);
    }

    [TestMethod]
    public void Attention_MatchesDirectComputation()
    {
        Torch.ManualSeed(7);
        using var attn = new Attention(Config());
        Randomize(attn, 0.4);
        attn.Eval();
        using var scope = TensorScope.Begin();
        var (x, xt) = Input();
        var expected = DirectAttention(x, attn, out _);
        var y = attn.Forward(xt);
        CollectionAssert.AreEqual(new long[] { B, N, D }, y.Shape);
        ReferenceMath.AssertClose(expected, ReferenceMath.ToDouble(y.ToArray<float>()), Tol, Tol, "attention output");
    }

    [TestMethod]
    public void Attention_WithoutQkvBias_MatchesDirectComputation()
    {
        Torch.ManualSeed(8);
        using var attn = new Attention(Config(qkvBias: false));
        Assert.IsNull(attn.Qkv.Bias);
        Randomize(attn, 0.4);
        attn.Eval();
        using var scope = TensorScope.Begin();
        var (x, xt) = Input();
        var expected = DirectAttention(x, attn, out _);
        ReferenceMath.AssertClose(expected, ReferenceMath.ToDouble(attn.Forward(xt).ToArray<float>()), Tol, Tol, "attention output");
    }

    [TestMethod]
    public void Attention_MapRowsSumToOneAndEqualDirectProbabilities()
    {
        Torch.ManualSeed(9);
        using var attn = new Attention(Config());
        Randomize(attn, 0.4);
        attn.Eval();
        using var scope = TensorScope.Begin();
        var (x, xt) = Input();
        DirectAttention(x, attn, out var expectedProbs);
        attn.Forward(xt, true, out var map);
        Assert.IsNotNull(map);
        CollectionAssert.AreEqual(new long[] { B, H, N, N }, map.Shape);
        Assert.IsFalse(map.RequiresGrad, "the attention map is documented as detached");
        var p = ReferenceMath.ToDouble(map.ToArray<float>());
        for (int r = 0; r < B * H * N; r++)
            Assert.AreEqual(1.0, p.AsSpan(r * N, N).ToArray().Sum(), 1e-6, $"row {r} of the attention map");
        ReferenceMath.AssertClose(expectedProbs, p, Tol, Tol, "attention probabilities");
        // The weights make attention far from uniform, so this comparison is not trivially satisfied.
        Assert.IsGreaterThan(0.5, expectedProbs.Max());
    }

    [TestMethod]
    public void Attention_WithoutMapRequest_ReturnsNoMap()
    {
        using var attn = new Attention(Config());
        using var scope = TensorScope.Begin();
        attn.Forward(Tensor.Randn([B, N, D]), false, out var map);
        Assert.IsNull(map);
    }

    [TestMethod]
    public void EncoderBlock_MatchesDirectComputation()
    {
        // ViT eq. 2-3 with pre-norm: x' = x + MSA(LN1(x)); y = x' + fc2(GELU(fc1(LN2(x')))).
        Torch.ManualSeed(10);
        var cfg = Config();
        using var block = new EncoderBlock(cfg, dropPath: 0.1);  // drop path must be inactive in eval
        Randomize(block, 0.4);
        block.Eval();
        using var scope = TensorScope.Begin();
        var (x, xt) = Input();
        int rows = B * N;
        double eps = cfg.LayerNormEps;
        Assert.AreEqual(1e-6, eps);

        var n1 = ReferenceMath.LayerNorm(x, rows, D, block.Norm1.Weight.ToArray<float>(), block.Norm1.Bias.ToArray<float>(), eps);
        var a = DirectAttention(n1, block.Attn, out _);
        var x1 = x.Zip(a, (u, v) => u + v).ToArray();
        var n2 = ReferenceMath.LayerNorm(x1, rows, D, block.Norm2.Weight.ToArray<float>(), block.Norm2.Bias.ToArray<float>(), eps);
        var h = ReferenceMath.Linear(n2, rows, D, block.Mlp.Fc1.Weight.ToArray<float>(), block.Mlp.Fc1.Bias!.ToArray<float>(), Mlp);
        h = h.Select(ReferenceMath.Gelu).ToArray();
        var m = ReferenceMath.Linear(h, rows, Mlp, block.Mlp.Fc2.Weight.ToArray<float>(), block.Mlp.Fc2.Bias!.ToArray<float>(), D);
        var expected = x1.Zip(m, (u, v) => u + v).ToArray();

        var y = block.Forward(xt);
        ReferenceMath.AssertClose(expected, ReferenceMath.ToDouble(y.ToArray<float>()), 2 * Tol, 2 * Tol, "encoder block output");
    }
}
