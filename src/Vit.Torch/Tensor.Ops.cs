using Vit.Torch.Native;
using static Vit.Torch.Native.NativeMethods;

namespace Vit.Torch;

// Differentiable operations. Each returns a new tensor (see the class remarks on ownership).
public sealed unsafe partial class Tensor
{
    // ------------------------------------------------------------------ arithmetic (broadcasting)

    /// <summary>Elementwise sum.</summary>
    public static Tensor operator +(Tensor a, Tensor b) => Wrap(vit_tensor_add(a.Handle, b.Handle, out var o), o);

    /// <summary>Elementwise difference.</summary>
    public static Tensor operator -(Tensor a, Tensor b) => Wrap(vit_tensor_sub(a.Handle, b.Handle, out var o), o);

    /// <summary>Elementwise product.</summary>
    public static Tensor operator *(Tensor a, Tensor b) => Wrap(vit_tensor_mul(a.Handle, b.Handle, out var o), o);

    /// <summary>Elementwise quotient.</summary>
    public static Tensor operator /(Tensor a, Tensor b) => Wrap(vit_tensor_div(a.Handle, b.Handle, out var o), o);

    /// <summary>Negation.</summary>
    public static Tensor operator -(Tensor a) => Wrap(vit_tensor_neg(a.Handle, out var o), o);

    /// <summary>Adds a scalar.</summary>
    public static Tensor operator +(Tensor a, double s) => Wrap(vit_tensor_add_scalar(a.Handle, s, out var o), o);

    /// <summary>Adds a scalar.</summary>
    public static Tensor operator +(double s, Tensor a) => a + s;

    /// <summary>Subtracts a scalar.</summary>
    public static Tensor operator -(Tensor a, double s) => Wrap(vit_tensor_add_scalar(a.Handle, -s, out var o), o);

    /// <summary>s - a.</summary>
    public static Tensor operator -(double s, Tensor a) => Wrap(vit_tensor_rsub_scalar(a.Handle, s, out var o), o);

    /// <summary>Multiplies by a scalar.</summary>
    public static Tensor operator *(Tensor a, double s) => Wrap(vit_tensor_mul_scalar(a.Handle, s, out var o), o);

    /// <summary>Multiplies by a scalar.</summary>
    public static Tensor operator *(double s, Tensor a) => a * s;

    /// <summary>Divides by a scalar.</summary>
    public static Tensor operator /(Tensor a, double s) => Wrap(vit_tensor_div_scalar(a.Handle, s, out var o), o);

    /// <summary>Matrix product with numpy/torch broadcasting rules (torch.matmul).</summary>
    public Tensor MatMul(Tensor other) => Wrap(vit_tensor_matmul(Handle, other.Handle, out var o), o);

    /// <summary>Batched matrix product of (B, n, m) and (B, m, p).</summary>
    public Tensor Bmm(Tensor other) => Wrap(vit_tensor_bmm(Handle, other.Handle, out var o), o);

    /// <summary>Elementwise power.</summary>
    public Tensor Pow(double exponent) => Wrap(vit_tensor_pow_scalar(Handle, exponent, out var o), o);

    /// <summary>Elementwise e^x.</summary>
    public Tensor Exp() => Wrap(vit_tensor_exp(Handle, out var o), o);

    /// <summary>Elementwise natural logarithm.</summary>
    public Tensor Log() => Wrap(vit_tensor_log(Handle, out var o), o);

    /// <summary>Elementwise square root.</summary>
    public Tensor Sqrt() => Wrap(vit_tensor_sqrt(Handle, out var o), o);

    /// <summary>Elementwise tanh.</summary>
    public Tensor Tanh() => Wrap(vit_tensor_tanh(Handle, out var o), o);

    /// <summary>Elementwise |x|.</summary>
    public Tensor Abs() => Wrap(vit_tensor_abs(Handle, out var o), o);

    /// <summary>Elementwise error function.</summary>
    public Tensor Erf() => Wrap(vit_tensor_erf(Handle, out var o), o);

    /// <summary>Elementwise floor.</summary>
    public Tensor Floor() => Wrap(vit_tensor_floor(Handle, out var o), o);

    /// <summary>Clamps into [lo, hi].</summary>
    public Tensor Clamp(double lo, double hi) => Wrap(vit_tensor_clamp(Handle, lo, hi, out var o), o);

    /// <summary>Elementwise maximum.</summary>
    public Tensor Maximum(Tensor other) => Wrap(vit_tensor_maximum(Handle, other.Handle, out var o), o);

    // ------------------------------------------------------------------ comparisons (bool results)

    /// <summary>Elementwise equality (bool).</summary>
    public Tensor Eq(Tensor other) => Wrap(vit_tensor_eq(Handle, other.Handle, out var o), o);

    /// <summary>Elementwise equality with a scalar (bool).</summary>
    public Tensor Eq(double s) => Wrap(vit_tensor_eq_scalar(Handle, s, out var o), o);

    /// <summary>Elementwise a &lt; b (bool).</summary>
    public Tensor Lt(Tensor other) => Wrap(vit_tensor_lt(Handle, other.Handle, out var o), o);

    /// <summary>Elementwise a &lt; s (bool).</summary>
    public Tensor Lt(double s) => Wrap(vit_tensor_lt_scalar(Handle, s, out var o), o);

    /// <summary>Elementwise a &gt; s (bool).</summary>
    public Tensor Gt(double s) => Wrap(vit_tensor_gt_scalar(Handle, s, out var o), o);

    /// <summary>Elementwise finiteness (bool).</summary>
    public Tensor IsFinite() => Wrap(vit_tensor_isfinite(Handle, out var o), o);

    /// <summary>True when every element is non-zero (0-d bool).</summary>
    public Tensor All() => Wrap(vit_tensor_all(Handle, out var o), o);

    /// <summary>Picks from <paramref name="a"/> where cond is true, else from <paramref name="b"/>.</summary>
    public static Tensor Where(Tensor cond, Tensor a, Tensor b) => Wrap(vit_tensor_where(cond.Handle, a.Handle, b.Handle, out var o), o);

    // ------------------------------------------------------------------ reductions

    /// <summary>Sum of all elements (0-d).</summary>
    public Tensor Sum() => Wrap(vit_tensor_sum_all(Handle, out var o), o);

    /// <summary>Sum over the given dimensions.</summary>
    public Tensor Sum(long[] dims, bool keepDim = false)
    {
        fixed (long* p = dims) return Wrap(vit_tensor_sum(Handle, p, dims.Length, keepDim ? 1 : 0, out var o), o);
    }

    /// <summary>Sum over one dimension.</summary>
    public Tensor Sum(long dim, bool keepDim = false) => Sum([dim], keepDim);

    /// <summary>Mean of all elements (0-d).</summary>
    public Tensor Mean() => Wrap(vit_tensor_mean_all(Handle, out var o), o);

    /// <summary>Mean over the given dimensions.</summary>
    public Tensor Mean(long[] dims, bool keepDim = false)
    {
        fixed (long* p = dims) return Wrap(vit_tensor_mean(Handle, p, dims.Length, keepDim ? 1 : 0, out var o), o);
    }

    /// <summary>Mean over one dimension.</summary>
    public Tensor Mean(long dim, bool keepDim = false) => Mean([dim], keepDim);

    /// <summary>Maximum values and their indices along a dimension.</summary>
    public (Tensor Values, Tensor Indices) Max(long dim, bool keepDim = false)
    {
        Check(vit_tensor_max(Handle, dim, keepDim ? 1 : 0, out var v, out var i));
        return (new Tensor(v), new Tensor(i));
    }

    /// <summary>Indices of the maxima along a dimension (int64).</summary>
    public Tensor ArgMax(long dim, bool keepDim = false) => Wrap(vit_tensor_argmax(Handle, dim, keepDim ? 1 : 0, out var o), o);

    /// <summary>The k largest (or smallest) values and their indices along a dimension.</summary>
    public (Tensor Values, Tensor Indices) TopK(long k, long dim = -1, bool largest = true, bool sorted = true)
    {
        Check(vit_tensor_topk(Handle, k, dim, largest ? 1 : 0, sorted ? 1 : 0, out var v, out var i));
        return (new Tensor(v), new Tensor(i));
    }

    // ------------------------------------------------------------------ shape

    /// <summary>Same elements, new shape (copies only when needed; one dimension may be -1).</summary>
    public Tensor Reshape(params long[] shape)
    {
        fixed (long* p = shape) return Wrap(vit_tensor_reshape(Handle, p, shape.Length, out var o), o);
    }

    /// <summary>Same memory, new shape (the tensor must be viewable; one dimension may be -1).</summary>
    public Tensor View(params long[] shape)
    {
        fixed (long* p = shape) return Wrap(vit_tensor_view(Handle, p, shape.Length, out var o), o);
    }

    /// <summary>Reorders dimensions.</summary>
    public Tensor Permute(params long[] dims)
    {
        fixed (long* p = dims) return Wrap(vit_tensor_permute(Handle, p, dims.Length, out var o), o);
    }

    /// <summary>Swaps two dimensions.</summary>
    public Tensor Transpose(long dim0, long dim1) => Wrap(vit_tensor_transpose(Handle, dim0, dim1, out var o), o);

    /// <summary>Broadcasts size-1 dimensions to the given shape (-1 keeps a size), without copying.</summary>
    public Tensor Expand(params long[] shape)
    {
        fixed (long* p = shape) return Wrap(vit_tensor_expand(Handle, p, shape.Length, out var o), o);
    }

    /// <summary>Merges dimensions start..end into one.</summary>
    public Tensor Flatten(long startDim = 0, long endDim = -1) => Wrap(vit_tensor_flatten(Handle, startDim, endDim, out var o), o);

    /// <summary>Inserts a size-1 dimension.</summary>
    public Tensor Unsqueeze(long dim) => Wrap(vit_tensor_unsqueeze(Handle, dim, out var o), o);

    /// <summary>Removes a size-1 dimension.</summary>
    public Tensor Squeeze(long dim) => Wrap(vit_tensor_squeeze(Handle, dim, out var o), o);

    /// <summary>Elements start..end (exclusive) by step along a dimension (a view).</summary>
    public Tensor Slice(long dim, long start, long end, long step = 1) => Wrap(vit_tensor_slice(Handle, dim, start, end, step, out var o), o);

    /// <summary>Index <paramref name="index"/> of a dimension, removing that dimension (a view).</summary>
    public Tensor Select(long dim, long index) => Wrap(vit_tensor_select(Handle, dim, index, out var o), o);

    /// <summary>Rows (along dim) picked by an int64 index tensor.</summary>
    public Tensor IndexSelect(long dim, Tensor index) => Wrap(vit_tensor_index_select(Handle, dim, index.Handle, out var o), o);

    /// <summary>torch.gather.</summary>
    public Tensor Gather(long dim, Tensor index) => Wrap(vit_tensor_gather(Handle, dim, index.Handle, out var o), o);

    /// <summary>Splits into <paramref name="count"/> equal chunks along a dimension (views).</summary>
    public Tensor[] Chunk(int count, long dim)
    {
        var raw = new IntPtr[count];
        fixed (IntPtr* p = raw) Check(vit_tensor_chunk(Handle, count, dim, p));
        var result = new Tensor[count];
        for (int i = 0; i < count; i++) result[i] = new Tensor(raw[i]);
        return result;
    }

    /// <summary>Concatenates along an existing dimension.</summary>
    public static Tensor Cat(IReadOnlyList<Tensor> parts, long dim) => Combine(parts, dim, stack: false);

    /// <summary>Stacks along a new dimension.</summary>
    public static Tensor Stack(IReadOnlyList<Tensor> parts, long dim) => Combine(parts, dim, stack: true);

    private static Tensor Combine(IReadOnlyList<Tensor> parts, long dim, bool stack)
    {
        using var pinned = new HandleArray(parts);
        var p = pinned.Pointer;
        IntPtr o;
        int status = stack ? vit_tensor_stack(p, parts.Count, dim, out o) : vit_tensor_cat(p, parts.Count, dim, out o);
        return Wrap(status, o);
    }

    /// <summary>One-hot encoding of int64 class indices: (N) -> (N, classes).</summary>
    public Tensor OneHot(long classes, DType dtype = DType.Float32) => Wrap(vit_tensor_one_hot(Handle, classes, (int)dtype, out var o), o);
}

/// <summary>
/// Raw handles of several tensors for one native call, holding a reference on each SafeHandle so none can
/// be freed while the call runs.
/// </summary>
internal unsafe struct HandleArray : IDisposable
{
    private readonly TensorHandle[] handles;
    private readonly IntPtr[] raw;
    private System.Runtime.InteropServices.GCHandle pin;
    private int added;

    public HandleArray(IReadOnlyList<Tensor> tensors)
    {
        handles = new TensorHandle[tensors.Count];
        raw = new IntPtr[tensors.Count];
        added = 0;
        try
        {
            for (int i = 0; i < tensors.Count; i++)
            {
                handles[i] = tensors[i].Handle;
                bool ok = false;
                handles[i].DangerousAddRef(ref ok);
                added++;
                raw[i] = handles[i].DangerousGetHandle();
            }
        }
        catch
        {
            for (int i = 0; i < added; i++) handles[i].DangerousRelease();
            throw;
        }
        pin = System.Runtime.InteropServices.GCHandle.Alloc(raw, System.Runtime.InteropServices.GCHandleType.Pinned);
    }

    public readonly IntPtr* Pointer => (IntPtr*)pin.AddrOfPinnedObject();

    public void Dispose()
    {
        if (pin.IsAllocated) pin.Free();
        for (int i = 0; i < added; i++) handles[i].DangerousRelease();
        added = 0;
    }
}
