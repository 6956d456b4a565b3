using System.Buffers.Binary;
using System.IO.Compression;
using Vit.Torch.Imaging;

namespace Vit.Torch.Tests;

/// <summary>
/// Image files built byte by byte from the format specifications (PNG, BMP, EXIF), independently of OpenCV,
/// so that decoding is checked against an encoder that is not the decoder's own library.
/// </summary>
internal static class ImageFixtures
{
    /// <summary>A temporary directory removed at dispose.</summary>
    internal sealed class TempDir : IDisposable
    {
        public TempDir() => System.IO.Directory.CreateDirectory(Path);

        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "vit-img-" + Guid.NewGuid().ToString("N"));

        public string File(string name) => System.IO.Path.Combine(Path, name);

        public void Dispose()
        {
            try
            {
                System.IO.Directory.Delete(Path, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>Deterministic pseudo-random bytes.</summary>
    internal static byte[] RandomBytes(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    /// <summary>An image whose sample (x, y, c) is f(x, y, c).</summary>
    internal static Image Pattern(int w, int h, int c, Func<int, int, int, int> f)
    {
        var px = new byte[w * h * c];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < c; k++) px[(y * w + x) * c + k] = (byte)f(x, y, k);
        return Image.FromPixels(px, w, h, c);
    }

    // ------------------------------------------------------------------ PNG (ISO/IEC 15948)

    /// <summary>
    /// A PNG with colour type 0 (gray), 2 (RGB), 4 (gray+alpha) or 6 (RGBA) at bit depth 8 or 16. Samples are
    /// row-major interleaved; 16-bit samples are given as ushort values.
    /// </summary>
    internal static byte[] Png(int w, int h, int colorType, int bitDepth, ReadOnlySpan<ushort> samples)
    {
        int channels = colorType switch { 0 => 1, 2 => 3, 4 => 2, 6 => 4, _ => throw new ArgumentException("colour type") };
        int bytesPerSample = bitDepth / 8;
        if (samples.Length != w * h * channels) throw new ArgumentException("sample count");
        var raw = new MemoryStream();
        for (int y = 0; y < h; y++)
        {
            raw.WriteByte(0);  // filter: none
            for (int i = 0; i < w * channels; i++)
            {
                ushort v = samples[y * w * channels + i];
                if (bytesPerSample == 2) raw.WriteByte((byte)(v >> 8));
                raw.WriteByte((byte)v);
            }
        }
        var idat = new MemoryStream();
        using (var z = new ZLibStream(idat, CompressionLevel.Optimal, leaveOpen: true)) z.Write(raw.ToArray());

        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, (uint)w);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), (uint)h);
        ihdr[8] = (byte)bitDepth;
        ihdr[9] = (byte)colorType;
        return PngFromChunks(("IHDR", ihdr), ("IDAT", idat.ToArray()), ("IEND", []));
    }

    /// <summary>An 8-bit PNG from bytes.</summary>
    internal static byte[] Png8(int w, int h, int colorType, ReadOnlySpan<byte> samples)
    {
        var s = new ushort[samples.Length];
        for (int i = 0; i < s.Length; i++) s[i] = samples[i];
        return Png(w, h, colorType, 8, s);
    }

    /// <summary>The PNG signature followed by the given chunks (length, type, data, CRC-32 of type and data).</summary>
    internal static byte[] PngFromChunks(params (string Type, byte[] Data)[] chunks)
    {
        var o = new MemoryStream();
        o.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        Span<byte> four = stackalloc byte[4];
        foreach (var (type, data) in chunks)
        {
            BinaryPrimitives.WriteUInt32BigEndian(four, (uint)data.Length);
            o.Write(four);
            var typeAndData = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
            o.Write(typeAndData);
            BinaryPrimitives.WriteUInt32BigEndian(four, Crc32(typeAndData));
            o.Write(four);
        }
        return o.ToArray();
    }

    /// <summary>CRC-32 (ISO 3309, reflected polynomial 0xEDB88320) as PNG uses it.</summary>
    internal static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }

    // ------------------------------------------------------------------ BMP

    /// <summary>A 24-bit uncompressed BMP (BITMAPINFOHEADER) of RGB pixels: rows stored bottom-up as BGR, padded to 4 bytes.</summary>
    internal static byte[] Bmp24(int w, int h, ReadOnlySpan<byte> rgb)
    {
        int stride = (w * 3 + 3) / 4 * 4;
        var file = new byte[54 + stride * h];
        file[0] = (byte)'B';
        file[1] = (byte)'M';
        BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(2), file.Length);
        BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(10), 54);
        BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(14), 40);
        BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(18), w);
        BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(22), h);
        BinaryPrimitives.WriteInt16LittleEndian(file.AsSpan(26), 1);   // planes
        BinaryPrimitives.WriteInt16LittleEndian(file.AsSpan(28), 24);  // bits per pixel
        for (int y = 0; y < h; y++)
        {
            int row = 54 + (h - 1 - y) * stride;
            for (int x = 0; x < w; x++)
            {
                int s = (y * w + x) * 3;
                file[row + x * 3] = rgb[s + 2];
                file[row + x * 3 + 1] = rgb[s + 1];
                file[row + x * 3 + 2] = rgb[s];
            }
        }
        return file;
    }

    // ------------------------------------------------------------------ EXIF

    /// <summary>
    /// Inserts an APP1 "Exif" segment right after the JPEG's SOI marker holding one IFD0 entry: Orientation
    /// (tag 0x0112, SHORT) = <paramref name="orientation"/>, in big-endian ("MM") TIFF layout.
    /// </summary>
    internal static byte[] WithExifOrientation(byte[] jpeg, ushort orientation)
    {
        if (jpeg[0] != 0xFF || jpeg[1] != 0xD8) throw new ArgumentException("not a JPEG");
        var tiff = new byte[]
        {
            (byte)'M', (byte)'M', 0x00, 0x2A, 0x00, 0x00, 0x00, 0x08,  // header, IFD0 at offset 8
            0x00, 0x01,                                                // one entry
            0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01,            // Orientation, SHORT, count 1
            (byte)(orientation >> 8), (byte)orientation, 0x00, 0x00,   // value, padded to 4 bytes
            0x00, 0x00, 0x00, 0x00,                                    // no next IFD
        };
        var payload = System.Text.Encoding.ASCII.GetBytes("Exif\0\0").Concat(tiff).ToArray();
        int length = payload.Length + 2;
        var segment = new byte[] { 0xFF, 0xE1, (byte)(length >> 8), (byte)length }.Concat(payload);
        return jpeg.Take(2).Concat(segment).Concat(jpeg.Skip(2)).ToArray();
    }
}
