using static Vit.Torch.Tensor;
using TS = TorchSharp.torch;
using TF = TorchSharp.torch.nn.functional;

namespace Vit.Torch;

/// <summary>Neural-network functions (torch.nn.functional), all differentiable. Inside a bfloat16
/// <see cref="MixedPrecision.Autocast"/> region the products (linear, convolution, attention) run in bfloat16 and the loss
/// in float32; the others follow their input's type, as under PyTorch's CPU autocast (so the ViT's LayerNorms, fed by
/// the float32 residual stream, run in float32, and the attention's softmax, fed by a bfloat16 product, in bfloat16).</summary>
public static class F
{
    /// <summary>y = x Wᵀ + b, with W of shape (out, in); <paramref name="bias"/> may be null.</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null)
    {
        var (xs, w, b) = (x.Native, weight.Native, bias?.Native);
        return Run(() => Autocast.Product(xs, w, b, static (x, w, b) => TF.linear(x, w, b)));
    }

    /// <summary>GELU(x Wᵀ + b): the same as <c>Gelu(Linear(x, weight, bias))</c>.</summary>
    public static Tensor LinearGelu(Tensor x, Tensor weight, Tensor? bias = null)
    {
        var (xs, w, b) = (x.Native, weight.Native, bias?.Native);
        return Run(() =>
        {
            using var y = Autocast.Product(xs, w, b, static (x, w, b) => TF.linear(x, w, b));
            return TF.gelu(y);
        });
    }

    /// <summary>2-D convolution of (B, C, H, W) by weight (O, C, kh, kw).</summary>
    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias, (long H, long W) stride, (long H, long W) padding = default)
    {
        var (xs, w, b) = (x.Native, weight.Native, bias?.Native);
        long[] strides = [stride.H, stride.W], pads = [padding.H, padding.W];
        return Run(() => Autocast.Product(xs, w, b, (x, w, b) => TF.conv2d(x, w, b, strides, pads)));
    }

    /// <summary>Layer normalisation over the trailing dimensions <paramref name="normalizedShape"/>.</summary>
    public static Tensor LayerNorm(Tensor x, long[] normalizedShape, Tensor? weight, Tensor? bias, double eps = 1e-6)
    {
        var (xs, w, b) = (x.Native, weight?.Native, bias?.Native);
        return Run(() => TF.layer_norm(xs, normalizedShape, w, b, eps));
    }

    /// <summary>Exact GELU, x·Φ(x) (the erf form used by the ViT paper and timm).</summary>
    public static Tensor Gelu(Tensor x)
    {
        var xs = x.Native;
        return Run(() => TF.gelu(xs));
    }

    /// <summary>max(x, 0).</summary>
    public static Tensor Relu(Tensor x)
    {
        var xs = x.Native;
        return Run(() => TF.relu(xs));
    }

    /// <summary>Softmax along a dimension.</summary>
    public static Tensor Softmax(Tensor x, long dim)
    {
        var xs = x.Native;
        return Run(() => xs.softmax(dim));
    }

    /// <summary>
    /// Multi-head scaled dot-product self-attention of a fused projection: <paramref name="qkv"/> (B, N, 3D) holds
    /// q, k and v side by side, each <paramref name="heads"/> heads of D/heads; the result (B, N, D) is the heads'
    /// softmax(scale · q kᵀ) v concatenated (Vaswani et al. 2017, eq. 1). Dropout <paramref name="dropout"/> applies to
    /// the probabilities when <paramref name="training"/>; <paramref name="probabilities"/> receives them (B, H, N, N)
    /// before dropout, detached, when <paramref name="returnProbabilities"/>.
    /// </summary>
    public static Tensor SelfAttention(Tensor qkv, int heads, double scale, double dropout, bool training, out Tensor? probabilities, bool returnProbabilities)
    {
        var s = qkv.Shape;
        if (s.Length != 3) throw new TorchException($"self-attention expects the projection as (B, N, 3D), got [{string.Join(", ", s)}]");
        if (heads < 1 || s[2] % (3L * heads) != 0)
            throw new TorchException($"self-attention: the projection's last dimension {s[2]} is not 3 x heads x head size for {heads} heads");
        if (!(dropout >= 0 && dropout < 1)) throw new TorchException($"attention dropout must be in [0, 1), got {dropout}");
        long b = s[0], n = s[1], d = s[2] / 3, dh = d / heads;
        var x = qkv.Native;
        TS.Tensor? probs = null;
        Tensor output;
        try
        {
            output = Run(() =>
            {
                using var split = x.view(b, n, 3, heads, dh);
                using var perm = split.permute(2, 0, 3, 1, 4);                                                      // (3, B, H, N, Dh)
                TS.Tensor o;
                bool dropping = training && dropout > 0;
                bool fused = !returnProbabilities && !dropping && Math.Abs(scale * Math.Sqrt(dh) - 1) < 1e-12 && AttentionKernel.UseFused(n);
                if (fused)
                {
                    var qkvParts = perm.unbind(0);
                    using var q = qkvParts[0];
                    using var k = qkvParts[1];
                    using var v = qkvParts[2];
                    o = Autocast.Attention(q, k, v);                                                                // (B, H, N, Dh)
                }
                else
                {
                    // The heads side by side, (3, B·H, N, Dh): one copy (none when B or H is 1), after which the products are
                    // plain batched products on contiguous operands (a 4-d matmul of the permuted views copied q, k and v
                    // itself, forward and backward).
                    using var parts = perm.reshape(3, b * heads, n, dh);
                    var qkvParts = parts.unbind(0);
                    using var q = qkvParts[0];
                    using var k = qkvParts[1];
                    using var v = qkvParts[2];
                    using var qs = WithScalar(scale, v => q.mul(v));
                    using var kt = k.transpose(1, 2);
                    using var logits = Autocast.Product(qs, kt, null, static (a, bt, _) => a.bmm(bt));                // (B·H, N, N)
                    using var p = logits.softmax(-1);
                    if (returnProbabilities)
                    {
                        using var detached = p.detach();
                        probs = detached.view(b, heads, n, n);
                    }
                    using var kept = dropping ? DropoutOf(p, dropout) : p.alias();
                    using var o3 = Autocast.Product(kept, v, null, static (a, v, _) => a.bmm(v));                      // (B·H, N, Dh)
                    o = o3.view(b, heads, n, dh);
                }
                using (o)
                using (var heads1 = o.transpose(1, 2))
                    return heads1.reshape(b, n, d);                                                                 // (B, N, D)
            });
        }
        catch
        {
            probs?.Dispose();  // asked-for probabilities made before a later op failed
            throw;
        }
        probabilities = probs is null ? null : Wrap(probs);
        return output;
    }

    /// <summary>Log-softmax along a dimension (numerically stable).</summary>
    public static Tensor LogSoftmax(Tensor x, long dim)
    {
        var xs = x.Native;
        return Run(() => xs.log_softmax(dim));
    }

    /// <summary>Inverted dropout: zeroes elements with probability p and scales the rest by 1/(1-p) when training.
    /// The mask is drawn from this thread's generator (see <see cref="Torch.UseThreadGenerator"/>).</summary>
    public static Tensor Dropout(Tensor x, double p, bool training)
    {
        if (!(p >= 0 && p <= 1)) throw new TorchException($"dropout probability has to be between 0 and 1, but got {p}");
        var xs = x.Native;
        return Run(() => training && p > 0 ? DropoutOf(xs, p) : xs.alias());
    }

    private static TS.Tensor DropoutOf(TS.Tensor x, double p)
    {
        if (p >= 1) return TS.zeros_like(x);
        using var mask = TS.empty_like(x).bernoulli_(1 - p, Torch.Generator);
        using var kept = x.mul(mask);
        return WithScalar(1 - p, v => kept.div(v));
    }

    /// <summary>
    /// Resizes the spatial dimensions of (N, C, H, W) to (<paramref name="height"/>, <paramref name="width"/>) as
    /// <c>torch.nn.functional.interpolate(x, size, mode, align_corners=False, antialias)</c>: bilinear or bicubic
    /// (<see cref="Imaging.Interpolation.Bilinear"/>, <see cref="Imaging.Interpolation.Bicubic"/>); with
    /// <paramref name="antialias"/> the kernel widens when shrinking, as PIL's. Differentiable.
    /// </summary>
    public static Tensor Interpolate(Tensor x, long height, long width, Imaging.Interpolation mode, bool antialias = false)
    {
        var m = mode switch
        {
            Imaging.Interpolation.Bilinear => TS.InterpolationMode.Bilinear,
            Imaging.Interpolation.Bicubic => TS.InterpolationMode.Bicubic,
            _ => throw new ArgumentException($"Interpolate supports bilinear and bicubic, not {mode}", nameof(mode)),
        };
        var xs = x.Native;
        return Run(() => TF.interpolate(xs, [height, width], null, m, false, false, antialias));
    }

    /// <summary>How a loss is reduced over the batch.</summary>
    public enum Reduction
    {
        /// <summary>One loss per sample.</summary>
        None = 0,
        /// <summary>The mean over the batch.</summary>
        Mean = 1,
        /// <summary>The sum over the batch.</summary>
        Sum = 2,
    }

    /// <summary>
    /// Cross-entropy of logits (N, C) against int64 class indices (N) or class probabilities (N, C), with label
    /// smoothing ε: the target becomes (1-ε)·onehot + ε/C (as torch.nn.functional.cross_entropy). In float32 inside an
    /// autocast region.
    /// </summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor target, double labelSmoothing = 0, Reduction reduction = Reduction.Mean)
    {
        if (!(labelSmoothing >= 0 && labelSmoothing <= 1))
            throw new TorchException($"label smoothing must be between 0.0 and 1.0, got {labelSmoothing}");
        var (l, t) = (logits.Native, target.Native);
        var r = reduction switch
        {
            Reduction.None => TS.nn.Reduction.None,
            Reduction.Sum => TS.nn.Reduction.Sum,
            _ => TS.nn.Reduction.Mean,
        };
        return Run(() =>
        {
            using var l32 = Autocast.ToFloat32(l);
            return TF.cross_entropy(l32 ?? l, t, null, -100, r, labelSmoothing);
        });
    }
}
