using System.Buffers.Binary;
using SkiaSharp;

namespace Vit.Torch.Imaging;

/// <summary>
/// Decoding and encoding through SkiaSharp's codecs (libjpeg-turbo, libpng, libwebp and Skia's BMP reader, inside the
/// SkiaSharp native library of NuGet). Every input is first read by <see cref="ImageProbe"/>: the format, the size
/// against the pixel limit, completeness. Failures are <see cref="ImageProbeException"/>s carrying the reason alone.
/// </summary>
internal static unsafe class ImageCodec
{
    /// <summary>The bytes of a file, or the reason it cannot be read.</summary>
    public static byte[] ReadFile(string path)
    {
        if (path.Length == 0 || path.Contains('\0')) throw new ImageProbeException("cannot open the file: the path is empty or holds a NUL character");
        if (Directory.Exists(path)) throw new ImageProbeException("it is a directory, not a file");
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.None);
            if (!stream.CanSeek) throw new ImageProbeException("it is not a regular file");
            if (stream.Length > int.MaxValue) throw new ImageProbeException("the file is larger than 2 GiB");
            var data = new byte[stream.Length];
            int got = 0;
            while (got < data.Length)
            {
                int r = stream.Read(data, got, data.Length - got);
                if (r == 0) break;  // shrank while reading
                got += r;
            }
            return got == data.Length ? data : data[..got];
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ImageProbeException("cannot open the file: No such file or directory");
        }
        catch (UnauthorizedAccessException)
        {
            throw new ImageProbeException("cannot open the file: Permission denied");
        }
        catch (Exception e) when (e is IOException or NotSupportedException or ArgumentException)
        {
            throw new ImageProbeException($"cannot read the file: {e.GetType().Name}: {e.Message.Replace(path, "it", StringComparison.Ordinal)}");
        }
    }

    public static Image Decode(ReadOnlySpan<byte> data, ImageDecodeOptions options)
    {
        var p = ImageProbe.Read(data);
        var name = ImageProbe.NameOf(p.Format);
        if (p.Width * p.Height > options.MaxPixels)
            throw new ImageProbeException(FormattableString.Invariant(
                $"the {name} header gives the size {p.Width}x{p.Height} ({p.Width * p.Height / 1e6:G6} megapixels), more than the limit of {options.MaxPixels / 1e6:G6} megapixels (a protection against decompression bombs; the limit is configurable)"));
        if (p.Width * p.Height * 4 > int.MaxValue)
            throw new ImageProbeException($"the header gives the size {p.Width}x{p.Height}, too large to hold in one buffer (2 GiB)");
        if (p.Incomplete is not null) throw new ImageProbeException(p.Incomplete);

        var (decoded, origin) = DecodeFrame(data, p, name);
        using (decoded)
        {
            using var shown = options.ApplyExifOrientation && origin != SKEncodedOrigin.TopLeft ? Orient(decoded, origin) : decoded.Clone();
            return options.Channels is { } channels ? shown.ToChannels(channels) : shown.Clone();
        }
    }

    private static (Image Image, SKEncodedOrigin Origin) DecodeFrame(ReadOnlySpan<byte> data, ImageProbe p, string name)
    {
        fixed (byte* d = data)
        {
            using var skData = SKData.Create((IntPtr)d, data.Length, (_, _) => { });
            using var stream = new SKMemoryStream(skData);
            using var codec = SKCodec.Create(stream, out var created)
                ?? throw new ImageProbeException($"the {name} decoder could not read the data ({created})");
            var info = codec.Info;
            if (info.Width != p.Width || info.Height != p.Height)
                throw new ImageProbeException($"corrupt {name}: the decoder reads the size {info.Width}x{info.Height}, the header {p.Width}x{p.Height}");
            bool alpha = info.AlphaType != SKAlphaType.Opaque;
            int channels = p.Gray && !alpha ? 1 : alpha ? 4 : 3;
            int w = info.Width, h = info.Height;
            // Decoded without any colour-space conversion (as stored), like PIL and OpenCV. A gray image Skia does not
            // decode to Gray8 (a BMP with a gray palette) is decoded to RGBA and its red kept.
            var result = new byte[(long)w * h * channels];
            var status = channels == 1 ? Pixels(codec, w, h, SKColorType.Gray8, result) : SKCodecResult.InvalidConversion;
            if (status == SKCodecResult.InvalidConversion)
            {
                var rgba = new byte[(long)w * h * 4];
                status = Pixels(codec, w, h, SKColorType.Rgba8888, rgba, alpha);
                SkiaPixels.FromRgba(rgba, result, w * h, channels, channels);
            }
            if (status != SKCodecResult.Success)
                throw new ImageProbeException($"the {name} decoder could not read the data (corrupt or unsupported variant: {status})");
            return (new Image(result, w, h, channels), codec.EncodedOrigin);
        }
    }

    // The first frame's pixels (an animation's first frame, as PIL opens it) into dst, in the given colour type.
    private static SKCodecResult Pixels(SKCodec codec, int w, int h, SKColorType type, byte[] dst, bool alpha = false)
    {
        fixed (byte* d = dst)
            return codec.GetPixels(new SKImageInfo(w, h, type, alpha ? SKAlphaType.Unpremul : SKAlphaType.Opaque), (IntPtr)d,
                w * (type == SKColorType.Gray8 ? 1 : 4), new SKCodecOptions(0));
    }

    /// <summary>The image as an EXIF orientation says it is to be shown.</summary>
    private static Image Orient(Image image, SKEncodedOrigin origin)
    {
        int w = image.Width, h = image.Height, c = image.Channels;
        bool swap = origin >= SKEncodedOrigin.LeftTop;  // 5-8: width and height trade places
        int ow = swap ? h : w, oh = swap ? w : h;
        var src = image.Pixels;
        var dst = new byte[src.Length];
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
            {
                // The stored pixel shown at (x, y).
                var (sx, sy) = origin switch
                {
                    SKEncodedOrigin.TopRight => (w - 1 - x, y),               // 2: mirrored
                    SKEncodedOrigin.BottomRight => (w - 1 - x, h - 1 - y),    // 3: turned 180
                    SKEncodedOrigin.BottomLeft => (x, h - 1 - y),             // 4: flipped
                    SKEncodedOrigin.LeftTop => (y, x),                        // 5: transposed
                    SKEncodedOrigin.RightTop => (y, h - 1 - x),               // 6: turned 90 clockwise to show
                    SKEncodedOrigin.RightBottom => (w - 1 - y, h - 1 - x),    // 7: transversed
                    SKEncodedOrigin.LeftBottom => (w - 1 - y, x),             // 8: turned 90 anticlockwise to show
                    _ => (x, y),
                };
                int from = (sy * w + sx) * c, to = (y * ow + x) * c;
                for (int k = 0; k < c; k++) dst[to + k] = src[from + k];
            }
        return new Image(dst, ow, oh, c);
    }

    /// <summary>PNG, JPEG or WebP bytes. JPEG drops alpha; gray stays gray in PNG and JPEG.</summary>
    public static byte[] Encode(Image image, SKEncodedImageFormat format, int quality, bool lossless = false)
    {
        var px = image.Pixels;
        int c = image.Channels, w = image.Width, h = image.Height;
        SkiaPixels.CheckWorkingSize(w, h);
        // The formats' own limits, named rather than left to a failed encode.
        int limit = format == SKEncodedImageFormat.Webp ? 16383 : format == SKEncodedImageFormat.Jpeg ? 65535 : int.MaxValue;
        if (w > limit || h > limit)
            throw new ArgumentException($"a {w}x{h} image cannot be written as {format}: its sides are limited to {limit} pixels");
        byte[]? rgba = c == 3 ? SkiaPixels.ToRgba(px, 3, w * h) : null;
        try
        {
            fixed (byte* p = rgba ?? px)
            {
                using var map = new SKPixmap(SkiaPixels.Info(w, h, c), (IntPtr)p, w * (c == 1 ? 1 : 4));
                using var data = format switch
                {
                    SKEncodedImageFormat.Png => map.Encode(new SKPngEncoderOptions(SKPngEncoderFilterFlags.AllFilters, 6)),
                    SKEncodedImageFormat.Jpeg => map.Encode(new SKJpegEncoderOptions(quality, SKJpegEncoderDownsample.Downsample420, SKJpegEncoderAlphaOption.Ignore)),
                    _ => map.Encode(new SKWebpEncoderOptions(lossless ? SKWebpEncoderCompression.Lossless : SKWebpEncoderCompression.Lossy, lossless ? 75 : quality)),
                };
                return data?.ToArray() ?? throw new InvalidOperationException($"SkiaSharp could not encode a {w}x{h} image with {c} channel(s) as {format}");
            }
        }
        finally
        {
            if (rgba is not null) System.Buffers.ArrayPool<byte>.Shared.Return(rgba);
        }
    }

    /// <summary>An uncompressed 24-bit BMP (BITMAPINFOHEADER, rows bottom-up, BGR, padded to 4 bytes).</summary>
    public static byte[] EncodeBmp(Image image)
    {
        var px = image.Pixels;
        int w = image.Width, h = image.Height, c = image.Channels, stride = (w * 3 + 3) & ~3;
        long size = 54 + (long)stride * h;
        if (size > int.MaxValue) throw new InvalidOperationException($"a {w}x{h} image is too large for a BMP");
        var bmp = new byte[size];
        var s = bmp.AsSpan();
        s[0] = (byte)'B';
        s[1] = (byte)'M';
        BinaryPrimitives.WriteInt32LittleEndian(s[2..], (int)size);
        BinaryPrimitives.WriteInt32LittleEndian(s[10..], 54);   // pixel data offset
        BinaryPrimitives.WriteInt32LittleEndian(s[14..], 40);   // BITMAPINFOHEADER
        BinaryPrimitives.WriteInt32LittleEndian(s[18..], w);
        BinaryPrimitives.WriteInt32LittleEndian(s[22..], h);    // positive: bottom-up
        BinaryPrimitives.WriteInt16LittleEndian(s[26..], 1);    // planes
        BinaryPrimitives.WriteInt16LittleEndian(s[28..], 24);   // bits per pixel; compression 0 (BI_RGB)
        BinaryPrimitives.WriteInt32LittleEndian(s[34..], stride * h);
        BinaryPrimitives.WriteInt32LittleEndian(s[38..], 2835);  // 72 dpi
        BinaryPrimitives.WriteInt32LittleEndian(s[42..], 2835);
        for (int y = 0; y < h; y++)
        {
            int row = 54 + (h - 1 - y) * stride;
            for (int x = 0; x < w; x++)
            {
                int i = (y * w + x) * c, o = row + 3 * x;
                if (c == 1)
                {
                    bmp[o] = bmp[o + 1] = bmp[o + 2] = px[i];
                }
                else
                {
                    bmp[o] = px[i + 2];
                    bmp[o + 1] = px[i + 1];
                    bmp[o + 2] = px[i];
                }
            }
        }
        return bmp;
    }
}
