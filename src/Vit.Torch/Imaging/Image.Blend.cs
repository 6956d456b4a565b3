// Usage: using var heat = Image.FromPixels(rgb, w, h, 3);
//        using var overlay = photo.Blend(heat, 0.5);   // (1 - 0.5) photo + 0.5 heat, by OpenCV (cv::addWeighted)
// Blending of two images of one size, e.g. attention maps over pictures (Vit.Torch.Reports).
using static Vit.Torch.Native.ImagingNative;

namespace Vit.Torch.Imaging;

public sealed partial class Image
{
    /// <summary>
    /// (1 − <paramref name="alpha"/>) · this + <paramref name="alpha"/> · <paramref name="overlay"/> per sample,
    /// rounded and saturated (OpenCV's <c>addWeighted</c>), e.g. a colour-mapped heat map over a picture. Both
    /// images must have the same size and channel count; <paramref name="alpha"/> is in [0, 1].
    /// </summary>
    public Image Blend(Image overlay, double alpha)
    {
        ArgumentNullException.ThrowIfNull(overlay);
        if (!(alpha >= 0 && alpha <= 1)) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "blend weight must be in [0, 1]");
        if (overlay.Width != Width || overlay.Height != Height || overlay.Channels != Channels)
            throw new ArgumentException(
                $"cannot blend a {overlay.Width}x{overlay.Height} image with {overlay.Channels} channel(s) over a {Width}x{Height} image with {Channels} channel(s): size and channels must match",
                nameof(overlay));
        return Wrap(vit_image_blend(Handle, overlay.Handle, alpha, out var o), o);
    }
}
