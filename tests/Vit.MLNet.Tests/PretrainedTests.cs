using Vit.MLNet;
using Vit.Torch;
using Engine = Vit.Torch.Torch;
using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;
using Vit.Torch.Model;
using Vit.Torch.Training;

namespace Vit.MLNet.Tests;

/// <summary>Starting from checkpoints in the pipeline: StartFrom, LoadPretrainedVit, the checkpoint's preprocessing, resampling, learning rates.</summary>
[TestClass]
public sealed class PretrainedTests
{
    /// <summary>The Fashion-MNIST example's head layout at a small size: D 96, 4 heads (D/64 would say 1).</summary>
    private static VitEstimator.Options FourHeadOptions(int epochs) => new()
    {
        Architecture = VitArchitecture.Custom, Epochs = epochs, BatchSize = 8, LearningRate = 3e-3, Augmentation = AugmentPreset.None, Workers = 1,
        CustomConfig = new VitConfig { ImageSize = 16, PatchSize = 8, Channels = 3, Dim = 96, Depth = 1, Heads = 4, MlpDim = 64 },
    };

    private static List<float[]> Scores(ITransformer model, IDataView data) => Rows.Vectors(model.Transform(data));

    [TestMethod]
    public void OwnFourHeadWeightsRoundTripThroughStartFromAndPredictIdentically()
    {
        var ml = new MLContext(seed: 3);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        var dir = Directory.CreateTempSubdirectory().FullName;
        using var trained = Fixtures.Pipeline(ml, FourHeadOptions(epochs: 1)).Fit(data);
        var expected = Scores(trained, data);
        var vit = VitPipeline.Find(trained, "test");
        var zip = Path.Combine(dir, "model.zip");
        ml.Model.Save(trained, data.Schema, zip);
        var st = Path.Combine(dir, "weights.safetensors");
        VitSafetensors.Save(st, vit.Model, vit.Preprocessing, vit.Labels);

        foreach (var source in new[] { zip, st })
        {
            var options = FourHeadOptions(epochs: 0);
            options.StartFrom = source;
            options.FineTune = FineTuneMode.Continue;
            using var resumed = Fixtures.Pipeline(ml, options).Fit(data);
            Assert.AreEqual(4, VitPipeline.Find(resumed, "test").Model.Config.Heads, source);
            var got = Scores(resumed, data);
            for (int i = 0; i < expected.Count; i++) CollectionAssert.AreEqual(expected[i], got[i], $"{source}, row {i}");
        }

        // The same weights without our metadata (timm names only): the head count is not guessed.
        var bare = Path.Combine(dir, "bare.safetensors");
        Safetensors.Save(bare, vit.Model.NamedParameters());
        var o = FourHeadOptions(epochs: 0);
        o.StartFrom = bare;
        var e = Assert.Throws<ArgumentException>(() => Fixtures.Pipeline(ml, o).Fit(data));
        StringAssert.Contains(e.Message, "head count is unknown");
        o.StartFromOptions = new PretrainedVitOptions { Heads = 4, LayerNormEps = 1e-6 };
        using var told = Fixtures.Pipeline(ml, o).Fit(data);
        Assert.AreEqual(4, VitPipeline.Find(told, "test").Model.Config.Heads);
    }

    [TestMethod]
    public void StartFromAHuggingFaceFolderTakesItsPreprocessingAndResamplesToTheImageColumn()
    {
        var ml = new MLContext(seed: 4);
        using var checkpoint = HuggingFace.Folder(out var folder, new VitConfig
        {
            ImageSize = 16, PatchSize = 8, Dim = 48, Depth = 1, Heads = 3, MlpDim = 32, NumClasses = 4, LayerNormEps = 1e-12,
        }, ["w", "x", "y", "z"], Interpolation.Bicubic);
        var options = FourHeadOptions(epochs: 1);
        options.StartFrom = folder;
        options.FineTune = FineTuneMode.HeadOnly;
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        var pipeline = ml.Transforms.LoadImages("Image", null, "ImagePath").Append(ml.Transforms.ResizeImages("Image", 24, 24))
            .Append(new VitEstimator(ml, options));
        using var tuned = pipeline.Fit(data);
        var vit = tuned.LastTransformer;
        Assert.AreEqual(24, vit.Model.Config.ImageSize);
        Assert.AreEqual(3, vit.Model.Config.Heads);
        Assert.AreEqual(1e-12, vit.Model.Config.LayerNormEps);
        var p = vit.Preprocessing;
        Assert.AreEqual((24, ResizeMode.Stretch, Interpolation.Bicubic), (p.ImageSize, p.ResizeMode, p.Interpolation));
        Assert.AreEqual(Normalization.Half.ForChannels(3), p.Normalization.ForChannels(3));
        CollectionAssert.AreEqual(Fixtures.Classes, vit.Labels.ToArray());
        // Only the head trained; the position embedding is the checkpoint's, resampled from 2x2 to 3x3 patches.
        using var scope = TensorScope.Begin();
        var resampled = PositionEmbedding.Resample(checkpoint.PosEmbed, 1, 3).ToArray<float>();
        CollectionAssert.AreEqual(resampled, vit.Model.PosEmbed.ToArray<float>());
        CollectionAssert.AreEqual(checkpoint.Blocks[0].Attn.Qkv.Weight.ToArray<float>(), vit.Model.Blocks[0].Attn.Qkv.Weight.ToArray<float>());
    }

    [TestMethod]
    public void LoadPretrainedVitScoresWithTheCheckpointsOwnLabelsAndPreprocessing()
    {
        var ml = new MLContext();
        using var checkpoint = HuggingFace.Folder(out var folder, new VitConfig
        {
            ImageSize = 16, PatchSize = 8, Dim = 48, Depth = 1, Heads = 3, MlpDim = 32, NumClasses = 4, LayerNormEps = 1e-12,
        }, ["w", "x", "y", "z"], Interpolation.Bilinear);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        using var imported = ml.Model.LoadPretrainedVit(folder);
        CollectionAssert.AreEqual(new[] { "w", "x", "y", "z" }, imported.Labels.ToArray());
        imported.Precision = Precision.Float32;  // compared with the checkpoint's float32 forward
        var loader = ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(data);
        var scored = imported.Transform(loader.Transform(data));
        var scores = Rows.Vectors(scored).Take(6).ToList();
        var predicted = Rows.Keys(scored, "PredictedLabel").Take(6).ToList();
        CollectionAssert.AreEqual(new[] { "w", "x", "y", "z" }, Rows.Annotation(scored.Schema["PredictedLabel"], "KeyValues"));
        CollectionAssert.AreEqual(new[] { "w", "x", "y", "z" }, Rows.Annotation(scored.Schema["Score"], "SlotNames"));

        // The same images through the checkpoint's model by hand: decode, resize 24 -> 16 (stretch, bilinear), (v/255 - 0.5) / 0.5.
        var paths = Rows.Texts(data, "ImagePath").Take(6).ToList();
        var images = paths.Select(f =>
        {
            using var decoded = Image.Decode(f);
            return decoded.Resize(16, 16, ResizeMode.Stretch, Interpolation.Bilinear);
        }).ToList();
        using var scope = TensorScope.Begin();
        using var noGrad = Engine.NoGrad();
        var probs = F.Softmax(checkpoint.Forward(ImageBatch.ToTensor(images, Normalization.Half)), 1).ToArray<float>();
        foreach (var im in images) im.Dispose();
        for (int i = 0; i < scores.Count; i++)
        {
            var score = scores[i];
            for (int k = 0; k < 4; k++) Assert.AreEqual(probs[i * 4 + k], score[k], 1e-6, $"row {i}, class {k}");
            Assert.AreEqual((uint)Array.IndexOf(score, score.Max()) + 1, predicted[i], "PredictedLabel is the key of the highest score");
        }
    }

    [TestMethod]
    public void LoadPretrainedVitOfABackboneSaysToFineTuneIt()
    {
        var ml = new MLContext();
        using var checkpoint = HuggingFace.Folder(out var folder, new VitConfig
        {
            ImageSize = 16, PatchSize = 8, Dim = 48, Depth = 1, Heads = 3, MlpDim = 32, NumClasses = 0,
        }, null, Interpolation.Bilinear);
        var e = Assert.Throws<ArgumentException>(() => ml.Model.LoadPretrainedVit(folder));
        StringAssert.Contains(e.Message, "no classification head");
    }

    [TestMethod]
    public void FineTuningEveryWeightDefaultsToALowerLearningRateAndLayerDecaySlowsTheEarlyLayers()
    {
        var ml = new MLContext(seed: 5);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        var dir = Directory.CreateTempSubdirectory().FullName;
        var zip = Path.Combine(dir, "pre.zip");
        using (var pre = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 1)).Fit(data))
            ml.Model.Save(pre, data.Schema, zip);
        using var start = PretrainedVit.Load(zip);
        var before = start.Model.PatchEmbed.Weight.ToArray<float>();

        double Run(double? layerDecay, out double peak)
        {
            var options = Fixtures.TinyOptions(epochs: 1);
            options.LearningRate = null;
            options.StartFrom = zip;
            options.LayerDecay = layerDecay;
            double max = 0;
            options.Progress = new SyncProgress<VitTrainingProgress>(p => max = Math.Max(max, p.LearningRate));
            using var tuned = Fixtures.Pipeline(ml, options).Fit(data);
            peak = max;
            var after = VitPipeline.Find(tuned, "test").Model.PatchEmbed.Weight.ToArray<float>();
            return before.Zip(after, (a, b) => Math.Abs(a - b)).Max();
        }
        double plain = Run(null, out var peakLr);
        Assert.AreEqual(VitEstimator.Options.Defaults.FineTuneLearningRate, peakLr, 1e-9 * peakLr + 1e-12);
        double decayed = Run(0.01, out _);  // the patch embedding learns at 0.01^3 of the rate (depth 2)
        Assert.IsGreaterThan(0, plain);
        Assert.IsLessThan(plain * 0.01, decayed);
    }
}

/// <summary>Hugging Face folders written from a randomly initialised model (<see cref="HuggingFaceExport.SavePretrained"/>).</summary>
internal static class HuggingFace
{
    /// <summary>Writes a folder whose preprocessing stretches with <paramref name="interpolation"/> and mean/std 0.5,
    /// and returns the model it holds.</summary>
    public static VisionTransformer Folder(out string folder, VitConfig config, IReadOnlyList<string>? labels, Interpolation interpolation)
    {
        folder = Directory.CreateTempSubdirectory("vit-hf-").FullName;
        Engine.ManualSeed(11);
        var model = new VisionTransformer(config);
        model.Eval();
        model.SavePretrained(folder, new VitPreprocessing(config.ImageSize, config.Channels, Normalization.Half)
        {
            ResizeMode = ResizeMode.Stretch, Interpolation = interpolation,
        }, labels);
        return model;
    }
}
