using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;
using Vit.MLNet;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.MLNet.Tests;

/// <summary>Input and output classes as an app would write them (for the tests' pipeline, whose labels are text and
/// whose PredictedLabel is turned back into text by MapKeyToValue).</summary>
public sealed class ImageInput
{
    public string ImagePath { get; set; } = "";
}

public sealed class ImagePrediction
{
    public string PredictedLabel { get; set; } = "";

    public float[] Score { get; set; } = [];
}

/// <summary>A generated image folder: three colour classes, each image a noisy field of its colour.</summary>
internal static class Fixtures
{
    public static readonly string[] Classes = ["blue", "green", "red"];

    private static readonly Lazy<string> folder = new(() => Make(perClass: 20, size: 24, seed: 1));

    /// <summary>Shared folder (created once per test run; read-only for tests).</summary>
    public static string Folder => folder.Value;

    public static string Make(int perClass, int size, int seed)
    {
        var root = Directory.CreateTempSubdirectory("vit-photos-").FullName;
        var rng = new Random(seed);
        for (int c = 0; c < Classes.Length; c++)
        {
            var dir = Directory.CreateDirectory(Path.Combine(root, Classes[c])).FullName;
            for (int i = 0; i < perClass; i++)
            {
                using var img = Image.FromPixels(Pixels(c, size, rng), size, size, 3);
                File.WriteAllBytes(Path.Combine(dir, $"{i:D3}.png"), img.EncodePng());
            }
        }
        return root;
    }

    /// <summary>HWC RGB bytes: channel (2 - c) bright (RGB order: blue=2, green=1, red=0), the rest dim, with noise.</summary>
    public static byte[] Pixels(int c, int size, Random rng)
    {
        int hot = c switch { 0 => 2, 1 => 1, _ => 0 };
        var px = new byte[size * size * 3];
        for (int i = 0; i < size * size; i++)
            for (int ch = 0; ch < 3; ch++)
                px[i * 3 + ch] = (byte)(ch == hot ? rng.Next(150, 256) : rng.Next(0, 110));
        return px;
    }

    public static VitConfig TinyConfig => new() { ImageSize = 16, PatchSize = 8, Channels = 3, Dim = 32, Depth = 2, Heads = 2, MlpDim = 64 };

    public static VitEstimator.Options TinyOptions(int epochs = 4) => new()
    {
        Architecture = VitArchitecture.Custom, CustomConfig = TinyConfig, Epochs = epochs, BatchSize = 8,
        LearningRate = 3e-3, Augmentation = AugmentPreset.None, Workers = 1,
    };

    /// <summary>LoadImages → ResizeImages(16) → the ViT (text labels) → MapKeyToValue("PredictedLabel").</summary>
    public static EstimatorChain<KeyToValueMappingTransformer> Pipeline(MLContext ml, VitEstimator.Options options) =>
        ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath")
            .Append(ml.Transforms.ResizeImages("Image", 16, 16))
            .Append(new VitEstimator(ml, options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
}
