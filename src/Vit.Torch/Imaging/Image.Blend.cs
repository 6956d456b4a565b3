// Usage: using var heat = Image.FromPixels(rgb, w, h, 3);
//        using var overlay = photo.Blend(heat, 0.5);   // (1 - 0.5) photo + 0.5 heat, rounded and saturated
// Blending of two images of one size, e.g. attention maps over pictures (Vit.Torch.Reports).
namespace Vit.Torch.Imaging;

public sealed partial class Image
{
    /// <summary>
    /// (1 − <paramref name="alpha"/>) · this + <paramref name="alpha"/> · <paramref name="overlay"/> per sample,
    /// rounded (ties to even) and saturated, e.g. a colour-mapped heat map over a picture. Both
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
        var a = Pixels;
        var b = overlay.Pixels;
        var dst = new byte[a.Length];
        for (int i = 0; i < dst.Length; i++) dst[i] = Saturate(a[i] * (1 - alpha) + b[i] * alpha);
        return new Image(dst, Width, Height, Channels);
    }
}
