using Microsoft.ML;
using Vit.MLNet;
using Vit.MLNet.Tests;
using Vit.Torch.Imaging;

namespace Vit.WebApp.Tests;

/// <summary>Two small colour classifiers (different seeds and epochs) saved as ML.NET model files, and the images they read.
/// The pipeline is the ML.NET tests' (<see cref="Fixtures.Pipeline"/>): LoadImages → ResizeImages(16) → the ViT →
/// MapKeyToValue("PredictedLabel").</summary>
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
        string Save(int epochs, int seed, string name)
        {
            var ml = new MLContext(seed: 1);
            var data = ml.Data.LoadFromImageFolder(Path.Combine(root, "photos"));
            var options = Fixtures.TinyOptions(epochs);
            options.Seed = seed;
            using var m = Fixtures.Pipeline(ml, options).Fit(data);
            var path = Path.Combine(root, name);
            ml.Model.Save(m, data.Schema, path);
            return path;
        }
        return (root, Save(8, 1, "a.zip"), Save(3, 2, "b.zip"));
    }

    /// <summary>A model file's answers for every fixture image, from a single engine reading the files by path (the
    /// model's own LoadImages step).</summary>
    public static Dictionary<string, float[]> Expected(string model) => Expected(model, Files);

    /// <summary>A model file's answers for <paramref name="files"/>: <c>ml.Model.Load</c> and a prediction engine that reads
    /// each file by path.</summary>
    public static Dictionary<string, float[]> Expected(string model, IEnumerable<string> files)
    {
        var ml = new MLContext();
        var m = ml.Model.Load(model, out _);
        try
        {
            using var engine = ml.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(m, new PredictionEngineOptions { OwnsTransformer = false });
            return files.ToDictionary(f => f, f => engine.Predict(new ImageInput { ImagePath = f }).Score);
        }
        finally
        {
            (m as IDisposable)?.Dispose();
        }
    }
}
