using System.Runtime.CompilerServices;
using Vit.Torch.Native;
using static Vit.Torch.Native.NativeMethods;

namespace Vit.Torch;

/// <summary>
/// An n-dimensional array in libtorch memory, with autograd. Every op returns a new tensor that the caller
/// owns: dispose it, or create it inside a <see cref="TensorScope"/>, which frees what a step created.
/// </summary>
public sealed unsafe partial class Tensor : IDisposable
{
    private readonly TensorHandle handle;

    private Tensor(IntPtr raw)
    {
        handle = new TensorHandle(raw);
        if (!TensorScope.Track(this)) handle.ReportPressure();  // outside a scope only a Dispose or the finalizer frees it
    }

    static Tensor() => EnsureLoaded();

    /// <summary>Wraps a fresh native handle after checking the call's status.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Tensor Wrap(int status, IntPtr raw)
    {
        Check(status);
        return new Tensor(raw);
    }

    private volatile bool disposed;

    internal TensorHandle Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(disposed || handle.IsClosed, this);
            return handle;
        }
    }

    /// <summary>True once <see cref="Dispose"/> has been called (the native tensor is released then, or when the last
    /// <see cref="LeaseData"/> lease ends).</summary>
    public bool IsDisposed => disposed || handle.IsClosed;

    /// <summary>Releases the native tensor now, or when the last data lease ends (idempotent).</summary>
    public void Dispose()
    {
        disposed = true;
        handle.Dispose();
    }

    /// <summary>Number of native tensor handles alive in this process (for leak tests).</summary>
    public static long LiveCount
    {
        get
        {
            EnsureLoaded();
            return vit_live_tensor_count();
        }
    }

    // ------------------------------------------------------------------ metadata

    /// <summary>The sizes of the dimensions.</summary>
    public long[] Shape
    {
        get
        {
            Check(vit_tensor_ndim(Handle, out var n));
            var dims = new long[n];
            fixed (long* p = dims) Check(vit_tensor_shape(Handle, p, n));
            return dims;
        }
    }

    /// <summary>Number of dimensions.</summary>
    public int Dim
    {
        get
        {
            Check(vit_tensor_ndim(Handle, out var n));
            return n;
        }
    }

    /// <summary>Size of dimension <paramref name="dim"/> (negative counts from the end).</summary>
    public long Size(int dim)
    {
        var s = Shape;
        var d = dim < 0 ? dim + s.Length : dim;
        if (d < 0 || d >= s.Length)
            throw new ArgumentOutOfRangeException(nameof(dim), $"dimension {dim} out of range for a {s.Length}-d tensor");
        return s[d];
    }

    /// <summary>Total number of elements.</summary>
    public long NumElements
    {
        get
        {
            long n = 1;
            foreach (var d in Shape) n *= d;
            return n;
        }
    }

    /// <summary>Element type.</summary>
    public DType DType
    {
        get
        {
            Check(vit_tensor_dtype(Handle, out var t));
            if (t < 0) throw new TorchException("tensor has an element type Vit.Torch does not support");
            return (DType)t;
        }
    }

    /// <summary>The device this tensor lives on.</summary>
    public Device Device
    {
        get
        {
            Check(vit_tensor_device(Handle, out var type, out var index));
            return new Device((DeviceType)type, index);
        }
    }

    /// <summary>The value of a one-element tensor.</summary>
    public double Item()
    {
        Check(vit_tensor_item(Handle, out var v));
        return v;
    }

    /// <inheritdoc />
    public override string ToString() =>
        IsDisposed ? "Tensor(disposed)" : $"Tensor({DType}, [{string.Join(", ", Shape)}], {Device})";

    // ------------------------------------------------------------------ creation

    private static Tensor Create(ReadOnlySpan<long> shape, Func<IntPtr, int, (int, IntPtr)> make)
    {
        fixed (long* p = shape)
        {
            var (status, raw) = make((IntPtr)p, shape.Length);
            return Wrap(status, raw);
        }
    }

    /// <summary>An uninitialised tensor.</summary>
    public static Tensor Empty(long[] shape, DType dtype = DType.Float32, Device? device = null)
    {
        var d = device ?? Device.Cpu;
        return Create(shape, (p, n) => (vit_tensor_empty((long*)p, n, (int)dtype, (int)d.Type, d.Index, out var o), o));
    }

    /// <summary>A tensor filled with <paramref name="value"/>.</summary>
    public static Tensor Full(long[] shape, double value, DType dtype = DType.Float32, Device? device = null)
    {
        var d = device ?? Device.Cpu;
        return Create(shape, (p, n) => (vit_tensor_full((long*)p, n, value, (int)dtype, (int)d.Type, d.Index, out var o), o));
    }

    /// <summary>Zeros.</summary>
    public static Tensor Zeros(long[] shape, DType dtype = DType.Float32, Device? device = null) =>
        Full(shape, 0, dtype, device);

    /// <summary>Ones.</summary>
    public static Tensor Ones(long[] shape, DType dtype = DType.Float32, Device? device = null) =>
        Full(shape, 1, dtype, device);

    /// <summary>Values from start (inclusive) to end (exclusive) by step.</summary>
    public static Tensor Arange(double start, double end, double step = 1, DType dtype = DType.Int64, Device? device = null)
    {
        var d = device ?? Device.Cpu;
        return Wrap(vit_tensor_arange(start, end, step, (int)dtype, (int)d.Type, d.Index, out var o), o);
    }

    /// <summary>Standard normal samples from the global generator (see <see cref="Torch.ManualSeed"/>).</summary>
    public static Tensor Randn(long[] shape, DType dtype = DType.Float32, Device? device = null)
    {
        var d = device ?? Device.Cpu;
        return Create(shape, (p, n) => (vit_tensor_random((long*)p, n, 0, (int)dtype, (int)d.Type, d.Index, out var o), o));
    }

    /// <summary>Uniform [0, 1) samples from the global generator.</summary>
    public static Tensor Rand(long[] shape, DType dtype = DType.Float32, Device? device = null)
    {
        var d = device ?? Device.Cpu;
        return Create(shape, (p, n) => (vit_tensor_random((long*)p, n, 1, (int)dtype, (int)d.Type, d.Index, out var o), o));
    }

    /// <summary>1 with probability <paramref name="p"/>, else 0.</summary>
    public static Tensor Bernoulli(long[] shape, double p, DType dtype = DType.Float32, Device? device = null)
    {
        var d = device ?? Device.Cpu;
        return Create(shape, (ptr, n) => (vit_tensor_bernoulli((long*)ptr, n, p, (int)dtype, (int)d.Type, d.Index, out var o), o));
    }

    /// <summary>A random permutation of 0..n-1 (int64) from the global generator.</summary>
    public static Tensor RandPerm(long n) => Wrap(vit_tensor_randperm(n, out var o), o);

    /// <summary>A CPU tensor holding a copy of <paramref name="data"/> with the given shape.</summary>
    public static Tensor FromArray<T>(ReadOnlySpan<T> data, params long[] shape) where T : unmanaged
    {
        var dtype = DTypeOf<T>();
        if (shape.Length == 0 && data.Length != 1) shape = [data.Length];
        fixed (T* d = data)
        fixed (long* s = shape)
            return Wrap(vit_tensor_from_data(d, (long)data.Length * sizeof(T), s, shape.Length, (int)dtype, out var o), o);
    }

    /// <summary>A CPU tensor holding a copy of <paramref name="data"/> with the given shape.</summary>
    public static Tensor FromArray<T>(T[] data, params long[] shape) where T : unmanaged =>
        FromArray((ReadOnlySpan<T>)data, shape);

    /// <summary>A one-element (0-d) tensor.</summary>
    public static Tensor Scalar(double value, DType dtype = DType.Float32) => Full([], value, dtype);

    /// <summary>A CPU tensor over raw bytes reinterpreted as <paramref name="dtype"/>.</summary>
    public static Tensor FromBytes(ReadOnlySpan<byte> bytes, DType dtype, long[] shape)
    {
        fixed (byte* d = bytes)
        fixed (long* s = shape)
            return Wrap(vit_tensor_from_data(d, bytes.Length, s, shape.Length, (int)dtype, out var o), o);
    }

    internal static DType DTypeOf<T>() where T : unmanaged =>
        typeof(T) == typeof(float) ? DType.Float32
        : typeof(T) == typeof(double) ? DType.Float64
        : typeof(T) == typeof(long) ? DType.Int64
        : typeof(T) == typeof(int) ? DType.Int32
        : typeof(T) == typeof(byte) ? DType.UInt8
        : typeof(T) == typeof(bool) ? DType.Bool
        : typeof(T) == typeof(short) ? DType.Int16
        : typeof(T) == typeof(sbyte) ? DType.Int8
        : typeof(T) == typeof(Half) ? DType.Float16
        : throw new NotSupportedException($"no tensor element type for {typeof(T).Name}");

    // ------------------------------------------------------------------ data transfer

    /// <summary>Copies the elements (row-major) into a new array; the element type must match exactly.</summary>
    public T[] ToArray<T>() where T : unmanaged
    {
        var want = DTypeOf<T>();
        var have = DType;
        if (want != have) throw new InvalidOperationException($"tensor holds {have}, not {want}; convert with To({want}) first");
        var result = new T[NumElements];
        CopyTo<T>(result);
        return result;
    }

    /// <summary>Copies the elements (row-major) into <paramref name="destination"/>, whose length must equal the element count.</summary>
    public void CopyTo<T>(Span<T> destination) where T : unmanaged
    {
        fixed (T* p = destination) Check(vit_tensor_copy_to(Handle, p, (long)destination.Length * sizeof(T)));
    }

    /// <summary>Copies the raw bytes of the elements (row-major) into <paramref name="destination"/>.</summary>
    public void CopyBytesTo(Span<byte> destination)
    {
        fixed (byte* p = destination) Check(vit_tensor_copy_to(Handle, p, destination.Length));
    }

    /// <summary>The address of the first element of a contiguous CPU tensor. It stays valid only while the tensor
    /// lives: a concurrent <see cref="Dispose"/> frees the memory. Prefer <see cref="LeaseData"/>, which keeps the tensor
    /// alive until the lease ends.</summary>
    public IntPtr DataPointer()
    {
        Check(vit_tensor_data_ptr(Handle, out var p));
        return p;
    }

    /// <summary>
    /// The address of the first element of a contiguous CPU tensor, with the native tensor held until the lease is
    /// disposed: a <see cref="Dispose"/> meanwhile (on another thread) takes effect only when the lease ends, so the
    /// memory cannot be freed under the pointer. <c>using var data = t.LeaseData(); var p = (float*)data.Pointer;</c>
    /// </summary>
    /// <exception cref="ObjectDisposedException">The tensor is already disposed.</exception>
    /// <exception cref="TorchException">Not a contiguous CPU tensor.</exception>
    public DataLease LeaseData()
    {
        var h = Handle;
        bool held = false;
        h.DangerousAddRef(ref held);
        try
        {
            Check(vit_tensor_data_ptr(h, out var p));
            return new DataLease(h, p);
        }
        catch
        {
            h.DangerousRelease();
            throw;
        }
    }

    /// <summary>A held tensor's data address (<see cref="LeaseData"/>); dispose it once, when done with the pointer.</summary>
    public sealed class DataLease : IDisposable
    {
        private TensorHandle? held;

        internal DataLease(TensorHandle handle, IntPtr pointer)
        {
            held = handle;
            Pointer = pointer;
        }

        /// <summary>The first element's address.</summary>
        public IntPtr Pointer { get; }

        /// <summary>Lets the tensor go (a Dispose that came meanwhile frees it now).</summary>
        public void Dispose() => Interlocked.Exchange(ref held, null)?.DangerousRelease();
    }

    /// <summary>Converts to another element type.</summary>
    public Tensor To(DType dtype) => To(dtype, Device);

    /// <summary>Moves to another device.</summary>
    public Tensor To(Device device) => To(DType, device);

    /// <summary>Converts element type and device.</summary>
    public Tensor To(DType dtype, Device device) =>
        Wrap(vit_tensor_to(Handle, (int)dtype, (int)device.Type, device.Index, out var o), o);

    /// <summary>A copy with its own memory (keeps autograd history).</summary>
    public Tensor Clone() => Wrap(vit_tensor_clone(Handle, out var o), o);

    /// <summary>The same memory without autograd history.</summary>
    public Tensor Detach() => Wrap(vit_tensor_detach(Handle, out var o), o);

    /// <summary>A contiguous tensor with the same values.</summary>
    public Tensor Contiguous() => Wrap(vit_tensor_contiguous(Handle, out var o), o);

    // ------------------------------------------------------------------ autograd

    /// <summary>Whether autograd records operations on this tensor (true for parameters).</summary>
    public bool RequiresGrad
    {
        get
        {
            Check(vit_tensor_requires_grad(Handle, out var f));
            return f != 0;
        }
        set => Check(vit_tensor_set_requires_grad(Handle, value ? 1 : 0));
    }

    /// <summary>Backpropagates from this scalar; for a non-scalar, pass the output gradient.</summary>
    public void Backward(Tensor? gradOutput = null) =>
        Check(vit_tensor_backward(Handle, gradOutput?.Handle ?? TensorHandle.Null));

    /// <summary>The accumulated gradient as a new tensor, or null when there is none.</summary>
    public Tensor? Grad()
    {
        Check(vit_tensor_grad(Handle, out var o));
        return o == IntPtr.Zero ? null : new Tensor(o);
    }

    /// <summary>Drops the accumulated gradient (like zero_grad(set_to_none=True)).</summary>
    public void ZeroGrad() => Check(vit_tensor_grad_reset(Handle));

    // ------------------------------------------------------------------ in place (no autograd history)

    /// <summary>Copies <paramref name="source"/> into this tensor (broadcasting, converting type).</summary>
    public void CopyFrom(Tensor source) => Check(vit_tensor_copy_(Handle, source.Handle));

    /// <summary>
    /// Makes this tensor hold <paramref name="source"/>'s values, element type and device, keeping this handle and
    /// <see cref="RequiresGrad"/> (PyTorch's <c>t.data = source</c>); the two then share memory. Drops the gradient.
    /// </summary>
    internal void SetData(Tensor source) => Check(vit_tensor_set_data(Handle, source.Handle));

    /// <summary>Sets every element to <paramref name="value"/>.</summary>
    public void Fill(double value) => Check(vit_tensor_fill_(Handle, value));

    /// <summary>this += alpha * other.</summary>
    public void AddInPlace(Tensor other, double alpha = 1) => Check(vit_tensor_add_(Handle, other.Handle, alpha));

    /// <summary>this *= s.</summary>
    public void MulInPlace(double s) => Check(vit_tensor_mul_scalar_(Handle, s));

    /// <summary>Fills with Normal(mean, std) samples.</summary>
    public void NormalInit(double mean, double std) => Check(vit_tensor_normal_(Handle, mean, std));

    /// <summary>Fills with Uniform[lo, hi) samples.</summary>
    public void UniformInit(double lo, double hi) => Check(vit_tensor_uniform_(Handle, lo, hi));

    /// <summary>Fills with Normal(mean, std) truncated to the absolute bounds [lo, hi] (as timm's trunc_normal_).</summary>
    public void TruncNormalInit(double mean, double std, double lo = -2, double hi = 2) =>
        Check(vit_tensor_trunc_normal_(Handle, mean, std, lo, hi));
}
