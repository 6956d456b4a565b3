using Vit.MLNet;
using Vit.Tests;
using Vit.Torch.Imaging;

namespace Vit.MLNet.Tests;

/// <summary>ConvertToOnnx: a pipeline trained here scores the same in ONNX Runtime, fed what ML.NET's ExtractPixels gives.</summary>
[TestClass]
public sealed class OnnxTests
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>Photos of other shapes than the model's square: ResizeImages' IsoCrop has work to do.</summary>
    private static readonly Lazy<string> Oblong = new(() =>
    {
        var root = Directory.CreateTempSubdirectory("vit-oblong-").FullName;
        var rng = new Random(4);
        (int W, int H)[] sizes = [(32, 20), (18, 30), (25, 25), (40, 17)];
        for (int c = 0; c < Fixtures.Classes.Length; c++)
        {
            var dir = Directory.CreateDirectory(Path.Combine(root, Fixtures.Classes[c])).FullName;
            for (int i = 0; i < 8; i++)
            {
                var (w, h) = sizes[i % sizes.Length];
                var px = Fixtures.Pixels(c, Math.Max(w, h), rng).AsSpan(0, w * h * 3).ToArray();
                using var img = Image.FromPixels(px, w, h, 3);
                File.WriteAllBytes(Path.Combine(dir, $"{i:D3}.png"), img.EncodePng());
            }
        }
        return root;
    });

    [TestMethod]
    public void ConvertedPipelineScoresLikeTransformInOnnxRuntime()
    {
        var ctx = new VitContext(seed: 6);
        var data = ctx.Data.LoadFromImageFolder(Oblong.Value);
        using var model = Fixtures.Pipeline(ctx, Fixtures.TinyOptions(epochs: 2)).Fit(data);
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "model.onnx");
        ctx.Model.ConvertToOnnx(model, data, path);
        TestContext.WriteLine($"{new FileInfo(path).Length} bytes for {model.LastTransformer.Model.ParameterCount()} parameters");
        model.LastTransformer.Precision = Vit.Torch.Precision.Float32;  // the graph is float32: compare with float32 scoring

        var rows = model.Transform(data).GetRows().Take(8).Select(r => (Path: (string)r["ImagePath"]!, Score: (float[])r["Score"]!)).ToList();
        foreach (int batch in new[] { 1, 8 })
        {
            // ML.NET: LoadImages -> ResizeImages (16x16, IsoCrop) -> ExtractPixels(scaleImage: 1f / 255): planar RGB in [0, 1].
            var pixels = rows.Take(batch).SelectMany(r => ExtractPixels(r.Path, 16)).ToArray();
            var ort = OnnxRuntime.Run(path, pixels, batch, 3, 16, 16);
            CollectionAssert.AreEqual(new long[] { batch, 3 }, ort["Score"].Shape);
            double diff = 0;
            for (int i = 0; i < batch; i++)
                for (int k = 0; k < 3; k++)
                    diff = Math.Max(diff, Math.Abs(rows[i].Score[k] - ort["Score"].Values[i * 3 + k]));
            TestContext.WriteLine($"batch {batch}: max |Transform - ONNX Runtime| Score = {diff:E2}");
            Assert.IsLessThanOrEqualTo(1e-4, diff);
        }
    }

    [TestMethod]
    public void TheFileRecordsThePipelinesResizeAndAFailureKeepsThePreviousFile()
    {
        var ctx = new VitContext(seed: 7);
        var data = ctx.Data.LoadFromImageFolder(Fixtures.Folder);
        using var model = ctx.Transforms.LoadImages("Image", "", "ImagePath")
            .Append(ctx.Transforms.ResizeImages("Image", 16, 16, resizing: ResizeMode.Stretch, interpolation: Interpolation.Nearest))
            .Append(new VitEstimator(ctx, Fixtures.TinyOptions(epochs: 0))).Fit(data);
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "model.onnx");
        ctx.Model.ConvertToOnnx(model, data, path);
        var before = File.ReadAllBytes(path);
        var text = System.Text.Encoding.UTF8.GetString(before);
        StringAssert.Contains(text, "\"resize_mode\":\"Stretch\"");
        StringAssert.Contains(text, "\"interpolation\":\"Nearest\"");
        var loadOnly = ctx.Transforms.LoadImages("Image", "", "ImagePath").Fit(data);
        Assert.Throws<ArgumentException>(() => ctx.Model.ConvertToOnnx(loadOnly, data, path));
        CollectionAssert.AreEqual(before, File.ReadAllBytes(path), "the previous file is untouched");
    }

    [TestMethod]
    public void ConvertToOnnxNamesWhatIsWrong()
    {
        var ctx = new VitContext();
        var data = ctx.Data.LoadFromImageFolder(Fixtures.Folder);
        var loadOnly = ctx.Transforms.LoadImages("Image", "", "ImagePath").Fit(data);
        var e = Assert.Throws<ArgumentException>(() => ctx.Model.ConvertToOnnx(loadOnly, data, new MemoryStream()));
        StringAssert.Contains(e.Message, "ConvertToOnnx needs a pipeline with one VitTransformer step");
        StringAssert.Contains(e.Message, "ImageLoadingTransformer");
        using var model = Fixtures.Pipeline(ctx, Fixtures.TinyOptions(epochs: 0)).Fit(data);
        StringAssert.Contains(Assert.Throws<ArgumentException>(() => ctx.Model.ConvertToOnnx(model, data, new MemoryStream(new byte[4], writable: false))).Message,
            "not writable");
    }

    /// <summary>What ML.NET's ExtractPixels gives after ResizeImages(size, size) with IsoCrop: planar RGB, each byte / 255.</summary>
    private static float[] ExtractPixels(string path, int size)
    {
        using var decoded = Image.Decode(path);
        using var rgb = decoded.ToChannels(3);
        using var resized = rgb.Resize(size, size, ResizeMode.Crop, Interpolation.Bilinear);
        var hwc = resized.ToBytes();
        var planar = new float[3 * size * size];
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < size * size; i++)
                planar[c * size * size + i] = hwc[i * 3 + c] / 255f;
        return planar;
    }
}
