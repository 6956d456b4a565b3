// An image classifier the way an ML.NET user writes one, with the ViT as the trainer:
//   MapValueToKey("Label") -> LoadImages -> ResizeImages -> VitEstimator -> MapKeyToValue("PredictedLabel"),
// Fit, ML.NET's own Evaluate, ML.NET's own Save; then a NEW PROCESS loads the model file with ml.Model.Load and checks
// that CreatePredictionEngine gives the same labels and scores as the model that was trained.
//
//   dotnet run -c Release --project examples/MLNetPipeline -- [--per-class 500] [--test-per-class 100] [--epochs 10] [--out runs/mlnet]
//
// The pictures are Fashion-MNIST's (Debian's dataset-fashion-mnist), written out as PNG files in <out>/<split>/<class>/,
// as a user's photos would be.
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Vit.MLNet;
using Vit.Torch.Data;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

var cli = new ExampleArgs(args);
if (cli.Text("--check", "") is { Length: > 0 } checkModel)
    return Check(checkModel, cli.Text("--expected", ""));

int perClass = cli.Int("--per-class", 500), testPerClass = cli.Int("--test-per-class", 100), epochs = cli.Int("--epochs", 10);
var outDir = Path.GetFullPath(cli.Text("--out", "runs/mlnet"));
var ml = new MLContext(seed: 1);
ml.Log += (_, e) => { if (e.Kind >= Microsoft.ML.Runtime.ChannelMessageKind.Warning) Console.WriteLine($"  ML.NET: {e.Message}"); };

IDataView train = FashionMnistFiles.Rows(ml, FashionMnist.Load(train: true), outDir, "train", 0, 9, perClass);
IDataView test = FashionMnistFiles.Rows(ml, FashionMnist.Load(train: false), outDir, "test", 0, 9, testPerClass);

var options = new VitEstimator.Options
{
    // The main job's small ViT: 28x28 grayscale, 4x4 patches of 7 pixels, width 96, 4 blocks.
    Architecture = VitArchitecture.Custom,
    CustomConfig = new VitConfig { ImageSize = 28, PatchSize = 7, Channels = 1, Dim = 96, Depth = 4, Heads = 4, MlpDim = 192 },
    Channels = 1, Normalization = FashionMnist.Normalization, Epochs = epochs, BatchSize = 64,
    HorizontalFlip = true, Augmentation = AugmentPreset.Light,
    Progress = new Progress<Vit.Torch.Training.VitTrainingProgress>(p =>
    {
        if (p.Step == p.TotalSteps || p.Step % 100 == 0)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  epoch {p.Epoch}/{p.Epochs} step {p.Step}/{p.TotalSteps} loss {p.Loss:F3} acc {p.Accuracy:P1} {p.ImagesPerSecond:F0} img/s"));
    }),
};
var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
    .Append(ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath"))
    .Append(ml.Transforms.ResizeImages("Image", 28, 28))
    .Append(new VitEstimator(ml, options))
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));

Console.WriteLine($"training on {perClass} images per class ({10 * perClass}), {epochs} epochs");
var clock = Stopwatch.StartNew();
using var model = pipeline.Fit(train);
Console.WriteLine($"fit in {clock.Elapsed.TotalSeconds:F0} s");

var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test), topKPredictionCount: 3);
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"ML.NET's evaluator on {10 * testPerClass} test images: micro accuracy {metrics.MicroAccuracy:P2}, macro {metrics.MacroAccuracy:P2}, " +
    $"top-3 {metrics.TopKAccuracy:P2}, log-loss {metrics.LogLoss:F4}"));
Console.WriteLine(metrics.ConfusionMatrix.GetFormattedConfusionTable());

var modelPath = Path.Combine(outDir, "model.zip");
ml.Model.Save(model, train.Schema, modelPath);
Console.WriteLine($"saved {modelPath} ({new FileInfo(modelPath).Length / 1e6:F1} MB)");

// What this process predicts for each test image, one at a time, for the new process to compare with.
var engine = ml.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(model);
var expected = Path.Combine(outDir, "predictions.tsv");
var files = ml.Data.CreateEnumerable<ImageInput>(test, reuseRowObject: false).Select(r => r.ImagePath).ToList();
File.WriteAllLines(expected, files.Select(f => engine.Predict(new ImageInput { ImagePath = f }) is var p
    ? $"{f}\t{p.PredictedLabel}\t{string.Join(",", p.Score.Select(s => s.ToString("R", CultureInfo.InvariantCulture)))}" : ""));

// A new process: nothing of this one's model survives there but the file.
var self = Environment.ProcessPath!;
var child = new ProcessStartInfo(self) { UseShellExecute = false };
if (Path.GetFileNameWithoutExtension(self) == "dotnet") child.ArgumentList.Add(typeof(ImageInput).Assembly.Location);
foreach (var a in new[] { "--check", modelPath, "--expected", expected }) child.ArgumentList.Add(a);
using var process = Process.Start(child)!;
process.WaitForExit();
return process.ExitCode;

// In the new process: load with ML.NET, predict each image, compare.
static int Check(string modelPath, string expectedPath)
{
    var ml = new MLContext();
    var model = ml.Model.Load(modelPath, out _);
    var engine = ml.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(model);
    int differentLabels = 0, rows = 0;
    double maxDifference = 0;
    foreach (var line in File.ReadLines(expectedPath))
    {
        var fields = line.Split('\t');
        var p = engine.Predict(new ImageInput { ImagePath = fields[0] });
        var scores = fields[2].Split(',').Select(s => float.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        if (p.PredictedLabel != fields[1]) differentLabels++;
        maxDifference = Math.Max(maxDifference, scores.Zip(p.Score, (a, b) => (double)Math.Abs(a - b)).Max());
        rows++;
    }
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"new process (pid {Environment.ProcessId}): ml.Model.Load + CreatePredictionEngine on {rows} test images: " +
        $"{differentLabels} different labels, largest score difference {maxDifference:G3}"));
    return differentLabels == 0 && maxDifference <= 1e-5 ? 0 : 1;
}

/// <summary>The input row: the image file, and the label column the pipeline's MapValueToKey reads (empty when predicting).</summary>
public sealed class ImageInput
{
    public string ImagePath { get; set; } = "";

    public string Label { get; set; } = "";
}

/// <summary>The output row: the class name (MapKeyToValue of the predicted key) and the class probabilities.</summary>
public sealed class ImagePrediction
{
    public string PredictedLabel { get; set; } = "";

    public float[] Score { get; set; } = [];
}
