using System.Text.Json.Nodes;
using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.Torch.Tests;

/// <summary>
/// <see cref="HuggingFaceExport.SavePretrained"/>: read back identically by <see cref="PretrainedVit.Load"/>, and an
/// independent PyTorch forward from transformers' names (parity/hf_reference.py) gives our logits.
/// </summary>
[TestClass]
public sealed class HuggingFaceExportTests : TempDirectoryTests
{
    private static readonly VitConfig Config = new()
    {
        ImageSize = 16, PatchSize = 4, Channels = 3, Dim = 96, Depth = 2, Heads = 4, MlpDim = 64, NumClasses = 3,
        LayerNormEps = 1e-5, Dropout = 0.1, AttentionDropout = 0.05, DropPath = 0.2, QkvBias = false,
    };

    private static VisionTransformer Model()
    {
        Torch.ManualSeed(9);
        var model = new VisionTransformer(Config);
        TestModels.Randomize(model);
        model.Eval();
        return model;
    }

    [TestMethod]
    [DataRow(ResizeMode.Stretch, Interpolation.Bilinear, 1.0)]
    [DataRow(ResizeMode.Crop, Interpolation.Bicubic, 0.875)]
    [DataRow(ResizeMode.Pad, Interpolation.Area, 1.0)]
    public void SavedFolderReadsBackIdentically(ResizeMode mode, Interpolation interpolation, double crop)
    {
        using var model = Model();
        var pre = new VitPreprocessing(16, 3, new Normalization([0.1f, 0.2f, 0.3f], [0.4f, 0.5f, 0.6f]))
        {
            ResizeMode = mode, Interpolation = interpolation, CropFraction = crop,
        };
        model.SavePretrained(Dir, pre, ["cat", "dog", "eel"]);
        CollectionAssert.AreEquivalent(new[] { "config.json", "model.safetensors", "preprocessor_config.json" },
            Directory.GetFiles(Dir).Select(Path.GetFileName).ToArray());
        using var loaded = PretrainedVit.Load(Dir);
        Assert.AreEqual(CheckpointLayout.HuggingFace, loaded.Layout);
        Assert.AreEqual(Config with { ClassToken = true, FcNorm = false, Pooling = VitPooling.ClassToken }, loaded.Model.Config);
        Assert.AreEqual(pre, loaded.Preprocessing);
        CollectionAssert.AreEqual(new[] { "cat", "dog", "eel" }, loaded.Labels!.ToArray());
        var theirs = loaded.Model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.ToArray<float>());
        foreach (var (name, p) in model.NamedParameters())
            CollectionAssert.AreEqual(p.ToArray<float>(), theirs[name], name);

        // transformers' own keys say what its processors do: resize to the size, or the shorter side then a crop.
        var processor = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "preprocessor_config.json")))!;
        Assert.AreEqual(mode == ResizeMode.Crop ? "BitImageProcessor" : "ViTImageProcessor", (string)processor["image_processor_type"]!);
        if (mode == ResizeMode.Crop)
        {
            Assert.AreEqual(18, (int)processor["size"]!["shortest_edge"]!);  // floor(16 / 0.875): Resize(18) + CenterCrop(16)
            Assert.AreEqual(16, (int)processor["crop_size"]!["height"]!);
        }
        processor.Remove(Vit.Torch.Checkpoints.CheckpointFolders.OurPreprocessingKey);
        File.WriteAllText(Path.Combine(Dir, "preprocessor_config.json"), processor.ToJsonString());
        using var fromTransformersKeys = PretrainedVit.Load(Dir);  // what transformers' keys alone say
        Assert.AreEqual(pre.ResizeMode == ResizeMode.Pad ? ResizeMode.Stretch : pre.ResizeMode, fromTransformersKeys.Preprocessing.ResizeMode);
        Assert.AreEqual(pre.Interpolation, fromTransformersKeys.Preprocessing.Interpolation);
        Assert.AreEqual(interpolation switch { Interpolation.Bilinear => 2, Interpolation.Bicubic => 3, _ => 4 }, (int)processor["resample"]!);
    }

    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public void AnIndependentForwardFromTransformersNamesGivesOurLogits(bool qkvBias)
    {
        Torch.ManualSeed(9);
        using var model = new VisionTransformer(Config with { QkvBias = qkvBias });
        TestModels.Randomize(model);
        model.Eval();
        model.SavePretrained(Dir, labels: ["cat", "dog", "eel"]);
        var work = Directory.CreateTempSubdirectory("vit-hfx-io-").FullName;
        try
        {
            using var scope = TensorScope.Begin();
            var inputs = Path.Combine(work, "inputs.safetensors");
            var x = Tensor.Randn([4, 3, 16, 16]);
            Safetensors.Save(inputs, [("pixel_values", x)]);
            var output = Path.Combine(work, "logits.safetensors");
            Python.RunScript(Python.Script("hf_reference.py"), Dir, inputs, output);
            using var noGrad = Torch.NoGrad();
            var ours = model.Forward(x).ToArray<float>();
            var theirs = Safetensors.Load(output)["logits"].ToArray<float>();
            double diff = ours.Zip(theirs, (a, b) => Math.Abs((double)a - b)).Max();
            TestContext.WriteLine($"qkv bias {qkvBias}: max |ours - PyTorch from HF names| = {diff:E2}");
            Assert.IsGreaterThan(0.5, theirs.Max(Math.Abs));
            Assert.IsLessThanOrEqualTo(1e-5, diff);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    [TestMethod]
    public void ModelsTransformersCannotExpressAreRefused()
    {
        using var mean = new VisionTransformer(Config with { Pooling = VitPooling.Mean });
        StringAssert.Contains(Assert.Throws<NotSupportedException>(() => mean.SavePretrained(Dir)).Message, "mean pooling");
        Assert.IsEmpty(Directory.GetFiles(Dir));
    }

    [TestMethod]
    public void HeadlessModelIsAViTModelWithoutPrefix()
    {
        using var model = new VisionTransformer(Config with { NumClasses = 0 });
        model.SavePretrained(Dir);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "config.json")))!;
        Assert.AreEqual("ViTModel", (string)config["architectures"]![0]!);
        Assert.IsTrue(Safetensors.ReadHeader(Path.Combine(Dir, "model.safetensors")).Entries.Any(e => e.Name == "embeddings.cls_token"));
        using var loaded = PretrainedVit.Load(Dir);
        Assert.AreEqual(0, loaded.Model.Config.NumClasses);
    }
}
