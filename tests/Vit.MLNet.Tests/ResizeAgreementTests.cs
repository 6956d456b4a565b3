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
                    px[(y * width + x) * 3 + c] = (byte)Math.Clamp(x * 5 + y * 3 * (c + 1) + rng.Next(-40, 40), 0, 255);
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
    [DataRow(ImageResizingEstimator.ResizingKind.IsoPad, ResizeMode.Pad)]
    [DataRow(ImageResizingEstimator.ResizingKind.IsoCrop, ResizeMode.Crop)]
    public void PadAndCrop_PlaceTheImageAsMLNet_AndGiveClosePixels(ImageResizingEstimator.ResizingKind kind, ResizeMode mode)
    {
        var dir = Directory.CreateTempSubdirectory("vit-resize-").FullName;
        try
        {
            // 40x20 into 16x16: the scale (0.4 to pad, 0.8 to crop) gives whole sizes, so both place the image alike.
            var path = Photo(dir, 40, 20, 5);
            using var decoded = Image.Decode(path);
            using var ours = decoded.Resize(16, 16, mode, Interpolation.Bicubic, padValue: 0);
            var theirs = MLNetResized(path, 16, 16, kind);
            var mine = Rgba(ours);
            double sum = 0;
            int largest = 0;
            for (int y = 0; y < 16; y++)
                for (int x = 0; x < 16; x++)
                {
                    bool border = mode == ResizeMode.Pad && (y < 4 || y >= 12);  // 40x20 at 0.4 is 16x8, rows 4-11
                    for (int c = 0; c < 3; c++)
                    {
                        int i = (y * 16 + x) * 4 + c, d = Math.Abs(theirs[i] - mine[i]);
                        if (border) Assert.AreEqual(0, theirs[i] + mine[i], $"({x}, {y}) is padding in both");
                        sum += d;
                        largest = Math.Max(largest, d);
                    }
                }
            double mean = sum / (16 * 16 * 3);
            TestContext.WriteLine($"{kind}: mean |ours - ML.NET| {mean:F2}, largest {largest} (Catmull-Rom against Mitchell)");
            Assert.IsLessThan(4.0, mean, "the same picture in the same place");
            Assert.IsLessThan(48, largest);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
