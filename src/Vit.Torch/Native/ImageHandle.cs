using System.Runtime.InteropServices;

namespace Vit.Torch.Native;

/// <summary>
/// Owns one native image handle (a <c>cv::Mat</c> in libvit_imaging.so) and frees it exactly once with
/// <c>vit_image_free</c>, on Dispose or, failing that, on finalisation.
/// </summary>
internal sealed class ImageHandle : SafeHandle
{
    internal ImageHandle(IntPtr handle) : base(IntPtr.Zero, ownsHandle: true) => SetHandle(handle);

    /// <summary>Required by the interop marshaller.</summary>
    public ImageHandle() : base(IntPtr.Zero, true)
    {
    }

    /// <inheritdoc />
    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        ImagingNative.vit_image_free(handle);
        return true;
    }
}
