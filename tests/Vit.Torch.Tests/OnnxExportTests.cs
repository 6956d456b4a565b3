using System.Text.Json;
using Vit.Tests;
using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.Torch.Tests;

/// <summary>
/// <see cref="OnnxExport"/> checked in the real runtimes: ONNX Runtime (Microsoft.ML.OnnxRuntime, in this process)
/// computes the same logits and Score as our forward on the same pixels; Debian's onnx.checker (full_check) accepts
/// the file.
/// </summary>
[TestClass]
public sealed class OnnxExportTests : TempDirectoryTests
{
    private static readonly VitConfig Small = new()
    {
        ImageSize = 16, PatchSize = 4, Channels = 3, Dim = 48, Depth = 2, Heads = 4, MlpDim = 64, NumClasses = 5, LayerNormEps = 1e-5,
    };

    private static readonly Normalization Stats = new([0.3f, 0.5f, 0.7f], [0.2f, 0.25f, 0.3f]);

    private static readonly Dictionary<string, VitConfig> Variants = new()
    {
        ["class token"] = Small,
        ["mean pooling with a class token and fc_norm"] = Small with { Pooling = VitPooling.Mean, ClassToken = true, FcNorm = true },
        ["mean pooling without a class token"] = Small with { Pooling = VitPooling.Mean },
        ["grayscale, no qkv bias"] = Small with { Channels = 1, QkvBias = false },
        ["class token and fc_norm"] = Small with { FcNorm = true },
        ["mean pooling with a class token, no fc_norm"] = Small with { Pooling = VitPooling.Mean, ClassToken = true },
        ["layer norm eps 1e-12, one head"] = Small with { LayerNormEps = 1e-12, Heads = 1 },
    };

    [TestMethod]
    [DataRow("class token")]
    [DataRow("mean pooling with a class token and fc_norm")]
    [DataRow("mean pooling without a class token")]
    [DataRow("grayscale, no qkv bias")]
    [DataRow("class token and fc_norm")]
    [DataRow("mean pooling with a class token, no fc_norm")]
    [DataRow("layer norm eps 1e-12, one head")]
    public void OnnxRuntimeGivesOurLogitsAndScore(string what)
    {
        var config = Variants[what];
        Torch.ManualSeed(3);
        using var model = new VisionTransformer(config);
        TestModels.Randomize(model);
        model.Eval();
        var pre = new VitPreprocessing(config.ImageSize, config.Channels, config.Channels == 1 ? Normalization.Half : Stats);
        var path = Path.Combine(Dir, "model.onnx");
        model.ExportOnnx(path, pre, ["a", "b", "c", "d", "e"]);
        CompareWithOnnxRuntime(model, config, pre, path, what);
    }

    [TestMethod]
    public void WeightsBeyondTheInlineLimitGoToExternalDataThatOnnxRuntimeReads()
    {
        Torch.ManualSeed(4);
        using var model = new VisionTransformer(Small);
        TestModels.Randomize(model);
        model.Eval();
        var pre = new VitPreprocessing(16, 3, Stats);
        var path = Path.Combine(Dir, "model.onnx");
        OnnxExport.InlineLimit = 1000;  // ViT-H's 2.5 GB, scaled down
        try
        {
            model.ExportOnnx(path, pre);
            using var stream = new MemoryStream();
            StringAssert.Contains(Assert.Throws<NotSupportedException>(() => model.ExportOnnx(stream, pre)).Message, "export to a file path");
        }
        finally
        {
            OnnxExport.InlineLimit = OnnxExport.MaxInlineWeightBytes;
        }
        long weights = model.ParameterCount() * 4;
        Assert.IsLessThan(weights / 4, new FileInfo(path).Length, "the graph file holds no weights");
        Assert.IsGreaterThanOrEqualTo(weights, new FileInfo(path + ".data").Length);
        CompareWithOnnxRuntime(model, Small, pre, path, "external data");
        var report = JsonDocument.Parse(Python.RunScript(Python.Script("onnx_check.py"), path)).RootElement;
        Assert.AreEqual(8, report.GetProperty("ir_version").GetInt32());
    }

    private void CompareWithOnnxRuntime(VisionTransformer model, VitConfig config, VitPreprocessing pre, string path, string what)
    {
        foreach (int batch in new[] { 1, 8 })
        {
            using var scope = TensorScope.Begin();
            // What ExtractPixels gives: planar pixels scaled to [0, 1], multiples of 1/255.
            var pixels = (Tensor.Rand([batch, config.Channels, config.ImageSize, config.ImageSize]) * 255).Floor() / 255;
            var input = pixels.ToArray<float>();
            var ort = OnnxRuntime.Run(path, input, batch, config.Channels, config.ImageSize, config.ImageSize);
            using var noGrad = Torch.NoGrad();
            var norm = pre.Normalization.ForChannels(config.Channels);
            var mean = Tensor.FromArray(norm.Mean, 1, config.Channels, 1, 1);
            var std = Tensor.FromArray(norm.Std, 1, config.Channels, 1, 1);
            var logits = model.Forward((pixels - mean) / std);
            var score = F.Softmax(logits, 1);
            CollectionAssert.AreEqual(new long[] { batch, 5 }, ort["logits"].Shape);
            CollectionAssert.AreEqual(new long[] { batch, 5 }, ort["Score"].Shape);
            double dl = MaxDiff(logits.ToArray<float>(), ort["logits"].Values), ds = MaxDiff(score.ToArray<float>(), ort["Score"].Values);
            TestContext.WriteLine($"{what}, batch {batch}: max |ours - ONNX Runtime| logits {dl:E2}, Score {ds:E2}");
            Assert.IsGreaterThan(0.5, logits.Abs().Flatten().Max(0).Values.Item(), "logits of order one, so that the comparison means something");
            Assert.IsLessThanOrEqualTo(1e-4, dl, $"{what}: logits");
            Assert.IsLessThanOrEqualTo(1e-4, ds, $"{what}: Score");
        }
    }

    [TestMethod]
    public void OnnxCheckerAcceptsTheFileWithItsMetadata()
    {
        using var model = new VisionTransformer(Small);
        var pre = new VitPreprocessing(16, 3, Stats) { ResizeMode = ResizeMode.Crop, Interpolation = Interpolation.Bicubic, CropFraction = 0.9 };
        var path = Path.Combine(Dir, "model.onnx");
        model.ExportOnnx(path, pre, ["a", "b", "c", "d", "e"]);
        var report = JsonDocument.Parse(Python.RunScript(Python.Script("onnx_check.py"), path)).RootElement;
        TestContext.WriteLine(report.ToString());
        Assert.AreEqual(8, report.GetProperty("ir_version").GetInt32());
        Assert.AreEqual(17, report.GetProperty("opsets").GetProperty("").GetInt32());
        Assert.AreEqual("[\"N\",3,16,16]", report.GetProperty("inputs").GetProperty("pixel_values").GetRawText().Replace(" ", ""));
        Assert.AreEqual("[\"N\",5]", report.GetProperty("outputs").GetProperty("Score").GetRawText().Replace(" ", ""));
        Assert.AreEqual("[\"N\",5]", report.GetProperty("outputs").GetProperty("logits").GetRawText().Replace(" ", ""));
        var metadata = report.GetProperty("metadata");
        Assert.AreEqual(Small with { ClassToken = true }, VitConfig.FromJson(System.Text.Json.Nodes.JsonNode.Parse(metadata.GetProperty(VitMetadata.Config).GetString()!), "metadata"));
        Assert.AreEqual(pre, VitPreprocessing.FromJson(System.Text.Json.Nodes.JsonNode.Parse(metadata.GetProperty(VitMetadata.Preprocessing).GetString()!), "metadata"));
        Assert.AreEqual("[\"a\",\"b\",\"c\",\"d\",\"e\"]", metadata.GetProperty(VitMetadata.Labels).GetString());
        var ops = report.GetProperty("ops").EnumerateArray().Select(e => e.GetString()).ToList();
        CollectionAssert.IsSubsetOf(new[] { "LayerNormalization", "Erf", "Softmax", "Conv", "Gemm" }, ops);
        Assert.DoesNotContain("Gelu", ops);  // opset 17 has none: exact GELU through Erf
    }

    [TestMethod]
    public void BadTargetsAreNamedAndLeaveNoFile()
    {
        using var model = new VisionTransformer(Small);
        var pre = new VitPreprocessing(16, 3, Stats);
        var missing = Path.Combine(Dir, "no such folder", "model.onnx");
        var e = Assert.Throws<DirectoryNotFoundException>(() => model.ExportOnnx(missing, pre));
        StringAssert.Contains(e.Message, Path.Combine(Dir, "no such folder"));
        Assert.IsFalse(Directory.Exists(Path.Combine(Dir, "no such folder")));

        using var readOnly = new MemoryStream(new byte[16], writable: false);
        StringAssert.Contains(Assert.Throws<ArgumentException>(() => model.ExportOnnx(readOnly, pre)).Message, "not writable");

        StringAssert.Contains(Assert.Throws<ArgumentException>(() => model.ExportOnnx(Path.Combine(Dir, "m.onnx"), pre, ["a"])).Message,
            "1 labels for a model with 5 classes");
        StringAssert.Contains(Assert.Throws<ArgumentException>(() => model.ExportOnnx(Path.Combine(Dir, "m.onnx"), new VitPreprocessing(32, 3, Stats))).Message,
            "does not fit the model");
        using var headless = new VisionTransformer(Small with { NumClasses = 0 });
        StringAssert.Contains(Assert.Throws<ArgumentException>(() => headless.ExportOnnx(Path.Combine(Dir, "m.onnx"), pre)).Message, "headless");
        Assert.IsEmpty(Directory.GetFiles(Dir), "nothing was written");
    }

    private static double MaxDiff(float[] a, float[] b)
    {
        Assert.HasCount(a.Length, b);
        return a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();
    }
}
