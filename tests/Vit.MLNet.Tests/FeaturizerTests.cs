using Vit.MLNet;
using Vit.Torch;
using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;

namespace Vit.MLNet.Tests;

/// <summary>FeaturizeImageWithVit: a saved model's pooled features as a column, for any ML.NET trainer.</summary>
[TestClass]
public sealed class FeaturizerTests
{
    /// <summary>Pictures of the model's size (16 px): nothing is resized anywhere, so the features can be computed by hand.</summary>
    private static readonly Lazy<string> Folder16 = new(() => Fixtures.Make(perClass: 8, size: 16, seed: 31));

    /// <summary>An ML.NET model file with a ViT trained on the fixture folder.</summary>
    private static readonly Lazy<string> Checkpoint = new(() =>
    {
        var ml = new MLContext(seed: 30);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        using var model = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 4)).Fit(data);
        var path = Path.Combine(Directory.CreateTempSubdirectory("vit-featurizer-").FullName, "model.zip");
        ml.Model.Save(model, data.Schema, path);
        return path;
    });

    [TestMethod]
    public void FeaturesEqualForwardFeaturesComputedDirectlyThroughVitTorch()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromImageFolder(Folder16.Value);
        using var featurizer = ml.Transforms.LoadImages("Image", null, "ImagePath")
            .Append(ml.Transforms.FeaturizeImageWithVit(Checkpoint.Value, "Features", "Image")).Fit(data);
        var view = featurizer.Transform(data);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, Fixtures.TinyConfig.Dim), view.Schema["Features"].Type);
        var features = Rows.Vectors(view, "Features");

        // Independently: the model read from the file by Vit.Torch, the PNG files decoded by Vit.Torch, ImageNet's normalisation.
        using var pretrained = PretrainedVit.Load(Checkpoint.Value);
        pretrained.Model.Eval();
        var paths = Rows.Texts(data, "ImagePath");
        var images = paths.Select(p => Image.Decode(p)).ToList();
        float[] expected;
        try
        {
            using var scope = TensorScope.Begin();
            using var noGrad = Vit.Torch.Torch.NoGrad();
            expected = pretrained.Model.ForwardFeatures(ImageBatch.ToTensor(images, Normalization.ImageNet)).ToArray<float>();
        }
        finally
        {
            foreach (var image in images) image.Dispose();
        }
        int dim = Fixtures.TinyConfig.Dim;
        Assert.HasCount(paths.Count, features);
        Assert.HasCount(paths.Count * dim, expected);
        for (int i = 0; i < features.Count; i++)
            for (int d = 0; d < dim; d++)
                Assert.AreEqual(expected[i * dim + d], features[i][d], 1e-5, $"row {i}, feature {d}");
        Assert.IsFalse(features.All(f => f.SequenceEqual(features[0])), "the features differ from image to image");
    }

    [TestMethod]
    public void AnMLNetTrainerLearnsFromTheFeatures_AndThePipelineSavesAndLoads()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromImageFolder(Folder16.Value);
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.LoadImages("Image", null, "ImagePath"))
            .Append(ml.Transforms.FeaturizeImageWithVit(Checkpoint.Value))
            .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy("Label", "Features"))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        using var model = pipeline.Fit(data);
        var scored = model.Transform(data);
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        Assert.IsGreaterThanOrEqualTo(0.9, metrics.MicroAccuracy, $"accuracy {metrics.MicroAccuracy}");

        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "features-model.zip");
        ml.Model.Save(model, data.Schema, path);
        var loaded = ml.Model.Load(path, out var schema);
        try
        {
            CollectionAssert.AreEqual(new[] { "ImagePath", "Label" }, schema.Select(c => c.Name).ToArray());
            var again = loaded.Transform(data);
            var before = Rows.Vectors(scored, "Features");
            var after = Rows.Vectors(again, "Features");
            for (int i = 0; i < before.Count; i++) CollectionAssert.AreEqual(before[i], after[i], $"row {i}: features");
            var s0 = Rows.Vectors(scored);
            var s1 = Rows.Vectors(again);
            for (int i = 0; i < s0.Count; i++) CollectionAssert.AreEqual(s0[i], s1[i], $"row {i}: scores");
            CollectionAssert.AreEqual(Rows.Texts(scored, "PredictedLabel"), Rows.Texts(again, "PredictedLabel"));
        }
        finally
        {
            (loaded as IDisposable)?.Dispose();
        }
    }

    [TestMethod]
    public void TheFeaturizerNamesAMissingImageColumnAndAMissingCheckpoint()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromImageFolder(Folder16.Value);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.FeaturizeImageWithVit(Checkpoint.Value).Fit(data));
        StringAssert.Contains(e.Message, "Image column 'Image' not found");
        var missing = Path.Combine(Path.GetTempPath(), "no-such-checkpoint.zip");
        StringAssert.Contains(Assert.Throws<FileNotFoundException>(() => ml.Transforms.FeaturizeImageWithVit(missing)).Message, missing);
    }
}
