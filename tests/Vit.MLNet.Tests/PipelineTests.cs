using Microsoft.ML.Transforms.Image;
using Vit.MLNet;
using Vit.Torch;
using Vit.Torch.Data;
using Vit.Torch.Training;

namespace Vit.MLNet.Tests;

[TestClass]
public sealed class PipelineTests
{
    /// <summary>The snippet of the README, on a generated image folder, end to end (text labels, EvaluateVit).</summary>
    [TestMethod]
    public void ReadmeSnippetRunsEndToEnd()
    {
        var ml = new MLContext(seed: 1);
        IDataView data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        var split = ml.Data.TrainTestSplit(data, testFraction: 0.2, seed: 1);
        var pipeline = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath")
            .Append(ml.Transforms.ResizeImages("Image", 16, 16))
            .Append(new VitEstimator(ml, Fixtures.TinyOptions(epochs: 6)));
        using var model = pipeline.Fit(split.TrainSet);
        IDataView scored = model.Transform(split.TestSet);
        var metrics = ml.MulticlassClassification.EvaluateVit(model, split.TestSet);
        Assert.AreEqual(Rows.Count(split.TestSet), (long)metrics.ConfusionMatrix.Counts.Sum(r => r.Sum()), "every test row is evaluated");
        Assert.IsGreaterThanOrEqualTo(0.9, metrics.MicroAccuracy, $"accuracy {metrics.MicroAccuracy}");
        Assert.AreEqual(3, metrics.ConfusionMatrix.NumberOfClasses);

        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "model.zip");
        ml.Model.Save(model, data.Schema, path);
        var loaded = ml.Model.Load(path, out var inputSchema);
        using var _ = (IDisposable)loaded;
        Assert.AreEqual("ImagePath", inputSchema[0].Name);
        var engine = ml.Model.CreatePredictionEngine<ImageInput, KeyPrediction>(loaded);
        KeyPrediction p = engine.Predict(new ImageInput { ImagePath = Rows.First("red") });
        Assert.AreEqual(3u, p.PredictedLabel, "red is the third class (key 3)");
        Assert.AreEqual(1.0, p.Score.Sum(), 1e-5);

        // Same numbers from Transform before saving, and from the loaded model.
        var before = Rows.Vectors(scored);
        var after = Rows.Vectors(loaded.Transform(split.TestSet));
        Assert.HasCount(before.Count, after);
        for (int i = 0; i < before.Count; i++) CollectionAssert.AreEqual(before[i], after[i]);
    }

    /// <summary>Without MapKeyToValue the prediction is the key.</summary>
    private sealed class KeyPrediction
    {
        public uint PredictedLabel { get; set; }
        public float[] Score { get; set; } = [];
    }

    [TestMethod]
    public void SchemaPropagatesThroughThePipeline()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        var shape = Fixtures.Pipeline(ml, Fixtures.TinyOptions()).GetOutputSchema(Shapes.Of(data.Schema));
        var image = shape.Single(c => c.Name == "Image");
        Assert.IsInstanceOfType<ImageDataViewType>(image.ItemType);
        var score = shape.Single(c => c.Name == "Score");
        Assert.AreEqual((SchemaShape.Column.VectorKind.Vector, (DataViewType)NumberDataViewType.Single), (score.Kind, score.ItemType));
        var predicted = shape.Single(c => c.Name == "PredictedLabel");
        Assert.AreEqual((SchemaShape.Column.VectorKind.Scalar, (DataViewType)TextDataViewType.Instance, false), (predicted.Kind, predicted.ItemType, predicted.IsKey));

        // The fitted pipeline's schema: the resized image, the scores with the classes as slot names, the label as text.
        using var model = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 0)).Fit(data);
        var schema = model.GetOutputSchema(data.Schema);
        Assert.AreEqual((16, 16), (((ImageDataViewType)schema["Image"].Type).Height, ((ImageDataViewType)schema["Image"].Type).Width));
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 3), schema["Score"].Type);
        CollectionAssert.AreEqual(Fixtures.Classes, Rows.Annotation(schema["Score"], "SlotNames"));
        Assert.AreEqual(TextDataViewType.Instance, schema["PredictedLabel"].Type);
    }

    /// <summary>VitPipeline walks a fitted pipeline: its steps flattened in order, its one ViT step, and the pipeline
    /// without its leading LoadImages (for images that arrive decoded).</summary>
    [TestMethod]
    public void VitPipelineFindsTheStepsAndTheVitStep()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        using var model = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 0)).Fit(data);
        var nested = new TransformerChain<ITransformer>(model, ml.Transforms.CopyColumns("Copy", "Score").Fit(model.Transform(data)));
        CollectionAssert.AreEqual(new[] { "ImageLoadingTransformer", "ImageResizingTransformer", "VitTransformer", "KeyToValueMappingTransformer", "ColumnCopyingTransformer" },
            VitPipeline.Steps(nested).Select(s => s.GetType().Name).ToArray());
        Assert.AreSame(VitPipeline.Steps(model).OfType<VitTransformer>().Single(), VitPipeline.Find(nested, "test"));

        var withoutLoading = VitPipeline.WithoutImageLoading(model);
        CollectionAssert.AreEqual(new[] { "ImageResizingTransformer", "VitTransformer", "KeyToValueMappingTransformer" },
            VitPipeline.Steps(withoutLoading).Select(s => s.GetType().Name).ToArray());
        Assert.AreSame(withoutLoading, VitPipeline.WithoutImageLoading(withoutLoading), "nothing to take away: the same model");
        var images = ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(data).Transform(data);
        var a = Rows.Vectors(model.Transform(data));
        var b = Rows.Vectors(withoutLoading.Transform(images));
        for (int i = 0; i < a.Count; i++) CollectionAssert.AreEqual(a[i], b[i], $"row {i}");

        var twice = new TransformerChain<ITransformer>(model, VitPipeline.Find(model, "test"));
        var e = Assert.ThrowsExactly<ArgumentException>(() => VitPipeline.Find(twice, "Something"));
        StringAssert.Contains(e.Message, "Something needs a pipeline with one VitTransformer step (a fitted VitEstimator); this one has 2");
    }

    [TestMethod]
    public void MissingOrMistypedColumnsAreNamed()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        var wrongInput = ml.Transforms.LoadImages("Image", null, inputColumnName: "Path")
            .Append(new VitEstimator(ml, Fixtures.TinyOptions()));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => wrongInput.Fit(data));
        StringAssert.Contains(e.Message, "Path");

        var noLoad = new VitEstimator(ml, Fixtures.TinyOptions());
        var e2 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => noLoad.Fit(data));
        StringAssert.Contains(e2.Message, "Image column 'Image' not found");
        StringAssert.Contains(e2.Message, "ImagePath (String)");

        var pathAsImage = new VitEstimator(ml, new VitEstimator.Options { ImageColumnName = "ImagePath" });
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => pathAsImage.Fit(data)).Message,
            "Image column 'ImagePath' has type String; expected an image");

        var labelAsNumber = ml.Data.LoadFromEnumerable(new[] { new NumLabel { ImagePath = "a.png", Label = 1 } });
        var e3 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Fixtures.Pipeline(ml, Fixtures.TinyOptions()).Fit(labelAsNumber));
        StringAssert.Contains(e3.Message, "Label column 'Label' has type Int32; expected a key");
    }

    private sealed class NumLabel
    {
        public string ImagePath { get; set; } = "";
        public int Label { get; set; }
    }

    /// <summary>A missing image file and a missing label skip their rows with a warning in ML.NET's log (counted in the
    /// history); a missing file fails with OnBadImage = Throw, naming it; one class left is refused.</summary>
    [TestMethod]
    public void BadTrainingRowsAreSkippedWithAWarningOrGiveClearErrors()
    {
        var ml = new MLContext(seed: 1);
        var warnings = Rows.Warnings(ml);
        var red = Directory.GetFiles(Path.Combine(Fixtures.Folder, "red")).Order(StringComparer.Ordinal).Take(4);
        var blue = Directory.GetFiles(Path.Combine(Fixtures.Folder, "blue")).Order(StringComparer.Ordinal).Take(4);
        var missing = Path.Combine(Fixtures.Folder, "no-such.png");
        var rows = red.Select(f => (f, "red")).Concat(blue.Select(f => (f, "blue"))).Append((missing, "blue")).Append((Rows.First("green"), " ")).ToList();

        using (var model = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 1)).Fit(Rows.Labeled(ml, rows)))
        {
            var vit = VitPipeline.Find(model, "test");
            CollectionAssert.AreEqual(new[] { "blue", "red" }, vit.Labels.ToArray(), "the blank label is no class");
            Assert.AreEqual(2, vit.History!.SkippedImages);
            Assert.HasCount(2, vit.History.Warnings);
        }
        var skipped = warnings.Where(w => w.Contains("row skipped")).ToList();
        Assert.HasCount(2, skipped, string.Join("\n", warnings));
        Assert.IsTrue(skipped.Any(w => w.Contains("row 8") && w.Contains("no-such.png")), string.Join("\n", skipped));
        Assert.IsTrue(skipped.Any(w => w.Contains("row 9: no label in column 'Label'")), string.Join("\n", skipped));

        var strict = Fixtures.TinyOptions(epochs: 1);
        strict.OnBadImage = BadImagePolicy.Throw;
        var e1 = Assert.ThrowsExactly<FileNotFoundException>(() => Fixtures.Pipeline(ml, strict).Fit(Rows.Labeled(ml, rows)));
        StringAssert.Contains(e1.Message, "no-such.png");
        StringAssert.Contains(e1.Message, "row 8");

        var e3 = Assert.ThrowsExactly<ArgumentException>(() => Fixtures.Pipeline(ml, Fixtures.TinyOptions()).Fit(Rows.Labeled(ml, red.Select(f => (f, "red")))));
        StringAssert.Contains(e3.Message, "the training data has 1 class(es) (red) in label column 'Label'; a classifier needs at least two");
    }

    [TestMethod]
    public void EvaluateLeavesOutLabelsTheModelNeverSaw()
    {
        var ml = new MLContext(seed: 1);
        using var model = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 4)).Fit(ml.Data.LoadFromImageFolder(Fixtures.Folder));
        var red = Rows.First("red");
        var rows = Rows.Labeled(ml, [(red, "purple"), (red, "red"), (Rows.First("blue"), "blue")]);
        var m = ml.MulticlassClassification.EvaluateVit(model, rows);
        Assert.AreEqual(2.0, m.ConfusionMatrix.Counts.Sum(r => r.Sum()), "the purple row is not counted");
        Assert.AreEqual(1.0, m.MicroAccuracy, "nor counted as an error");
    }

    [TestMethod]
    public void PredictionEngineRejectsPropertiesTheModelDoesNotHave()
    {
        var ml = new MLContext(seed: 1);
        using var model = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 0)).Fit(ml.Data.LoadFromImageFolder(Fixtures.Folder));
        // ML.NET's engines ignore output properties the model does not produce unless told not to.
        var e = Assert.Throws<ArgumentException>(() => ml.Model.CreatePredictionEngine<ImageInput, WithExtra>(model, ignoreMissingColumns: false));
        StringAssert.Contains(e.Message, "Confidence");
        Assert.AreEqual(0f, ml.Model.CreatePredictionEngine<ImageInput, WithExtra>(model).Predict(new ImageInput { ImagePath = Rows.First("red") }).Confidence);
        var e2 = Assert.Throws<ArgumentException>(() => ml.Model.CreatePredictionEngine<WrongInput, ImagePrediction>(model));
        StringAssert.Contains(e2.Message, "ImagePath");
    }

    private sealed class WithExtra
    {
        public string PredictedLabel { get; set; } = "";
        public float Confidence { get; set; }
    }

    private sealed class WrongInput
    {
        public string Picture { get; set; } = "";
    }

    [TestMethod]
    public void ColumnNameAttributeMapsProperties()
    {
        var ml = new MLContext(seed: 1);
        using var model = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 2)).Fit(ml.Data.LoadFromImageFolder(Fixtures.Folder));
        var engine = ml.Model.CreatePredictionEngine<Renamed, RenamedOut>(model);
        var p = engine.Predict(new Renamed { File = Rows.First("green") });
        Assert.HasCount(3, p.Probabilities);
        CollectionAssert.Contains(Fixtures.Classes, p.Label);
    }

    private sealed class Renamed
    {
        [ColumnName("ImagePath")] public string File { get; set; } = "";
    }

    private sealed class RenamedOut
    {
        [ColumnName("PredictedLabel")] public string Label { get; set; } = "";
        [ColumnName("Score")] public float[] Probabilities { get; set; } = [];
    }

    [TestMethod]
    public void PoolUsedBy8ThreadsEqualsSequentialResults()
    {
        var ml = new MLContext(seed: 1);
        using var model = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 2)).Fit(ml.Data.LoadFromImageFolder(Fixtures.Folder));
        var files = Rows.Files(Fixtures.Folder);
        var engine = ml.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(model);
        var expected = files.Select(f => engine.Predict(new ImageInput { ImagePath = f }).Score).ToArray();
        using var pool = new PredictionEnginePool<ImageInput, ImagePrediction>();
        pool.AddModel(PredictionEnginePool<ImageInput, ImagePrediction>.DefaultModelName, model);
        var mismatches = 0;
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, t =>
        {
            for (int i = 0; i < 200; i++)
            {
                int k = (t * 200 + i) % files.Length;
                var got = pool.Predict(new ImageInput { ImagePath = files[k] }).Score;
                if (!got.SequenceEqual(expected[k])) Interlocked.Increment(ref mismatches);
            }
        });
        Assert.AreEqual(0, mismatches);
    }

    [TestMethod]
    public void EarlyStoppingRestoresTheBestEpoch()
    {
        var ml = new MLContext(seed: 1);
        var options = Fixtures.TinyOptions(epochs: 30);
        options.ValidationFraction = 0.25;
        options.EarlyStopping = new EarlyStopping(EarlyStoppingMetric.Loss, Patience: 2);
        options.LearningRate = 0.05;  // large enough to overshoot after the first epochs, so stopping kicks in
        using var model = Fixtures.Pipeline(ml, options).Fit(ml.Data.LoadFromImageFolder(Fixtures.Folder));
        var r = VitPipeline.Find(model, "test").History!.Result;
        Assert.IsTrue(r.StoppedEarly, $"ran {r.Epochs.Count} epochs");
        var best = r.Epochs.MinBy(e => e.Evaluation!.Loss)!;
        Assert.AreEqual(best.Epoch, r.BestEpoch);
        Assert.AreEqual(r.BestEpoch + 2, r.Epochs.Count);
    }

    [TestMethod]
    public void CancellationStopsWithinABatchAndReturnsAModel()
    {
        var ml = new MLContext(seed: 1);
        using var cts = new CancellationTokenSource();
        var options = Fixtures.TinyOptions(epochs: 50);
        long steps = 0;
        options.Progress = new SyncProgress<VitTrainingProgress>(p =>
        {
            steps = p.Step;
            if (p.Step == 3) cts.Cancel();
        });
        options.CancellationToken = cts.Token;
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        using var model = Fixtures.Pipeline(ml, options).Fit(data);
        Assert.AreEqual(3L, steps);
        Assert.IsTrue(VitPipeline.Find(model, "test").History!.Result.Cancelled);
        var scores = Rows.Vectors(model.Transform(data));
        Assert.HasCount(60, scores);
        Assert.HasCount(3, scores[0]);
    }

    private static readonly string[] WarmCold = ["cold", "warm"];

    private static IDataView TwoRenamedClasses(MLContext ml) => Rows.Labeled(ml,
        Directory.GetFiles(Path.Combine(Fixtures.Folder, "red")).Select(f => (f, "warm"))
            .Concat(Directory.GetFiles(Path.Combine(Fixtures.Folder, "blue")).Select(f => (f, "cold"))));

    /// <summary>The tests' pipeline trained one epoch on the shared folder and saved: the file, and its ViT's weights as
    /// the file gives them back.</summary>
    private static (string Path, Dictionary<string, float[]> Weights) SavedOneEpochModel(MLContext ml)
    {
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        var saved = Path.Combine(Directory.CreateTempSubdirectory().FullName, "pre.zip");
        using (var pre = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 1)).Fit(data))
            ml.Model.Save(pre, data.Schema, saved);
        var loaded = ml.Model.Load(saved, out _);
        using var owned = (IDisposable)loaded;
        return (saved, Snapshot(VitPipeline.Find(loaded, "test")));
    }

    [TestMethod]
    public void HeadOnlyFineTuneLeavesTheBackboneBitIdentical()
    {
        var ml = new MLContext(seed: 1);
        var (saved, backbone) = SavedOneEpochModel(ml);

        // Two of the three classes, renamed: a new label set, so a new head.
        var options = Fixtures.TinyOptions(epochs: 2);
        options.StartFrom = saved;
        options.FineTune = FineTuneMode.HeadOnly;
        using var tuned = Fixtures.Pipeline(ml, options).Fit(TwoRenamedClasses(ml));
        var vit = VitPipeline.Find(tuned, "test");
        var after = Snapshot(vit);
        foreach (var (name, values) in backbone.Where(kv => !kv.Key.StartsWith("head.", StringComparison.Ordinal)))
            CollectionAssert.AreEqual(values, after[name], name);
        CollectionAssert.AreEqual(WarmCold, vit.Labels.ToArray());
        Assert.AreEqual(2L, vit.Model.Head!.Weight.Size(0));
    }

    [TestMethod]
    public void ContinueTrainingStartsFromTheSavedWeightsAndNeedsTheSameLabels()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        var (saved, expected) = SavedOneEpochModel(ml);

        var options = Fixtures.TinyOptions(epochs: 0);
        options.StartFrom = saved;
        options.FineTune = FineTuneMode.Continue;
        using (var resumed = Fixtures.Pipeline(ml, options).Fit(data))
            foreach (var (name, values) in Snapshot(VitPipeline.Find(resumed, "test")))
                CollectionAssert.AreEqual(expected[name], values, name);   // head included: nothing re-initialised

        options.Epochs = 1;
        using (var trained = Fixtures.Pipeline(ml, options).Fit(data))
            CollectionAssert.AreNotEqual(expected["head.weight"], Snapshot(VitPipeline.Find(trained, "test"))["head.weight"]);

        var e = Assert.ThrowsExactly<ArgumentException>(() => Fixtures.Pipeline(ml, options).Fit(TwoRenamedClasses(ml)));
        StringAssert.Contains(e.Message, "FineTune = Continue needs the saved model's labels");
    }

    private static Dictionary<string, float[]> Snapshot(VitTransformer v) =>
        v.Model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.ToArray<float>());

    /// <summary>Training resolves Options.Device: an absent device falls back to the CPU, or fails with FallbackToCpu off.</summary>
    [TestMethod]
    public void TrainingOnAnAbsentDeviceFallsBackToTheCpuOrFails()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        // A CUDA index past the visible devices is absent on every machine (this one has no CUDA at all).
        var absent = Device.Cuda(Vit.Torch.Torch.CudaDeviceCount);
        var options = Fixtures.TinyOptions(epochs: 0);
        options.Device = absent;
        using (var trained = Fixtures.Pipeline(ml, options).Fit(data))
            Assert.AreEqual(Device.Cpu, VitPipeline.Find(trained, "test").Device);
        options.FallbackToCpu = false;
        var fitError = Assert.ThrowsExactly<TorchException>(() => Fixtures.Pipeline(ml, options).Fit(data));
        StringAssert.Contains(fitError.Message, $"device {absent} was requested, but");
    }

    [TestMethod]
    public void TenThousandPredictionsKeepMemoryFlat()
    {
        var ml = new MLContext(seed: 1);
        using var model = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 1)).Fit(ml.Data.LoadFromImageFolder(Fixtures.Folder));
        var engine = ml.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(model);
        var file = new ImageInput { ImagePath = Rows.First("red") };
        // One intra-op thread, as the pool runs each engine (ThreadsPerEngine = 1): a single image's forward pass split over
        // threads only waits for them, the more so on a busy machine.
        using var oneThread = Vit.Torch.Torch.LocalThreads(1);
        for (int i = 0; i < 2_000; i++) engine.Predict(file);   // warm-up: JIT, pools, allocator arenas
        GC.Collect();
        GC.WaitForPendingFinalizers();  // tensors other tests dropped without disposing
        long live = Tensor.LiveCount, images = Vit.Torch.Imaging.Image.LiveCount, rss = Rss();
        for (int i = 0; i < 10_000; i++) engine.Predict(file);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.AreEqual(live, Tensor.LiveCount, "tensor handles leaked");
        Assert.AreEqual(images, Vit.Torch.Imaging.Image.LiveCount, "images leaked");
        // A leak of even 4 KB per prediction would add 40 MB; the bound leaves room for allocator noise.
        Assert.IsLessThan(40L << 20, Rss() - rss, "RSS grew");
    }

    private static long Rss() =>
        long.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
}
