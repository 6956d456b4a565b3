using Vit.Torch.Native;
using static Vit.Torch.Native.NativeMethods;

namespace Vit.Torch;

/// <summary>Neural-network functions (torch.nn.functional), all differentiable.</summary>
public static unsafe class F
{
    /// <summary>y = x Wᵀ + b, with W of shape (out, in); <paramref name="bias"/> may be null.</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null) =>
        Tensor.Wrap(vit_nn_linear(x.Handle, weight.Handle, bias?.Handle ?? TensorHandle.Null, 0, out var o), o);

    /// <summary>
    /// GELU(x Wᵀ + b): the same as <c>Gelu(Linear(x, weight, bias))</c>. When scoring in bfloat16 (autograd not
    /// recording) on a CPU with AVX-512, one oneDNN product computes it with the bias and the GELU in its epilogue.
    /// </summary>
    public static Tensor LinearGelu(Tensor x, Tensor weight, Tensor? bias = null) =>
        Tensor.Wrap(vit_nn_linear(x.Handle, weight.Handle, bias?.Handle ?? TensorHandle.Null, 1, out var o), o);

    /// <summary>2-D convolution of (B, C, H, W) by weight (O, C, kh, kw).</summary>
    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias, (long H, long W) stride, (long H, long W) padding = default) =>
        Tensor.Wrap(vit_nn_conv2d(x.Handle, weight.Handle, bias?.Handle ?? TensorHandle.Null,
            stride.H, stride.W, padding.H, padding.W, out var o), o);

    /// <summary>Layer normalisation over the trailing dimensions <paramref name="normalizedShape"/>.</summary>
    public static Tensor LayerNorm(Tensor x, long[] normalizedShape, Tensor? weight, Tensor? bias, double eps = 1e-6)
    {
        fixed (long* p = normalizedShape)
            return Tensor.Wrap(vit_nn_layer_norm(x.Handle, p, normalizedShape.Length,
                weight?.Handle ?? TensorHandle.Null, bias?.Handle ?? TensorHandle.Null, eps, out var o), o);
    }

    /// <summary>Exact GELU, x·Φ(x) (the erf form used by the ViT paper and timm).</summary>
    public static Tensor Gelu(Tensor x) => Tensor.Wrap(vit_tensor_gelu(x.Handle, out var o), o);

    /// <summary>max(x, 0).</summary>
    public static Tensor Relu(Tensor x) => Tensor.Wrap(vit_tensor_relu(x.Handle, out var o), o);

    /// <summary>Softmax along a dimension.</summary>
    public static Tensor Softmax(Tensor x, long dim) => Tensor.Wrap(vit_nn_softmax(x.Handle, dim, out var o), o);

    /// <summary>
    /// Multi-head scaled dot-product self-attention of a fused projection, one autograd node: <paramref name="qkv"/>
    /// (B, N, 3D) holds q, k and v side by side, each <paramref name="heads"/> heads of D/heads; the result (B, N, D) is
    /// the heads' softmax(scale · q kᵀ) v concatenated (Vaswani et al. 2017, eq. 1). The same mathematics as the chain
    /// reshape, permute, matmul, softmax, matmul, with one reorder instead of three copies and bfloat16 softmax on
    /// oneDNN's AVX-512 kernels. Dropout <paramref name="dropout"/> applies to the probabilities when
    /// <paramref name="training"/>; <paramref name="probabilities"/> receives them (B, H, N, N) before dropout, detached.
    /// </summary>
    public static Tensor SelfAttention(Tensor qkv, int heads, double scale, double dropout, bool training, out Tensor? probabilities, bool returnProbabilities)
    {
        IntPtr p = IntPtr.Zero;
        int status = vit_nn_self_attention(qkv.Handle, heads, scale, dropout, training ? 1 : 0, out var o, returnProbabilities ? &p : null);
        var output = Tensor.Wrap(status, o);
        probabilities = returnProbabilities ? Tensor.Wrap(0, p) : null;
        return output;
    }

    /// <summary>Log-softmax along a dimension (numerically stable).</summary>
    public static Tensor LogSoftmax(Tensor x, long dim) => Tensor.Wrap(vit_nn_log_softmax(x.Handle, dim, out var o), o);

    /// <summary>Inverted dropout: zeroes elements with probability p and scales the rest by 1/(1-p) when training.</summary>
    public static Tensor Dropout(Tensor x, double p, bool training) =>
        Tensor.Wrap(vit_nn_dropout(x.Handle, p, training ? 1 : 0, out var o), o);

    /// <summary>
    /// Resizes the spatial dimensions of (N, C, H, W) to (<paramref name="height"/>, <paramref name="width"/>) as
    /// <c>torch.nn.functional.interpolate(x, size, mode, align_corners=False, antialias)</c>: bilinear or bicubic
    /// (<see cref="Imaging.Interpolation.Bilinear"/>, <see cref="Imaging.Interpolation.Bicubic"/>); with
    /// <paramref name="antialias"/> the kernel widens when shrinking, as PIL's. Differentiable.
    /// </summary>
    public static Tensor Interpolate(Tensor x, long height, long width, Imaging.Interpolation mode, bool antialias = false)
    {
        int code = mode switch
        {
            Imaging.Interpolation.Bilinear => 1,
            Imaging.Interpolation.Bicubic => 2,
            _ => throw new ArgumentException($"Interpolate supports bilinear and bicubic, not {mode}", nameof(mode)),
        };
        return Tensor.Wrap(vit_nn_interpolate(x.Handle, code, height, width, antialias ? 1 : 0, out var o), o);
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
    /// smoothing ε: the target becomes (1-ε)·onehot + ε/C (as torch.nn.functional.cross_entropy).
    /// </summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor target, double labelSmoothing = 0, Reduction reduction = Reduction.Mean) =>
        Tensor.Wrap(vit_nn_cross_entropy(logits.Handle, target.Handle, labelSmoothing, (int)reduction, out var o), o);
}
