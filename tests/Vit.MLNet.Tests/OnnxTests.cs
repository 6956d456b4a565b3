using Vit.MLNet;
using Vit.Tests;
using Vit.Torch.Imaging;

namespace Vit.MLNet.Tests;

/// <summary>ConvertToOnnx: a pipeline trained here scores the same in ONNX Runtime, fed what ML.NET's ExtractPixels gives.</summary>
[TestClass]
public sealed class OnnxTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void ConvertedPipelineScoresLikeTransformInOnnxRuntime()
    {
        var ctx = new VitContext(seed: 6);
        var data = ctx.Data.LoadFromImageFolder(Fixtures.Folder);
        using var model = Fixtures.Pipeline(ctx, Fixtures.TinyOptions(epochs: 2)).Fit(data);
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "model.onnx");
        using (var f = File.Create(path)) ctx.Model.ConvertToOnnx(model, data, f);
        TestContext.WriteLine($"{new FileInfo(path).Length} bytes for {model.LastTransformer.Model.ParameterCount()} parameters");

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
