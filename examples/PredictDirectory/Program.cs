// The business-app case: load a model file, classify every image in a folder with a PredictionEngine, print
// file, label and confidence.
//
//   dotnet run -c Release --project examples/PredictDirectory -- model.zip photos/
using System.Globalization;
using Microsoft.ML;
using Vit.MLNet;
using Vit.Torch.Data;

if (args.Length != 2)
{
    Console.Error.WriteLine("usage: PredictDirectory <model.zip> <folder>");
    return 2;
}
var (modelPath, folder) = (args[0], args[1]);
if (!File.Exists(modelPath))
{
    Console.Error.WriteLine($"error: model file not found: {modelPath}");
    return 2;
}
if (!Directory.Exists(folder))
{
    Console.Error.WriteLine($"error: folder not found: {folder}");
    return 2;
}

var ml = new MLContext();
ITransformer model;
try
{
    model = ml.Model.Load(modelPath, out _);
}
catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException or InvalidOperationException or FormatException)
{
    Console.Error.WriteLine($"error: cannot load the model: {e.Message}");
    return 3;
}
PredictionEngine<ImageInput, ImagePrediction> engine;
try
{
    engine = ml.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(model);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"error: this model does not read image files by path: {e.Message}");
    return 3;
}
var files = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
    .Where(f => ImageFolder.Extensions.Contains(Path.GetExtension(f))).Order(StringComparer.Ordinal).ToList();
if (files.Count == 0)
{
    Console.Error.WriteLine($"error: no .jpg, .jpeg, .png, .bmp or .webp files in {folder}");
    return 2;
}
int failed = 0;
foreach (var file in files)
{
    try
    {
        var p = engine.Predict(new ImageInput { ImagePath = file });
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{Path.GetRelativePath(folder, file)}\t{p.PredictedLabel}\t{p.Score.Max():P1}"));
    }
    // A missing file (LoadImages: FileNotFoundException), one SkiaSharp cannot decode (ArgumentException), or one our
    // decoder refuses (InvalidDataException).
    catch (Exception e) when (e is FileNotFoundException or ArgumentException or InvalidDataException)
    {
        failed++;
        Console.Error.WriteLine($"{Path.GetRelativePath(folder, file)}\terror: {e.Message}");
    }
}
Console.WriteLine($"{files.Count - failed} classified, {failed} unreadable");
return failed == 0 ? 0 : 1;

/// <summary>The input row: one column, the image path.</summary>
public sealed class ImageInput
{
    public string ImagePath { get; set; } = "";
}

/// <summary>The output row: the model's columns.</summary>
public sealed class ImagePrediction
{
    public string PredictedLabel { get; set; } = "";

    public float[] Score { get; set; } = [];
}
