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

    /// <summary>An entry of the ViT step's folder in an ML.NET model file (the only folder holding our entries).</summary>
    private static ZipArchiveEntry? Entry(ZipArchive archive, string name) =>
        archive.Entries.SingleOrDefault(e => e.FullName.EndsWith("/" + name, StringComparison.Ordinal));

    private static Dictionary<string, float[]> Weights(VitTransformer v) =>
        v.Model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.ToArray<float>());

    [TestMethod]
    public void CancelledFitResumesToTheWeightsOfAnUninterruptedOne()
    {
        var ml = new MLContext(seed: 8);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        Dictionary<string, float[]> expected;
        using (var whole = Fixtures.Pipeline(ml, Options(null)).Fit(data))
            expected = Weights(VitPipeline.Find(whole, "test"));

        var checkpoints = Directory.CreateTempSubdirectory("vit-survive-").FullName;
        using var cts = new CancellationTokenSource();
        var options = Options(checkpoints, token: cts.Token);
        options.Progress = new SyncProgress<VitTrainingProgress>(p =>
        {
            if (p.Epoch == 2 && p.Step == 11) cts.Cancel();  // Ctrl+C midway through epoch 2 (8 steps per epoch)
        });
        using (var stopped = Fixtures.Pipeline(ml, options).Fit(data))
            Assert.IsTrue(VitPipeline.Find(stopped, "test").History!.Result.Cancelled);
        Assert.IsTrue(File.Exists(Path.Combine(checkpoints, "last.safetensors")));

        using var resumed = Fixtures.Pipeline(ml, Options(checkpoints, resume: true)).Fit(data);
        Assert.AreEqual((1, 3), VitPipeline.Find(resumed, "test").History!.Result.ResumedAt);
        foreach (var (name, values) in Weights(VitPipeline.Find(resumed, "test")))
            CollectionAssert.AreEqual(expected[name], values, name);
    }

    [TestMethod]
    public void MixupAndCutMixTrainThroughTheEstimator()
    {
        var ml = new MLContext(seed: 11);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        var options = Fixtures.TinyOptions(epochs: 2);
        options.MixupAlpha = 0.8;
        options.CutMixAlpha = 1.0;
        using var model = Fixtures.Pipeline(ml, options).Fit(data);
        var epochs = VitPipeline.Find(model, "test").History!.Result.Epochs;
        Assert.HasCount(2, epochs);
        Assert.IsTrue(epochs.All(e => double.IsFinite(e.TrainLoss)));
        using var plain = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 2)).Fit(data);
        Assert.AreNotEqual(VitPipeline.Find(plain, "test").History!.Result.Epochs[0].TrainLoss, epochs[0].TrainLoss, "the mixing changes what is trained on");
    }

    /// <summary>Images are read once, before training: with OnBadImage = Throw an unreadable one stops Fit before the first
    /// step, naming its row and column.</summary>
    [TestMethod]
    public void ABadImageWithThrowStopsFitBeforeTrainingNamingTheRow()
    {
        var root = Directory.CreateTempSubdirectory("vit-bad-").FullName;
        foreach (var c in Fixtures.Classes)
        {
            var target = Directory.CreateDirectory(Path.Combine(root, c)).FullName;
            foreach (var f in Directory.GetFiles(Path.Combine(Fixtures.Folder, c))) File.Copy(f, Path.Combine(target, Path.GetFileName(f)));
        }
        File.WriteAllBytes(Path.Combine(root, "red", "zz-truncated.png"), File.ReadAllBytes(Directory.GetFiles(Path.Combine(root, "red"))[0])[..40]);
        var ml = new MLContext(seed: 9);
        var data = ml.Data.LoadFromImageFolder(root);
        int row = Rows.Texts(data, "ImagePath").FindIndex(p => p.EndsWith("zz-truncated.png", StringComparison.Ordinal));
        var options = Options(null);
        options.OnBadImage = BadImagePolicy.Throw;
        options.Augmentation = AugmentPreset.None;
        long steps = 0;
        options.Progress = new SyncProgress<VitTrainingProgress>(_ => steps++);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => Fixtures.Pipeline(ml, options).Fit(data));
        StringAssert.Contains(e.Message, $"row {row}: the image of column 'Image' could not be read");
        Assert.AreEqual(0L, steps, "no training step ran");

        // The default, Skip: the row is left out with a warning, and counted.
        var warnings = Rows.Warnings(ml);
        options.OnBadImage = BadImagePolicy.Skip;
        options.Progress = null;
        options.Epochs = 1;
        using var model = Fixtures.Pipeline(ml, options).Fit(data);
        Assert.AreEqual(1, VitPipeline.Find(model, "test").History!.SkippedImages);
        Assert.IsTrue(warnings.Any(w => w.Contains($"row {row}:") && w.Contains("row skipped")), string.Join("\n", warnings));
    }

    /// <summary>A failure during training (here: the progress handler throws after three steps) saves the last good state
    /// to the rescue folder, names it, and that state loads as a complete model.</summary>
    [TestMethod]
    public void AFailureDuringTrainingSavesTheLastGoodStateAndItLoads()
    {
        var ml = new MLContext(seed: 9);
        var options = Options(null);
        options.Progress = new SyncProgress<VitTrainingProgress>(p =>
        {
            if (p.Step == 3) throw new IOException("simulated failure after step 3");
        });
        var e = Assert.ThrowsExactly<TrainingFailedException>(() => Fixtures.Pipeline(ml, options).Fit(ml.Data.LoadFromImageFolder(Fixtures.Folder)));
        StringAssert.Contains(e.Message, "simulated failure after step 3");
        Assert.IsInstanceOfType<IOException>(e.InnerException);
        Assert.IsNotNull(e.LastGoodCheckpoint, "no CheckpointDirectory: the state goes to the rescue folder");
        StringAssert.Contains(e.Message, e.LastGoodCheckpoint);
        using (var rescued = PretrainedVit.Load(e.LastGoodCheckpoint))  // a complete model: config, preprocessing, labels
            CollectionAssert.AreEqual(Fixtures.Classes, rescued.Labels!.ToArray());
        Directory.Delete(Path.GetDirectoryName(e.LastGoodCheckpoint)!, recursive: true);
    }

    [TestMethod]
    public void AModelFileCarriesItsTrainingStateAndContinueUsesIt()
    {
        var ml = new MLContext(seed: 10);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        var dir = Directory.CreateTempSubdirectory("vit-carry-").FullName;
        var zip = Path.Combine(dir, "model.zip");
        var keep = Options(null);
        keep.KeepTrainingState = true;
        using (var model = Fixtures.Pipeline(ml, keep).Fit(data))
        {
            // Another fit meanwhile does not change what this model carries.
            using (Fixtures.Pipeline(ml, keep).Fit(data)) { }
            ml.Model.Save(model, data.Schema, zip);
        }
        using (var archive = ZipFile.OpenRead(zip))
        {
            var state = Entry(archive, VitModelZip.TrainingStateEntry);
            Assert.IsNotNull(state);
            Assert.IsLessThan(3 * Entry(archive, VitModelZip.WeightsEntry)!.Length, state.Length, "the optimizer's moments only: two copies of the weights");
        }
        using (var plain = Fixtures.Pipeline(ml, Options(null)).Fit(data))
        {
            var plainZip = Path.Combine(dir, "plain.zip");
            ml.Model.Save(plain, data.Schema, plainZip);
            using var archive = ZipFile.OpenRead(plainZip);
            Assert.IsNull(Entry(archive, VitModelZip.TrainingStateEntry), "a model file carries no optimizer unless asked");
        }

        Dictionary<string, float[]> Continue(string from)
        {
            var options = Options(null);
            options.StartFrom = from;
            options.FineTune = FineTuneMode.Continue;
            options.Epochs = 1;
            options.EmaDecay = null;
            using var model = Fixtures.Pipeline(ml, options).Fit(data);
            return Weights(VitPipeline.Find(model, "test"));
        }
        var withState = Continue(zip);
        // The same weights without the optimizer's state: AdamW starts afresh, and the first steps come out otherwise.
        var bare = Path.Combine(dir, "bare.zip");
        var loaded = ml.Model.Load(zip, out var schema);
        ml.Model.Save(loaded, schema, bare);
        ((IDisposable)loaded).Dispose();
        using (var archive = ZipFile.OpenRead(bare))
            Assert.IsNull(Entry(archive, VitModelZip.TrainingStateEntry), "a loaded model saves without the state");
        var withoutState = Continue(bare);
        Assert.IsTrue(withState.Any(kv => !kv.Value.SequenceEqual(withoutState[kv.Key])), "the carried optimizer state changes the continued training");

        // A head-only run carries the head's moments; continuing trains everything, the rest from fresh moments.
        var headOnly = Path.Combine(dir, "head.zip");
        var probe = Options(null);
        probe.StartFrom = zip;
        probe.FineTune = FineTuneMode.HeadOnly;
        probe.KeepTrainingState = true;
        probe.Epochs = 1;
        using (var model = Fixtures.Pipeline(ml, probe).Fit(data))
            ml.Model.Save(model, data.Schema, headOnly);
        Assert.HasCount(withState.Count, Continue(headOnly));
    }
}
