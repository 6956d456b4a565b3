using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Vit.Torch.Native;

/// <summary>
/// The exports of <c>libvit_imaging.so</c> (native/vit_imaging.cpp): image decoding, resizing, augmentation and batch
/// normalisation over OpenCV, no libtorch. Every function returns a status (0 ok); a failure's text is read with
/// <see cref="Check"/> or <see cref="LastErrorText"/>. Image arguments are borrowed; an image out-parameter is a new
/// handle owned by the caller (wrap it in an <see cref="ImageHandle"/>); a blob out-parameter is owned by the caller
/// and freed with <c>vit_blob_free</c>. <c>VIT_IMAGING_PATH</c> names the library file to load instead of the copy
/// next to the application.
/// </summary>
internal static unsafe partial class ImagingNative
{
    internal const string Lib = "vit_imaging";

    /// <summary>The ABI version this assembly was written against; the library must report the same.</summary>
    internal const int ExpectedAbiVersion = 1;

    internal const string InstallHint =
        "libvit_imaging.so is built by `dotnet build` (src/Vit.Torch/native) and needs OpenCV 4.6 with its codecs: " +
        "run `sudo apt-get install libopencv-dev` (or `sudo bash eng/install-deps.sh` from the repository root), then `dotnet build`.";

    private static readonly NativeLoader Loader = NativeLoader.Register(Lib, "VIT_IMAGING_PATH", InstallHint);

    // An explicit static constructor makes the type initialise (and register its loader above) before the first call
    // of any import below, not merely before the first field access.
    static ImagingNative()
    {
    }

    /// <summary>Loads the library and checks its ABI version once; throws a <see cref="TorchException"/> saying what
    /// to install or rebuild if that fails.</summary>
    internal static void EnsureLoaded() => _ = Loaded.Value;

    private static readonly Lazy<bool> Loaded = new(() =>
    {
        Loader.CheckAbi(vit_imaging_abi_version, ExpectedAbiVersion);
        return true;
    }, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Throws a <see cref="TorchException"/> carrying the library's message when status is non-zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Check(int status)
    {
        if (status != 0) ThrowLastError();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowLastError() => throw new TorchException(LastErrorText());

    /// <summary>The text of this thread's last error in the imaging library, without throwing.</summary>
    internal static string LastErrorText() => NativeLoader.LastError(&vit_imaging_last_error);

    // ---- library ----
    [LibraryImport(Lib)] internal static partial int vit_imaging_abi_version();
    // Copies this thread's last error text into buf (truncated to cap - 1 bytes) and returns its full length.
    [LibraryImport(Lib)] internal static partial int vit_imaging_last_error(byte* buf, int cap);

    // ---- lifetime, threads ----
    [LibraryImport(Lib)] internal static partial void vit_image_free(IntPtr img);
    [LibraryImport(Lib)] internal static partial long vit_image_live_count();
    [LibraryImport(Lib)] internal static partial void vit_blob_free(IntPtr blob);
    [LibraryImport(Lib)] internal static partial int vit_blob_data(IntPtr blob, out IntPtr data, out long size);
    [LibraryImport(Lib)] internal static partial int vit_image_set_threads(int n);

    // ---- decode, create, inspect, encode ----
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int vit_image_decode_file(string path, long maxPixels, int channels, int flags, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_image_decode_bytes(byte* data, long n, long maxPixels, int channels, int flags, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_image_from_pixels(byte* hwc, long nbytes, int w, int h, int c, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_image_new(int w, int h, int c, int value, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_image_info(ImageHandle img, out int w, out int h, out int c);
    [LibraryImport(Lib)] internal static partial int vit_image_copy_to(ImageHandle img, byte* dst, long nbytes);
    [LibraryImport(Lib)] internal static partial int vit_image_encode(ImageHandle img, int format, int quality, out IntPtr blob);

    // ---- geometry ----
    [LibraryImport(Lib)] internal static partial int vit_image_to_channels(ImageHandle img, int channels, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_image_resize(ImageHandle img, int w, int h, int mode, int interp, int fill, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_image_crop_resize(ImageHandle img, int x, int y, int w, int h, int outW, int outH, int interp, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_image_flip(ImageHandle img, int horizontal, int vertical, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_image_affine(ImageHandle img, double* matrix, int outW, int outH, int interp, int fill, out IntPtr o);

    // ---- colour, erasing, blending, statistics ----
    [LibraryImport(Lib)] internal static partial int vit_image_adjust(ImageHandle img, int op, double amount, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_image_erase(ImageHandle img, int x, int y, int w, int h, int mode, int value, ulong seed, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_image_blend(ImageHandle img, ImageHandle overlay, double alpha, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_image_channel_sums(ImageHandle img, double* sum, double* sumSq, int cap);

    // ---- batches ----
    [LibraryImport(Lib)] internal static partial int vit_image_batch_write(IntPtr* images, int n, int channels, int height, int width, float* mean, float* std, float* dst, long dstCount);
    [LibraryImport(Lib)] internal static partial int vit_image_from_normalized(float* chw, int channels, int height, int width, float* mean, float* std, out IntPtr o);
}
