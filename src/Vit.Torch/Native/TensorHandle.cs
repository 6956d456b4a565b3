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

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        NativeMethods.vit_tensor_free(handle);
        return true;
    }
}
