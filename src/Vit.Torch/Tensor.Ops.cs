using TS = TorchSharp.torch;

namespace Vit.Torch;

// Differentiable operations. Each returns a new tensor (see the class remarks on ownership).
public sealed partial class Tensor
{
    // ------------------------------------------------------------------ arithmetic (broadcasting)

    /// <summary>Elementwise sum.</summary>
    public static Tensor operator +(Tensor a, Tensor b) => Binary(a, b, static (x, y) => x.add(y, One));

    /// <summary>Elementwise difference.</summary>
    public static Tensor operator -(Tensor a, Tensor b) => Binary(a, b, static (x, y) => x.sub(y));

    /// <summary>Elementwise product.</summary>
    public static Tensor operator *(Tensor a, Tensor b) => Binary(a, b, static (x, y) => x.mul(y));

    /// <summary>Elementwise quotient.</summary>
    public static Tensor operator /(Tensor a, Tensor b) => Binary(a, b, static (x, y) => x.div(y));

    /// <summary>Negation.</summary>
    public static Tensor operator -(Tensor a) => Unary(a, static x => x.neg());

    /// <summary>Adds a scalar.</summary>
    public static Tensor operator +(Tensor a, double s) => Unary(a, x => WithScalar(s, v => x.add(v, One)));

    /// <summary>Adds a scalar.</summary>
    public static Tensor operator +(double s, Tensor a) => a + s;

    /// <summary>Subtracts a scalar.</summary>
    public static Tensor operator -(Tensor a, double s) => Unary(a, x => WithScalar(s, v => x.sub(v)));

    /// <summary>s - a.</summary>
    public static Tensor operator -(double s, Tensor a) => Unary(a, x => WithScalar(s, v => x.neg().add_(v, One)));

    /// <summary>Multiplies by a scalar.</summary>
    public static Tensor operator *(Tensor a, double s) => Unary(a, x => WithScalar(s, v => x.mul(v)));

    /// <summary>Multiplies by a scalar.</summary>
    public static Tensor operator *(double s, Tensor a) => a * s;

    /// <summary>Divides by a scalar.</summary>
    public static Tensor operator /(Tensor a, double s) => Unary(a, x => WithScalar(s, v => x.div(v)));

    /// <summary>Matrix product with numpy/torch broadcasting rules (torch.matmul).</summary>
    public Tensor MatMul(Tensor other)
    {
        CheckMatMulShapes(Shape, other.Shape);
        return Autocast.Binary(this, other, static (x, y) => x.matmul(y));
    }

    /// <summary>torch.matmul's shape rules, checked here: TorchSharp 0.107's matmul does not catch libtorch's error, which
    /// would end the process.</summary>
    private static void CheckMatMulShapes(long[] a, long[] b)
    {
        static string Text(long[] s) => string.Join("x", s);
        if (a.Length == 0 || b.Length == 0)
            throw new TorchException($"both arguments to matmul need to be at least 1D, but they are {a.Length}D and {b.Length}D");
        long inner = a[^1], other = b.Length == 1 ? b[0] : b[^2];
        if (inner != other)
            throw new TorchException($"mat1 and mat2 shapes cannot be multiplied ({Text(a)} and {Text(b)})");
        // Batch dimensions broadcast (those before the last two; a 1-D argument has none).
        int na = Math.Max(0, a.Length - 2), nb = Math.Max(0, b.Length - 2);
        for (int i = 1; i <= Math.Min(na, nb); i++)
        {
            long x = a[na - i], y = b[nb - i];
            if (x != y && x != 1 && y != 1)
                throw new TorchException($"matmul: the batch dimensions of {Text(a)} and {Text(b)} do not broadcast ({x} against {y})");
        }
    }

    /// <summary>Batched matrix product of (B, n, m) and (B, m, p).</summary>
    public Tensor Bmm(Tensor other) => Autocast.Binary(this, other, static (x, y) => x.bmm(y));

    /// <summary>Elementwise power.</summary>
    public Tensor Pow(double exponent) => Unary(this, x => WithScalar(exponent, v => x.pow(v)));

    /// <summary>Elementwise e^x.</summary>
    public Tensor Exp() => Unary(this, static x => x.exp());

    /// <summary>Elementwise natural logarithm.</summary>
    public Tensor Log() => Unary(this, static x => x.log());

    /// <summary>Elementwise square root.</summary>
    public Tensor Sqrt() => Unary(this, static x => x.sqrt());

    /// <summary>Elementwise tanh.</summary>
    public Tensor Tanh() => Unary(this, static x => x.tanh());

    /// <summary>Elementwise |x|.</summary>
    public Tensor Abs() => Unary(this, static x => x.abs());

    /// <summary>Elementwise error function.</summary>
    public Tensor Erf() => Unary(this, static x => x.erf());

    /// <summary>Elementwise floor.</summary>
    public Tensor Floor() => Unary(this, static x => x.floor());

    /// <summary>Clamps into [lo, hi].</summary>
    public Tensor Clamp(double lo, double hi) => Unary(this, x => WithScalars(lo, hi, (a, b) => x.clamp(a, b)));

    /// <summary>Elementwise maximum.</summary>
    public Tensor Maximum(Tensor other) => Binary(this, other, static (x, y) => x.maximum(y));

    // ------------------------------------------------------------------ comparisons (bool results)

    /// <summary>Elementwise equality (bool).</summary>
    public Tensor Eq(Tensor other) => Binary(this, other, static (x, y) => x.eq(y));

    /// <summary>Elementwise equality with a scalar (bool).</summary>
    public Tensor Eq(double s) => Unary(this, x => WithScalar(s, v => x.eq(v)));

    /// <summary>Elementwise a &lt; b (bool).</summary>
    public Tensor Lt(Tensor other) => Binary(this, other, static (x, y) => x.lt(y));

    /// <summary>Elementwise a &lt; s (bool).</summary>
    public Tensor Lt(double s) => Unary(this, x => WithScalar(s, v => x.lt(v)));


    /// <summary>Elementwise finiteness (bool).</summary>
    public Tensor IsFinite() => Unary(this, static x => x.isfinite());

    /// <summary>True when every element is non-zero (0-d bool).</summary>
    public Tensor All() => Unary(this, static x => x.all());

    /// <summary>Picks from <paramref name="a"/> where cond is true, else from <paramref name="b"/>.</summary>
    public static Tensor Where(Tensor cond, Tensor a, Tensor b)
    {
        var (c, x, y) = (cond.Native, a.Native, b.Native);
        return Run(() => TorchSharp.torch.where(c, x, y));
    }

    // ------------------------------------------------------------------ reductions

    /// <summary>Sum of all elements (0-d).</summary>
    public Tensor Sum() => Unary(this, static x => x.sum());

    /// <summary>Sum over the given dimensions.</summary>
    public Tensor Sum(long[] dims, bool keepDim = false)
    {
        return Unary(this, x => x.sum(dims, keepDim));
    }

    /// <summary>Sum over one dimension.</summary>
    public Tensor Sum(long dim, bool keepDim = false) => Sum([dim], keepDim);

    /// <summary>Mean of all elements (0-d).</summary>
    public Tensor Mean() => Unary(this, static x => x.mean());

    /// <summary>Mean over the given dimensions.</summary>
    public Tensor Mean(long[] dims, bool keepDim = false)
    {
        return Unary(this, x => x.mean(dims, keepDim));
    }

    /// <summary>Mean over one dimension.</summary>
    public Tensor Mean(long dim, bool keepDim = false) => Mean([dim], keepDim);

    /// <summary>Maximum values and their indices along a dimension.</summary>
    public (Tensor Values, Tensor Indices) Max(long dim, bool keepDim = false)
    {
        var t = Native;
        return Pair(() => t.max(dim, keepDim));
    }

    /// <summary>Indices of the maxima along a dimension (int64).</summary>
    public Tensor ArgMax(long dim, bool keepDim = false) => Unary(this, x => x.argmax(dim, keepDim));

    /// <summary>The k largest (or smallest) values and their indices along a dimension.</summary>
    public (Tensor Values, Tensor Indices) TopK(long k, long dim = -1, bool largest = true, bool sorted = true)
    {
        var t = Native;
        return Pair(() => t.topk((int)k, (int)dim, largest, sorted));
    }

    // ------------------------------------------------------------------ shape

    /// <summary>Same elements, new shape (copies only when needed; one dimension may be -1).</summary>
    public Tensor Reshape(params long[] shape)
    {
        return Unary(this, x => x.reshape(shape));
    }

    /// <summary>Same memory, new shape (the tensor must be viewable; one dimension may be -1).</summary>
    public Tensor View(params long[] shape)
    {
        return Unary(this, x => x.view(shape));
    }

    /// <summary>Reorders dimensions.</summary>
    public Tensor Permute(params long[] dims)
    {
        return Unary(this, x => x.permute(dims));
    }

    /// <summary>Swaps two dimensions.</summary>
    public Tensor Transpose(long dim0, long dim1) => Unary(this, x => x.transpose(dim0, dim1));

    /// <summary>Broadcasts size-1 dimensions to the given shape (-1 keeps a size), without copying.</summary>
    public Tensor Expand(params long[] shape)
    {
        return Unary(this, x => x.expand(shape));
    }

    /// <summary>Merges dimensions start..end into one.</summary>
    public Tensor Flatten(long startDim = 0, long endDim = -1) => Unary(this, x => x.flatten(startDim, endDim));

    /// <summary>Inserts a size-1 dimension.</summary>
    public Tensor Unsqueeze(long dim) => Unary(this, x => x.unsqueeze(dim));

    /// <summary>Removes a size-1 dimension.</summary>
    public Tensor Squeeze(long dim) => Unary(this, x => x.squeeze(dim));

    /// <summary>Elements start..end (exclusive) by step along a dimension (a view).</summary>
    public Tensor Slice(long dim, long start, long end, long step = 1) => Unary(this, x => x.slice(dim, start, end, step));

    /// <summary>Index <paramref name="index"/> of a dimension, removing that dimension (a view).</summary>
    public Tensor Select(long dim, long index) => Unary(this, x => x.select(dim, index));

    /// <summary>Rows (along dim) picked by an int64 index tensor.</summary>
    public Tensor IndexSelect(long dim, Tensor index) => Binary(this, index, (x, i) => x.index_select(dim, i));

    /// <summary>torch.gather.</summary>
    public Tensor Gather(long dim, Tensor index) => Binary(this, index, (x, i) => x.gather(dim, i));

    /// <summary>Splits into <paramref name="count"/> equal chunks along a dimension (views).</summary>
    public Tensor[] Chunk(int count, long dim)
    {
        var t = Native;
        TorchSharp.torch.Tensor[] parts = [];
        Do(() => parts = t.chunk(count, dim));
        if (parts.Length != count)
        {
            foreach (var p in parts) p.Dispose();
            throw new TorchException($"dimension {dim} of size {t.shape[dim < 0 ? dim + t.dim() : dim]} does not split into {count} chunks");
        }
        return Array.ConvertAll(parts, Wrap);
    }

    /// <summary>Concatenates along an existing dimension.</summary>
    public static Tensor Cat(IReadOnlyList<Tensor> parts, long dim) => Combine(parts, dim, stack: false);

    /// <summary>Stacks along a new dimension.</summary>
    public static Tensor Stack(IReadOnlyList<Tensor> parts, long dim) => Combine(parts, dim, stack: true);

    private static Tensor Combine(IReadOnlyList<Tensor> parts, long dim, bool stack)
    {
        var natives = new TorchSharp.torch.Tensor[parts.Count];
        for (int i = 0; i < natives.Length; i++) natives[i] = parts[i].Native;
        return Run(() => stack ? TorchSharp.torch.stack(natives, dim) : TorchSharp.torch.cat(natives, dim));
    }


    // ------------------------------------------------------------------ wrapping TorchSharp ops

    // The operands are kept reachable until the native call returns: a wrapper nobody references afterwards could
    // otherwise be finalized, freeing its tensor, while libtorch still reads it.
    private static Tensor Unary(Tensor a, Func<TS.Tensor, TS.Tensor> op)
    {
        var x = a.Native;
        var result = Run(() => op(x));
        GC.KeepAlive(a);
        return result;
    }

    private static Tensor Binary(Tensor a, Tensor b, Func<TS.Tensor, TS.Tensor, TS.Tensor> op)
    {
        var (x, y) = (a.Native, b.Native);
        var result = Run(() => op(x, y));
        GC.KeepAlive(a);
        GC.KeepAlive(b);
        return result;
    }

    private static (Tensor, Tensor) Pair(Func<(TS.Tensor, TS.Tensor)> op)
    {
        (TS.Tensor, TS.Tensor) r = default;
        Do(() => r = op());
        return (Wrap(r.Item1!), Wrap(r.Item2!));
    }
}
