using System.IO.Compression;
using System.Text.Json.Nodes;
using Vit.MLNet;

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

    [TestMethod]
    public void FailedSaveLeavesThePreviousFileIntact()
    {
        var p = Copy("keep.zip");
        var before = File.ReadAllBytes(p);
        var ctx = new VitContext();
        // A pipeline without a ViT step cannot be saved: the error comes before anything is written.
        var loadOnly = ctx.Transforms.LoadImages("Image", "", "ImagePath").Fit(ctx.Data.LoadFromImageFolder(Fixtures.Folder));
        Assert.Throws<ArgumentException>(() => ctx.Model.Save(loadOnly, ctx.Data.LoadFromImageFolder(Fixtures.Folder).Schema, p));
        CollectionAssert.AreEqual(before, File.ReadAllBytes(p));
        Assert.IsEmpty(Directory.GetFiles(Path.GetDirectoryName(p)!, "*.tmp"));
    }
}
