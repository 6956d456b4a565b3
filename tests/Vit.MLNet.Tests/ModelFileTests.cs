using System.IO.Compression;
using System.Text.Json.Nodes;
using Vit.MLNet;
using Vit.Torch;
using Vit.Torch.Checkpoints;
using Engine = Vit.Torch.Torch;

namespace Vit.MLNet.Tests;

[TestClass]
public sealed class ModelFileTests
{
    private static readonly Lazy<string> saved = new(() =>
    {
        var ctx = new VitContext(seed: 2);
        var data = ctx.Data.LoadFromImageFolder(Fixtures.Folder);
        using var model = Fixtures.Pipeline(ctx, Fixtures.TinyOptions(epochs: 1)).Fit(data);
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "model.zip");
        ctx.Model.Save(model, data.Schema, path);
        return path;
    });

    private static string Copy(string name)
    {
        var p = Path.Combine(Directory.CreateTempSubdirectory().FullName, name);
        File.Copy(saved.Value, p);
        return p;
    }

    [TestMethod]
    public void ModelFileIsAZipReadableWithoutThisLibrary()
    {
        using var zip = ZipFile.OpenRead(saved.Value);
        CollectionAssert.AreEquivalent(new[] { "model.json", "weights.safetensors", "training.json" }, zip.Entries.Select(e => e.FullName).ToArray());
        using var s = zip.GetEntry("model.json")!.Open();
        var json = JsonNode.Parse(s)!;
        Assert.AreEqual(2, (int)json["format_version"]!);
        CollectionAssert.AreEqual(Fixtures.Classes, json["labels"]!.AsArray().Select(n => (string)n!).ToArray());
        Assert.AreEqual(16, (int)json["preprocessing"]!["image_size"]!);
    }

    [TestMethod]
    public void TruncatedModelFileGivesAClearError()
    {
        var p = Copy("truncated.zip");
        var bytes = File.ReadAllBytes(p);
        File.WriteAllBytes(p, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<InvalidDataException>(() => new VitContext().Model.Load(p, out _));
        StringAssert.Contains(e.Message, p);
        StringAssert.Contains(e.Message, "truncated or damaged");
    }

    [TestMethod]
    public void NewerFormatVersionIsRefusedWithAnUpgradeHint()
    {
        var p = Copy("newer.zip");
        using (var zip = ZipFile.Open(p, ZipArchiveMode.Update))
        {
            var entry = zip.GetEntry("model.json")!;
            JsonNode json;
            using (var s = entry.Open()) json = JsonNode.Parse(s)!;
            json["format_version"] = 99;
            entry.Delete();
            using var w = new StreamWriter(zip.CreateEntry("model.json").Open());
            w.Write(json.ToJsonString());
        }
        var e = Assert.Throws<InvalidDataException>(() => new VitContext().Model.Load(p, out _));
        StringAssert.Contains(e.Message, "format version 99, newer than this library reads (2)");
    }

    /// <summary>The scoring precision goes into model.json and back; bfloat16 scores are float32's within bfloat16 rounding;
    /// a precision this library does not know is refused by name.</summary>
    [TestMethod]
    public void ScoringPrecisionIsSavedAndAnUnknownOneIsRefused()
    {
        var ctx = new VitContext(seed: 2);
        var data = ctx.Data.LoadFromImageFolder(Fixtures.Folder);
        var p = Copy("precision.zip");
        var model = ctx.Model.Load(p, out _);
        Transformers.Vit(model, "test").Precision = Precision.BFloat16;
        ctx.Model.Save(model, data.Schema, p);
        (model as IDisposable)?.Dispose();
        var loaded = ctx.Model.Load(p, out _);
        try
        {
            var vit = Transformers.Vit(loaded, "test");
            Assert.AreEqual(Precision.BFloat16, vit.Precision);
            var bf = loaded.Transform(data).GetRows().Select(r => (float[])r["Score"]!).ToList();
            vit.Precision = Precision.Float32;
            var fp = loaded.Transform(data).GetRows().Select(r => (float[])r["Score"]!).ToList();
            double worst = bf.Zip(fp).Max(t => t.First.Zip(t.Second).Max(u => Math.Abs(u.First - u.Second)));
            Assert.IsLessThan(0.03, worst, "bfloat16 scores stay near float32's");
            Assert.IsGreaterThan(0.0, worst, "the bfloat16 scores were computed in bfloat16");
        }
        finally
        {
            (loaded as IDisposable)?.Dispose();
        }
        using (var zip = ZipFile.Open(p, ZipArchiveMode.Update))
        {
            var entry = zip.GetEntry("model.json")!;
            JsonNode json;
            using (var s = entry.Open()) json = JsonNode.Parse(s)!;
            json["pipeline"]!.AsArray().Single(n => (string?)n!["type"] == "Vit")!["precision"] = "Float16";
            entry.Delete();
            using var w = new StreamWriter(zip.CreateEntry("model.json").Open());
            w.Write(json.ToJsonString());
        }
        var e = Assert.Throws<InvalidDataException>(() => ctx.Model.Load(p, out _));
        StringAssert.Contains(e.Message, "unknown precision 'Float16'");
    }

    [TestMethod]
    public void ZipThatIsNotOursIsNamed()
    {
        var p = Path.Combine(Directory.CreateTempSubdirectory().FullName, "other.zip");
        using (var zip = ZipFile.Open(p, ZipArchiveMode.Create))
        using (var w = new StreamWriter(zip.CreateEntry("readme.txt").Open()))
            w.Write("hello");
        var e = Assert.Throws<InvalidDataException>(() => new VitContext().Model.Load(p, out _));
        StringAssert.Contains(e.Message, "not a Vit for .NET model file: it has no model.json");
        var txt = Path.Combine(Path.GetDirectoryName(p)!, "notzip.zip");
        File.WriteAllText(txt, "just text");
        StringAssert.Contains(Assert.Throws<InvalidDataException>(() => new VitContext().Model.Load(txt, out _)).Message, "not a readable zip");
    }

    [TestMethod]
    public void LoadedModelPredictsIdenticallyInAFreshContext()
    {
        var ctx1 = new VitContext();
        var ctx2 = new VitContext(seed: 99);
        var a = ctx1.Model.Load(saved.Value, out _);
        var b = ctx2.Model.Load(saved.Value, out _);
        using var _a = (IDisposable)a;
        using var _b = (IDisposable)b;
        var data = ctx1.Data.LoadFromImageFolder(Fixtures.Folder);
        var sa = a.Transform(data).GetRows().Select(r => (float[])r["Score"]!).ToList();
        var sb = b.Transform(data).GetRows().Select(r => (float[])r["Score"]!).ToList();
        for (int i = 0; i < sa.Count; i++) CollectionAssert.AreEqual(sa[i], sb[i]);
    }

    /// <summary>Each row's scores from the model file at <paramref name="path"/>, over the fixture folder.</summary>
    private static List<float[]> ScoresOf(string path)
    {
        var ctx = new VitContext();
        var model = ctx.Model.Load(path, out _);
        using var _m = (IDisposable)model;
        return model.Transform(ctx.Data.LoadFromImageFolder(Fixtures.Folder)).GetRows().Select(r => (float[])r["Score"]!).ToList();
    }

    [TestMethod]
    public void SaveFailingMidwayThroughTheWeights_LeavesThePreviousFileLoadingAndScoringAsBefore()
    {
        var p = Copy("keep.zip");
        var dir = Path.GetDirectoryName(p)!;
        var before = File.ReadAllBytes(p);
        var expected = ScoresOf(p);
        var ctx = new VitContext(seed: 7);
        var data = ctx.Data.LoadFromImageFolder(Fixtures.Folder);
        using var other = Fixtures.Pipeline(ctx, Fixtures.TinyOptions(epochs: 1)).Fit(data);  // other weights than keep.zip's
        int saver = Environment.CurrentManagedThreadId;  // the hook is process-wide: count only this thread's saves

        // A fault-free save elsewhere: how far the temporary file has grown as each tensor's bytes are about to be written.
        var probeDir = Directory.CreateTempSubdirectory().FullName;
        var probe = Path.Combine(probeDir, "probe.zip");
        var sizes = new List<long>();
        Safetensors.BeforeTensorDataWritten = _ =>
        {
            if (Environment.CurrentManagedThreadId == saver) sizes.Add(new FileInfo(Directory.GetFiles(probeDir).Single()).Length);
        };
        try
        {
            ctx.Model.Save(other, data.Schema, probe);
        }
        finally
        {
            Safetensors.BeforeTensorDataWritten = null;
        }
        long full = new FileInfo(probe).Length;
        int failAt = sizes.FindIndex(n => n > full / 2);
        Assert.IsGreaterThan(0, failAt, "some tensors are written before the failure, and one after it");

        // The same save over keep.zip, failing when more than half of the file is on disk.
        long partial = -1;
        int calls = 0;
        Safetensors.BeforeTensorDataWritten = _ =>
        {
            if (Environment.CurrentManagedThreadId != saver || calls++ != failAt) return;
            // The file being written: the temporary one beside keep.zip (keep.zip itself, were saving not atomic).
            partial = new FileInfo(Directory.GetFiles(dir, "*.tmp").SingleOrDefault() ?? p).Length;
            throw new IOException("simulated disk failure");
        };
        try
        {
            var e = Assert.ThrowsExactly<IOException>(() => ctx.Model.Save(other, data.Schema, p));
            Assert.AreEqual("simulated disk failure", e.Message);
        }
        finally
        {
            Safetensors.BeforeTensorDataWritten = null;
        }
        Assert.IsGreaterThan(full / 2, partial, "the failure came midway through the weights");

        CollectionAssert.AreEqual(before, File.ReadAllBytes(p), "the previous file is untouched");
        CollectionAssert.AreEqual(new[] { p }, Directory.GetFiles(dir), "no temporary file is left behind");
        var after = ScoresOf(p);
        Assert.HasCount(expected.Count, after);
        for (int i = 0; i < expected.Count; i++) CollectionAssert.AreEqual(expected[i], after[i], $"row {i} scores as before");

        // The save the fault interrupted does replace the file when nothing fails, and the model it writes scores otherwise.
        ctx.Model.Save(other, data.Schema, p);
        var replaced = ScoresOf(p);
        Assert.IsTrue(replaced.Zip(ScoresOf(probe)).All(x => x.First.SequenceEqual(x.Second)), "the file now holds the other model");
        Assert.IsFalse(replaced.Zip(expected).All(x => x.First.SequenceEqual(x.Second)), "the other model scores differently");
    }

    [TestMethod]
    public void SavingAPipelineWithoutAVitStep_IsRefusedBeforeTouchingTheFile()
    {
        var p = Copy("keep.zip");
        var before = File.ReadAllBytes(p);
        var ctx = new VitContext();
        var data = ctx.Data.LoadFromImageFolder(Fixtures.Folder);
        var loadOnly = ctx.Transforms.LoadImages("Image", "", "ImagePath").Fit(data);
        var e = Assert.ThrowsExactly<ArgumentException>(() => ctx.Model.Save(loadOnly, data.Schema, p));
        StringAssert.Contains(e.Message, "Save needs a pipeline with one VitTransformer step");
        CollectionAssert.AreEqual(before, File.ReadAllBytes(p));
        CollectionAssert.AreEqual(new[] { p }, Directory.GetFiles(Path.GetDirectoryName(p)!));
    }

    [TestMethod]
    public void LoadOnADevice_CpuScoresAsBefore_AnAbsentGpuFallsBackOrFailsAsTrainingDoes()
    {
        var ctx = new VitContext();
        var data = ctx.Data.LoadFromImageFolder(Fixtures.Folder);
        var expected = ScoresOf(saved.Value);
        void ScoresAsSaved(ITransformer model)
        {
            var scores = model.Transform(data).GetRows().Select(r => (float[])r["Score"]!).ToList();
            Assert.HasCount(expected.Count, scores);
            for (int i = 0; i < expected.Count; i++) CollectionAssert.AreEqual(expected[i], scores[i], $"row {i}");
        }
        static Device DeviceOf(ITransformer model) => Transformers.Vit(model, "test").Device;

        using (var onCpu = (IDisposable)ctx.Model.Load(saved.Value, out var schema, Device.Cpu))
        {
            Assert.AreEqual(Device.Cpu, DeviceOf((ITransformer)onCpu));
            CollectionAssert.AreEqual(new[] { "ImagePath", "Label" }, schema.Select(c => c.Name).ToArray());
            ScoresAsSaved((ITransformer)onCpu);
        }

        // A CUDA index past the visible devices is absent on every machine (this one has no CUDA at all).
        var absent = Device.Cuda(Engine.CudaDeviceCount);
        using (var fellBack = (IDisposable)ctx.Model.Load(saved.Value, out _, absent))
        {
            Assert.AreEqual(Device.Cpu, DeviceOf((ITransformer)fellBack), "FallbackToCpu's default: score on the CPU");
            ScoresAsSaved((ITransformer)fellBack);
        }
        var loadError = Assert.ThrowsExactly<TorchException>(() => ctx.Model.Load(saved.Value, out _, absent, fallbackToCpu: false));
        StringAssert.Contains(loadError.Message, $"device {absent} was requested, but");
        var missing = Path.Combine(Directory.CreateTempSubdirectory().FullName, "missing.zip");
        Assert.ThrowsExactly<TorchException>(() => ctx.Model.Load(missing, out _, absent, fallbackToCpu: false), "the device is checked before the file is read");

        // Training resolves Options.Device the same way: the same fallback, the same error.
        var options = Fixtures.TinyOptions(epochs: 0);
        options.Device = absent;
        using (var trained = Fixtures.Pipeline(ctx, options).Fit(data)) Assert.AreEqual(Device.Cpu, trained.LastTransformer.Device);
        options.FallbackToCpu = false;
        var fitError = Assert.ThrowsExactly<TorchException>(() => Fixtures.Pipeline(ctx, options).Fit(data));
        Assert.AreEqual(fitError.Message, loadError.Message);
    }
}
