using System.Runtime.InteropServices;

namespace Vit.Torch.Native;

// The imaging exports of libvit_native.so (native/vit_imaging.cpp), kept in their own file of the one
// NativeMethods class. Image arguments are borrowed; an image out-parameter is a new handle owned by the
// caller (wrap it in an ImageHandle); a blob out-parameter is owned by the caller and freed with vit_blob_free.
internal static unsafe partial class NativeMethods
{
    /// <summary>The text of this thread's last native error, without throwing.</summary>
    internal static string LastErrorText()
    {
        int n = vit_last_error(null, 0);
        var buf = new byte[n + 1];
        fixed (byte* p = buf) vit_last_error(p, buf.Length);
        return System.Text.Encoding.UTF8.GetString(buf, 0, n);
    }

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
