using System.Runtime.InteropServices;

namespace Vit.Torch.Native;

/// <summary>
/// Owns one native tensor handle (a heap-allocated <c>at::Tensor</c> in the shim) and frees it exactly once
/// with <c>vit_tensor_free</c>, on Dispose or, failing that, on finalisation.
/// </summary>
internal sealed class TensorHandle : SafeHandle
{
    /// <summary>A handle that stands for "no tensor" (the shim reads it as NULL, e.g. an absent bias).</summary>
    internal static readonly TensorHandle Null = new(IntPtr.Zero, ownsHandle: false);

    internal TensorHandle(IntPtr handle, bool ownsHandle = true) : base(IntPtr.Zero, ownsHandle) => SetHandle(handle);

    /// <summary>Required by the interop marshaller.</summary>
    public TensorHandle() : base(IntPtr.Zero, true)
    {
    }

    /// <inheritdoc />
    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>Tensors of at least this many bytes tell the GC what they hold.</summary>
    private const long PressureThreshold = 1 << 20;

    private long pressure;

    /// <summary>
    /// Tells the GC how much native memory this handle keeps alive (GC.AddMemoryPressure), when that is 1 MiB or more,
    /// so that tensors nobody disposes are finalized before the process swells: the managed wrapper is tiny, and
    /// without this the GC would see no reason to collect it. Released with the handle.
    /// </summary>
    internal unsafe void ReportPressure()
    {
        if (NativeMethods.vit_tensor_nbytes(handle, out long bytes) != 0 || bytes < PressureThreshold) return;
        pressure = bytes;
        GC.AddMemoryPressure(bytes);
    }

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        NativeMethods.vit_tensor_free(handle);
        if (pressure > 0) GC.RemoveMemoryPressure(pressure);
        return true;
    }
}
