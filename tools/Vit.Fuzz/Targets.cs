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

/// <summary>One reader under fuzzing: the valid seed files it starts from, and how an input reaches the reader.</summary>
/// <param name="Name">The format's name on the command line.</param>
/// <param name="Seeds">Writes what the reader needs besides the input into the folder it is given (the rest of a zip
/// or of a Hugging Face folder), and returns the valid inputs fuzzing starts from.</param>
/// <param name="Read">Hands one input to the reader, through that same folder.</param>
internal sealed record Target(string Name, Func<string, List<byte[]>> Seeds, Action<byte[], string> Read);

/// <summary>The readers a user can hand a file to, each fed through its public entry point.</summary>
internal static class Targets
{
    /// <summary>The name the CSV reader is given for its input (a refusal names it as it would a file).</summary>
    public const string CsvSource = "fuzz.csv";

    /// <summary>Every format, in the order a campaign runs them. Adding a format is one entry here.</summary>
    public static readonly IReadOnlyList<Target> All =
    [
        new("safetensors", SafetensorsSeeds, ReadSafetensors),
        new("model-zip", dir => [ZipSeed(dir)], (bytes, work) => VitModelZip.Load(Write(work, "m.zip", bytes), null, out _, out _).Dispose()),
        // model.json alone mutated, inside an otherwise valid model zip.
        new("model-json", dir => [ModelJson(ZipSeed(dir))], (bytes, work) => VitModelZip.Load(WithModelJson(work, bytes), null, out _, out _).Dispose()),
        // config.json of a Hugging Face folder mutated; the weights stay valid.
        new("hf-config", HfSeeds, ReadHfConfig),
        new("pth", dir => [File.ReadAllBytes(PthSeed(dir))], ReadPth),
        // The pickle inside a torch.save zip mutated alone, the zip rebuilt around it.
        new("pickle", dir => [PickleOf(PthSeed(dir))], (bytes, work) => ReadTensors(TorchCheckpoint.Open(WithPickle(work, bytes)))),
        // Images: our header checks, then SkiaSharp's decoder; what decodes is converted, resampled, encoded and read again.
        new("jpeg", _ => ImageSeeds(i => i.Channels == 4 ? null : i.EncodeJpeg(85)), ReadImage),
        new("png", _ => ImageSeeds(i => i.EncodePng()), ReadImage),
        new("bmp", _ => ImageSeeds(i => i.Channels == 4 ? null : i.EncodeBmp()), ReadImage),
        new("webp", _ => ImageSeeds(i => i.EncodeWebP(80), i => i.EncodeWebP(lossless: true)), ReadImage),
        new("csv", _ => [Encoding.UTF8.GetBytes("ImagePath,Label\nphotos/cat/1.jpg,cat\n\"photos/a, b.png\",\"dog \"\"big\"\"\"\n\nphotos/x.png,cat\r\n")],
            (bytes, _) => Csv.Parse(Encoding.UTF8.GetString(bytes), ',', CsvSource)),
    ];

    /// <summary>The formats' names, in campaign order.</summary>
    public static IEnumerable<string> Names => All.Select(t => t.Name);

    public static Target Get(string name) =>
        All.FirstOrDefault(t => t.Name == name) ?? throw new ArgumentException($"unknown format '{name}' (formats: {string.Join(", ", Names)})");

    // Nothing of Vit.Torch runs in this class's static initialisation: under afl-fuzz, Vit.Torch.dll is instrumented, and
    // its code may run only once SharpFuzz has mapped the coverage memory (its fork server names the target first).

    /// <summary>A ViT small enough that an input that still loads costs microseconds: 8x8 images, D 8, 2 heads.</summary>
    private static VisionTransformer Model()
    {
        Engine.ManualSeed(3);
        return new VisionTransformer(new VitConfig
        {
            ImageSize = 8, PatchSize = 4, Channels = 3, Dim = 8, Depth = 1, Heads = 2, MlpDim = 16, NumClasses = 3,
        });
    }

    /// <summary>The name an image input is decoded under (a refusal names it as it would a file).</summary>
    public const string ImageSource = "fuzz-image";

    // Small pictures (gray, RGB, RGBA; smooth with some noise) in each encoding that takes them.
    private static List<byte[]> ImageSeeds(params Func<Image, byte[]?>[] encodings)
    {
        var rng = new Random(5);
        var seeds = new List<byte[]>();
        foreach (var (w, h, c) in new[] { (16, 12, 3), (9, 7, 1), (6, 5, 4) })
        {
            var px = new byte[w * h * c];
            for (int i = 0; i < px.Length; i++) px[i] = (byte)(i * 7 % 200 + rng.Next(40));
            using var image = Image.FromPixels(px, w, h, c);
            foreach (var encode in encodings)
                if (encode(image) is { } bytes) seeds.Add(bytes);
        }
        return seeds;
    }

    private static void ReadImage(byte[] bytes, string work)
    {
        // A 4-megapixel limit: a header that claims more is refused (the check under test) without decoding it.
        using var image = Image.Decode(bytes, new ImageDecodeOptions { MaxPixels = 4_000_000 }, Path.Combine(work, ImageSource));
        using var rgb = image.ToChannels(3);
        using var small = rgb.Resize(13, 21, ResizeMode.Crop, Interpolation.Bicubic);
        using var again = Image.Decode(small.EncodePng());
        if (again.Width != 13 || again.Height != 21) throw new InvalidOperationException($"the resized image reads back as {again}");
    }

    private static VitPreprocessing Preprocessing() => new(8, 3, Normalization.ImageNet);

    private static void ReadSafetensors(byte[] bytes, string work)
    {
        var path = Write(work, "w.safetensors", bytes);
        ReadTensors(Safetensors.Open(path));
        using var m = PretrainedVit.Load(path);
    }

    private static void ReadHfConfig(byte[] bytes, string work)
    {
        var dir = Path.Combine(work, "hf");
        File.WriteAllBytes(Path.Combine(dir, "config.json"), bytes);
        using var m = PretrainedVit.Load(dir);
    }

    private static void ReadPth(byte[] bytes, string work)
    {
        var path = Write(work, "w.pth", bytes);
        ReadTensors(TorchCheckpoint.Open(path));
        using var m = PretrainedVit.Load(path, new PretrainedVitOptions { Heads = 2 });
    }

    /// <summary>Reads every tensor whose size the file's data could hold (as PretrainedVit bounds what it reads), then
    /// closes the file.</summary>
    private static void ReadTensors(ITensorFile opened)
    {
        using var f = opened;
        foreach (var t in f.Tensors)
            if (t.ByteLength <= 64 * Math.Max(1, f.DataLength)) f.Read(t.Name).Dispose();
    }

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
        Safetensors.Save(path, model.NamedParameters(), VitMetadata.Of(model.Config, Preprocessing(), ["a", "b", "c"]));
        return [File.ReadAllBytes(path)];
    }

    private static byte[] ZipSeed(string dir)
    {
        using var model = Model();
        var path = Path.Combine(dir, "seed.zip");
        VitModelZip.Save(path, model, ["a", "b", "c"], Preprocessing(), trainingJson: "{\"epochs\": 1}");
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
        model.SavePretrained(dir, Preprocessing(), ["a", "b", "c"]);
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
