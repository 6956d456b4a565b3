using Microsoft.ML.Transforms.Image;
using Vit.MLNet;
using Vit.Tests;
using Vit.Torch;
using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;

namespace Vit.MLNet.Tests;

/// <summary>ExportVitToOnnx: a pipeline trained here scores the same in ONNX Runtime, fed what ML.NET's ExtractPixels
/// gives; ExportVitToHuggingFace writes a folder our reader loads back to the same model.</summary>
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
    public void ExportedPipelineScoresLikeTransformInOnnxRuntime_OnMLNetsExtractPixels()
    {
        var ml = new MLContext(seed: 6);
        var data = ml.Data.LoadFromImageFolder(Oblong.Value);
        using var model = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 2)).Fit(data);
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "model.onnx");
        ml.Model.ExportVitToOnnx(model, data, path);
        var vit = VitPipeline.Find(model, "test");
        TestContext.WriteLine($"{new FileInfo(path).Length} bytes for {vit.Model.ParameterCount()} parameters");
        vit.Precision = Precision.Float32;  // the graph is float32: compare with float32 scoring

        var scores = Rows.Vectors(model.Transform(data)).Take(8).ToList();
        // ML.NET's own pixels: LoadImages -> ResizeImages (16x16, IsoCrop) -> ExtractPixels(scaleImage: 1/255): planar RGB in [0, 1].
        var extract = ml.Transforms.LoadImages("Image", null, "ImagePath")
            .Append(ml.Transforms.ResizeImages("Image", 16, 16))
            .Append(ml.Transforms.ExtractPixels("pixel_values", "Image", scaleImage: 1f / 255));
        var pixels = Rows.Vectors(extract.Fit(data).Transform(data), "pixel_values").Take(8).ToList();
        Assert.HasCount(3 * 16 * 16, pixels[0]);
        foreach (int batch in new[] { 1, 8 })
        {
            var ort = OnnxRuntime.Run(path, pixels.Take(batch).SelectMany(p => p).ToArray(), batch, 3, 16, 16);
            CollectionAssert.AreEqual(new long[] { batch, 3 }, ort["Score"].Shape);
            double diff = 0;
            for (int i = 0; i < batch; i++)
                for (int k = 0; k < 3; k++)
                    diff = Math.Max(diff, Math.Abs(scores[i][k] - ort["Score"].Values[i * 3 + k]));
            TestContext.WriteLine($"batch {batch}: max |Transform - ONNX Runtime| Score = {diff:E2}");
            Assert.IsLessThanOrEqualTo(1e-4, diff);
        }
    }

    /// <summary>
    /// Our export in ML.NET itself: LoadImages → ResizeImages → ExtractPixels(1/255) → ApplyOnnxModel gives, row for row,
    /// the Score our own transformer gives after the same LoadImages → ResizeImages (float32), before and after ML.NET
    /// saves the ONNX pipeline and loads it again in a fresh context.
    /// </summary>
    [TestMethod]
    public void ApplyOnnxModelOnOurExportScoresAsOurTransformerInRealMLNet()
    {
        var ml = new MLContext(seed: 3);
        var data = ml.Data.LoadFromImageFolder(Oblong.Value);
        var options = Fixtures.TinyOptions(epochs: 2);
        options.Precision = Precision.Float32;
        var load = ml.Transforms.LoadImages("Image", null, "ImagePath").Append(ml.Transforms.ResizeImages("Image", 16, 16));
        using var ours = load.Append(new VitEstimator(ml, options)).Fit(data);
        var dir = Directory.CreateTempSubdirectory().FullName;
        var onnx = Path.Combine(dir, "model.onnx");
        ml.Model.ExportVitToOnnx(ours, data.Schema, onnx);
        var viaOnnx = load
            .Append(ml.Transforms.ExtractPixels("pixel_values", "Image", scaleImage: 1f / 255))
            .Append(ml.Transforms.ApplyOnnxModel(["Score"], ["pixel_values"], onnx))
            .Fit(data);
        var saved = Path.Combine(dir, "onnx-pipeline.zip");
        ml.Model.Save(viaOnnx, data.Schema, saved);
        var fresh = new MLContext();
        var reloaded = fresh.Model.Load(saved, out _);

        var expected = Scores(ml, ours.Transform(data));
        Assert.HasCount(24, expected);
        foreach (var (name, view) in new[] { ("ApplyOnnxModel", viaOnnx.Transform(data)), ("ApplyOnnxModel after Save and Load", reloaded.Transform(data)) })
        {
            var actual = Scores(ml, view);
            Assert.HasCount(expected.Count, actual, name);
            for (int i = 0; i < expected.Count; i++)
            {
                Assert.HasCount(expected[i].Length, actual[i]);
                for (int k = 0; k < expected[i].Length; k++)
                    Assert.AreEqual(expected[i][k], actual[i][k], 1e-5f, $"{name}: row {i}, class {k}");
                Assert.AreEqual(Array.IndexOf(expected[i], expected[i].Max()), Array.IndexOf(actual[i], actual[i].Max()), $"{name}: row {i}'s class");
            }
        }
        (reloaded as IDisposable)?.Dispose();
    }

    private static List<float[]> Scores(MLContext ml, IDataView scored) =>
        ml.Data.CreateEnumerable<ScoreRow>(scored, reuseRowObject: false).Select(r => r.Score).ToList();

    private sealed class ScoreRow
    {
        public float[] Score { get; set; } = [];
    }

    [TestMethod]
    public void TheFileRecordsThePipelinesResizeAndAFailureKeepsThePreviousFile()
    {
        var ml = new MLContext(seed: 7);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        string Export(ImageResizingEstimator.ResizingKind resizing, string path)
        {
            using var model = ml.Transforms.LoadImages("Image", null, "ImagePath")
                .Append(ml.Transforms.ResizeImages("Image", 16, 16, resizing: resizing))
                .Append(new VitEstimator(ml, Fixtures.TinyOptions(epochs: 0))).Fit(data);
            ml.Model.ExportVitToOnnx(model, data, path);
            return System.Text.Encoding.UTF8.GetString(File.ReadAllBytes(path));
        }
        var dir = Directory.CreateTempSubdirectory().FullName;
        StringAssert.Contains(Export(ImageResizingEstimator.ResizingKind.IsoPad, Path.Combine(dir, "pad.onnx")), "\"resize_mode\":\"pad\"");
        var path = Path.Combine(dir, "model.onnx");
        StringAssert.Contains(Export(ImageResizingEstimator.ResizingKind.Fill, path), "\"resize_mode\":\"stretch\"");
        var before = File.ReadAllBytes(path);
        var loadOnly = ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(data);
        Assert.ThrowsExactly<ArgumentException>(() => ml.Model.ExportVitToOnnx(loadOnly, data, path));
        CollectionAssert.AreEqual(before, File.ReadAllBytes(path), "the previous file is untouched");
    }

    [TestMethod]
    public void ExportVitToOnnxNamesWhatIsWrong()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        var loadOnly = ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(data);
        var e = Assert.ThrowsExactly<ArgumentException>(() => ml.Model.ExportVitToOnnx(loadOnly, data, new MemoryStream()));
        StringAssert.Contains(e.Message, "ExportVitToOnnx needs a pipeline with one VitTransformer step");
        StringAssert.Contains(e.Message, "ImageLoadingTransformer");
        using var model = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 0)).Fit(data);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ml.Model.ExportVitToOnnx(model, data, new MemoryStream(new byte[4], writable: false))).Message,
            "not writable");
        // The data must fit the pipeline: a schema without the image path is refused before anything is written.
        var noPath = ml.Data.LoadFromEnumerable(new[] { new OtherRow() });
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Model.ExportVitToOnnx(model, noPath.Schema, new MemoryStream()));
    }

    private sealed class OtherRow
    {
        public string Other { get; set; } = "x";
    }

    /// <summary>The Hugging Face folder of a fitted pipeline loads back (our reader) to the same labels and weights.</summary>
    [TestMethod]
    public void ExportVitToHuggingFaceWritesAFolderThatLoadsBack()
    {
        var ml = new MLContext(seed: 8);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        using var model = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 1)).Fit(data);
        var vit = VitPipeline.Find(model, "test");
        var folder = Path.Combine(Directory.CreateTempSubdirectory().FullName, "hf");
        ml.Model.ExportVitToHuggingFace(model, folder);
        Assert.IsTrue(File.Exists(Path.Combine(folder, "config.json")));
        using var back = PretrainedVit.Load(folder);
        CollectionAssert.AreEqual(vit.Labels.ToArray(), back.Labels!.ToArray());
        var expected = vit.Model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.ToArray<float>());
        foreach (var (name, p) in back.Model.NamedParameters()) CollectionAssert.AreEqual(expected[name], p.ToArray<float>(), name);
    }
}
