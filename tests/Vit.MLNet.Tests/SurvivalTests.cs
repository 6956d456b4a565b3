using System.IO.Compression;
using Vit.MLNet;
using Vit.Torch.Checkpoints;
using Vit.Torch.Data;
using Vit.Torch.Imaging;
using Vit.Torch.Training;

namespace Vit.MLNet.Tests;

/// <summary>Training through the estimator survives: Resume after Ctrl+C, a failure's last good checkpoint, model files that carry the training state.</summary>
[TestClass]
public sealed class SurvivalTests
{
    private static VitEstimator.Options Options(string? checkpoints, bool resume = false, CancellationToken token = default) => new()
    {
        Architecture = VitArchitecture.Custom, CustomConfig = Fixtures.TinyConfig with { Dropout = 0.1 }, Epochs = 3, BatchSize = 8,
        LearningRate = 3e-3, Augmentation = AugmentPreset.Light, Workers = 2, CheckpointDirectory = checkpoints, Resume = resume,
        CheckpointInterval = TimeSpan.Zero, EmaDecay = 0.9, CancellationToken = token,
    };

    private static Dictionary<string, float[]> Weights(VitTransformer v) =>
        v.Model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.ToArray<float>());

    [TestMethod]
    public void CancelledFitResumesToTheWeightsOfAnUninterruptedOne()
    {
        var ctx = new VitContext(seed: 8);
        var data = ctx.Data.LoadFromImageFolder(Fixtures.Folder);
        Dictionary<string, float[]> expected;
        using (var whole = Fixtures.Pipeline(ctx, Options(null)).Fit(data))
            expected = Weights(whole.LastTransformer);

        var checkpoints = Directory.CreateTempSubdirectory("vit-survive-").FullName;
        using var cts = new CancellationTokenSource();
        var options = Options(checkpoints, token: cts.Token);
        options.Progress = new SyncProgress<VitTrainingProgress>(p =>
        {
            if (p.Epoch == 2 && p.Step == 11) cts.Cancel();  // Ctrl+C midway through epoch 2 (8 steps per epoch)
        });
        using (var stopped = Fixtures.Pipeline(ctx, options).Fit(data))
            Assert.IsTrue(stopped.LastTransformer.History!.Result.Cancelled);
        Assert.IsTrue(File.Exists(Path.Combine(checkpoints, "last.safetensors")));

        using var resumed = Fixtures.Pipeline(ctx, Options(checkpoints, resume: true)).Fit(data);
        Assert.AreEqual((1, 3), resumed.LastTransformer.History!.Result.ResumedAt);
        foreach (var (name, values) in Weights(resumed.LastTransformer))
            CollectionAssert.AreEqual(expected[name], values, name);
    }

    [TestMethod]
    public void MixupAndCutMixTrainThroughTheEstimator()
    {
        var ctx = new VitContext(seed: 11);
        var data = ctx.Data.LoadFromImageFolder(Fixtures.Folder);
        var options = Fixtures.TinyOptions(epochs: 2);
        options.MixupAlpha = 0.8;
        options.CutMixAlpha = 1.0;
        using var model = Fixtures.Pipeline(ctx, options).Fit(data);
        var epochs = model.LastTransformer.History!.Result.Epochs;
        Assert.HasCount(2, epochs);
        Assert.IsTrue(epochs.All(e => double.IsFinite(e.TrainLoss)));
        using var plain = Fixtures.Pipeline(ctx, Fixtures.TinyOptions(epochs: 2)).Fit(data);
        Assert.AreNotEqual(plain.LastTransformer.History!.Result.Epochs[0].TrainLoss, epochs[0].TrainLoss, "the mixing changes what is trained on");
    }

    [TestMethod]
    public void ABadImageStopsTrainingAndTheLastGoodStateIsSavedAndLoads()
    {
        var root = Directory.CreateTempSubdirectory("vit-bad-").FullName;
        foreach (var c in Fixtures.Classes)
        {
            var target = Directory.CreateDirectory(Path.Combine(root, c)).FullName;
            foreach (var f in Directory.GetFiles(Path.Combine(Fixtures.Folder, c))) File.Copy(f, Path.Combine(target, Path.GetFileName(f)));
        }
        File.WriteAllBytes(Path.Combine(root, "red", "zz-truncated.png"), File.ReadAllBytes(Directory.GetFiles(Path.Combine(root, "red"))[0])[..40]);
        var ctx = new VitContext(seed: 9);
        var options = Options(null);
        options.OnBadImage = BadImagePolicy.Throw;
        options.Augmentation = AugmentPreset.None;
        var e = Assert.Throws<TrainingFailedException>(() => Fixtures.Pipeline(ctx, options).Fit(ctx.Data.LoadFromImageFolder(root)));
        StringAssert.Contains(e.Message, "zz-truncated.png");
        Assert.IsInstanceOfType<ImageDecodeException>(e.InnerException);
        Assert.IsNotNull(e.LastGoodCheckpoint, "no CheckpointDirectory: the state goes to the rescue folder");
        StringAssert.Contains(e.Message, e.LastGoodCheckpoint);
        using var rescued = PretrainedVit.Load(e.LastGoodCheckpoint);  // a complete model: config, preprocessing, labels
        CollectionAssert.AreEqual(Fixtures.Classes, rescued.Labels!.ToArray());
        Directory.Delete(Path.GetDirectoryName(e.LastGoodCheckpoint)!, recursive: true);
    }

    [TestMethod]
    public void AModelFileCarriesItsTrainingStateAndContinueUsesIt()
    {
        var ctx = new VitContext(seed: 10);
        var data = ctx.Data.LoadFromImageFolder(Fixtures.Folder);
        var dir = Directory.CreateTempSubdirectory("vit-carry-").FullName;
        var zip = Path.Combine(dir, "model.zip");
        var keep = Options(null);
        keep.KeepTrainingState = true;
        using (var model = Fixtures.Pipeline(ctx, keep).Fit(data))
        {
            // Another fit meanwhile does not change what this model carries.
            using (Fixtures.Pipeline(ctx, keep).Fit(data)) { }
            ctx.Model.Save(model, data.Schema, zip);
        }
        using (var archive = ZipFile.OpenRead(zip))
        {
            var state = archive.GetEntry(VitModelZip.TrainingStateEntry);
            Assert.IsNotNull(state);
            Assert.IsLessThan(3 * archive.GetEntry(VitModelZip.WeightsEntry)!.Length, state.Length, "the optimizer's moments only: two copies of the weights");
        }
        using (var plain = Fixtures.Pipeline(ctx, Options(null)).Fit(data))
        {
            var plainZip = Path.Combine(dir, "plain.zip");
            ctx.Model.Save(plain, data.Schema, plainZip);
            using var archive = ZipFile.OpenRead(plainZip);
            Assert.IsNull(archive.GetEntry(VitModelZip.TrainingStateEntry), "a model file carries no optimizer unless asked");
        }

        Dictionary<string, float[]> Continue(string from)
        {
            var options = Options(null);
            options.StartFrom = from;
            options.FineTune = FineTuneMode.Continue;
            options.Epochs = 1;
            options.EmaDecay = null;
            using var model = Fixtures.Pipeline(ctx, options).Fit(data);
            return Weights(model.LastTransformer);
        }
        var withState = Continue(zip);
        // The same weights without the optimizer's state: AdamW starts afresh, and the first steps come out otherwise.
        var bare = Path.Combine(dir, "bare.zip");
        using (var loaded = (TransformerChain<ITransformer>)ctx.Model.Load(zip, out var schema))
            ctx.Model.Save(loaded, schema, bare);
        using (var archive = ZipFile.OpenRead(bare))
            Assert.IsNull(archive.GetEntry(VitModelZip.TrainingStateEntry), "a loaded model saves without the state");
        var withoutState = Continue(bare);
        Assert.IsTrue(withState.Any(kv => !kv.Value.SequenceEqual(withoutState[kv.Key])), "the carried optimizer state changes the continued training");

        // A head-only run carries the head's moments; continuing trains everything, the rest from fresh moments.
        var headOnly = Path.Combine(dir, "head.zip");
        var probe = Options(null);
        probe.StartFrom = zip;
        probe.FineTune = FineTuneMode.HeadOnly;
        probe.KeepTrainingState = true;
        probe.Epochs = 1;
        using (var model = Fixtures.Pipeline(ctx, probe).Fit(data))
            ctx.Model.Save(model, data.Schema, headOnly);
        Assert.HasCount(withState.Count, Continue(headOnly));
    }
}
