using static Vit.Torch.Native.ImagingNative;

namespace Vit.Torch.Imaging;

// Deterministic image operations: the building blocks of the random augmentations in Augment. Every method
// returns a new image; alpha, when present, is left unchanged by the colour operations.
public sealed unsafe partial class Image
{
    // Colour op codes of vit_image_adjust.
    private enum ColorOp
    {
        Brightness = 0,
        Contrast = 1,
        Saturation = 2,
        Sharpness = 3,
        Solarize = 4,
        Posterize = 5,
        AutoContrast = 6,
        Equalize = 7,
        Invert = 8,
    }

    // ------------------------------------------------------------------ geometry

    /// <summary>Mirrors left-right.</summary>
    public Image FlipHorizontal() => Wrap(vit_image_flip(Handle, 1, 0, out var o), o);

    /// <summary>Mirrors top-bottom.</summary>
    public Image FlipVertical() => Wrap(vit_image_flip(Handle, 0, 1, out var o), o);

    /// <summary>
    /// Warps with the affine map <paramref name="matrix"/> (2×3, row-major) from source pixel coordinates to
    /// destination coordinates (pixel centres at integers, origin top-left, y down) into an
    /// <paramref name="outWidth"/> × <paramref name="outHeight"/> image; pixels that come from outside the source
    /// are <paramref name="fill"/>. <see cref="Interpolation.Area"/> acts as bilinear here.
    /// </summary>
    public Image Affine(ReadOnlySpan<double> matrix, int outWidth, int outHeight,
        Interpolation interpolation = Interpolation.Bilinear, byte fill = 0)
    {
        if (matrix.Length != 6) throw new ArgumentException($"an affine matrix has 6 entries (2x3), got {matrix.Length}", nameof(matrix));
        foreach (var v in matrix)
            if (!double.IsFinite(v)) throw new ArgumentException("affine matrix entries must be finite", nameof(matrix));
        CheckTargetSize(outWidth, outHeight);
        fixed (double* m = matrix)
            return Wrap(vit_image_affine(Handle, m, outWidth, outHeight, CheckInterp(interpolation), fill, out var o), o);
    }

    /// <summary>
    /// Rotates by <paramref name="degrees"/> counter-clockwise (as PIL and torchvision) about the image centre,
    /// keeping the size; corners that come from outside are <paramref name="fill"/>.
    /// </summary>
    public Image Rotate(double degrees, Interpolation interpolation = Interpolation.Bilinear, byte fill = 0)
    {
        double a = degrees * Math.PI / 180, cos = Math.Cos(a), sin = Math.Sin(a);
        var (cx, cy) = Centre;
        // dst = R (src - c) + c with R = [cos sin; -sin cos] (counter-clockwise on screen, y pointing down)
        ReadOnlySpan<double> m = [cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy];
        return Affine(m, Width, Height, interpolation, fill);
    }

    /// <summary>Moves the content by (<paramref name="dx"/>, <paramref name="dy"/>) pixels (right, down), keeping the size.</summary>
    public Image Translate(double dx, double dy, Interpolation interpolation = Interpolation.Bilinear, byte fill = 0) =>
        Affine([1, 0, dx, 0, 1, dy], Width, Height, interpolation, fill);

    /// <summary>
    /// Shears about the image centre: x' = x + <paramref name="shearX"/>·(y − cy), y' = y + <paramref name="shearY"/>·(x − cx).
    /// </summary>
    public Image Shear(double shearX, double shearY, Interpolation interpolation = Interpolation.Bilinear, byte fill = 0)
    {
        var (cx, cy) = Centre;
        return Affine([1, shearX, -shearX * cy, shearY, 1, -shearY * cx], Width, Height, interpolation, fill);
    }

    private (double X, double Y) Centre => ((Width - 1) / 2.0, (Height - 1) / 2.0);

    // ------------------------------------------------------------------ colour (PIL ImageEnhance semantics)

    /// <summary>Scales brightness: 0 gives black, 1 the image unchanged, 2 twice as bright (saturating).</summary>
    public Image AdjustBrightness(double factor) => Adjust(ColorOp.Brightness, CheckFactor(factor));

    /// <summary>Blends with the mean gray level: 0 gives a flat gray image, 1 the image unchanged, above 1 more contrast.</summary>
    public Image AdjustContrast(double factor) => Adjust(ColorOp.Contrast, CheckFactor(factor));

    /// <summary>Blends with the grayscale version: 0 gives gray, 1 the image unchanged, above 1 more saturated. No effect on gray images.</summary>
    public Image AdjustSaturation(double factor) => Adjust(ColorOp.Saturation, CheckFactor(factor));

    /// <summary>Blends with a smoothed version (PIL's SMOOTH filter): 0 blurs, 1 unchanged, above 1 sharpens.</summary>
    public Image AdjustSharpness(double factor) => Adjust(ColorOp.Sharpness, CheckFactor(factor));

    /// <summary>Inverts every sample at or above <paramref name="threshold"/> (0-256; 256 changes nothing).</summary>
    public Image Solarize(int threshold)
    {
        if (threshold is < 0 or > 256) throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "threshold must be in [0, 256]");
        return Adjust(ColorOp.Solarize, threshold);
    }

    /// <summary>Keeps the top <paramref name="bits"/> bits of every sample (1-8; 8 changes nothing).</summary>
    public Image Posterize(int bits)
    {
        if (bits is < 1 or > 8) throw new ArgumentOutOfRangeException(nameof(bits), bits, "bits must be in [1, 8]");
        return Adjust(ColorOp.Posterize, bits);
    }

    /// <summary>Stretches each channel's range [min, max] to [0, 255].</summary>
    public Image AutoContrast() => Adjust(ColorOp.AutoContrast, 0);

    /// <summary>Equalises each channel's histogram.</summary>
    public Image Equalize() => Adjust(ColorOp.Equalize, 0);

    /// <summary>255 − v for every colour sample.</summary>
    public Image Invert() => Adjust(ColorOp.Invert, 0);

    private Image Adjust(ColorOp op, double amount) => Wrap(vit_image_adjust(Handle, (int)op, amount, out var o), o);

    private static double CheckFactor(double factor) =>
        double.IsFinite(factor) && factor >= 0 ? factor
        : throw new ArgumentOutOfRangeException(nameof(factor), factor, "an enhancement factor must be finite and >= 0");

    // ------------------------------------------------------------------ erasing

    /// <summary>A copy with the rectangle (clipped to the image) set to <paramref name="value"/> in every channel.</summary>
    public Image Erase(int x, int y, int width, int height, byte value) =>
        Wrap(vit_image_erase(Handle, x, y, width, height, 0, value, 0, out var o), o);

    /// <summary>A copy with the rectangle (clipped to the image) filled with uniform random bytes drawn from <paramref name="seed"/>.</summary>
    public Image EraseWithNoise(int x, int y, int width, int height, ulong seed) =>
        Wrap(vit_image_erase(Handle, x, y, width, height, 1, 0, seed, out var o), o);
}
