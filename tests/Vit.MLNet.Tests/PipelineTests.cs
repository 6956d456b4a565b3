using Vit.MLNet;
using Vit.Torch;
using Vit.Torch.Training;

namespace Vit.MLNet.Tests;

[TestClass]
public sealed class PipelineTests
{
    /// <summary>The snippet of the issue, on a generated image folder, end to end.</summary>
    [TestMethod]
    public void IssueSnippetRunsEndToEnd()
    {
        var ctx = new VitContext(seed: 1);
        IDataView data = ctx.Data.LoadFromImageFolder(Fixtures.Folder);
        var (train, test) = ctx.Data.TrainTestSplit(data, testFraction: 0.2);
        var pipeline = ctx.Transforms.LoadImages("Image", imageFolder: "", inputColumnName: "ImagePath")
            .Append(ctx.Transforms.ResizeImages("Image", 16, 16))
            .Append(new VitEstimator(ctx, Fixtures.TinyOptions(epochs: 6)));
        using var model = pipeline.Fit(train);
        IDataView scored = model.Transform(test);
        var metrics = ctx.MulticlassClassification.Evaluate(scored);
        Assert.AreEqual(12, metrics.RowCount);                        // 20% of 3 x 20, stratified
        Assert.IsGreaterThanOrEqualTo(0.9, metrics.MicroAccuracy, $"accuracy {metrics.MicroAccuracy}");
        Assert.AreEqual(3, metrics.ConfusionMatrix.Count);

        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "model.zip");
        ctx.Model.Save(model, data.Schema, path);
        var loaded = ctx.Model.Load(path, out var inputSchema);
        using var _ = (IDisposable)loaded;
        Assert.AreEqual("ImagePath", inputSchema[0].Name);
        var engine = ctx.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(loaded);
        var file = Directory.GetFiles(Path.Combine(Fixtures.Folder, "red"))[0];
        ImagePrediction p = engine.Predict(new ImageInput { ImagePath = file });
        Assert.AreEqual("red", p.PredictedLabel);
        Assert.AreEqual(1.0, p.Score.Sum(), 1e-5);

        // Same numbers from Transform before saving, and from the loaded model.
        var before = scored.GetRows().Select(r => (float[])r["Score"]!).ToList();
        var after = loaded.Transform(test).GetRows().Select(r => (float[])r["Score"]!).ToList();
        for (int i = 0; i < before.Count; i++) CollectionAssert.AreEqual(before[i], after[i]);
    }

    [TestMethod]
    public void SchemaPropagatesThroughThePipeline()
    {
        var ctx = new VitContext(seed: 1);
        var data = ctx.Data.LoadFromImageFolder(Fixtures.Folder);
        var schema = Fixtures.Pipeline(ctx, Fixtures.TinyOptions()).GetOutputSchema(data.Schema);
        Assert.IsInstanceOfType<ImageDataViewType>(schema["Image"].Type);
        Assert.AreEqual(16, ((ImageDataViewType)schema["Image"].Type).Height);
        Assert.IsInstanceOfType<VectorDataViewType>(schema["Score"].Type);
        Assert.IsInstanceOfType<TextDataViewType>(schema["PredictedLabel"].Type);
    }

    [TestMethod]
    public void MissingOrMistypedColumnsAreNamed()
    {
        var ctx = new VitContext(seed: 1);
        var data = ctx.Data.LoadFromImageFolder(Fixtures.Folder);
        var wrongInput = ctx.Transforms.LoadImages("Image", "", inputColumnName: "Path")
            .Append(new VitEstimator(ctx, Fixtures.TinyOptions()));
        var e = Assert.Throws<ArgumentException>(() => wrongInput.Fit(data));
        StringAssert.Contains(e.Message, "LoadImages input column 'Path' not found");
        StringAssert.Contains(e.Message, "ImagePath");

        var noLoad = new VitEstimator(ctx, Fixtures.TinyOptions());
        var e2 = Assert.Throws<ArgumentException>(() => noLoad.Fit(data));
        StringAssert.Contains(e2.Message, "image column 'Image' not found");

        var labelAsNumber = ctx.Data.LoadFromEnumerable(new[] { new NumLabel { ImagePath = "a.png", Label = 1 } });
        var e3 = Assert.Throws<ArgumentException>(() => Fixtures.Pipeline(ctx, Fixtures.TinyOptions()).Fit(labelAsNumber));
        StringAssert.Contains(e3.Message, "label column 'Label' has type Int32; expected Text");
    }

    private sealed class NumLabel
    {
        public string ImagePath { get; set; } = "";
        public int Label { get; set; }
    }

    private sealed class Labeled
    {
        public string ImagePath { get; set; } = "";
        public string Label { get; set; } = "";
    }

    [TestMethod]
    public void BadTrainingRowsGiveClearErrors()
    {
        var ctx = new VitContext(seed: 1);
        var red = Directory.GetFiles(Path.Combine(Fixtures.Folder, "red"))[0];
        var blue = Directory.GetFiles(Path.Combine(Fixtures.Folder, "blue"))[0];
        IDataView Rows(params (string Path, string Label)[] rows) =>
            ctx.Data.LoadFromEnumerable(rows.Select(r => new Labeled { ImagePath = r.Path, Label = r.Label }).ToList());

        var missing = Path.Combine(Fixtures.Folder, "no-such.png");
        var e1 = Assert.Throws<FileNotFoundException>(() => Fixtures.Pipeline(ctx, Fixtures.TinyOptions()).Fit(Rows((red, "red"), (missing, "blue"))));
        StringAssert.Contains(e1.Message, "no-such.png");

        var e2 = Assert.Throws<ArgumentException>(() => Fixtures.Pipeline(ctx, Fixtures.TinyOptions()).Fit(Rows((red, "red"), (blue, " "))));
        StringAssert.Contains(e2.Message, "row 1: empty label");

        var e3 = Assert.Throws<ArgumentException>(() => Fixtures.Pipeline(ctx, Fixtures.TinyOptions()).Fit(Rows((red, "red"), (red, "red"))));
        StringAssert.Contains(e3.Message, "at least two classes");
    }

    [TestMethod]
    public void EvaluateReportsLabelsTheModelNeverSaw()
    {
        var ctx = new VitContext(seed: 1);
        using var model = Fixtures.Pipeline(ctx, Fixtures.TinyOptions(epochs: 1)).Fit(ctx.Data.LoadFromImageFolder(Fixtures.Folder));
        var red = Directory.GetFiles(Path.Combine(Fixtures.Folder, "red"))[0];
        var rows = ctx.Data.LoadFromEnumerable(new[] { new Labeled { ImagePath = red, Label = "purple" }, new Labeled { ImagePath = red, Label = "red" } });
        var m = ctx.MulticlassClassification.Evaluate(model.Transform(rows));
        Assert.AreEqual(1L, m.UnknownLabels["purple"]);
        Assert.AreEqual(2L, m.RowCount);
    }

    [TestMethod]
    public void PredictionEngineRejectsOutputPropertiesTheModelDoesNotProduce()
    {
        var ctx = new VitContext(seed: 1);
        using var model = Fixtures.Pipeline(ctx, Fixtures.TinyOptions(epochs: 1)).Fit(ctx.Data.LoadFromImageFolder(Fixtures.Folder));
        var e = Assert.Throws<ArgumentException>(() => ctx.Model.CreatePredictionEngine<ImageInput, WithExtra>(model));
        StringAssert.Contains(e.Message, "WithExtra.Confidence maps to column 'Confidence', which the model does not produce");
        var e2 = Assert.Throws<ArgumentException>(() => ctx.Model.CreatePredictionEngine<WrongInput, ImagePrediction>(model));
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
        var ctx = new VitContext(seed: 1);
        using var model = Fixtures.Pipeline(ctx, Fixtures.TinyOptions(epochs: 2)).Fit(ctx.Data.LoadFromImageFolder(Fixtures.Folder));
        var engine = ctx.Model.CreatePredictionEngine<Renamed, RenamedOut>(model);
        var file = Directory.GetFiles(Path.Combine(Fixtures.Folder, "green"))[0];
        var p = engine.Predict(new Renamed { File = file });
        Assert.AreEqual(3, p.Probabilities.Length);
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
        var ctx = new VitContext(seed: 1);
        using var model = Fixtures.Pipeline(ctx, Fixtures.TinyOptions(epochs: 2)).Fit(ctx.Data.LoadFromImageFolder(Fixtures.Folder));
        var files = Fixtures.Classes.SelectMany(c => Directory.GetFiles(Path.Combine(Fixtures.Folder, c))).ToArray();
        var engine = ctx.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(model);
        var expected = files.Select(f => engine.Predict(new ImageInput { ImagePath = f }).Score).ToArray();
        var pool = ctx.Model.CreatePredictionEnginePool<ImageInput, ImagePrediction>(model);
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
        var ctx = new VitContext(seed: 1);
        var options = Fixtures.TinyOptions(epochs: 30);
        options.ValidationFraction = 0.25;
        options.EarlyStopping = new EarlyStopping(EarlyStoppingMetric.Loss, Patience: 2);
        options.LearningRate = 0.05;  // large enough to overshoot after the first epochs, so stopping kicks in
        using var model = Fixtures.Pipeline(ctx, options).Fit(ctx.Data.LoadFromImageFolder(Fixtures.Folder));
        var vit = model.LastTransformer;
        var r = vit.History!.Result;
        Assert.IsTrue(r.StoppedEarly, $"ran {r.Epochs.Count} epochs");
        var best = r.Epochs.MinBy(e => e.Evaluation!.Loss)!;
        Assert.AreEqual(best.Epoch, r.BestEpoch);
        Assert.AreEqual(r.BestEpoch + 2, r.Epochs.Count);
    }

    [TestMethod]
    public void CancellationStopsWithinABatchAndReturnsAModel()
    {
        var ctx = new VitContext(seed: 1);
        using var cts = new CancellationTokenSource();
        var options = Fixtures.TinyOptions(epochs: 50);
        long steps = 0;
        options.Progress = new SyncProgress<VitTrainingProgress>(p =>
        {
            steps = p.Step;
            if (p.Step == 3) cts.Cancel();
        });
        options.CancellationToken = cts.Token;
        using var model = Fixtures.Pipeline(ctx, options).Fit(ctx.Data.LoadFromImageFolder(Fixtures.Folder));
        Assert.AreEqual(3L, steps);
        Assert.IsTrue(model.LastTransformer.History!.Result.Cancelled);
        var scored = model.Transform(ctx.Data.LoadFromImageFolder(Fixtures.Folder)).GetRows().First();
        Assert.HasCount(3, (float[])scored["Score"]!);
    }

    [TestMethod]
    public void HeadOnlyFineTuneLeavesTheBackboneBitIdentical()
    {
        var ctx = new VitContext(seed: 1);
        var data = ctx.Data.LoadFromImageFolder(Fixtures.Folder);
        var dir = Directory.CreateTempSubdirectory().FullName;
        var saved = Path.Combine(dir, "pre.zip");
        using (var pre = Fixtures.Pipeline(ctx, Fixtures.TinyOptions(epochs: 1)).Fit(data))
            ctx.Model.Save(pre, data.Schema, saved);
        using var loaded = (TransformerChain<ITransformer>)ctx.Model.Load(saved, out _);
        var backbone = loaded.LastTransformer is VitTransformer v0 ? Snapshot(v0) : throw new InvalidOperationException();

        // Two of the three classes, renamed: a new label set, so a new head.
        var files = Directory.GetFiles(Path.Combine(Fixtures.Folder, "red")).Select(f => new Labeled { ImagePath = f, Label = "warm" })
            .Concat(Directory.GetFiles(Path.Combine(Fixtures.Folder, "blue")).Select(f => new Labeled { ImagePath = f, Label = "cold" })).ToList();
        var options = Fixtures.TinyOptions(epochs: 2);
        options.StartFrom = saved;
        options.FineTune = FineTuneMode.HeadOnly;
        using var tuned = Fixtures.Pipeline(ctx, options).Fit(ctx.Data.LoadFromEnumerable(files));
        var after = Snapshot(tuned.LastTransformer);
        foreach (var (name, values) in backbone.Where(kv => !kv.Key.StartsWith("head.", StringComparison.Ordinal)))
            CollectionAssert.AreEqual(values, after[name], name);
        CollectionAssert.AreEqual(new[] { "cold", "warm" }, tuned.LastTransformer.Labels.ToArray());
        Assert.AreEqual(2L, tuned.LastTransformer.Model.Head!.Weight.Size(0));
    }

    [TestMethod]
    public void ContinueTrainingStartsFromTheSavedWeightsAndNeedsTheSameLabels()
    {
        var ctx = new VitContext(seed: 1);
        var data = ctx.Data.LoadFromImageFolder(Fixtures.Folder);
        var saved = Path.Combine(Directory.CreateTempSubdirectory().FullName, "pre.zip");
        using (var pre = Fixtures.Pipeline(ctx, Fixtures.TinyOptions(epochs: 1)).Fit(data))
            ctx.Model.Save(pre, data.Schema, saved);
        using var loaded = (TransformerChain<ITransformer>)ctx.Model.Load(saved, out _);
        var expected = Snapshot((VitTransformer)loaded.LastTransformer);

        var options = Fixtures.TinyOptions(epochs: 0);
        options.StartFrom = saved;
        options.FineTune = FineTuneMode.Continue;
        using (var resumed = Fixtures.Pipeline(ctx, options).Fit(data))
            foreach (var (name, values) in Snapshot(resumed.LastTransformer))
                CollectionAssert.AreEqual(expected[name], values, name);   // head included: nothing re-initialised

        options.Epochs = 1;
        using (var trained = Fixtures.Pipeline(ctx, options).Fit(data))
            CollectionAssert.AreNotEqual(expected["head.weight"], Snapshot(trained.LastTransformer)["head.weight"]);

        var twoClasses = ctx.Data.LoadFromEnumerable(Directory.GetFiles(Path.Combine(Fixtures.Folder, "red"))
            .Select(f => new Labeled { ImagePath = f, Label = "warm" })
            .Concat(Directory.GetFiles(Path.Combine(Fixtures.Folder, "blue")).Select(f => new Labeled { ImagePath = f, Label = "cold" })).ToList());
        var e = Assert.Throws<ArgumentException>(() => Fixtures.Pipeline(ctx, options).Fit(twoClasses));
        StringAssert.Contains(e.Message, "FineTune = Continue needs the saved model's labels");
    }

    private static Dictionary<string, float[]> Snapshot(VitTransformer v) =>
        v.Model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.ToArray<float>());

    [TestMethod]
    public void TenThousandPredictionsKeepMemoryFlat()
    {
        var ctx = new VitContext(seed: 1);
        using var model = Fixtures.Pipeline(ctx, Fixtures.TinyOptions(epochs: 1)).Fit(ctx.Data.LoadFromImageFolder(Fixtures.Folder));
        var engine = ctx.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(model);
        var file = new ImageInput { ImagePath = Directory.GetFiles(Path.Combine(Fixtures.Folder, "red"))[0] };
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

internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
