using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TS = TorchSharp.torch;

namespace Vit.Torch;

/// <summary>
/// An n-dimensional array in libtorch memory, with autograd: a TorchSharp tensor with this library's ownership
/// rules. Every op returns a new tensor that the caller owns: dispose it, or create it inside a
/// <see cref="TensorScope"/>, which frees what a step created. <see cref="Native"/> is the TorchSharp tensor.
/// </summary>
public sealed partial class Tensor : IDisposable
{
    private TS.Tensor? value;
    private int leases;
    private long pressure;
    private static long live;

    private Tensor(TS.Tensor t)
    {
        // A TorchSharp dispose scope the caller opened records every tensor TorchSharp makes on its thread: this one
        // belongs to the wrapper (and our own scopes) from now on, or the caller's scope would free it under us.
        value = t.DetachFromDisposeScope();
        Interlocked.Increment(ref live);
        if (!TensorScope.Track(this)) ReportPressure();  // outside a scope only a Dispose or the finalizer frees it
    }

    static Tensor() => Torch.EnsureLoaded();

    /// <summary>Wraps a tensor TorchSharp just made; this wrapper owns it from now on.</summary>
    internal static Tensor Wrap(TS.Tensor t) => new(t);

    /// <summary>
    /// A tensor of this library over the same storage as a TorchSharp tensor: an alias (libtorch's <c>alias</c>, a view
    /// that autograd follows), so gradients reach <paramref name="tensor"/> and writes through either are seen by both.
    /// The caller keeps owning <paramref name="tensor"/>; the result is owned as any other tensor here (a scope, or a
    /// <see cref="Dispose"/>). <see cref="Native"/> goes the other way.
    /// </summary>
    public static Tensor FromTorchSharp(TS.Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var t = Run(() => tensor.alias());
        GC.KeepAlive(tensor);
        return t;
    }

    /// <summary>Runs a TorchSharp op and wraps its result; libtorch's errors become <see cref="TorchException"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Tensor Run(Func<TS.Tensor> op)
    {
        TS.Tensor result;
        try
        {
            result = op();
        }
        catch (ExternalException e)
        {
            throw TorchException.From(e);
        }
        return new Tensor(result);
    }

    /// <summary>Runs a TorchSharp call that returns no tensor; libtorch's errors become <see cref="TorchException"/>.</summary>
    internal static void Do(Action op)
    {
        try
        {
            op();
        }
        catch (ExternalException e)
        {
            throw TorchException.From(e);
        }
    }

    private volatile bool disposed;

    /// <summary>The TorchSharp tensor this one holds (borrowed: it stays owned by this wrapper).</summary>
    public TS.Tensor Native
    {
        get
        {
            var v = value;
            ObjectDisposedException.ThrowIf(disposed || v is null, this);
            return v;
        }
    }

    /// <summary>True once <see cref="Dispose"/> has been called (the native tensor is released then, or when the last
    /// <see cref="LeaseData"/> lease ends).</summary>
    public bool IsDisposed => disposed;

    /// <summary>Releases the native tensor now, or when the last data lease ends (idempotent).</summary>
    public void Dispose()
    {
        lock (this)
        {
            if (disposed) return;
            disposed = true;
            if (leases > 0) return;
        }
        Release();
    }

    private void Release()
    {
        var v = Interlocked.Exchange(ref value, null);
        if (v is null) return;
        v.Dispose();
        Interlocked.Decrement(ref live);
        if (pressure > 0) GC.RemoveMemoryPressure(pressure);
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees the native tensor of a wrapper nobody disposed.</summary>
    ~Tensor() => Release();

    private const long PressureThreshold = 1 << 20;

    // A large tensor outside any scope waits for the GC: tell it how much native memory hangs on this small object.
    private void ReportPressure()
    {
        long bytes = value!.NumberOfElements * value.ElementSize;
        if (bytes < PressureThreshold) return;
        pressure = bytes;
        GC.AddMemoryPressure(bytes);
    }

    /// <summary>Number of tensors this library holds alive in this process (for leak tests).</summary>
    public static long LiveCount => Interlocked.Read(ref live);

    // ------------------------------------------------------------------ scalars

    /// <summary>The Scalar 1, made once and never collected (the alpha of tensor additions).</summary>
    internal static readonly TorchSharp.Scalar One = 1.0;

    /// <summary>
    /// Runs <paramref name="op"/> with <paramref name="value"/> as a TorchSharp Scalar made here and disposed after the
    /// call. TorchSharp 0.107 passes a Scalar's native handle on without keeping the Scalar alive, so one made implicitly
    /// from a double for a single call can be finalized by the GC during that call (seen: libtorch's "toFloat" check
    /// failing inside an addition after 265 steps of the main job). The dispose after the call keeps it alive until then.
    /// </summary>
    internal static T WithScalar<T>(double value, Func<TorchSharp.Scalar, T> op)
    {
        var s = (TorchSharp.Scalar)value;
        try
        {
            return op(s);
        }
        finally
        {
            s.Dispose();
        }
    }

    /// <summary><see cref="WithScalar{T}(double, Func{TorchSharp.Scalar, T})"/> with two scalars.</summary>
    internal static T WithScalars<T>(double a, double b, Func<TorchSharp.Scalar, TorchSharp.Scalar, T> op) =>
        WithScalar(a, sa => WithScalar(b, sb => op(sa, sb)));

    // ------------------------------------------------------------------ metadata

    /// <summary>The sizes of the dimensions.</summary>
    public long[] Shape => Native.shape;

    /// <summary>Number of dimensions.</summary>
    public int Dim => (int)Native.dim();

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
    public long NumElements => Native.NumberOfElements;

    /// <summary>Element type.</summary>
    public DType DType => DTypes.FromScalarType(Native.dtype);

    /// <summary>The device this tensor lives on.</summary>
    public Device Device
    {
        get
        {
            var d = Native.device;
            return d.type == TorchSharp.DeviceType.CUDA ? Device.Cuda(d.index < 0 ? 0 : d.index) : Device.Cpu;
        }
    }

    /// <summary>The value of a one-element tensor.</summary>
    public double Item()
    {
        var t = Native;
        if (t.NumberOfElements != 1)
            throw new TorchException($"a Tensor with {t.NumberOfElements} elements cannot be converted to a scalar");
        try
        {
            return t.dtype switch
            {
                TS.ScalarType.Int64 => t.item<long>(),
                TS.ScalarType.Int32 => t.item<int>(),
                TS.ScalarType.Bool => t.item<bool>() ? 1 : 0,
                TS.ScalarType.Float64 => t.item<double>(),
                TS.ScalarType.Float32 => t.item<float>(),
                _ => AsDouble(t),
            };
        }
        catch (ExternalException e)
        {
            throw TorchException.From(e);
        }

        static double AsDouble(TS.Tensor t)
        {
            using var d = t.to_type(TS.ScalarType.Float64);
            return d.item<double>();
        }
    }

    /// <inheritdoc />
    public override string ToString() =>
        IsDisposed ? "Tensor(disposed)" : $"Tensor({DType}, [{string.Join(", ", Shape)}], {Device})";

    // ------------------------------------------------------------------ creation

    private static TS.Device DeviceOf(Device? device) => (device ?? Device.Cpu).ToTorchSharp();

    /// <summary>An uninitialised tensor.</summary>
    public static Tensor Empty(long[] shape, DType dtype = DType.Float32, Device? device = null) =>
        Run(() => TS.empty(shape, dtype.ToScalarType(), DeviceOf(device)));

    /// <summary>A tensor filled with <paramref name="value"/>.</summary>
    public static Tensor Full(long[] shape, double value, DType dtype = DType.Float32, Device? device = null) =>
        Run(() => WithScalar(value, v => TS.full(shape, v, dtype.ToScalarType(), DeviceOf(device))));

    /// <summary>Zeros.</summary>
    public static Tensor Zeros(long[] shape, DType dtype = DType.Float32, Device? device = null) =>
        Run(() => TS.zeros(shape, dtype.ToScalarType(), DeviceOf(device)));

    /// <summary>Ones.</summary>
    public static Tensor Ones(long[] shape, DType dtype = DType.Float32, Device? device = null) =>
        Run(() => TS.ones(shape, dtype.ToScalarType(), DeviceOf(device)));

    /// <summary>Values from start (inclusive) to end (exclusive) by step.</summary>
    public static Tensor Arange(double start, double end, double step = 1, DType dtype = DType.Int64, Device? device = null) =>
        Run(() => TS.arange(start, end, step, dtype.ToScalarType(), DeviceOf(device)));

    /// <summary>Standard normal samples from this thread's generator (see <see cref="Torch.ManualSeed"/>).</summary>
    public static Tensor Randn(long[] shape, DType dtype = DType.Float32, Device? device = null) =>
        Run(() => TS.randn(shape, dtype.ToScalarType(), DeviceOf(device), generator: Torch.Generator));

    /// <summary>Uniform [0, 1) samples from this thread's generator.</summary>
    public static Tensor Rand(long[] shape, DType dtype = DType.Float32, Device? device = null) =>
        Run(() => TS.rand(shape, dtype.ToScalarType(), DeviceOf(device), generator: Torch.Generator));

    /// <summary>1 with probability <paramref name="p"/>, else 0.</summary>
    public static Tensor Bernoulli(long[] shape, double p, DType dtype = DType.Float32, Device? device = null) =>
        !(p >= 0 && p <= 1) ? throw new TorchException($"bernoulli expects a probability in [0, 1], got {p}") : Run(() => TS.empty(shape, dtype.ToScalarType(), DeviceOf(device)).bernoulli_(p, Torch.Generator));

    /// <summary>A CPU tensor holding a copy of <paramref name="data"/> with the given shape.</summary>
    public static unsafe Tensor FromArray<T>(ReadOnlySpan<T> data, params long[] shape) where T : unmanaged
    {
        if (shape.Length == 0 && data.Length != 1) shape = [data.Length];
        return FromBytes(MemoryMarshal.AsBytes(data), DTypeOf<T>(), shape);
    }

    /// <summary>A CPU tensor holding a copy of <paramref name="data"/> with the given shape.</summary>
    public static Tensor FromArray<T>(T[] data, params long[] shape) where T : unmanaged =>
        FromArray((ReadOnlySpan<T>)data, shape);

    /// <summary>A one-element (0-d) tensor.</summary>
    public static Tensor Scalar(double value, DType dtype = DType.Float32) => Full([], value, dtype);

    /// <summary>A CPU tensor over raw bytes reinterpreted as <paramref name="dtype"/>.</summary>
    public static unsafe Tensor FromBytes(ReadOnlySpan<byte> bytes, DType dtype, long[] shape)
    {
        long count = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new TorchException($"shape [{string.Join(", ", shape)}] has a negative dimension");
            count *= d;
        }
        if (count * dtype.ElementSize() != bytes.Length)
            throw new TorchException(
                $"{bytes.Length} bytes cannot fill a {dtype} tensor of shape [{string.Join(", ", shape)}] ({count * dtype.ElementSize()} bytes)");
        var t = Empty(shape, dtype);
        if (bytes.Length > 0)
            fixed (byte* src = bytes)
                Buffer.MemoryCopy(src, (void*)TorchSharpNative.DataPointer(t.Native), bytes.Length, bytes.Length);
        return t;
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

    /// <summary>Copies the elements (row-major) into <paramref name="destination"/>, whose size in bytes must match.</summary>
    public void CopyTo<T>(Span<T> destination) where T : unmanaged => CopyBytesTo(MemoryMarshal.AsBytes(destination));

    /// <summary>Copies the raw bytes (row-major, any element type) into <paramref name="destination"/>, whose size must match.</summary>
    public unsafe void CopyBytesTo(Span<byte> destination)
    {
        var t = Native;
        long bytes = t.NumberOfElements * t.ElementSize;
        if (bytes != destination.Length)
            throw new TorchException($"the tensor has {bytes} bytes of data, but the destination holds {destination.Length}");
        if (bytes == 0) return;
        using var moved = t.device_type == TorchSharp.DeviceType.CPU ? null : t.cpu();
        using var cpu = (moved ?? t).contiguous();
        fixed (byte* dst = destination)
            Buffer.MemoryCopy((void*)TorchSharpNative.DataPointer(cpu), dst, bytes, bytes);
    }

    /// <summary>The address of the first element (CPU, contiguous tensors); valid while the tensor lives. Prefer
    /// <see cref="LeaseData"/>, which keeps the memory alive across a concurrent <see cref="Dispose"/>.</summary>
    public IntPtr DataPointer()
    {
        var t = Native;
        if (t.device_type != TorchSharp.DeviceType.CPU) throw new TorchException("DataPointer needs a CPU tensor");
        if (!t.is_contiguous()) throw new TorchException("DataPointer needs a contiguous tensor; call Contiguous() first");
        return TorchSharpNative.DataPointer(t);
    }

    /// <summary>The data's address, with the tensor kept alive until the lease is disposed (even if the tensor is
    /// disposed meanwhile).</summary>
    public DataLease LeaseData()
    {
        lock (this)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            var p = DataPointer();
            leases++;
            return new DataLease(this, p);
        }
    }

    private void EndLease()
    {
        lock (this)
        {
            if (--leases > 0 || !disposed) return;
        }
        Release();
    }

    /// <summary>A hold on a tensor's memory (see <see cref="LeaseData"/>).</summary>
    public sealed class DataLease : IDisposable
    {
        private Tensor? held;

        internal DataLease(Tensor tensor, IntPtr pointer)
        {
            held = tensor;
            Pointer = pointer;
        }

        /// <summary>The address of the first element.</summary>
        public IntPtr Pointer { get; }

        /// <summary>Ends the hold (idempotent).</summary>
        public void Dispose() => Interlocked.Exchange(ref held, null)?.EndLease();
    }

    /// <summary>A copy converted to <paramref name="dtype"/> (or this tensor's data when already so).</summary>
    public Tensor To(DType dtype) => To(dtype, Device);

    /// <summary>A copy on <paramref name="device"/>.</summary>
    public Tensor To(Device device) => To(DType, device);

    /// <summary>Converted to the element type and device.</summary>
    public Tensor To(DType dtype, Device device) => Run(() => Native.to(dtype.ToScalarType(), device.ToTorchSharp()));

    /// <summary>A copy with its own memory (differentiable).</summary>
    public Tensor Clone() => Run(() => Native.clone());

    /// <summary>The same data without autograd history.</summary>
    public Tensor Detach() => Run(() => Native.detach());

    /// <summary>The same values in row-major memory.</summary>
    public Tensor Contiguous() => Run(() => Native.contiguous());

    // ------------------------------------------------------------------ autograd

    /// <summary>Whether autograd records operations on this tensor.</summary>
    public bool RequiresGrad
    {
        get => Native.requires_grad;
        set => Do(() => Native.requires_grad_(value));
    }

    /// <summary>Backpropagates from this tensor (a scalar unless <paramref name="gradOutput"/> is given).</summary>
    public void Backward(Tensor? gradOutput = null)
    {
        var t = Native;
        var g = gradOutput?.Native;
        Do(() =>
        {
            if (g is null) t.backward();
            else TS.autograd.backward([t], [g]);
        });
    }

    /// <summary>The accumulated gradient, or null when there is none.</summary>
    public Tensor? Grad()
    {
        var g = Native.grad;
        return g is null ? null : new Tensor(g);
    }

    /// <summary>Drops the gradient (it is null afterwards, as PyTorch's zero_grad(set_to_none=True)).</summary>
    public void ZeroGrad() => Do(() => Native.grad = null);

    // ------------------------------------------------------------------ in place (no autograd history)

    /// <summary>Copies <paramref name="source"/>'s values into this tensor (broadcast, converted).</summary>
    public void CopyFrom(Tensor source)
    {
        var t = Native;
        var s = source.Native;
        Do(() =>
        {
            using var _ = TS.no_grad();
            t.copy_(s);
        });
    }

    /// <summary>Makes this tensor use <paramref name="source"/>'s data (shape, type and device included), keeping its
    /// identity as a parameter (as PyTorch's <c>param.data = source</c>): the wrapper now holds a new leaf over that data.</summary>
    internal void SetData(Tensor source)
    {
        var old = Native;
        var s = source.Native;
        TS.Tensor fresh = null!;
        Do(() =>
        {
            using var _ = TS.no_grad();
            fresh = s.detach().requires_grad_(old.requires_grad);
        });
        lock (this)
        {
            if (leases > 0) throw new InvalidOperationException("cannot replace a tensor's data while a data lease is held");
            value = fresh;
        }
        old.Dispose();
    }

    /// <summary>Sets every element.</summary>
    public void Fill(double value) => InPlace(t => WithScalar(value, v => t.fill_(v)));

    /// <summary>this += alpha * other.</summary>
    public void AddInPlace(Tensor other, double alpha = 1)
    {
        var o = other.Native;
        InPlace(t => WithScalar(alpha, a => t.add_(o, a)));
    }

    /// <summary>this *= s.</summary>
    public void MulInPlace(double s) => InPlace(t => WithScalar(s, v => t.mul_(v)));

    /// <summary>Fills with normal samples from this thread's generator.</summary>
    public void NormalInit(double mean, double std) => InPlace(t => t.normal_(mean, std, Torch.Generator));

    /// <summary>Fills with uniform samples in [lo, hi) from this thread's generator.</summary>
    public void UniformInit(double lo, double hi) => InPlace(t => t.uniform_(lo, hi, Torch.Generator));

    /// <summary>Fills with normal samples redrawn into [lo, hi] (timm's trunc_normal_, the ViT's initialisation).</summary>
    public void TruncNormalInit(double mean, double std, double lo = -2, double hi = 2)
    {
        if (!(std > 0) || !(lo < hi)) throw new ArgumentException($"a truncated normal needs std > 0 and lo < hi, got std {std}, [{lo}, {hi}]");
        // Inverse-CDF sampling, as timm's and PyTorch's trunc_normal_: uniform between the bounds' CDF values, mapped back
        // through erfinv. (TorchSharp 0.107's own trunc_normal_ fills the tensor with std.)
        static double Cdf(double x)
        {
            using var t = TS.tensor(x / Math.Sqrt(2), TS.ScalarType.Float64);
            using var e = t.erf();
            return 0.5 * (1 + e.item<double>());
        }
        double l = Cdf((lo - mean) / std), u = Cdf((hi - mean) / std);
        InPlace(t => WithScalars(std * Math.Sqrt(2), mean, (scale, shift) => WithScalars(lo, hi, (a, b) =>
            t.uniform_(2 * l - 1, 2 * u - 1, Torch.Generator).erfinv_().mul_(scale).add_(shift, One).clamp_(a, b))));
    }

    private void InPlace(Func<TS.Tensor, TS.Tensor> op)
    {
        var t = Native;
        Do(() =>
        {
            using var _ = TS.no_grad();
            op(t);
        });
    }
}
