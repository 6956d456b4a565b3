using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Vit.MLNet;
using Vit.Torch;

namespace Vit.MLNet.Tests;

/// <summary>The prediction pool: bounded engines, named models from files, reloads swapped in under load with every
/// answer from the version it reports, failed reloads that keep the old model, old versions freed when drained.</summary>
[TestClass]
public sealed class PoolTests
{
    private static string[] Files => Fixtures.Classes.SelectMany(c => Directory.GetFiles(Path.Combine(Fixtures.Folder, c))).Order(StringComparer.Ordinal).ToArray();

    /// <summary>Two different models saved as files, and each one's sequential answers (a single engine, no pool).</summary>
    private static readonly Lazy<(string A, string B, float[][] ScoresA, float[][] ScoresB)> Models = new(() =>
    {
        var dir = Directory.CreateTempSubdirectory("vit-pool-").FullName;
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        string Save(int epochs, int seed, string name)
        {
            var options = Fixtures.TinyOptions(epochs);
            options.Seed = seed;
            using var m = Fixtures.Pipeline(ml, options).Fit(data);
            var path = Path.Combine(dir, name);
            ml.Model.Save(m, data.Schema, path);
            return path;
        }
        float[][] Sequential(string path)
        {
            using var m = (IDisposable)ml.Model.Load(path, out _);
            var engine = ml.Model.CreatePredictionEngine<ImageInput, ImagePrediction>((ITransformer)m);
            return Files.Select(f => engine.Predict(new ImageInput { ImagePath = f }).Score).ToArray();
        }
        string a = Save(2, 1, "a.zip"), b = Save(3, 2, "b.zip");
        return (a, b, Sequential(a), Sequential(b));
    });

    [TestMethod]
    public void EnginesAreBoundedAndAnswersEqualTheSequentialOnes()
    {
        var (a, _, expected, _) = Models.Value;
        var ml = new MLContext();
        using var model = (IDisposable)ml.Model.Load(a, out _);
        using var pool = new PredictionEnginePool<ImageInput, ImagePrediction>(new PredictionEnginePoolOptions { MaxEngines = 2 });
        pool.AddModel(PredictionEnginePool<ImageInput, ImagePrediction>.DefaultModelName, (ITransformer)model);
        var files = Files;
        int mismatches = 0;
        // 8 threads released together: without the bound, their requests overlap and each makes an engine.
        using var start = new Barrier(8);
        var threads = Enumerable.Range(0, 8).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (int i = 0; i < 40; i++)
            {
                int k = (t * 40 + i) % files.Length;
                if (!pool.Predict(new ImageInput { ImagePath = files[k] }).Score.SequenceEqual(expected[k])) Interlocked.Increment(ref mismatches);
            }
        })).ToList();
        foreach (var th in threads) th.Start();
        foreach (var th in threads) th.Join();
        Assert.AreEqual(0, mismatches);
        Assert.IsLessThanOrEqualTo(2, pool.GetEngineCount(), "8 threads, at most MaxEngines engines");
        Assert.AreEqual(1, pool.GetModelVersion());
    }

    [TestMethod]
    public void AFileReplacedUnderLoadSwapsVersionsWithNoFailedRequestAndAFailedReloadKeepsServing()
    {
        var (a, b, scoresA, scoresB) = Models.Value;
        var dir = Directory.CreateTempSubdirectory("vit-pool-live-").FullName;
        var served = Path.Combine(dir, "model.zip");
        File.Copy(a, served);
        var services = new ServiceCollection();
        services.AddPredictionEnginePool<ImageInput, ImagePrediction>(o => o.ReloadDelay = TimeSpan.FromMilliseconds(100))
            .FromFile(modelName: "photos", filePath: served, watchForChanges: true);
        using var provider = services.BuildServiceProvider();
        var pool = provider.GetRequiredService<PredictionEnginePool<ImageInput, ImagePrediction>>();
        var loaded = new BlockingCollection<long>();
        var failed = new BlockingCollection<Exception>();
        pool.Loaded += (_, e) => loaded.Add(e.Version);
        pool.ReloadFailed += (_, e) => failed.Add(e.Error);
        long liveWithOneModel = Tensor.LiveCount;

        var files = Files;
        var answers = new ConcurrentBag<(int Thread, long Order, long Version, int File, float[] Score)>();
        var errors = new ConcurrentBag<Exception>();
        long order = 0;
        using var stop = new CancellationTokenSource();
        var workers = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            for (int i = 0; !stop.IsCancellationRequested; i++)
            {
                int k = (t * 7 + i) % files.Length;
                try
                {
                    var p = pool.Predict("photos", new ImageInput { ImagePath = files[k] }, out var version);
                    answers.Add((t, Interlocked.Increment(ref order), version, k, p.Score));
                }
                catch (Exception e)
                {
                    errors.Add(e);
                }
            }
        })).ToArray();
        foreach (var w in workers) w.Start();

        Thread.Sleep(300);
        // Replaced the way deployments do: written beside it, then renamed over it.
        File.Copy(b, served + ".tmp");
        File.Move(served + ".tmp", served, overwrite: true);
        Assert.IsTrue(loaded.TryTake(out var v2, TimeSpan.FromSeconds(20)), $"the replaced file must be reloaded; {string.Join("; ", failed.Select(f => f.Message))}");
        Assert.AreEqual(2, v2);
        Thread.Sleep(300);
        // A half-written file: the reload fails, version 2 keeps serving.
        var bytes = File.ReadAllBytes(b);
        File.WriteAllBytes(served, bytes[..(bytes.Length / 3)]);
        Assert.IsTrue(failed.TryTake(out var why, TimeSpan.FromSeconds(30)), "the damaged file must be reported");
        Assert.IsInstanceOfType<InvalidDataException>(why);
        Thread.Sleep(200);
        stop.Cancel();
        foreach (var w in workers) w.Join();

        Assert.IsEmpty(errors, string.Join("\n", errors.Take(3)));
        Assert.AreEqual(2, pool.GetModelVersion("photos"));
        var byVersion = answers.GroupBy(x => x.Version).ToDictionary(g => g.Key, g => g.ToList());
        CollectionAssert.AreEquivalent(new long[] { 1, 2 }, byVersion.Keys.ToArray(), $"both versions answered ({answers.Count} answers)");
        foreach (var x in answers)
            CollectionAssert.AreEqual(x.Version == 1 ? scoresA[x.File] : scoresB[x.File], x.Score, $"version {x.Version}, file {x.File}");
        foreach (var thread in answers.GroupBy(x => x.Thread))
        {
            var versions = thread.OrderBy(x => x.Order).Select(x => x.Version).ToList();
            Assert.IsTrue(versions.Zip(versions.Skip(1)).All(p => p.First <= p.Second), "a thread never goes back to the old version");
        }
        // The first version's model was freed once drained: one model's tensors are alive, not two.
        Assert.IsLessThanOrEqualTo(liveWithOneModel, Tensor.LiveCount, "native tensors: one model's, not two");
        Directory.Delete(dir, recursive: true);
    }

    [TestMethod]
    public async Task AnAsyncRequestWaitsForAnEngineWithoutOneAndCanBeAbandoned()
    {
        var (a, _, expected, _) = Models.Value;
        using var pool = new PredictionEnginePool<ImageInput, ImagePrediction>(new PredictionEnginePoolOptions { MaxEngines = 1 });
        pool.AddModelFromFile("photos", a);
        using var busy = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        // The one place is taken by work that waits for the test.
        var holder = Task.Run(() => pool.UseModel("photos", (_, _) => { busy.Set(); release.Wait(); return 0; }));
        busy.Wait();
        using var give = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsExactlyAsync<OperationCanceledException>(() =>
            pool.PredictWithDetailsAsync("photos", new ImageInput { ImagePath = Files[0] }, give.Token));
        var waiting = pool.PredictWithDetailsAsync("photos", new ImageInput { ImagePath = Files[1] });
        await Task.Delay(100);
        Assert.IsFalse(waiting.IsCompleted, "no engine is free: the request waits");
        release.Set();
        await holder;
        var p = await waiting;
        CollectionAssert.AreEqual(expected[1], p.Prediction.Score);
        Assert.AreEqual(1, p.ModelVersion);
        CollectionAssert.AreEqual(Fixtures.Classes, p.Labels.ToArray());
        Assert.AreEqual(1, pool.GetEngineCount("photos"), "the abandoned request took no engine");
    }

    [TestMethod]
    public void ADamagedFileIsRefusedAtStartAndAnUnknownNameIsNamed()
    {
        var dir = Directory.CreateTempSubdirectory("vit-pool-bad-").FullName;
        var path = Path.Combine(dir, "model.zip");
        File.WriteAllBytes(path, [1, 2, 3, 4]);
        var services = new ServiceCollection();
        services.AddPredictionEnginePool<ImageInput, ImagePrediction>().FromFile("photos", path);
        using var provider = services.BuildServiceProvider();
        Assert.ThrowsExactly<InvalidDataException>(() => provider.GetRequiredService<PredictionEnginePool<ImageInput, ImagePrediction>>());

        using var pool = new PredictionEnginePool<ImageInput, ImagePrediction>();
        pool.AddModelFromFile("photos", Models.Value.A);
        var e = Assert.ThrowsExactly<ArgumentException>(() => pool.Predict("other", new ImageInput { ImagePath = Files[0] }));
        StringAssert.Contains(e.Message, "'photos'");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new PredictionEnginePool<ImageInput, ImagePrediction>(new PredictionEnginePoolOptions { MaxEngines = 0 }));
        Directory.Delete(dir, recursive: true);
    }

    private sealed class UploadInput
    {
        // ML.NET needs a size to declare the column (a parameterless [ImageType] fails when the engine is made); images of
        // any size are accepted, ResizeImages reads their own.
        [Microsoft.ML.Transforms.Image.ImageType(24, 24)]
        public MLImage Image { get; set; } = null!;
    }

    /// <summary>PrepareModel = WithoutImageLoading: the pool serves a model trained on image paths to images decoded in
    /// memory (uploads), with the answers the paths give.</summary>
    [TestMethod]
    public void PrepareModelWithoutImageLoadingServesImagesDecodedInMemory()
    {
        var (a, _, expected, _) = Models.Value;
        using var pool = new PredictionEnginePool<UploadInput, ImagePrediction>(new PredictionEnginePoolOptions
        {
            MaxEngines = 1, PrepareModel = VitPipeline.WithoutImageLoading,
        });
        pool.AddModelFromFile("photos", a);
        var files = Files;
        for (int k = 0; k < files.Length; k += 7)
        {
            using var image = MLImage.CreateFromStream(new MemoryStream(File.ReadAllBytes(files[k])));
            var p = pool.Predict("photos", new UploadInput { Image = image });
            CollectionAssert.AreEqual(expected[k], p.Score, files[k]);
        }
        // Without it, the model wants the paths: the pool refuses the model rather than failing at the first request.
        using var plain = new PredictionEnginePool<UploadInput, ImagePrediction>();
        Assert.Throws<ArgumentException>(() => plain.AddModelFromFile("photos", a));
        Assert.IsEmpty(plain.ModelNames);
    }
}
