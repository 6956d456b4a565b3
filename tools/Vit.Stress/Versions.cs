using Microsoft.ML;
using Vit.MLNet;
using Vit.MLNet.Tests;

namespace Vit.Stress;

/// <summary>Model files of a few versions (the tests' tiny pipeline, trained one epoch from different seeds) and each
/// one's sequential answers on a generated image folder: what every later answer is compared with.</summary>
internal sealed class Versions
{
    public required string Dir { get; init; }
    public required string[] Files { get; init; }
    public required string[] Images { get; init; }
    public required float[][][] Scores { get; init; }

    public static Versions Make(int count)
    {
        var dir = Directory.CreateTempSubdirectory("vit-stress-").FullName;
        var folder = Fixtures.Make(perClass: 6, size: 16, seed: 1);
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromImageFolder(folder);
        var images = Directory.GetFiles(folder, "*.png", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToArray();
        var files = new string[count];
        var scores = new float[count][][];
        for (int v = 0; v < count; v++)
        {
            var options = Fixtures.TinyOptions(1);
            options.Seed = v + 1;
            using (var m = Fixtures.Pipeline(ml, options).Fit(data))
                ml.Model.SaveAtomic(m, data.Schema, files[v] = Path.Combine(dir, $"v{v}.zip"));
            scores[v] = Sequential(files[v], images);
        }
        return new Versions { Dir = dir, Files = files, Images = images, Scores = scores };
    }

    /// <summary>One engine, no pool: the answers of a model file, image by image.</summary>
    public static float[][] Sequential(string modelFile, string[] images)
    {
        var ml = new MLContext();
        using var m = (IDisposable)ml.Model.Load(modelFile, out _);
        var engine = ml.Model.CreatePredictionEngine<ImageInput, ImagePrediction>((ITransformer)m);
        return images.Select(f => engine.Predict(new ImageInput { ImagePath = f }).Score).ToArray();
    }

    /// <summary>The version whose sequential answer to image <paramref name="image"/> is exactly <paramref name="score"/>, or -1.</summary>
    public int Which(int image, float[] score)
    {
        for (int v = 0; v < Scores.Length; v++)
            if (Scores[v][image].AsSpan().SequenceEqual(score)) return v;
        return -1;
    }

    /// <summary>The version whose answers to every image are exactly <paramref name="scores"/>, or -1.</summary>
    public int Which(float[][] scores)
    {
        for (int v = 0; v < Scores.Length; v++)
            if (Enumerable.Range(0, Images.Length).All(i => Scores[v][i].AsSpan().SequenceEqual(scores[i]))) return v;
        return -1;
    }
}
