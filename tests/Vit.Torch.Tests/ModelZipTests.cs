using System.IO.Compression;
using System.Text.Json.Nodes;
using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.Torch.Tests;

/// <summary>
/// <see cref="VitModelZip"/>'s entries wherever they are stored: a zip of their own, a folder of another zip (as ML.NET's
/// model files hold them), or any store behind <see cref="ModelEntryWriter"/> and <see cref="ModelEntryReader"/>.
/// </summary>
[TestClass]
public sealed class ModelZipTests : TempDirectoryTests
{
    private string PathOf(string name) => Path.Combine(Dir, name);

    private static readonly VitConfig Config = new()
    {
        ImageSize = 16, PatchSize = 4, Channels = 3, Dim = 48, Depth = 2, Heads = 3, MlpDim = 64, NumClasses = 3, LayerNormEps = 1e-6,
    };

    private static readonly string[] Labels = ["cat", "dog", "heron"];

    private static readonly VitPreprocessing Pre = new(16, 3, new Normalization([0.1f, 0.2f, 0.3f], [0.4f, 0.5f, 0.6f]))
    {
        ResizeMode = ResizeMode.Stretch, Interpolation = Interpolation.Bicubic,
    };

    private const string Training = """{"history": {"best_epoch": 3, "epochs": []}}""";

    private static VisionTransformer Randomized(ulong seed)
    {
        Torch.ManualSeed(seed);
        var model = new VisionTransformer(Config);
        TestModels.Randomize(model);
        model.Eval();
        return model;
    }

    private static float[] Logits(VisionTransformer model)
    {
        using var scope = TensorScope.Begin();
        using var noGrad = Torch.NoGrad();
        Torch.ManualSeed(9);
        return model.Forward(Tensor.Randn([2, 3, 16, 16])).ToArray<float>();
    }

    /// <summary>Writes a model's entries into <paramref name="zip"/> under <paramref name="folder"/>, as ML.NET's
    /// SaveBinaryStream writes a step's streams into the step's folder.</summary>
    private static void WriteInto(ZipArchive zip, string folder, VisionTransformer model, string? trainingState = null) =>
        VitModelZip.Write((name, write) =>
        {
            using var s = zip.CreateEntry(folder + name).Open();
            write(s);
        }, model, Labels, Pre, new JsonObject { ["note"] = "kept" }, Training, trainingState);

    private static void AddText(ZipArchive zip, string name, string text)
    {
        using var w = new StreamWriter(zip.CreateEntry(name).Open());
        w.Write(text);
    }

    [TestMethod]
    public void AModelInAFolderOfAnotherZipIsFoundAndLoadsAsTheStandaloneOne()
    {
        using var model = Randomized(3);
        var state = PathOf("state.bin");
        var stateBytes = new byte[10_000];
        new Random(4).NextBytes(stateBytes);
        File.WriteAllBytes(state, stateBytes);
        var standalone = PathOf("standalone.zip");
        VitModelZip.Save(standalone, model, Labels, Pre, new JsonObject { ["note"] = "kept" }, Training, state);

        // Another archive, laid out as ML.NET's model files are: its own entries, other steps' folders, and the model's
        // entries in one step's folder. A model.json without weights beside it (another tool's) is not a model.
        var host = PathOf("host.zip");
        using (var zip = ZipFile.Open(host, ZipArchiveMode.Create))
        {
            AddText(zip, "Model/Model.key", "not ours");
            AddText(zip, "Model/Transformer0/Model.key", "a LoadImages step");
            AddText(zip, "Model/Transformer1/model.json", """{"format": "somebody else's"}""");
            WriteInto(zip, "Model/Transformer2/", model, state);
            AddText(zip, "TrainingInfo/Version.txt", "1.0");
        }
        Assert.IsTrue(VitModelZip.IsStandalone(standalone));
        Assert.IsFalse(VitModelZip.IsStandalone(host), "the model is in a folder: the archive is not a model zip of its own");

        using var a = VitModelZip.Load(standalone, null, out var jsonA, out var trainingA);
        using var b = VitModelZip.Load(host, null, out var jsonB, out var trainingB);
        using var c = PretrainedVit.Load(host);  // what vit info, StartFrom and the readers of checkpoints use
        var expected = Logits(model);
        foreach (var (what, loaded) in new[] { ("standalone", a), ("in a folder", b), ("PretrainedVit.Load", c) })
        {
            Assert.AreEqual(Config with { ClassToken = true }, loaded.Model.Config, what);
            CollectionAssert.AreEqual(Labels, loaded.Labels!.ToArray(), what);
            Assert.AreEqual(Pre.ToJson().ToJsonString(), loaded.Preprocessing.ToJson().ToJsonString(), what);
            CollectionAssert.AreEqual(expected, Logits(loaded.Model), what);
        }
        Assert.AreEqual(jsonA.ToJsonString(), jsonB.ToJsonString());
        Assert.AreEqual("kept", (string)jsonB["note"]!);
        Assert.AreEqual(trainingA, trainingB);
        Assert.AreEqual(3, (int)JsonNode.Parse(trainingB!)!["history"]!["best_epoch"]!);

        // The training state travels with it and comes out byte for byte.
        var extracted = VitModelZip.ExtractTrainingState(host);
        Assert.IsNotNull(extracted);
        try
        {
            CollectionAssert.AreEqual(stateBytes, File.ReadAllBytes(extracted));
        }
        finally
        {
            File.Delete(extracted);
        }
    }

    [TestMethod]
    public void EntriesWrittenThroughAWriterReadBackThroughAReader()
    {
        // Any store: here a dictionary. Write gives the entries' names; Load asks for them by the same names.
        using var model = Randomized(6);
        var store = new Dictionary<string, byte[]>();
        VitModelZip.Write((name, write) =>
        {
            var ms = new MemoryStream();
            write(ms);
            store.Add(name, ms.ToArray());
        }, model, Labels, Pre, trainingJson: Training);
        CollectionAssert.AreEquivalent(new[] { VitModelZip.ModelEntry, VitModelZip.WeightsEntry, VitModelZip.TrainingEntry }, store.Keys.ToArray());
        ModelEntryReader reader = (name, read) =>
        {
            if (!store.TryGetValue(name, out var bytes)) return false;
            read(new MemoryStream(bytes, writable: false), bytes.Length);
            return true;
        };
        using (var loaded = VitModelZip.Load(reader, "the dictionary", null, out var json, out var training))
        {
            CollectionAssert.AreEqual(Logits(model), Logits(loaded.Model));
            CollectionAssert.AreEqual(Labels, loaded.Labels!.ToArray());
            Assert.AreEqual(VitModelZip.Magic, (string)json["format"]!);
            Assert.AreEqual(3, (int)JsonNode.Parse(training!)!["history"]!["best_epoch"]!);
        }

        // A store without the weights: the source is named, and so is what is missing.
        store.Remove(VitModelZip.WeightsEntry);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => VitModelZip.Load(reader, "the dictionary", null, out _, out _));
        StringAssert.Contains(e.Message, "the dictionary");
        StringAssert.Contains(e.Message, VitModelZip.WeightsEntry);
        store.Clear();
        e = Assert.ThrowsExactly<InvalidDataException>(() => VitModelZip.Load(reader, "the dictionary", null, out _, out _));
        StringAssert.Contains(e.Message, "the dictionary is not a Vit for .NET model");
    }

    [TestMethod]
    public void TwoModelsInOneZipAreRefusedWithAClearMessage()
    {
        using var first = Randomized(1);
        using var second = Randomized(2);
        var host = PathOf("two.zip");
        using (var zip = ZipFile.Open(host, ZipArchiveMode.Create))
        {
            AddText(zip, "Model/Model.key", "not ours");
            WriteInto(zip, "Model/Transformer1/", first);
            WriteInto(zip, "Model/Transformer3/", second);
        }
        Assert.IsFalse(VitModelZip.IsStandalone(host));
        foreach (var (what, load) in new (string, Action)[]
                 {
                     ("VitModelZip.Load", () => VitModelZip.Load(host, null, out _, out _).Dispose()),
                     ("PretrainedVit.Load", () => PretrainedVit.Load(host).Dispose()),
                     ("ExtractTrainingState", () => VitModelZip.ExtractTrainingState(host)),
                 })
        {
            var e = Assert.ThrowsExactly<InvalidDataException>(load, what);
            StringAssert.Contains(e.Message, host, what);
            StringAssert.Contains(e.Message, "holds 2 ViT models", what);
            StringAssert.Contains(e.Message, "Model/Transformer1/", what);
            StringAssert.Contains(e.Message, "Model/Transformer3/", what);
        }
    }

    [TestMethod]
    public void AZipWithoutAModelSaysSo()
    {
        var other = PathOf("other.zip");
        using (var zip = ZipFile.Open(other, ZipArchiveMode.Create))
        {
            AddText(zip, "readme.txt", "hello");
            AddText(zip, "data/model.json", """{"format": "somebody else's"}""");  // no weights beside it
        }
        Assert.IsFalse(VitModelZip.IsStandalone(other));
        Assert.IsNull(VitModelZip.ExtractTrainingState(other));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => VitModelZip.Load(other, null, out _, out _));
        StringAssert.Contains(e.Message, other);
        StringAssert.Contains(e.Message, "is not a Vit for .NET model file");
        Assert.IsFalse(VitModelZip.IsStandalone(PathOf("missing.zip")));
    }
}
