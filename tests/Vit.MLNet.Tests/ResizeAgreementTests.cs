using Microsoft.ML.Transforms.Image;
using Vit.Torch.Imaging;

namespace Vit.MLNet.Tests;

/// <summary>
/// Our resizing against ML.NET's own <c>ResizeImages</c> on the same files: both are SkiaSharp 3.119.2, the copy
/// Microsoft.ML.ImageAnalytics brings. ML.NET's Fill resizes with Skia's nearest neighbour, which our Stretch + Nearest
/// is; its IsoPad and IsoCrop draw with Mitchell's cubic where our Bicubic is Catmull-Rom, so there the placement must be
/// the same and the pixels close.
/// </summary>
[TestClass]
public sealed class ResizeAgreementTests
{
    public TestContext TestContext { get; set; } = null!;

    private sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
    }

    // ML.NET's pixels after LoadImages -> ResizeImages(width, height, kind), as RGBA.
    private static byte[] MLNetResized(string path, int width, int height, ImageResizingEstimator.ResizingKind kind)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable([new PathRow { ImagePath = path }]);
        var pipeline = ml.Transforms.LoadImages("Image", null, nameof(PathRow.ImagePath))
            .Append(ml.Transforms.ResizeImages("Image", width, height, resizing: kind));
        var resized = pipeline.Fit(data).Transform(data);
        using var image = resized.GetColumn<MLImage>(resized.Schema["Image"]).Single();
        using var rgba = ImageColumns.FromMLImage(image, "Image", 0);
        Assert.AreEqual((width, height), (rgba.Width, rgba.Height));
        return rgba.ToBytes();
    }

    private static byte[] Rgba(Image image)
    {
        using var rgb = image.ToChannels(3);
        var px = rgb.ToBytes();
        var rgba = new byte[px.Length / 3 * 4];
        for (int i = 0, j = 0; i < px.Length; i += 3, j += 4)
        {
            rgba[j] = px[i];
            rgba[j + 1] = px[i + 1];
            rgba[j + 2] = px[i + 2];
            rgba[j + 3] = 255;
        }
        return rgba;
    }

    private static string Photo(string dir, int width, int height, int seed)
    {
        var rng = new Random(seed);
        var px = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                for (int c = 0; c < 3; c++)
                    px[(y * width + x) * 3 + c] = (byte)Math.Clamp(60 + (x * 5 + y * 3 * (c + 1)) % 160 + rng.Next(-30, 30), 30, 255);
        using var image = Image.FromPixels(px, width, height, 3);
        var path = Path.Combine(dir, $"photo-{width}x{height}.png");
        image.Save(path);
        return path;
    }

    [TestMethod]
    [DataRow(40, 30, 16, 16)]
    [DataRow(17, 23, 16, 16)]
    [DataRow(9, 7, 24, 20)]
    [DataRow(50, 50, 13, 31)]
    public void StretchNearest_IsMLNetsFill_PixelForPixel(int w, int h, int tw, int th)
    {
        var dir = Directory.CreateTempSubdirectory("vit-resize-").FullName;
        try
        {
            var path = Photo(dir, w, h, w * 100 + h);
            using var decoded = Image.Decode(path);
            using var ours = decoded.Resize(tw, th, ResizeMode.Stretch, Interpolation.Nearest);
            CollectionAssert.AreEqual(MLNetResized(path, tw, th, ImageResizingEstimator.ResizingKind.Fill), Rgba(ours));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestMethod]
    [DataRow(ImageResizingEstimator.ResizingKind.IsoPad, ResizeMode.Pad, 40, 20, 16, 16)]
    [DataRow(ImageResizingEstimator.ResizingKind.IsoPad, ResizeMode.Pad, 100, 30, 16, 16)]
    [DataRow(ImageResizingEstimator.ResizingKind.IsoPad, ResizeMode.Pad, 30, 100, 16, 16)]
    [DataRow(ImageResizingEstimator.ResizingKind.IsoPad, ResizeMode.Pad, 33, 21, 24, 20)]
    [DataRow(ImageResizingEstimator.ResizingKind.IsoCrop, ResizeMode.Crop, 40, 20, 16, 16)]
    [DataRow(ImageResizingEstimator.ResizingKind.IsoCrop, ResizeMode.Crop, 47, 20, 16, 16)]
    [DataRow(ImageResizingEstimator.ResizingKind.IsoCrop, ResizeMode.Crop, 21, 58, 16, 16)]
    public void PadAndCrop_PlaceTheImageAsMLNet_AndGiveClosePixels(ImageResizingEstimator.ResizingKind kind, ResizeMode mode, int w, int h, int tw, int th)
    {
        var dir = Directory.CreateTempSubdirectory("vit-resize-").FullName;
        try
        {
            // Photo samples are 30 or more, so a 0 is padding (IsoPad's, or IsoCrop's where its truncated size falls short).
            var path = Photo(dir, w, h, 5);
            using var decoded = Image.Decode(path);
            using var ours = decoded.Resize(tw, th, mode, Interpolation.Bicubic, padValue: 0);
            var theirs = MLNetResized(path, tw, th, kind);
            var mine = Rgba(ours);
            double sum = 0;
            int largest = 0, compared = 0;
            for (int p = 0; p < tw * th; p++)
            {
                bool theirPad = theirs[4 * p] + theirs[4 * p + 1] + theirs[4 * p + 2] == 0;
                bool myPad = mine[4 * p] + mine[4 * p + 1] + mine[4 * p + 2] == 0;
                Assert.AreEqual(theirPad, myPad, $"pixel ({p % tw}, {p / tw}): padding in one and not the other");
                if (theirPad) continue;
                for (int c = 0; c < 3; c++)
                {
                    int d = Math.Abs(theirs[4 * p + c] - mine[4 * p + c]);
                    sum += d;
                    largest = Math.Max(largest, d);
                    compared++;
                }
            }
            double mean = sum / Math.Max(1, compared);
            TestContext.WriteLine($"{kind} {w}x{h} -> {tw}x{th}: mean |ours - ML.NET| {mean:F2}, largest {largest} (Catmull-Rom against Mitchell)");
            Assert.IsLessThan(4.0, mean, "the same picture in the same place");
            Assert.IsLessThan(48, largest);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
