using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using Vit.MLNet;
using Vit.Torch;
using Vit.Torch.Checkpoints;

namespace Vit.MLNet.Tests;

/// <summary>Model files are ML.NET's own (ml.Model.Save/Load), with our model's entries in the ViT step's folder.</summary>
[TestClass]
public sealed class ModelFileTests
{
    /// <summary>The folder of the ViT step in a saved Fixtures.Pipeline (LoadImages, ResizeImages, the ViT, MapKeyToValue).</summary>
    private const string VitFolder = "TransformerChain/Transform_002/";

    private static readonly Lazy<string> saved = new(() =>
    {
        var ml = new MLContext(seed: 2);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        using var model = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 1)).Fit(data);
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "model.zip");
        ml.Model.Save(model, data.Schema, path);
        return path;
    });

    private static string Copy(string name)
    {
        var p = Path.Combine(Directory.CreateTempSubdirectory().FullName, name);
        File.Copy(saved.Value, p);
        return p;
    }

    /// <summary>Replaces one entry of a zip with what <paramref name="change"/> makes of its bytes.</summary>
    private static void Rewrite(string zipPath, string entryName, Func<byte[], byte[]> change)
    {
        using var zip = ZipFile.Open(zipPath, ZipArchiveMode.Update);
        var entry = zip.GetEntry(entryName) ?? throw new AssertFailedException($"no entry {entryName} in {zipPath}");
        byte[] bytes;
        using (var s = entry.Open())
        using (var copy = new MemoryStream())
        {
            s.CopyTo(copy);
            bytes = copy.ToArray();
        }
        entry.Delete();
        using var w = zip.CreateEntry(entryName).Open();
        w.Write(change(bytes));
    }

    private static void RewriteModelJson(string zipPath, Action<JsonNode> change) => Rewrite(zipPath, VitFolder + VitModelZip.ModelEntry, bytes =>
    {
        var json = JsonNode.Parse(bytes)!;
        change(json);
        return Encoding.UTF8.GetBytes(json.ToJsonString());
    });

    /// <summary>Every exception of a chain (ML.NET wraps some).</summary>
    private static string Messages(Exception e) => string.Join(" | ", Chain(e).Select(x => $"{x.GetType().Name}: {x.Message}"));

    private static IEnumerable<Exception> Chain(Exception? e)
    {
        for (; e is not null; e = e.InnerException) yield return e;
    }

    [TestMethod]
    public void TheModelFileIsMLNets_WithOurEntriesReadableWithoutThisLibrary()
    {
        using var zip = ZipFile.OpenRead(saved.Value);
        var names = zip.Entries.Select(e => e.FullName).ToList();
        // ML.NET's own: the chain and each step's Model.key.
        foreach (var step in new[] { "TransformerChain/", "TransformerChain/Transform_000/", "TransformerChain/Transform_001/", VitFolder, "TransformerChain/Transform_003/" })
            CollectionAssert.Contains(names, step + "Model.key", string.Join(", ", names));
        // Ours, in the ViT step's folder only.
        var ours = names.Where(n => n.EndsWith(".json", StringComparison.Ordinal) || n.EndsWith(".safetensors", StringComparison.Ordinal)).ToArray();
        CollectionAssert.AreEquivalent(new[] { VitModelZip.ModelEntry, VitModelZip.WeightsEntry, VitModelZip.TrainingEntry }.Select(n => VitFolder + n).ToArray(), ours);

        JsonNode Json(string name)
        {
            using var s = zip.GetEntry(VitFolder + name)!.Open();
            return JsonNode.Parse(s)!;
        }
        var json = Json(VitModelZip.ModelEntry);
        Assert.AreEqual(VitModelZip.Magic, (string)json["format"]!);
        Assert.AreEqual(2, (int)json["format_version"]!);
        CollectionAssert.AreEqual(Fixtures.Classes, json["labels"]!.AsArray().Select(n => (string)n!).ToArray());
        Assert.AreEqual(16, (int)json["preprocessing"]!["image_size"]!);
        Assert.HasCount(1, Json(VitModelZip.TrainingEntry)["history"]!["epochs"]!.AsArray(), "training.json: the one epoch trained");
    }

    /// <summary>PretrainedVit.Load and VitModelZip.Load find the model inside an ML.NET model file: the weights, labels and
    /// preprocessing the loaded pipeline's ViT step has.</summary>
    [TestMethod]
    public void OurReadersFindTheModelInsideTheMLNetFile()
    {
        var ml = new MLContext();
        var loaded = ml.Model.Load(saved.Value, out _);
        try
        {
            var vit = VitPipeline.Find(loaded, "test");
            using var pretrained = PretrainedVit.Load(saved.Value);
            CollectionAssert.AreEqual(vit.Labels.ToArray(), pretrained.Labels!.ToArray());
            Assert.AreEqual(vit.Model.Config, pretrained.Model.Config);
            Assert.AreEqual(vit.Preprocessing, pretrained.Preprocessing);
            var expected = vit.Model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.ToArray<float>());
            foreach (var (name, p) in pretrained.Model.NamedParameters()) CollectionAssert.AreEqual(expected[name], p.ToArray<float>(), name);
            using var zipped = VitModelZip.Load(saved.Value, null, out var json, out var training);
            Assert.AreEqual(VitModelZip.Magic, (string)json["format"]!);
            StringAssert.Contains(training, "\"epochs\"");
        }
        finally
        {
            (loaded as IDisposable)?.Dispose();
        }
    }

    [TestMethod]
    public void TruncatedModelFileGivesAnError_AndOurReaderNamesIt()
    {
        var p = Copy("truncated.zip");
        var bytes = File.ReadAllBytes(p);
        File.WriteAllBytes(p, bytes[..(bytes.Length / 2)]);
        Assert.Throws<Exception>(() => new MLContext().Model.Load(p, out _));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => PretrainedVit.Load(p));
        StringAssert.Contains(e.Message, p);
        StringAssert.Contains(e.Message, "truncated or damaged");
    }

    [TestMethod]
    public void NewerFormatVersionIsRefusedWithAnUpgradeHint()
    {
        var p = Copy("newer.zip");
        RewriteModelJson(p, json => json["format_version"] = 99);
        var e = Assert.Throws<Exception>(() => new MLContext().Model.Load(p, out _));
        var ours = Chain(e).OfType<InvalidDataException>().FirstOrDefault();
        Assert.IsNotNull(ours, Messages(e));
        // ML.NET's loader calls ours by reflection and passes the error on wrapped (TargetInvocationException).
        StringAssert.Contains(ours.Message, "format version 99, newer than this library reads (2)");
        StringAssert.Contains(ours.Message, VitFolder.TrimEnd('/'));
    }

    /// <summary>A weight changed inside an ML.NET model file (the zip itself rewritten consistently, so only our own check
    /// can see it) is refused on load as a corrupted file, through ML.NET's Load too, never served as other numbers.</summary>
    [TestMethod]
    public void AChangedWeightInsideTheMLNetFileIsRefusedAsCorrupted()
    {
        var p = Copy("flipped.zip");
        Rewrite(p, VitFolder + VitModelZip.WeightsEntry, bytes =>
        {
            var flipped = (byte[])bytes.Clone();
            flipped[^7] ^= 0x10;  // inside the last tensor's data
            return flipped;
        });
        var e = Assert.Throws<Exception>(() => new MLContext().Model.Load(p, out _));
        StringAssert.Contains(Messages(e), "corrupted");
        var clear = Assert.ThrowsExactly<InvalidDataException>(() => new MLContext().Model.LoadWithClearErrors(p, out _));
        StringAssert.Contains(clear.Message, p);
        StringAssert.Contains(clear.Message, "the file is corrupted");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => PretrainedVit.Load(p)).Message, "corrupted");
    }

    /// <summary>LoadWithClearErrors: ML.NET's FormatException for a truncated file and its TargetInvocationException around
    /// our loader's error both become an InvalidDataException naming the file; a good file loads as with Load.</summary>
    [TestMethod]
    public void LoadWithClearErrorsNamesTheFileAndTheProblem()
    {
        var ml = new MLContext();
        var truncated = Copy("truncated.zip");
        var bytes = File.ReadAllBytes(truncated);
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ml.Model.LoadWithClearErrors(truncated, out _));
        StringAssert.Contains(e.Message, truncated);
        StringAssert.Contains(e.Message, "truncated or damaged");

        var newer = Copy("newer.zip");
        RewriteModelJson(newer, json => json["format_version"] = 99);
        e = Assert.ThrowsExactly<InvalidDataException>(() => ml.Model.LoadWithClearErrors(newer, out _));
        StringAssert.Contains(e.Message, newer);
        StringAssert.Contains(e.Message, "newer than this library reads");

        Assert.ThrowsExactly<FileNotFoundException>(() => ml.Model.LoadWithClearErrors(Path.Combine(Path.GetTempPath(), "no-such-model.zip"), out _));
        var good = ml.Model.LoadWithClearErrors(Copy("good.zip"), out var schema);
        using var owned = (IDisposable)good;
        Assert.AreEqual("ImagePath", schema[0].Name);
        Assert.AreEqual(1, VitPipeline.Steps(good).OfType<VitTransformer>().Count());
    }

    /// <summary>The scoring precision is saved with the step and read back; bfloat16 scores are float32's within bfloat16
    /// rounding; a precision this library does not know is refused by name.</summary>
    [TestMethod]
    public void ScoringPrecisionIsSavedAndAnUnknownOneIsRefused()
    {
        var ml = new MLContext(seed: 2);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        var p = Copy("precision.zip");
        var model = ml.Model.Load(p, out _);
        VitPipeline.Find(model, "test").Precision = Precision.BFloat16;
        ml.Model.Save(model, data.Schema, p);
        (model as IDisposable)?.Dispose();
        var loaded = ml.Model.Load(p, out _);
        try
        {
            var vit = VitPipeline.Find(loaded, "test");
            Assert.AreEqual(Precision.BFloat16, vit.Precision);
            var bf = Rows.Vectors(loaded.Transform(data));
            vit.Precision = Precision.Float32;
            var fp = Rows.Vectors(loaded.Transform(data));
            double worst = bf.Zip(fp).Max(t => t.First.Zip(t.Second).Max(u => Math.Abs(u.First - u.Second)));
            Assert.IsLessThan(0.03, worst, "bfloat16 scores stay near float32's");
            Assert.IsGreaterThan(0.0, worst, "the bfloat16 scores were computed in bfloat16");
        }
        finally
        {
            (loaded as IDisposable)?.Dispose();
        }
        // The step's Model.key holds the precision as a length-prefixed string: make it one no version of the enum has.
        Rewrite(p, VitFolder + "Model.key", bytes =>
        {
            var known = Encoding.UTF8.GetBytes("\u0008BFloat16");
            int at = bytes.AsSpan().IndexOf(known);
            Assert.IsGreaterThanOrEqualTo(0, at, "the precision is in the step's Model.key");
            Encoding.UTF8.GetBytes("\u0008BFloat17").CopyTo(bytes, at);
            return bytes;
        });
        var e = Assert.Throws<Exception>(() => ml.Model.Load(p, out _));
        StringAssert.Contains(Messages(e), "precision 'BFloat17'");
    }

    [TestMethod]
    public void ZipThatIsNotOursIsNamed()
    {
        var p = Path.Combine(Directory.CreateTempSubdirectory().FullName, "other.zip");
        using (var zip = ZipFile.Open(p, ZipArchiveMode.Create))
        using (var w = new StreamWriter(zip.CreateEntry("readme.txt").Open()))
            w.Write("hello");
        var e = Assert.ThrowsExactly<InvalidDataException>(() => VitModelZip.Load(p, null, out _, out _));
        StringAssert.Contains(e.Message, "not a Vit for .NET model file: it has no model.json");
        var txt = Path.Combine(Path.GetDirectoryName(p)!, "notzip.zip");
        File.WriteAllText(txt, "just text");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => VitModelZip.Load(txt, null, out _, out _)).Message, "not a readable zip");
    }

    [TestMethod]
    public void ModelJsonOfAnotherFormatIsNotOurs()
    {
        var p = Path.Combine(Directory.CreateTempSubdirectory().FullName, "foreign.zip");
        using (var zip = ZipFile.Open(p, ZipArchiveMode.Create))
        using (var w = new StreamWriter(zip.CreateEntry("model.json").Open()))
            w.Write("{\"format\": \"onnx-something\", \"format_version\": 1}");
        var e = Assert.ThrowsExactly<InvalidDataException>(() => PretrainedVit.Load(p));
        StringAssert.Contains(e.Message, "is not a Vit for .NET model");
        StringAssert.Contains(e.Message, "does not say format 'vit-dotnet-model'");
    }

    [TestMethod]
    public void LoadedModelPredictsIdenticallyInAFreshContext()
    {
        var ml1 = new MLContext();
        var ml2 = new MLContext(seed: 99);
        var a = ml1.Model.Load(saved.Value, out _);
        var b = ml2.Model.Load(saved.Value, out _);
        using var _a = (IDisposable)a;
        using var _b = (IDisposable)b;
        var data = ml1.Data.LoadFromImageFolder(Fixtures.Folder);
        var sa = Rows.Vectors(a.Transform(data));
        var sb = Rows.Vectors(b.Transform(data));
        Assert.HasCount(60, sa);
        for (int i = 0; i < sa.Count; i++) CollectionAssert.AreEqual(sa[i], sb[i]);
    }

    /// <summary>Each row's scores from the model file at <paramref name="path"/>, over the fixture folder.</summary>
    private static List<float[]> ScoresOf(string path)
    {
        var ml = new MLContext();
        var model = ml.Model.Load(path, out _);
        using var _m = (IDisposable)model;
        return Rows.Vectors(model.Transform(ml.Data.LoadFromImageFolder(Fixtures.Folder)));
    }

    [TestMethod]
    public void SaveAtomicFailingMidwayThroughTheWeights_LeavesThePreviousFileLoadingAndScoringAsBefore()
    {
        var p = Copy("keep.zip");
        var dir = Path.GetDirectoryName(p)!;
        var before = File.ReadAllBytes(p);
        var expected = ScoresOf(p);
        var ml = new MLContext(seed: 7);
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        using var other = Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 1)).Fit(data);  // other weights than keep.zip's

        // A fault-free save elsewhere: its size, and the weights' share of it. They are most of the file, so its middle byte
        // is one of theirs.
        var probe = Path.Combine(Directory.CreateTempSubdirectory().FullName, "probe.zip");
        ml.Model.SaveAtomic(other, data.Schema, probe);
        long size = new FileInfo(probe).Length;
        using (var zip = ZipFile.OpenRead(probe))
            Assert.IsGreaterThan(size / 2, zip.GetEntry(VitFolder + VitModelZip.WeightsEntry)!.CompressedLength, "the weights are most of the file");

        // The same save over keep.zip, on a disk that fills up halfway through the file: midway through the weights.
        string[]? beside = null;
        var e = Assert.Throws<Exception>(() => ml.Model.SaveAtomicThrough(other, data.Schema, p,
            stream => new FillingDisk(stream, size / 2, () => beside ??= Directory.GetFiles(dir))));
        Assert.IsTrue(Chain(e).Any(x => x is IOException { Message: "simulated disk failure" }), Messages(e));
        Assert.IsNotNull(beside, "the failure came midway through the weights");
        Assert.HasCount(2, beside, "keep.zip and the temporary file being written: " + string.Join(", ", beside));
        Assert.IsTrue(beside.Any(f => f != p && f.EndsWith(".tmp", StringComparison.Ordinal)), string.Join(", ", beside));

        CollectionAssert.AreEqual(before, File.ReadAllBytes(p), "the previous file is untouched");
        CollectionAssert.AreEqual(new[] { p }, Directory.GetFiles(dir), "no temporary file is left behind");
        var after = ScoresOf(p);
        Assert.HasCount(expected.Count, after);
        for (int i = 0; i < expected.Count; i++) CollectionAssert.AreEqual(expected[i], after[i], $"row {i} scores as before");

        // The save the fault interrupted does replace the file when nothing fails, and the model it writes scores otherwise.
        ml.Model.SaveAtomic(other, data.Schema, p);
        var replaced = ScoresOf(p);
        Assert.IsTrue(replaced.Zip(ScoresOf(probe)).All(x => x.First.SequenceEqual(x.Second)), "the file now holds the other model");
        Assert.IsFalse(replaced.Zip(expected).All(x => x.First.SequenceEqual(x.Second)), "the other model scores differently");
    }

    /// <summary>A file's stream on a disk with room for <paramref name="capacity"/> bytes: a write that would reach past them
    /// throws an <see cref="IOException"/>, after <paramref name="onFull"/> runs; the rest goes to <paramref name="file"/>.</summary>
    private sealed class FillingDisk(Stream file, long capacity, Action onFull) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => file.CanSeek;
        public override bool CanWrite => true;
        public override long Length => file.Length;
        public override long Position { get => file.Position; set => file.Position = value; }
        public override void Flush() => file.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => file.Seek(offset, origin);
        public override void SetLength(long value) => file.SetLength(value);

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (file.Position + buffer.Length > capacity)
            {
                onFull();
                throw new IOException("simulated disk failure");
            }
            file.Write(buffer);
        }
    }
}
