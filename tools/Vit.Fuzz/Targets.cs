using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using Vit.Torch;
using Engine = Vit.Torch.Torch;
using Vit.Torch.Checkpoints;
using Vit.Torch.Data;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.Fuzz;

/// <summary>One reader under fuzzing: its valid seed files, how a mutant reaches the reader, and whether the format is text.</summary>
internal sealed record Target(string Name, bool Text, Func<string, List<byte[]>> Seeds, Action<byte[], string> Read);

/// <summary>The readers a user can hand a file to, each fed through its public entry point.</summary>
internal static class Targets
{
    public static readonly string[] Names = ["safetensors", "model-zip", "model-json", "hf-config", "pth", "pickle", "csv"];

    /// <summary>A ViT small enough that a mutant that still loads costs microseconds: 8x8 images, D 8, 2 heads.</summary>
    private static readonly VitConfig Tiny = new()
    {
        ImageSize = 8, PatchSize = 4, Channels = 3, Dim = 8, Depth = 1, Heads = 2, MlpDim = 16, NumClasses = 3,
    };

    private static VisionTransformer Model()
    {
        Engine.ManualSeed(3);
        return new VisionTransformer(Tiny);
    }

    private static readonly VitPreprocessing Preprocessing = new(8, 3, Normalization.ImageNet);

    public static Target Get(string name) => name switch
    {
        "safetensors" => new(name, false, SafetensorsSeeds, (bytes, work) =>
        {
            var path = Write(work, "w.safetensors", bytes);
            using (var f = Safetensors.Open(path))
                foreach (var t in f.Tensors)
                    if (t.ByteLength <= 64 * Math.Max(1, f.DataLength)) f.Read(t.Name).Dispose();  // as PretrainedVit bounds what it reads
            using var m = PretrainedVit.Load(path);
        }),
        "model-zip" => new(name, false, dir => [ZipSeed(dir)], (bytes, work) =>
        {
            using var m = VitModelZip.Load(Write(work, "m.zip", bytes), null, out _, out _);
        }),
        // model.json alone mutated (as text), inside an otherwise valid model zip.
        "model-json" => new(name, true, dir => [ModelJson(ZipSeed(dir))], (bytes, work) =>
        {
            using var m = VitModelZip.Load(WithModelJson(work, bytes), null, out _, out _);
        }),
        // config.json of a Hugging Face folder mutated (as text); the weights stay valid.
        "hf-config" => new(name, true, HfSeeds, (bytes, work) =>
        {
            var dir = Path.Combine(work, "hf");
            File.WriteAllBytes(Path.Combine(dir, "config.json"), bytes);
            using var m = PretrainedVit.Load(dir);
        }),
        "pth" => new(name, false, dir => [File.ReadAllBytes(PthSeed(dir))], (bytes, work) =>
        {
            var path = Write(work, "w.pth", bytes);
            using (var f = TorchCheckpoint.Open(path))
                foreach (var t in f.Tensors)
                    if (t.ByteLength <= 64 * Math.Max(1, f.DataLength)) f.Read(t.Name).Dispose();
            using var m = PretrainedVit.Load(path, new PretrainedVitOptions { Heads = 2 });
        }),
        // The pickle inside a torch.save zip mutated alone, the zip rebuilt around it.
        "pickle" => new(name, false, dir => [PickleOf(PthSeed(dir))], (bytes, work) =>
        {
            using var f = TorchCheckpoint.Open(WithPickle(work, bytes));
            foreach (var t in f.Tensors)
                if (t.ByteLength <= 64 * Math.Max(1, f.DataLength)) f.Read(t.Name).Dispose();
        }),
        "csv" => new(name, true, _ => [Encoding.UTF8.GetBytes("ImagePath,Label\nphotos/cat/1.jpg,cat\n\"photos/a, b.png\",\"dog \"\"big\"\"\"\n\nphotos/x.png,cat\r\n")],
            (bytes, _) => Csv.Parse(Encoding.UTF8.GetString(bytes), ',', "fuzz.csv")),
        _ => throw new ArgumentException($"unknown format '{name}' (formats: {string.Join(", ", Names)})"),
    };

    private static string Write(string dir, string name, byte[] bytes)
    {
        var path = Path.Combine(dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static List<byte[]> SafetensorsSeeds(string dir)
    {
        using var model = Model();
        var path = Path.Combine(dir, "seed.safetensors");
        Safetensors.Save(path, model.NamedParameters(), VitMetadata.Of(model.Config, Preprocessing, ["a", "b", "c"]));
        return [File.ReadAllBytes(path)];
    }

    private static byte[] ZipSeed(string dir)
    {
        using var model = Model();
        var path = Path.Combine(dir, "seed.zip");
        VitModelZip.Save(path, model, ["a", "b", "c"], Preprocessing, trainingJson: "{\"epochs\": 1}");
        return File.ReadAllBytes(path);
    }

    private static List<(string Name, byte[] Data)> Entries = [];

    private static byte[] ModelJson(byte[] zip)
    {
        Entries = ReadEntries(new MemoryStream(zip));
        return Entries.Single(e => e.Name == VitModelZip.ModelEntry).Data;
    }

    private static string WithModelJson(string dir, byte[] json) => Rebuild(Path.Combine(dir, "j.zip"), Entries, name => name == VitModelZip.ModelEntry, json);

    /// <summary>Every entry of a zip archive, in order, uncompressed.</summary>
    private static List<(string Name, byte[] Data)> ReadEntries(Stream zip)
    {
        using var a = new ZipArchive(zip, ZipArchiveMode.Read);
        var list = new List<(string, byte[])>();
        foreach (var e in a.Entries)
        {
            using var s = e.Open();
            using var m = new MemoryStream();
            s.CopyTo(m);
            list.Add((e.FullName, m.ToArray()));
        }
        return list;
    }

    /// <summary>Writes <paramref name="entries"/> as a stored zip at <paramref name="path"/>, with <paramref name="data"/>
    /// in place of the entry <paramref name="replaced"/> picks.</summary>
    private static string Rebuild(string path, List<(string Name, byte[] Data)> entries, Func<string, bool> replaced, byte[] data)
    {
        using var fs = File.Create(path);
        using var a = new ZipArchive(fs, ZipArchiveMode.Create);
        foreach (var (name, bytes) in entries)
        {
            using var s = a.CreateEntry(name, CompressionLevel.NoCompression).Open();
            s.Write(replaced(name) ? data : bytes);
        }
        return path;
    }

    private static List<byte[]> HfSeeds(string work)
    {
        using var model = Model();
        var dir = Path.Combine(work, "hf");
        model.SavePretrained(dir, Preprocessing, ["a", "b", "c"]);
        return [File.ReadAllBytes(Path.Combine(dir, "config.json"))];
    }

    /// <summary>A torchvision VisionTransformer of the tiny shape, saved by PyTorch itself (python3-torch).</summary>
    private static string PthSeed(string dir)
    {
        var path = Path.Combine(dir, "seed.pth");
        if (File.Exists(path)) return path;
        var script = "import torch, torchvision\n" +
                     "torch.manual_seed(0)\n" +
                     "m = torchvision.models.vision_transformer.VisionTransformer(image_size=8, patch_size=4, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16, num_classes=3)\n" +
                     $"torch.save(m.state_dict(), r'{path}')\n";
        var python = Environment.GetEnvironmentVariable("VIT_PYTHON") ?? "/usr/bin/python3";
        var psi = new ProcessStartInfo(python) { RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        psi.ArgumentList.Add("-");
        using var p = Process.Start(psi)!;
        p.StandardInput.Write(script);
        p.StandardInput.Close();
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{python} could not write the .pth seed (python3-torch and python3-torchvision needed): {err}");
        return path;
    }

    private static List<(string Name, byte[] Data)> PthEntries = [];

    private static bool IsPickle(string name) => name.EndsWith("/data.pkl", StringComparison.Ordinal);

    private static byte[] PickleOf(string pth)
    {
        PthEntries = ReadEntries(File.OpenRead(pth));
        return PthEntries.FirstOrDefault(e => IsPickle(e.Name)).Data ?? throw new InvalidOperationException($"{pth} has no data.pkl");
    }

    private static string WithPickle(string dir, byte[] pickle) => Rebuild(Path.Combine(dir, "p.pth"), PthEntries, IsPickle, pickle);
}
