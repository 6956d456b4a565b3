using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Vit.Torch.Imaging;

/// <summary>The encoded formats <see cref="Image.Decode(string, ImageDecodeOptions?)"/> reads.</summary>
internal enum ImageFormat
{
    Jpeg,
    Png,
    Bmp,
    WebP,
}

/// <summary>
/// What the header of an encoded image says before any decoder runs: the format, the size (so that an image above
/// the pixel limit is refused before a pixel is allocated: decompression bombs), whether the stored colour is gray or
/// carries alpha, and whether the data is complete (a decoder may silently fill a truncated JPEG with gray). Only
/// JPEG, PNG, BMP and WebP are accepted: for other formats the size could not be checked first.
/// A failure is an <see cref="ImageProbeException"/> whose text is the reason alone (the caller names the file).
/// </summary>
internal sealed class ImageProbe
{
    private ImageProbe(ImageFormat format) => Format = format;

    public ImageFormat Format { get; }

    public long Width { get; private set; }

    public long Height { get; private set; }

    /// <summary>The stored colour is gray (PNG colour types 0 and 4, a one-component JPEG).</summary>
    public bool Gray { get; private set; }

    /// <summary>Non-null: why the data is truncated or damaged (found after the size was read).</summary>
    public string? Incomplete { get; private set; }

    public static string NameOf(ImageFormat f) => f switch
    {
        ImageFormat.Jpeg => "JPEG",
        ImageFormat.Png => "PNG",
        ImageFormat.Bmp => "BMP",
        _ => "WebP",
    };

    public static ImageProbe Read(ReadOnlySpan<byte> d)
    {
        if (d.Length == 0) throw new ImageProbeException("the file is empty (0 bytes)");
        if (d.StartsWith((ReadOnlySpan<byte>)[0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A])) return Png(d);
        if (d.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF])) return Jpeg(d);
        if (d.StartsWith("BM"u8)) return Bmp(d);
        if (d.Length >= 12 && d.StartsWith("RIFF"u8) && d[8..12].SequenceEqual("WEBP"u8)) return WebP(d);
        throw Unknown(d);
    }

    private static ImageProbeException Fail(string why) => new(why);

    private static string Truncated(ImageFormat f, int n, string where) =>
        string.Create(CultureInfo.InvariantCulture, $"truncated {NameOf(f)}: the data ({n} bytes) ends {where}");

    private static uint Be16(ReadOnlySpan<byte> d, int at) => BinaryPrimitives.ReadUInt16BigEndian(d[at..]);
    private static uint Be32(ReadOnlySpan<byte> d, int at) => BinaryPrimitives.ReadUInt32BigEndian(d[at..]);
    private static uint Le16(ReadOnlySpan<byte> d, int at) => BinaryPrimitives.ReadUInt16LittleEndian(d[at..]);
    private static uint Le24(ReadOnlySpan<byte> d, int at) => Le16(d, at) | ((uint)d[at + 2] << 16);
    private static uint Le32(ReadOnlySpan<byte> d, int at) => BinaryPrimitives.ReadUInt32LittleEndian(d[at..]);

    // PNG: signature, then chunks (length, type, data, CRC); IHDR first holds the size and colour type; IEND ends it.
    private static ImageProbe Png(ReadOnlySpan<byte> d)
    {
        var p = new ImageProbe(ImageFormat.Png);
        if (d.Length < 8 + 8 + 13) throw Fail(Truncated(ImageFormat.Png, d.Length, "inside the header (IHDR)"));
        if (Be32(d, 8) != 13 || !d[12..16].SequenceEqual("IHDR"u8)) throw Fail("corrupt PNG: the first chunk is not a valid IHDR");
        p.Width = Be32(d, 16);
        p.Height = Be32(d, 20);
        if (p.Width == 0 || p.Height == 0 || p.Width > int.MaxValue || p.Height > int.MaxValue)
            throw Fail($"corrupt PNG: IHDR gives the size {p.Width}x{p.Height}");
        p.Gray = d[25] is 0 or 4;
        long pos = 8;
        while (true)
        {
            if (pos + 8 > d.Length)
            {
                p.Incomplete = Truncated(ImageFormat.Png, d.Length, "before the end chunk (IEND)");
                break;
            }
            long len = Be32(d, (int)pos);
            var type = Encoding.Latin1.GetString(d.Slice((int)pos + 4, 4));
            if (len > int.MaxValue)
            {
                p.Incomplete = $"corrupt PNG: chunk at byte {pos} has an invalid length";
                break;
            }
            if (pos + 12 + len > d.Length)
            {
                p.Incomplete = Truncated(ImageFormat.Png, d.Length, $"inside the {type} chunk at byte {pos}");
                break;
            }
            if (type == "IEND") break;
            pos += 12 + len;
        }
        return p;
    }

    private static bool IsFrameHeader(int m) => m is >= 0xC0 and <= 0xCF and not (0xC4 or 0xC8 or 0xCC);

    // JPEG: SOI, then marker segments up to the first scan (SOS); the frame header (SOFn) holds the size; the
    // entropy-coded data after SOS never holds FF D9 except as the end-of-image marker (FF is stuffed as FF 00).
    private static ImageProbe Jpeg(ReadOnlySpan<byte> d)
    {
        var p = new ImageProbe(ImageFormat.Jpeg);
        int n = d.Length, pos = 2;
        bool haveSize = false;
        while (true)
        {
            if (pos >= n)
            {
                if (!haveSize) throw Fail(Truncated(ImageFormat.Jpeg, n, "before the frame header (SOF)"));
                p.Incomplete = Truncated(ImageFormat.Jpeg, n, "before the image data (SOS)");
                return p;
            }
            if (d[pos] != 0xFF)
            {
                if (!haveSize) throw Fail($"corrupt JPEG: expected a marker at byte {pos}");
                p.Incomplete = $"corrupt JPEG: expected a marker at byte {pos}";
                return p;
            }
            while (pos < n && d[pos] == 0xFF) pos++;  // fill bytes
            if (pos >= n) continue;
            int m = d[pos++];
            if (m is 0xD8 or 0x01 or (>= 0xD0 and <= 0xD7)) continue;  // markers without a segment
            if (m == 0xD9)
            {
                if (!haveSize) throw Fail("corrupt JPEG: the end-of-image marker comes before any frame header");
                p.Incomplete = "corrupt JPEG: the end-of-image marker comes before any image data";
                return p;
            }
            if (pos + 2 > n || pos + Be16(d, pos) > n)
            {
                var where = $"inside a marker segment at byte {pos - 2}";
                if (!haveSize) throw Fail(Truncated(ImageFormat.Jpeg, n, where));
                p.Incomplete = Truncated(ImageFormat.Jpeg, n, where);
                return p;
            }
            int len = (int)Be16(d, pos);
            if (len < 2) throw Fail($"corrupt JPEG: marker segment of length {len} at byte {pos - 2}");
            if (IsFrameHeader(m) && !haveSize)
            {
                if (len < 8) throw Fail("corrupt JPEG: frame header too short");
                p.Height = Be16(d, pos + 3);
                p.Width = Be16(d, pos + 5);
                p.Gray = d[pos + 7] == 1;
                if (p.Width == 0 || p.Height == 0)
                    throw Fail($"unsupported JPEG: the frame header gives the size {p.Width}x{p.Height} (a height defined later by a DNL marker is not supported)");
                haveSize = true;
            }
            if (m == 0xDA)
            {
                if (!haveSize) throw Fail("corrupt JPEG: image data (SOS) before any frame header");
                if (d[(pos + len)..].IndexOf((ReadOnlySpan<byte>)[0xFF, 0xD9]) < 0)
                    p.Incomplete = Truncated(ImageFormat.Jpeg, n, "before the end-of-image marker (the file was probably cut short)");
                return p;
            }
            pos += len;
        }
    }

    // BMP: file header (14 bytes), then an info header whose first field is its own size.
    private static ImageProbe Bmp(ReadOnlySpan<byte> d)
    {
        var p = new ImageProbe(ImageFormat.Bmp);
        int n = d.Length;
        if (n < 26) throw Fail(Truncated(ImageFormat.Bmp, n, "inside the header"));
        uint offset = Le32(d, 10), info = Le32(d, 14);
        long w, h;
        uint bpp, compression = 0;
        if (info == 12)
        {
            w = Le16(d, 18);
            h = Le16(d, 20);
            bpp = Le16(d, 24);
        }
        else if (info >= 40)
        {
            if (n < 14 + 40) throw Fail(Truncated(ImageFormat.Bmp, n, "inside the header"));
            w = (int)Le32(d, 18);
            h = (int)Le32(d, 22);  // negative: rows stored top-down
            bpp = Le16(d, 28);
            compression = Le32(d, 30);
        }
        else
        {
            throw Fail($"corrupt BMP: unknown info header size {info}");
        }
        if (w <= 0 || h == 0) throw Fail($"corrupt BMP: the header gives the size {w}x{h}");
        p.Width = w;
        p.Height = Math.Abs(h);
        // A palette of grays (BITMAPINFOHEADER and later: B, G, R, reserved per entry) is a gray image.
        if (info >= 40 && bpp <= 8)
        {
            long colours = Le32(d, 46) is var used and > 0 ? used : 1L << (int)bpp;
            long start = 14 + info;
            if (colours <= 256 && start + colours * 4 <= n)
            {
                bool gray = true;
                for (long i = 0; i < colours && gray; i++)
                {
                    int e = (int)(start + i * 4);
                    gray = d[e] == d[e + 1] && d[e + 1] == d[e + 2];
                }
                p.Gray = gray;
            }
        }
        // Uncompressed (BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS): rows padded to 4 bytes, so the size is known.
        if (compression is 0 or 3 or 6)
        {
            var stride = ((Int128)p.Width * bpp + 31) / 32 * 4;
            var need = offset + stride * p.Height;
            if (need > n)
                p.Incomplete = Truncated(ImageFormat.Bmp, n, $"inside the pixel data ({(long)Int128.Min(need, long.MaxValue)} bytes expected)");
        }
        return p;
    }

    // WebP: a RIFF container whose first chunk is VP8 (lossy), VP8L (lossless) or VP8X (extended: the canvas size).
    private static ImageProbe WebP(ReadOnlySpan<byte> d)
    {
        var p = new ImageProbe(ImageFormat.WebP);
        if (d.Length < 30) throw Fail(Truncated(ImageFormat.WebP, d.Length, "inside the header"));
        var chunk = d[12..16];
        if (chunk.SequenceEqual("VP8 "u8))
        {
            if (d[23] != 0x9D || d[24] != 0x01 || d[25] != 0x2A) throw Fail("corrupt WebP: bad VP8 start code");
            p.Width = Le16(d, 26) & 0x3FFF;
            p.Height = Le16(d, 28) & 0x3FFF;
        }
        else if (chunk.SequenceEqual("VP8L"u8))
        {
            if (d[20] != 0x2F) throw Fail("corrupt WebP: bad VP8L signature");
            uint bits = Le32(d, 21);
            p.Width = (bits & 0x3FFF) + 1;
            p.Height = ((bits >> 14) & 0x3FFF) + 1;
        }
        else if (chunk.SequenceEqual("VP8X"u8))
        {
            p.Width = Le24(d, 24) + 1L;
            p.Height = Le24(d, 27) + 1L;
        }
        else
        {
            throw Fail($"corrupt WebP: unknown first chunk '{Encoding.Latin1.GetString(chunk)}'");
        }
        if (p.Width == 0 || p.Height == 0) throw Fail("corrupt WebP: zero width or height");
        long riff = Le32(d, 4);
        if (d.Length < 8 + riff) p.Incomplete = Truncated(ImageFormat.WebP, d.Length, $"before the {8 + riff} bytes its header announces");
        return p;
    }

    // Names what the data is when it is no supported image, so that a "cat.jpg" that is an HTML page says so.
    private static ImageProbeException Unknown(ReadOnlySpan<byte> d)
    {
        const string supported = " (supported: JPEG, PNG, BMP, WebP)";
        if (d.StartsWith("GIF8"u8)) return Fail("GIF images are not supported" + supported);
        if (d.StartsWith("II*\0"u8) || d.StartsWith("MM\0*"u8)) return Fail("TIFF images are not supported" + supported);
        int k = Math.Min(d.Length, 24);
        bool printable = true;
        foreach (var b in d[..k]) printable &= b is (>= 0x20 and < 0x7F) or (byte)'\n' or (byte)'\r' or (byte)'\t';
        var s = new StringBuilder("not an image in a supported format" + supported + ": ");
        if (printable)
        {
            var text = Encoding.ASCII.GetString(d[..k]).Replace('\n', ' ').Replace('\r', ' ').Replace('\t', ' ');
            s.Append("it starts with the text \"").Append(text).Append(d.Length > k ? "...\"" : "\"");
        }
        else
        {
            s.Append("it starts with the bytes");
            foreach (var b in d[..Math.Min(d.Length, 8)]) s.Append(CultureInfo.InvariantCulture, $" {b:x2}");
        }
        return Fail(s.ToString());
    }
}

/// <summary>A decode failure whose message is the reason alone; <see cref="Image"/> turns it into an <see cref="ImageDecodeException"/>.</summary>
internal sealed class ImageProbeException(string reason) : Exception(reason);
