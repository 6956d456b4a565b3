using SkiaSharp;

namespace Vit.Torch.Imaging;

// Deterministic image operations: the building blocks of the random augmentations in Augment. Every method
// returns a new image; alpha, when present, is left unchanged by the colour operations.
public sealed partial class Image
{
    private enum ColorOp
    {
        Brightness,
        Contrast,
        Saturation,
        Sharpness,
        Solarize,
        Posterize,
        AutoContrast,
        Equalize,
        Invert,
    }

    // ------------------------------------------------------------------ geometry

    /// <summary>Mirrors left-right.</summary>
    public Image FlipHorizontal()
    {
        var src = Pixels;
        int w = Width, c = Channels;
        var dst = new byte[src.Length];
        for (int y = 0; y < Height; y++)
        {
            int row = y * w * c;
            for (int x = 0, back = row + (w - 1) * c; x < w; x++, back -= c)
                for (int k = 0; k < c; k++) dst[back + k] = src[row + x * c + k];
        }
        return new Image(dst, w, Height, c);
    }

    /// <summary>Mirrors top-bottom.</summary>
    public Image FlipVertical()
    {
        var src = Pixels;
        int row = Width * Channels;
        var dst = new byte[src.Length];
        for (int y = 0; y < Height; y++) Buffer.BlockCopy(src, y * row, dst, (Height - 1 - y) * row, row);
        return new Image(dst, Width, Height, Channels);
    }

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
        CheckInterp(interpolation);
        // Skia puts pixel centres at +0.5: conjugate the map by that shift.
        double a = matrix[0], b = matrix[1], c = matrix[3], d = matrix[4];
        var skia = new SKMatrix(
            (float)a, (float)b, (float)(matrix[2] + 0.5 - 0.5 * a - 0.5 * b),
            (float)c, (float)d, (float)(matrix[5] + 0.5 - 0.5 * c - 0.5 * d),
            0, 0, 1);
        return SkiaPixels.Transform(this, outWidth, outHeight, fill, skia,
            interpolation == Interpolation.Area ? Interpolation.Bilinear : interpolation);
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

    private Image Adjust(ColorOp op, double amount)
    {
        var src = Pixels;
        var dst = (byte[])src.Clone();
        int n = Width * Height, c = Channels, colours = c == 4 ? 3 : c;
        switch (op)
        {
            case ColorOp.Brightness:  // blend with black
                MapSamples(dst, c, v => v * amount);
                break;
            case ColorOp.Contrast:  // blend with the mean gray level
            {
                double mean = 0;
                for (int i = 0; i < n; i++) mean += GrayAt(src, i, c);
                mean /= n;
                MapSamples(dst, c, v => v * amount + (1 - amount) * mean);
                break;
            }
            case ColorOp.Saturation:  // blend with the grayscale image
                if (c == 1) break;
                for (int i = 0; i < n; i++)
                {
                    double g = GrayAt(src, i, c) * (1 - amount);
                    for (int k = 0; k < 3; k++) dst[i * c + k] = Saturate(src[i * c + k] * amount + g);
                }
                break;
            case ColorOp.Sharpness:  // blend with PIL's SMOOTH filter (3x3, centre 5, sum 13); border pixels stay
            {
                int w = Width, h = Height;
                if (w < 3 || h < 3) break;
                for (int y = 1; y < h - 1; y++)
                    for (int x = 1; x < w - 1; x++)
                        for (int k = 0; k < colours; k++)
                        {
                            int at = (y * w + x) * c + k, sum = 4 * src[at];
                            for (int dy = -1; dy <= 1; dy++)
                                for (int dx = -1; dx <= 1; dx++) sum += src[at + (dy * w + dx) * c];
                            double smooth = Math.Round(sum / 13.0, MidpointRounding.ToEven);
                            dst[at] = Saturate(src[at] * amount + smooth * (1 - amount));
                        }
                break;
            }
            case ColorOp.Solarize:
                MapTable(dst, c, v => v >= amount ? 255 - v : v);
                break;
            case ColorOp.Posterize:
            {
                int mask = ~((1 << (8 - (int)amount)) - 1) & 0xFF;
                MapTable(dst, c, v => v & mask);
                break;
            }
            case ColorOp.AutoContrast:  // stretch each channel's [min, max] to [0, 255]
                for (int k = 0; k < colours; k++)
                {
                    int lo = 255, hi = 0;
                    for (int i = k; i < src.Length; i += c)
                    {
                        lo = Math.Min(lo, src[i]);
                        hi = Math.Max(hi, src[i]);
                    }
                    if (hi <= lo) continue;
                    double scale = 255.0 / (hi - lo);
                    for (int i = k; i < src.Length; i += c) dst[i] = Saturate((src[i] - lo) * scale);
                }
                break;
            case ColorOp.Equalize:
                for (int k = 0; k < colours; k++) EqualizeChannel(src, dst, k, c);
                break;
            case ColorOp.Invert:
                MapTable(dst, c, v => 255 - v);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op, "unknown colour operation");
        }
        return new Image(dst, Width, Height, c);
    }

    private static double GrayAt(byte[] px, int pixel, int channels) =>
        channels == 1 ? px[pixel] : Luma(px[pixel * channels], px[pixel * channels + 1], px[pixel * channels + 2]);

    /// <summary>Rounded to nearest (ties to even) and saturated to 0..255.</summary>
    private static byte Saturate(double v) => v >= 255 ? (byte)255 : v <= 0 || double.IsNaN(v) ? (byte)0 : (byte)Math.Round(v, MidpointRounding.ToEven);

    // f over every colour sample (alpha kept), through a table of the 256 inputs.
    private static void MapSamples(byte[] px, int channels, Func<double, double> f)
    {
        Span<byte> table = stackalloc byte[256];
        for (int v = 0; v < 256; v++) table[v] = Saturate(f(v));
        ApplyTable(px, channels, table);
    }

    private static void MapTable(byte[] px, int channels, Func<int, int> f)
    {
        Span<byte> table = stackalloc byte[256];
        for (int v = 0; v < 256; v++) table[v] = (byte)Math.Clamp(f(v), 0, 255);
        ApplyTable(px, channels, table);
    }

    private static void ApplyTable(byte[] px, int channels, ReadOnlySpan<byte> table)
    {
        if (channels != 4)
        {
            foreach (ref var v in px.AsSpan()) v = table[v];
            return;
        }
        for (int i = 0; i < px.Length; i += 4)
        {
            px[i] = table[px[i]];
            px[i + 1] = table[px[i + 1]];
            px[i + 2] = table[px[i + 2]];
        }
    }

    // Histogram equalisation of one channel: the first occupied level maps to 0, the others to 255 times the share
    // of the samples above it (OpenCV's equalizeHist); a channel of one level is left as it is.
    private static void EqualizeChannel(byte[] src, byte[] dst, int channel, int channels)
    {
        Span<long> hist = stackalloc long[256];
        hist.Clear();
        for (int i = channel; i < src.Length; i += channels) hist[src[i]]++;
        long total = src.Length / channels;
        int first = 0;
        while (hist[first] == 0) first++;
        if (hist[first] == total) return;
        double scale = 255.0 / (total - hist[first]);
        Span<byte> table = stackalloc byte[256];
        long sum = 0;
        for (int v = first + 1; v < 256; v++)
        {
            sum += hist[v];
            table[v] = Saturate(sum * scale);
        }
        for (int i = channel; i < src.Length; i += channels) dst[i] = table[src[i]];
    }

    private static double CheckFactor(double factor) =>
        double.IsFinite(factor) && factor >= 0 ? factor
        : throw new ArgumentOutOfRangeException(nameof(factor), factor, "an enhancement factor must be finite and >= 0");

    // ------------------------------------------------------------------ erasing

    /// <summary>A copy with the rectangle (clipped to the image) set to <paramref name="value"/> in every channel.</summary>
    public Image Erase(int x, int y, int width, int height, byte value) => EraseRegion(x, y, width, height, value, 0);

    /// <summary>A copy with the rectangle (clipped to the image) filled with uniform random bytes drawn from <paramref name="seed"/>.</summary>
    public Image EraseWithNoise(int x, int y, int width, int height, ulong seed) => EraseRegion(x, y, width, height, null, seed);

    // The rectangle clipped to the image, set to value, or (value null) to bytes drawn row by row from seed.
    private Image EraseRegion(int x, int y, int width, int height, byte? value, ulong seed)
    {
        var dst = (byte[])Pixels.Clone();
        int x0 = Math.Max(x, 0), y0 = Math.Max(y, 0);
        int x1 = (int)Math.Min((long)x + Math.Max(width, 0), Width), y1 = (int)Math.Min((long)y + Math.Max(height, 0), Height);
        for (int r = y0; r < y1 && x0 < x1; r++)
        {
            var row = dst.AsSpan((r * Width + x0) * Channels, (x1 - x0) * Channels);
            if (value is { } v) row.Fill(v);
            else
                for (int i = 0; i < row.Length; i++) row[i] = (byte)(SplitMix64(ref seed) >> 56);
        }
        return new Image(dst, Width, Height, Channels);
    }

    // SplitMix64 (Steele, Lea and Flood, 2014): a small seeded generator whose stream depends on the seed alone.
    private static ulong SplitMix64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
