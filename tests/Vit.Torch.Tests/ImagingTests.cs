using Vit.Torch.Imaging;
using static Vit.Torch.Tests.ImageFixtures;

namespace Vit.Torch.Tests;

/// <summary>Decoding, encoding, channel conversion, resizing, normalisation into batches, bad files, pictures.</summary>
[TestClass]
public sealed class ImagingTests
{
    // ------------------------------------------------------------------ decoding every format

    [TestMethod]
    public void Png_HandMade_GrayRgbRgba_DecodeExactly()
    {
        const int w = 5, h = 3;
        var gray = RandomBytes(w * h, 1);
        var rgb = RandomBytes(w * h * 3, 2);
        var rgba = RandomBytes(w * h * 4, 3);
        using (var img = Image.Decode(Png8(w, h, 0, gray)))
            AssertPixels(img, w, h, 1, gray);
        using (var img = Image.Decode(Png8(w, h, 2, rgb)))
            AssertPixels(img, w, h, 3, rgb);  // RGB order, not OpenCV's BGR
        using (var img = Image.Decode(Png8(w, h, 6, rgba)))
            AssertPixels(img, w, h, 4, rgba);
    }

    [TestMethod]
    public void Png_16Bit_KeepsTheHighByteAsPil()
    {
        const int w = 4, h = 2;
        var samples = new ushort[w * h * 3];
        var rng = new Random(4);
        for (int i = 0; i < samples.Length; i++) samples[i] = (ushort)rng.Next(65536);
        samples[0] = 65535;
        samples[1] = 0;
        samples[2] = 0x01FF;  // 1.99 in 8-bit units: 1, the high byte (rounding would give 2)
        using var img = Image.Decode(Png(w, h, 2, 16, samples));
        var expected = samples.Select(v => (byte)(v >> 8)).ToArray();
        AssertPixels(img, w, h, 3, expected);
    }

    [TestMethod]
    public void Png_GrayWithAlpha_KeepsGrayDropsAlpha()
    {
        const int w = 3, h = 2;
        var ga = RandomBytes(w * h * 2, 5);
        using var img = Image.Decode(Png8(w, h, 4, ga));
        // OpenCV's PNG reader may expand gray+alpha; either way the colour must be the gray value.
        var px = img.ToBytes();
        for (int i = 0; i < w * h; i++)
            for (int c = 0; c < Math.Min(img.Channels, 3); c++)
                Assert.AreEqual(ga[2 * i], px[i * img.Channels + c], $"pixel {i} channel {c}");
        if (img.Channels == 4)
            for (int i = 0; i < w * h; i++) Assert.AreEqual(ga[2 * i + 1], px[i * 4 + 3], $"alpha of pixel {i}");
    }

    [TestMethod]
    public void Png_OurEncoder_RoundTripsThroughAFile()
    {
        using var dir = new TempDir();
        var rgb = RandomBytes(7 * 5 * 3, 6);
        using var img = Image.FromPixels(rgb, 7, 5, 3);
        var path = dir.File("x.png");
        img.Save(path);
        using var back = Image.Decode(path);
        AssertPixels(back, 7, 5, 3, rgb);
    }

    [TestMethod]
    public void Bmp_HandMade_AndEncoded_DecodeExactly()
    {
        const int w = 5, h = 3;  // 15-byte rows: exercises the 4-byte row padding
        var rgb = RandomBytes(w * h * 3, 7);
        using (var img = Image.Decode(Bmp24(w, h, rgb)))
            AssertPixels(img, w, h, 3, rgb);
        using var src = Image.FromPixels(rgb, w, h, 3);
        using var back = Image.Decode(src.EncodeBmp());
        AssertPixels(back, w, h, 3, rgb);
    }

    [TestMethod]
    public void WebP_Lossless_Exact_Lossy_Close()
    {
        var rgba = RandomBytes(6 * 4 * 4, 8);
        using (var src = Image.FromPixels(rgba, 6, 4, 4))
        using (var back = Image.Decode(src.EncodeWebP(lossless: true)))
            AssertPixels(back, 6, 4, 4, rgba);

        using var smooth = Pattern(32, 24, 3, (x, y, c) => 20 + 3 * x + 4 * y + 20 * c);  // within 0..255: no wrap-around edges
        using var lossy = Image.Decode(smooth.EncodeWebP(90));
        Assert.AreEqual(3, lossy.Channels);
        AssertClose(smooth.ToBytes(), lossy.ToBytes(), maxAbs: 24, maxMean: 4);
    }

    [TestMethod]
    public void Jpeg_RgbAndGray_DecodeWithinTolerance()
    {
        using var rgb = Pattern(32, 24, 3, (x, y, c) => 30 + 4 * x + 3 * y + 15 * c);  // within 0..255
        using var back = Image.Decode(rgb.EncodeJpeg(95));
        Assert.AreEqual((32, 24, 3), (back.Width, back.Height, back.Channels));
        AssertClose(rgb.ToBytes(), back.ToBytes(), maxAbs: 12, maxMean: 2);

        using var gray = Pattern(16, 16, 1, (x, y, _) => 8 * x + 7 * y);
        using var gback = Image.Decode(gray.EncodeJpeg(95));
        Assert.AreEqual(1, gback.Channels, "a grayscale JPEG stays one channel");
        AssertClose(gray.ToBytes(), gback.ToBytes(), maxAbs: 12, maxMean: 2);
    }

    [TestMethod]
    public void Jpeg_ExifOrientation6_IsRotatedClockwise()
    {
        // Stored 16 wide x 8 tall: left half red, right half blue. Orientation 6 means "rotate 90° clockwise to
        // display", which brings the left half to the top.
        using var stored = Pattern(16, 8, 3, (x, _, c) => x < 8 ? (c == 0 ? 255 : 0) : (c == 2 ? 255 : 0));
        var jpeg = WithExifOrientation(stored.EncodeJpeg(95), 6);

        using var shown = Image.Decode(jpeg);
        Assert.AreEqual((8, 16), (shown.Width, shown.Height), "width and height swap");
        var px = shown.ToBytes();
        AssertRgbNear(px, shown.Width, 4, 3, (255, 0, 0), "top half is the stored left half (red)");
        AssertRgbNear(px, shown.Width, 4, 12, (0, 0, 255), "bottom half is the stored right half (blue)");

        using var raw = Image.Decode(jpeg, new ImageDecodeOptions { ApplyExifOrientation = false });
        Assert.AreEqual((16, 8), (raw.Width, raw.Height));
    }

    [TestMethod]
    public void Decode_RequestedChannels_Convert()
    {
        var rgba = RandomBytes(4 * 3 * 4, 9);
        var png = Png8(4, 3, 6, rgba);
        using var three = Image.Decode(png, new ImageDecodeOptions { Channels = 3 });
        AssertPixels(three, 4, 3, 3, DropAlpha(rgba));
        using var one = Image.Decode(png, new ImageDecodeOptions { Channels = 1 });
        Assert.AreEqual(1, one.Channels);
    }

    // ------------------------------------------------------------------ channel conversion

    [TestMethod]
    public void ToChannels_RgbaDropsAlpha_GrayReplicates_RgbUsesLuma()
    {
        var rgba = RandomBytes(8 * 8 * 4, 10);
        using var a = Image.FromPixels(rgba, 8, 8, 4);
        using var rgb = a.ToChannels(3);
        AssertPixels(rgb, 8, 8, 3, DropAlpha(rgba));

        using var gray = rgb.ToChannels(1);
        var g = gray.ToBytes();
        var rgbBytes = rgb.ToBytes();
        for (int i = 0; i < 64; i++)
        {
            double luma = 0.299 * rgbBytes[3 * i] + 0.587 * rgbBytes[3 * i + 1] + 0.114 * rgbBytes[3 * i + 2];
            Assert.IsLessThanOrEqualTo(0.6, Math.Abs(g[i] - luma), $"pixel {i}: gray {g[i]} vs luma {luma:F3}");
        }
        using var grayFromRgba = a.ToChannels(1);
        CollectionAssert.AreEqual(g, grayFromRgba.ToBytes(), "RGBA -> gray ignores alpha");

        using var back = gray.ToChannels(3);
        var b = back.ToBytes();
        for (int i = 0; i < 64; i++)
            for (int c = 0; c < 3; c++) Assert.AreEqual(g[i], b[3 * i + c]);

        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => rgb.ToChannels(2));
    }

    // ------------------------------------------------------------------ resizing

    [TestMethod]
    public void Resize_EveryModeAndInterpolation_GivesTheTargetSize()
    {
        using var img = Pattern(37, 23, 3, (x, y, c) => x * 5 + y * 3 + c);
        foreach (var mode in Enum.GetValues<ResizeMode>())
            foreach (var interp in Enum.GetValues<Interpolation>())
                foreach (var (w, h) in new[] { (16, 16), (50, 20), (7, 31) })
                {
                    using var r = img.Resize(w, h, mode, interp);
                    Assert.AreEqual((w, h, 3), (r.Width, r.Height, r.Channels), $"{mode} {interp} {w}x{h}");
                }
    }

    [TestMethod]
    public void Resize_Crop_KeepsTheCentre()
    {
        // 30x10 -> 10x10: the scale is 1, so the crop is exactly columns 10..19.
        using var img = Pattern(30, 10, 1, (x, y, _) => x * 8 + y);
        using var r = img.Resize(10, 10, ResizeMode.Crop, Interpolation.Nearest);
        var px = r.ToBytes();
        for (int y = 0; y < 10; y++)
            for (int x = 0; x < 10; x++) Assert.AreEqual((x + 10) * 8 + y, px[y * 10 + x], $"({x}, {y})");

        // 3x3 -> 9x9 with nearest: the centre pixel stays at the centre.
        using var small = Pattern(3, 3, 3, (x, y, c) => x == 1 && y == 1 ? 200 + c : 10);
        using var big = small.Resize(9, 9, ResizeMode.Crop, Interpolation.Nearest);
        var b = big.ToBytes();
        for (int c = 0; c < 3; c++) Assert.AreEqual(200 + c, b[(4 * 9 + 4) * 3 + c]);
        Assert.AreEqual(10, b[0]);
    }

    [TestMethod]
    public void Resize_Pad_LetterboxesWithTheFillValue()
    {
        using var img = Pattern(20, 10, 3, (_, _, _) => 200);
        using var r = img.Resize(10, 10, ResizeMode.Pad, Interpolation.Bilinear, padValue: 7);
        // Scaled to 10x5, centred at rows 2..6; rows 0-1 and 7-9 are padding.
        var px = r.ToBytes();
        for (int y = 0; y < 10; y++)
        {
            int expected = y is >= 2 and <= 6 ? 200 : 7;
            for (int i = 0; i < 30; i++) Assert.AreEqual(expected, px[y * 30 + i], $"row {y}");
        }
    }

    [TestMethod]
    public void Resize_NearestUpscale_Replicates_AreaDownscale_Averages()
    {
        using var img = Pattern(2, 2, 1, (x, y, _) => 10 + 100 * x + 50 * y);
        using var up = img.Resize(4, 4, ResizeMode.Stretch, Interpolation.Nearest);
        var u = up.ToBytes();
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++) Assert.AreEqual(10 + 100 * (x / 2) + 50 * (y / 2), u[y * 4 + x]);

        using var down = up.Resize(2, 2, ResizeMode.Stretch, Interpolation.Area);
        CollectionAssert.AreEqual(img.ToBytes(), down.ToBytes());

        using var fine = Pattern(4, 4, 1, (x, y, _) => 4 * (x + 4 * y));  // each 2x2 block averages exactly
        using var avg = fine.Resize(2, 2, ResizeMode.Stretch, Interpolation.Area);
        var f = fine.ToBytes();
        var a = avg.ToBytes();
        for (int by = 0; by < 2; by++)
            for (int bx = 0; bx < 2; bx++)
            {
                int sum = f[(2 * by) * 4 + 2 * bx] + f[(2 * by) * 4 + 2 * bx + 1] + f[(2 * by + 1) * 4 + 2 * bx] + f[(2 * by + 1) * 4 + 2 * bx + 1];
                Assert.AreEqual(sum / 4.0, a[by * 2 + bx], 0.5);
            }
    }

    [TestMethod]
    public void Crop_CenterCrop_ResizeShorterSide()
    {
        using var img = Pattern(9, 7, 1, (x, y, _) => x + 10 * y);
        using var c = img.Crop(2, 3, 4, 2);
        CollectionAssert.AreEqual(new byte[] { 32, 33, 34, 35, 42, 43, 44, 45 }, c.ToBytes());
        using var cc = img.CenterCrop(3, 3);
        Assert.AreEqual(3 + 10 * 2, cc.ToBytes()[0], "offset ((9-3)/2, (7-3)/2) = (3, 2)");
        var e = Assert.ThrowsExactly<ArgumentException>(() => img.Crop(7, 0, 4, 2));
        Assert.Contains("not inside the 9x7 image", e.Message);
        using var s = img.ResizeShorterSide(14);
        Assert.AreEqual((18, 14), (s.Width, s.Height));
    }

    // ------------------------------------------------------------------ normalisation

    [TestMethod]
    public void WriteNormalized_KnownPixels_ExactFloats()
    {
        // Two 3x2 RGB images, written at batch slots 1 and 2 of 4.
        var p0 = RandomBytes(3 * 2 * 3, 11);
        var p1 = RandomBytes(3 * 2 * 3, 12);
        p0[0] = 0;
        p0[1] = 255;
        using var a = Image.FromPixels(p0, 3, 2, 3);
        using var b = Image.FromPixels(p1, 3, 2, 3);
        var norm = Normalization.ImageNet;
        using var batch = Tensor.Full([4, 3, 2, 3], -99);
        ImageBatch.WriteNormalized([a, b], norm, batch, firstIndex: 1);
        var got = batch.ToArray<float>();

        const int per = 3 * 2 * 3;
        for (int i = 0; i < per; i++)
        {
            Assert.AreEqual(-99f, got[i], "slot 0 untouched");
            Assert.AreEqual(-99f, got[3 * per + i], "slot 3 untouched");
        }
        foreach (var (pixels, slot) in new[] { (p0, 1), (p1, 2) })
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < 2; y++)
                    for (int x = 0; x < 3; x++)
                    {
                        byte v = pixels[(y * 3 + x) * 3 + c];  // HWC in
                        float expected = (float)((v / 255.0 - norm.Mean[c]) / norm.Std[c]);
                        Assert.AreEqual(expected, got[slot * per + (c * 2 + y) * 3 + x], $"slot {slot} c {c} ({x}, {y})");  // CHW out
                    }
        Assert.AreEqual((float)((0 - 0.485f) / (double)0.229f), got[per], "v = 0 in channel 0");
    }

    [TestMethod]
    public void WriteNormalized_Half_BroadcastsToGray()
    {
        using var g = Image.FromPixels(new byte[] { 0, 51, 255, 128 }, 2, 2, 1);
        using var t = ImageBatch.ToTensor([g], Normalization.Half);
        CollectionAssert.AreEqual(new long[] { 1, 1, 2, 2 }, t.Shape);
        CollectionAssert.AreEqual(new[] { -1f, (float)((0.2 - 0.5) / 0.5), 1f, (float)((128 / 255.0 - 0.5) / 0.5) }, t.ToArray<float>());
    }

    [TestMethod]
    public void WriteNormalized_BadShapes_SayWhatIsWrong()
    {
        using var ok = Image.Filled(4, 4, 3, 1);
        using var small = Image.Filled(3, 4, 3, 1);
        using var gray = Image.Filled(4, 4, 1, 1);
        using var batch = Tensor.Zeros([2, 3, 4, 4]);
        var e = Assert.ThrowsExactly<ArgumentException>(() => ImageBatch.WriteNormalized([ok, small], Normalization.ImageNet, batch));
        Assert.Contains("image 1 is 3x4", e.Message);
        e = Assert.ThrowsExactly<ArgumentException>(() => ImageBatch.WriteNormalized([ok, ok, ok], Normalization.ImageNet, batch));
        Assert.Contains("do not fit a batch of 2", e.Message);
        using var doubles = Tensor.Zeros([2, 3, 4, 4], DType.Float64);
        e = Assert.ThrowsExactly<ArgumentException>(() => ImageBatch.WriteNormalized([ok], Normalization.ImageNet, doubles));
        Assert.Contains("float32", e.Message);
        using var grayBatch = Tensor.Zeros([1, 1, 4, 4]);
        e = Assert.ThrowsExactly<ArgumentException>(() => ImageBatch.WriteNormalized([gray], Normalization.ImageNet, grayBatch));
        Assert.Contains("cannot serve 1-channel images", e.Message);
        using var wrongRank = Tensor.Zeros([3, 4, 4]);
        e = Assert.ThrowsExactly<ArgumentException>(() => ImageBatch.WriteNormalized([ok], Normalization.ImageNet, wrongRank));
        Assert.Contains("(B, C, H, W)", e.Message);
        Assert.ThrowsExactly<ArgumentException>(() => new Normalization([0.5f, 0.5f], [0.5f]));
        Assert.ThrowsExactly<ArgumentException>(() => new Normalization([0.5f], [0f]));
    }

    [TestMethod]
    public void NormalizationFromData_MatchesDirectComputation()
    {
        var p0 = RandomBytes(5 * 4 * 3, 13);
        var p1 = RandomBytes(2 * 6 * 3, 14);
        using var a = Image.FromPixels(p0, 5, 4, 3);
        using var b = Image.FromPixels(p1, 2, 6, 3);
        var n = Normalization.FromData([a, b]);
        var all = p0.Concat(p1).ToArray();
        for (int c = 0; c < 3; c++)
        {
            var vals = all.Where((_, i) => i % 3 == c).Select(v => v / 255.0).ToArray();
            double mean = vals.Average();
            double std = Math.Sqrt(vals.Select(v => (v - mean) * (v - mean)).Average());
            Assert.AreEqual(mean, n.Mean[c], 1e-6, $"mean of channel {c}");
            Assert.AreEqual(std, n.Std[c], 1e-6, $"std of channel {c}");
        }
        using var gray = Image.Filled(2, 2, 1, 0);
        Assert.ThrowsExactly<ArgumentException>(() => Normalization.FromData([a, gray]));
        Assert.AreEqual(Normalization.ImageNet, new Normalization([0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f]), "value equality");
    }

    // ------------------------------------------------------------------ bad input

    [TestMethod]
    public void BadFiles_EachNamesTheFileAndTheReason_AndTheProcessContinues()
    {
        using var dir = new TempDir();
        using var good = Pattern(16, 12, 3, (x, y, c) => x * 9 + y * 5 + c * 40);
        var png = good.EncodePng();
        var jpeg = good.EncodeJpeg(90);
        byte[] bigJpeg;
        using (var noisy = Image.FromPixels(RandomBytes(64 * 64 * 3, 30), 64, 64, 3))
            bigJpeg = noisy.EncodeJpeg(90);  // mostly entropy-coded data: a cut lands after the headers
        long live = Image.LiveCount;
        var corruptPng = png.ToArray();
        int idat = png.AsSpan().IndexOf("IDAT"u8), idatLength = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(idat - 4));
        Assert.IsGreaterThan(12, idatLength, "an IDAT long enough to damage");
        for (int i = idat + 6; i < idat + 4 + idatLength - 2; i++) corruptPng[i] = 0x55;  // inside IDAT, after the zlib header: bad data, bad CRC

        var cases = new List<(string File, byte[]? Bytes, string Reason)>
        {
            ("empty.png", [], "the file is empty (0 bytes)"),
            ("cut.png", png[..(png.Length / 2)], "truncated PNG"),
            ("cut-header.png", png[..20], "truncated PNG"),
            ("cut.jpg", jpeg[..(jpeg.Length * 2 / 3)], "truncated JPEG"),
            ("cut-header.jpg", jpeg[..10], "truncated JPEG"),
            ("cut-data.jpg", bigJpeg[..(bigJpeg.Length * 4 / 5)], "before the end-of-image marker"),
            ("corrupt.png", corruptPng, "the PNG decoder could not read the data"),
            ("notes.jpg", "this is not a picture, just text\n"u8.ToArray(), "it starts with the text \"this is not a picture, j"),
            ("bomb.png", BombPng(100_000, 100_000), "100000x100000"),
            ("cut.bmp", Bmp24(8, 8, new byte[8 * 8 * 3])[..100], "truncated BMP"),
            ("cut.webp", good.EncodeWebP(lossless: true)[..40], "truncated WebP"),
            ("missing.png", null, "cannot open the file: No such file or directory"),
        };
        foreach (var (name, bytes, reason) in cases)
        {
            var path = dir.File(name);
            if (bytes is not null) File.WriteAllBytes(path, bytes);
            var e = Assert.ThrowsExactly<ImageDecodeException>(() => Image.Decode(path), name);
            Assert.AreEqual(path, e.Path, name);
            Assert.Contains(reason, e.Reason, name);
            Assert.Contains(path, e.Message, name);
            Assert.Contains(reason, e.Message, name);
            if (bytes is not null)
            {
                var fromBytes = Assert.ThrowsExactly<ImageDecodeException>(() => Image.Decode(bytes, sourceName: name), name);
                Assert.AreEqual(e.Reason, fromBytes.Reason, $"{name}: the same reason from memory");
            }
        }
        var bomb = Assert.ThrowsExactly<ImageDecodeException>(() => Image.Decode(BombPng(100_000, 100_000)));
        Assert.Contains("100000x100000 (10000 megapixels), more than the limit of 50 megapixels", bomb.Reason);
        var dirError = Assert.ThrowsExactly<ImageDecodeException>(() => Image.Decode(dir.Path));
        Assert.Contains("directory", dirError.Reason);

        // The limit is configurable, and checked before decoding: a 16x12 image passes 192 pixels, not 191.
        using (Image.Decode(png, new ImageDecodeOptions { MaxPixels = 192 })) { }
        var tight = Assert.ThrowsExactly<ImageDecodeException>(() => Image.Decode(png, new ImageDecodeOptions { MaxPixels = 191 }));
        Assert.Contains("16x12", tight.Reason);

        Assert.AreEqual(live, Image.LiveCount, "failed decodes leave no image behind");
        using var fine = Image.Decode(png);
        CollectionAssert.AreEqual(good.ToBytes(), fine.ToBytes(), "decoding still works afterwards");
    }

    [TestMethod]
    public void Fill_IsTheValueAsked_InEveryChannelCount()
    {
        // Gray, RGB and RGBA: the padding of Pad and the outside of a warp are exactly the fill (Skia would
        // premultiply a gray fill by itself: 128 came out as 64).
        foreach (var c in new[] { 1, 3, 4 })
        {
            using var img = Image.Filled(4, 2, c, 200);
            using var padded = img.Resize(4, 4, ResizeMode.Pad, Interpolation.Nearest, padValue: 128);
            var px = padded.ToBytes();
            for (int k = 0; k < 4 * c; k++) Assert.AreEqual(128, px[k], $"{c} channel(s): padding row, sample {k}");
            for (int k = 4 * c; k < 12 * c; k++) Assert.AreEqual(200, px[k], $"{c} channel(s): image rows, sample {k}");
            using var moved = img.Translate(2, 0, Interpolation.Nearest, fill: 128);
            var m = moved.ToBytes();
            for (int x = 0; x < 4; x++)
                for (int k = 0; k < c; k++) Assert.AreEqual(x < 2 ? 128 : 200, m[x * c + k], $"{c} channel(s): translated row, x {x}");
        }
    }

    [TestMethod]
    public void Rgba_EachChannelIsResampledOnItsOwn()
    {
        // The colour of a transparent pixel is kept (as stored, as OpenCV and PIL's nearest keep it), not zeroed by
        // premultiplication; alpha is resampled like any channel.
        byte[] rgba = [200, 100, 50, 3, 10, 20, 30, 0, 1, 2, 3, 255, 40, 50, 60, 7];
        using var img = Image.FromPixels(rgba, 2, 2, 4);
        using (var same = img.Translate(0, 0, Interpolation.Nearest)) CollectionAssert.AreEqual(rgba, same.ToBytes());
        using var big = img.Resize(4, 4, ResizeMode.Stretch, Interpolation.Nearest);
        var b = big.ToBytes();
        CollectionAssert.AreEqual(new byte[] { 10, 20, 30, 0 }, b[12..16], "top right (x 3, y 0): the transparent pixel, colour kept");
        using var soft = img.Resize(1, 1, ResizeMode.Stretch, Interpolation.Area);
        var s1 = soft.ToBytes();
        Assert.AreEqual((3 + 0 + 255 + 7) / 4.0, s1[3], 1.0, "alpha averages like a channel");
        Assert.AreEqual((200 + 10 + 1 + 40) / 4.0, s1[0], 1.0, "red averages unweighted by alpha");
    }

    [TestMethod]
    public void Bmp_GrayPalette_IsOneChannel()
    {
        const int w = 3, h = 2;
        var gray = RandomBytes(w * h, 8);
        // 8-bit BMP with a 256-entry gray palette, rows bottom-up, padded to 4 bytes.
        int stride = (w + 3) & ~3, offset = 14 + 40 + 256 * 4;
        var bmp = new byte[offset + stride * h];
        bmp[0] = (byte)'B';
        bmp[1] = (byte)'M';
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(2), bmp.Length);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(10), offset);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(14), 40);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(18), w);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(22), h);
        bmp[26] = 1;
        bmp[28] = 8;
        for (int i = 0; i < 256; i++) bmp[54 + 4 * i] = bmp[55 + 4 * i] = bmp[56 + 4 * i] = (byte)i;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) bmp[offset + (h - 1 - y) * stride + x] = gray[y * w + x];
        using var img = Image.Decode(bmp);
        AssertPixels(img, w, h, 1, gray);
        bmp[54 + 4 * 7] = 99;  // one coloured entry: a colour image
        using var colour = Image.Decode(bmp);
        Assert.AreEqual(3, colour.Channels);
    }

    [TestMethod]
    public void OddPathsAndOversizeEncodes_SayWhatIsWrong()
    {
        Assert.Contains("the path is empty", Assert.ThrowsExactly<ImageDecodeException>(() => Image.Decode("")).Reason);
        Assert.Contains("NUL", Assert.ThrowsExactly<ImageDecodeException>(() => Image.Decode("a\0b.png")).Reason);
        using var dir = new TempDir();
        var fifo = dir.File("pipe.png");
        using (var mk = System.Diagnostics.Process.Start("mkfifo", fifo)) mk.WaitForExit();
        // Opening a FIFO for reading waits for a writer: give it one that closes at once.
        var writer = Task.Run(() => { using var f = File.OpenWrite(fifo); });
        Assert.Contains("not a regular file", Assert.ThrowsExactly<ImageDecodeException>(() => Image.Decode(fifo)).Reason);
        writer.Wait();
        using var wide = Image.Filled(16384, 1, 1, 0);
        Assert.Contains("limited to 16383 pixels", Assert.ThrowsExactly<ArgumentException>(() => wide.EncodeWebP()).Message);
    }

    // A valid PNG signature and IHDR claiming a huge size, with a tiny IDAT: the limit must trip on the header.
    private static byte[] BombPng(int w, int h)
    {
        var ihdr = new byte[13];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(ihdr, (uint)w);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), (uint)h);
        ihdr[8] = 8;
        ihdr[9] = 2;
        return PngFromChunks(("IHDR", ihdr), ("IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]), ("IEND", []));
    }

    // ------------------------------------------------------------------ lifetime, encoding, pictures

    [TestMethod]
    public void Operations_LeaveNoImageBehind()
    {
        long live = Image.LiveCount;
        using (var img = Pattern(20, 10, 3, (x, y, c) => x + y + c))
        {
            for (int i = 0; i < 3; i++)
            {
                using var a = img.Resize(8, 8, ResizeMode.Crop);
                using var b = a.FlipHorizontal();
                using var c = b.ToChannels(1);
                using var d = Augment.RandAugment(img, new Random(i), 3);
            }
            Assert.AreEqual(live + 1, Image.LiveCount);
        }
        Assert.AreEqual(live, Image.LiveCount);
        var disposed = Image.Filled(2, 2, 1, 0);
        disposed.Dispose();
        Assert.ThrowsExactly<ObjectDisposedException>(() => disposed.ToBytes());
    }

    [TestMethod]
    public void Save_PicksTheFormatFromTheExtension()
    {
        using var dir = new TempDir();
        using var img = Pattern(8, 8, 3, (x, y, c) => 30 * c + x + y);
        foreach (var (ext, magic) in new[] { (".png", "\x89PNG"), (".jpg", "\xFF\xD8"), (".bmp", "BM"), (".webp", "RIFF") })
        {
            var path = dir.File("a" + ext);
            img.Save(path);
            var head = File.ReadAllBytes(path)[..magic.Length];
            CollectionAssert.AreEqual(magic.Select(ch => (byte)ch).ToArray(), head, ext);
        }
        Assert.ThrowsExactly<ArgumentException>(() => img.Save(dir.File("a.gif")));
    }

    [TestMethod]
    public void SaveBatchGrid_ShowsTheDenormalisedImages()
    {
        using var dir = new TempDir();
        var images = Enumerable.Range(0, 5).Select(i => Image.FromPixels(RandomBytes(6 * 4 * 3, 20 + i), 6, 4, 3)).ToList();
        try
        {
            using var batch = ImageBatch.ToTensor(images, Normalization.ImageNet);
            var path = dir.File("grid.png");
            Visualize.SaveBatchGrid(batch, Normalization.ImageNet, path, columns: 3, padding: 1);
            using var grid = Image.Decode(path);
            Assert.AreEqual((3 * 6 + 4, 2 * 4 + 3), (grid.Width, grid.Height), "3 columns, 2 rows, 1-pixel padding");
            var g = grid.ToBytes();
            for (int i = 0; i < 5; i++)
            {
                var px = images[i].ToBytes();
                int left = 1 + i % 3 * 7, top = 1 + i / 3 * 5;
                for (int y = 0; y < 4; y++)
                    for (int x = 0; x < 6; x++)
                        for (int c = 0; c < 3; c++)
                            Assert.AreEqual(px[(y * 6 + x) * 3 + c], g[((top + y) * grid.Width + left + x) * 3 + c], $"image {i} ({x}, {y}) c {c}");
            }
            Assert.AreEqual(0, g[0], "padding is black");
        }
        finally
        {
            images.ForEach(i => i.Dispose());
        }
    }

    [TestMethod]
    public void SavePatchGrid_DrawsLinesEveryPatch()
    {
        using var dir = new TempDir();
        using var img = Image.Filled(32, 32, 1, 90);
        var path = dir.File("patches.png");
        Visualize.SavePatchGrid(img, 8, path, minSide: 64);  // enlarged 2x: lines every 16 pixels
        using var shown = Image.Decode(path);
        Assert.AreEqual((64, 64, 3), (shown.Width, shown.Height, shown.Channels));
        var px = shown.ToBytes();
        (byte, byte, byte) At(int x, int y) => (px[(y * 64 + x) * 3], px[(y * 64 + x) * 3 + 1], px[(y * 64 + x) * 3 + 2]);
        foreach (var x in new[] { 0, 16, 32, 48, 63 }) Assert.AreEqual(((byte)255, (byte)220, (byte)0), At(x, 5), $"vertical line at x {x}");
        foreach (var y in new[] { 0, 16, 32, 48, 63 }) Assert.AreEqual(((byte)255, (byte)220, (byte)0), At(5, y), $"horizontal line at y {y}");
        Assert.AreEqual(((byte)90, (byte)90, (byte)90), At(8, 8), "inside a patch: the image");
    }

    // ------------------------------------------------------------------ helpers

    private static void AssertPixels(Image img, int w, int h, int c, byte[] expected)
    {
        Assert.AreEqual((w, h, c), (img.Width, img.Height, img.Channels));
        CollectionAssert.AreEqual(expected, img.ToBytes());
    }

    private static byte[] DropAlpha(byte[] rgba) => rgba.Where((_, i) => i % 4 != 3).ToArray();

    private static void AssertClose(byte[] expected, byte[] actual, int maxAbs, double maxMean)
    {
        Assert.HasCount(expected.Length, actual);
        var diffs = expected.Zip(actual, (a, b) => Math.Abs(a - b)).ToArray();
        Assert.IsLessThanOrEqualTo(maxAbs, diffs.Max(), "largest difference");
        Assert.IsLessThanOrEqualTo(maxMean, diffs.Average(), "mean difference");
    }

    private static void AssertRgbNear(byte[] px, int width, int x, int y, (int R, int G, int B) rgb, string what)
    {
        int i = (y * width + x) * 3;
        Assert.IsLessThanOrEqualTo(40, Math.Abs(px[i] - rgb.R) + Math.Abs(px[i + 1] - rgb.G) + Math.Abs(px[i + 2] - rgb.B),
            $"{what}: got ({px[i]}, {px[i + 1]}, {px[i + 2]})");
    }
}
