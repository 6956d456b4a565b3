using Vit.MLNet;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.WebApp.Tests;

/// <summary>Two small colour classifiers (different seeds and epochs) saved as model files, and the images they read.</summary>
internal static class WebFixtures
{
    public static readonly string[] Classes = ["blue", "green", "red"];
    public const int Side = 16;

    private static readonly Lazy<(string Root, string A, string B)> made = new(Make);

    public static string Root => made.Value.Root;

    public static string ModelA => made.Value.A;

    public static string ModelB => made.Value.B;

    public static string Images => Path.Combine(Root, "photos");

    public static string[] Files => Classes.SelectMany(c => Directory.GetFiles(Path.Combine(Images, c))).Order(StringComparer.Ordinal).ToArray();

    /// <summary>The repository root (the folder with Vit.sln).</summary>
    public static string Repo
    {
        get
        {
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "Vit.sln"))) return d.FullName;
            throw new InvalidOperationException("Vit.sln not found above " + AppContext.BaseDirectory);
        }
    }

    private static (string, string, string) Make()
    {
        var root = Directory.CreateTempSubdirectory("vit-web-").FullName;
        var rng = new Random(5);
        foreach (var (cls, hot) in Classes.Select(c => (c, c switch { "red" => 0, "green" => 1, _ => 2 })))
        {
            var dir = Directory.CreateDirectory(Path.Combine(root, "photos", cls)).FullName;
            for (int i = 0; i < 12; i++)
            {
                var px = new byte[Side * Side * 3];
                for (int p = 0; p < Side * Side; p++)
                    for (int ch = 0; ch < 3; ch++) px[p * 3 + ch] = (byte)(ch == hot ? rng.Next(150, 256) : rng.Next(0, 110));
                using var img = Image.FromPixels(px, Side, Side, 3);
                File.WriteAllBytes(Path.Combine(dir, $"{i:D2}.png"), img.EncodePng());
            }
        }
        var ctx = new VitContext(seed: 1);
        var data = ctx.Data.LoadFromImageFolder(Path.Combine(root, "photos"));
        string Save(int epochs, int seed, string name)
        {
            var options = new VitEstimator.Options
            {
                Architecture = VitArchitecture.Custom, Epochs = epochs, BatchSize = 8, LearningRate = 3e-3, Seed = seed,
                CustomConfig = new VitConfig { ImageSize = Side, PatchSize = 8, Channels = 3, Dim = 32, Depth = 2, Heads = 2, MlpDim = 64 },
                Augmentation = AugmentPreset.None, Workers = 1,
            };
            using var m = ctx.Transforms.LoadImages("Image", imageFolder: "", inputColumnName: "ImagePath")
                .Append(ctx.Transforms.ResizeImages("Image", Side, Side)).Append(new VitEstimator(ctx, options)).Fit(data);
            var path = Path.Combine(root, name);
            ctx.Model.Save(m, data.Schema, path);
            return path;
        }
        return (root, Save(8, 1, "a.zip"), Save(3, 2, "b.zip"));
    }

    public sealed class PathInput
    {
        public string ImagePath { get; set; } = "";
    }

    public sealed class Output
    {
        public string PredictedLabel { get; set; } = "";

        public float[] Score { get; set; } = [];
    }

    /// <summary>A model file's answers for every fixture image, from a single engine reading the files by path.</summary>
    public static Dictionary<string, float[]> Expected(string model)
    {
        var ctx = new VitContext();
        using var m = (IDisposable)ctx.Model.Load(model, out _);
        var engine = ctx.Model.CreatePredictionEngine<PathInput, Output>((ITransformer)m);
        return Files.ToDictionary(f => f, f => engine.Predict(new PathInput { ImagePath = f }).Score);
    }
}
