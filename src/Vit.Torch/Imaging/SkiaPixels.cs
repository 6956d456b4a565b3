using System.Buffers;
using SkiaSharp;

namespace Vit.Torch.Imaging;

/// <summary>
/// Our images as SkiaSharp sees them, for resampling. Gray is Skia's Gray8 over our own pixel memory; colour goes
/// through an opaque Rgba8888 copy (Skia has no three-byte form), and an alpha channel is resampled on its own as a gray
/// plane, so that each channel is resampled independently. Pixels are written with the Src blend mode: a drawn pixel
/// replaces the fill, it is never blended over it.
/// </summary>
internal static unsafe class SkiaPixels
{
    /// <summary>The sampling Skia uses for each of our interpolations.</summary>
    public static SKSamplingOptions Sampling(Interpolation interpolation) => interpolation switch
    {
        // Skia's nearest neighbour, the one ML.NET's ResizeImages (Fill) uses.
        Interpolation.Nearest => new SKSamplingOptions(SKFilterMode.Nearest),
        Interpolation.Bilinear => new SKSamplingOptions(SKFilterMode.Linear),
        // Catmull-Rom (B = 0, C = 1/2): the cubic of PIL's and torchvision's bicubic (a = -0.5).
        Interpolation.Bicubic => new SKSamplingOptions(SKCubicResampler.CatmullRom),
        // Linear between the two nearest levels of a box-filtered pyramid: averages over the pixels a shrink covers.
        Interpolation.Area => new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear),
        _ => throw new ArgumentOutOfRangeException(nameof(interpolation), interpolation, "unknown interpolation"),
    };

    /// <summary>
    /// A new <paramref name="width"/> × <paramref name="height"/> image with the channels of <paramref name="source"/>,
    /// every sample <paramref name="fill"/>, with the region <paramref name="from"/> of the source drawn into
    /// <paramref name="to"/>.
    /// </summary>
    public static Image Draw(Image source, int width, int height, byte fill, SKRect from, SKRect to, Interpolation interpolation) =>
        Render(source, width, height, fill, interpolation, (canvas, image, sampling, paint) =>
            canvas.DrawImage(image, from, to, sampling, paint));

    /// <summary>As <see cref="Draw"/>, the whole source drawn through <paramref name="matrix"/> (source to destination pixels).</summary>
    public static Image Transform(Image source, int width, int height, byte fill, SKMatrix matrix, Interpolation interpolation) =>
        Render(source, width, height, fill, interpolation, (canvas, image, sampling, paint) =>
        {
            canvas.SetMatrix(matrix);
            canvas.DrawImage(image, 0, 0, sampling, paint);
        });

    private static Image Render(Image source, int width, int height, byte fill, Interpolation interpolation,
        Action<SKCanvas, SKImage, SKSamplingOptions, SKPaint> draw)
    {
        int c = source.Channels, w0 = source.Width, h0 = source.Height, n0 = w0 * h0, n = width * height;
        var result = Image.Allocate(width, height, c);
        CheckWorkingSize(w0, h0);
        CheckWorkingSize(width, height);
        var sampling = Sampling(interpolation);
        var src = source.Pixels;
        if (c == 1)
        {
            result.AsSpan().Fill(fill);
            Pass(src, w0, h0, result, width, height, gray: true, sampling, draw);
            return new Image(result, width, height, c);
        }
        var pool = ArrayPool<byte>.Shared;
        byte[] srcRgba = ToRgba(src, c, n0), dstRgba = pool.Rent(n * 4);
        byte[]? srcAlpha = null, dstAlpha = null;
        try
        {
            // The colour as opaque RGBA; with an alpha channel, the alpha on its own as a gray plane, so that every
            // channel is resampled independently (Skia would premultiply, and lose the colour where alpha is 0).
            dstRgba.AsSpan(0, n * 4).Fill(fill);
            Pass(srcRgba, w0, h0, dstRgba, width, height, gray: false, sampling, draw);
            FromRgba(dstRgba, result, n, c, 3);
            if (c == 4)
            {
                srcAlpha = pool.Rent(n0);
                dstAlpha = pool.Rent(n);
                for (int i = 0; i < n0; i++) srcAlpha[i] = src[4 * i + 3];
                dstAlpha.AsSpan(0, n).Fill(fill);
                Pass(srcAlpha, w0, h0, dstAlpha, width, height, gray: true, sampling, draw);
                for (int i = 0; i < n; i++) result[4 * i + 3] = dstAlpha[i];
            }
            return new Image(result, width, height, c);
        }
        finally
        {
            pool.Return(srcRgba);
            pool.Return(dstRgba);
            if (srcAlpha is not null) pool.Return(srcAlpha);
            if (dstAlpha is not null) pool.Return(dstAlpha);
        }
    }

    // One draw from an opaque Gray8 or Rgba8888 buffer into another whose pixels are already the fill; with the Src
    // blend mode a drawn pixel replaces what is there.
    private static void Pass(byte[] src, int w0, int h0, byte[] dst, int width, int height, bool gray, SKSamplingOptions sampling,
        Action<SKCanvas, SKImage, SKSamplingOptions, SKPaint> draw)
    {
        int bytes = gray ? 1 : 4;
        var type = gray ? SKColorType.Gray8 : SKColorType.Rgba8888;
        fixed (byte* s = src)
        fixed (byte* d = dst)
        {
            using var srcMap = new SKPixmap(new SKImageInfo(w0, h0, type, SKAlphaType.Opaque), (IntPtr)s, w0 * bytes);
            using var image = SKImage.FromPixels(srcMap) ?? throw new InvalidOperationException("SkiaSharp refused the source pixels");
            using var bitmap = new SKBitmap();
            if (!bitmap.InstallPixels(new SKImageInfo(width, height, type, SKAlphaType.Opaque), (IntPtr)d, width * bytes))
                throw new InvalidOperationException("SkiaSharp refused the destination pixels");
            using var canvas = new SKCanvas(bitmap);
            using var paint = new SKPaint { BlendMode = SKBlendMode.Src, IsAntialias = false };
            draw(canvas, image, sampling, paint);
            canvas.Flush();
        }
    }

    /// <summary>Resampling colour goes through 4 bytes per pixel: refuses what would not fit one array.</summary>
    public static void CheckWorkingSize(int width, int height)
    {
        if ((long)width * height * 4 > Array.MaxLength)
            throw new ArgumentException($"a {width}x{height} image is too large to resample or encode (it needs {(long)width * height * 4} bytes at 4 per pixel; the limit is {Array.MaxLength})");
    }

    /// <summary>Skia's description of our pixels with <paramref name="channels"/> channels (3: through Rgba8888).</summary>
    public static SKImageInfo Info(int width, int height, int channels) => channels switch
    {
        1 => new SKImageInfo(width, height, SKColorType.Gray8, SKAlphaType.Opaque),
        3 => new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque),
        _ => new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul),
    };

    /// <summary>RGB, or RGBA's colour, to opaque RGBA in a pooled buffer (return it to <see cref="ArrayPool{T}.Shared"/>).</summary>
    public static byte[] ToRgba(byte[] colour, int channels, int pixels)
    {
        var rgba = ArrayPool<byte>.Shared.Rent(pixels * 4);
        for (int i = 0, j = 0, k = 0; i < pixels; i++, j += 4, k += channels)
        {
            rgba[j] = colour[k];
            rgba[j + 1] = colour[k + 1];
            rgba[j + 2] = colour[k + 2];
            rgba[j + 3] = 255;
        }
        return rgba;
    }

    /// <summary>
    /// The first <paramref name="count"/> channels of each RGBA pixel into <paramref name="dst"/>, which has
    /// <paramref name="channels"/> per pixel (RGBA to RGB: 3 of 3; gray decoded as RGBA: 1 of 1; the colour of RGBA: 3 of 4).
    /// </summary>
    public static void FromRgba(ReadOnlySpan<byte> rgba, Span<byte> dst, int pixels, int channels, int count)
    {
        for (int i = 0, j = 0, o = 0; i < pixels; i++, j += 4, o += channels)
            for (int k = 0; k < count; k++) dst[o + k] = rgba[j + k];
    }
}
