using System.Buffers;
using SkiaSharp;

namespace Vit.Torch.Imaging;

/// <summary>
/// Our images as SkiaSharp sees them, for resampling. Gray is Skia's Gray8 and RGBA its unpremultiplied Rgba8888,
/// both over our own pixel memory; RGB has no three-byte form in Skia, so it goes through an opaque Rgba8888 copy.
/// Pixels are written with the Src blend mode: a drawn pixel replaces the destination's, it is never blended over it.
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
        var result = Image.Allocate(width, height, source.Channels);
        int c = source.Channels;
        var sampling = Sampling(interpolation);
        byte[]? srcRgba = null, dstRgba = null;
        try
        {
            var src = source.Pixels;
            if (c == 3)
            {
                srcRgba = ToRgba(src, source.Width * source.Height);
                dstRgba = ArrayPool<byte>.Shared.Rent(width * height * 4);
            }
            fixed (byte* s = c == 3 ? srcRgba : src)
            fixed (byte* d = c == 3 ? dstRgba : result)
            {
                using var srcMap = new SKPixmap(Info(source.Width, source.Height, c), (IntPtr)s, source.Width * (c == 1 ? 1 : 4));
                using var image = SKImage.FromPixels(srcMap) ?? throw new InvalidOperationException("SkiaSharp refused the source pixels");
                using var bitmap = new SKBitmap();
                if (!bitmap.InstallPixels(Info(width, height, c), (IntPtr)d, width * (c == 1 ? 1 : 4)))
                    throw new InvalidOperationException("SkiaSharp refused the destination pixels");
                using (var canvas = new SKCanvas(bitmap))
                using (var paint = new SKPaint { BlendMode = SKBlendMode.Src, IsAntialias = false })
                {
                    canvas.Clear(c == 3 ? new SKColor(fill, fill, fill, 255) : new SKColor(fill, fill, fill, fill));
                    draw(canvas, image, sampling, paint);
                    canvas.Flush();
                }
            }
            if (c == 3) FromRgba(dstRgba!, result, width * height);
            return new Image(result, width, height, c);
        }
        finally
        {
            if (srcRgba is not null) ArrayPool<byte>.Shared.Return(srcRgba);
            if (dstRgba is not null) ArrayPool<byte>.Shared.Return(dstRgba);
        }
    }

    /// <summary>Skia's description of our pixels with <paramref name="channels"/> channels (3: through Rgba8888).</summary>
    public static SKImageInfo Info(int width, int height, int channels) => channels switch
    {
        1 => new SKImageInfo(width, height, SKColorType.Gray8, SKAlphaType.Opaque),
        3 => new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque),
        _ => new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul),
    };

    /// <summary>RGB to opaque RGBA in a pooled buffer (return it to <see cref="ArrayPool{T}.Shared"/>).</summary>
    public static byte[] ToRgba(byte[] rgb, int pixels)
    {
        var rgba = ArrayPool<byte>.Shared.Rent(pixels * 4);
        for (int i = 0, j = 0; i < pixels; i++, j += 4)
        {
            rgba[j] = rgb[3 * i];
            rgba[j + 1] = rgb[3 * i + 1];
            rgba[j + 2] = rgb[3 * i + 2];
            rgba[j + 3] = 255;
        }
        return rgba;
    }

    /// <summary>RGBA to RGB: alpha dropped.</summary>
    public static void FromRgba(ReadOnlySpan<byte> rgba, Span<byte> rgb, int pixels)
    {
        for (int i = 0, j = 0; i < pixels; i++, j += 4)
        {
            rgb[3 * i] = rgba[j];
            rgb[3 * i + 1] = rgba[j + 1];
            rgb[3 * i + 2] = rgba[j + 2];
        }
    }
}
