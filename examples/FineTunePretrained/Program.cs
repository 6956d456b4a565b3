// Fine-tune a published ViT checkpoint on a few hundred images, the way the reference notebooks do with torchvision's
// vit_b_16 and Hugging Face's google/vit-base-patch16-224, and print test accuracy before and after.
//
//   dotnet run -c Release --project examples/FineTunePretrained -- [--per-class 100] [--epochs N] [--out runs/finetune-pretrained]
//       Makes both kinds of checkpoint on the spot, nothing downloaded: pretrain_torchvision.py trains a torchvision
//       VisionTransformer on Fashion-MNIST classes 0-4 with PyTorch and saves it as a torchvision .pth and as a Hugging
//       Face folder. Then (1) imports the Hugging Face folder as it is and scores classes 0-4 with its own labels;
//       (2) trains a new head on the .pth's frozen backbone for classes 5-9 from --per-class images per class;
//       (3) fine-tunes every weight from the Hugging Face folder (layer decay 0.75) on the same images; (4) trains the
//       same architecture from scratch on them, and the smaller grayscale ViT of the PyTorch peer, for comparison;
//       (5) feeds the Hugging Face backbone's features to ML.NET's
//       L-BFGS maximum-entropy trainer, as ML.NET's own ResNet18 recipe does. The split is the one of
//       benchmarks/peer/few-images: the first --per-class images of each of classes 5-9, all 5,000 test images of them.
//       Epochs: by default as many as 1,000 optimizer steps need (VitEstimator.Options.Epochs null), or --epochs N.
//
//   dotnet run -c Release --project examples/FineTunePretrained -- --from <checkpoint> --data <folder> [--head-only] [--heads N]
//       Your own: a downloaded google/vit-base-patch16-224 folder, a torchvision vit_b_16 .pth, a timm .safetensors,
//       and a folder of <label>/<image> files (80% fine-tunes, 20% tests).
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Vit.MLNet;
using Vit.Torch;
using Vit.Torch.Checkpoints;
using Vit.Torch.Data;
using Vit.Torch.Training;

var cli = new ExampleArgs(args);
if (cli.Has("--help") || cli.Has("-h"))
{
    Console.WriteLine("usage: FineTunePretrained [--per-class N] [--epochs N] [--pretrain-epochs N] [--out DIR]");
    Console.WriteLine("       FineTunePretrained --from <HF folder | .pth | .safetensors | model.zip> --data <image folder> [--head-only] [--heads N] [--epochs N]");
    return 0;
}
int perClass = cli.Int("--per-class", 100);
int? epochs = cli.Int("--epochs", 0) is > 0 and var n ? n : null;  // null: chosen from the data's size
var outDir = Path.GetFullPath(cli.Text("--out", "runs/finetune-pretrained"));
var ml = new MLContext(seed: 1);
var progress = new Progress<VitTrainingProgress>(p =>
{
    if (p.Step == p.TotalSteps || p.Step % 20 == 0)
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"    epoch {p.Epoch}/{p.Epochs} step {p.Step}/{p.TotalSteps} loss {p.Loss:F3} lr {p.LearningRate:G3} {p.ImagesPerSecond:F0} img/s"));
});
string Percent(double v) => (100 * v).ToString("F2", CultureInfo.InvariantCulture) + "%";
double headLr = cli.Double("--head-lr", 5e-3), fullLr = cli.Double("--lr", 3e-4);
var load = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath");

if (cli.Text("--from", "") is { Length: > 0 } from)
{
    // Your checkpoint and your images.
    var folder = cli.Text("--data", "");
    if (!Directory.Exists(folder))
    {
        Console.Error.WriteLine($"--data: '{folder}' is not a folder of <label>/<image> files");
        return 2;
    }
    var split = ml.Data.TrainTestSplit(ml.Data.LoadFromImageFolder(folder), testFraction: 0.2, seed: 1);
    var (train, test) = (split.TrainSet, split.TestSet);
    var headOnly = cli.Has("--head-only");
    var options = new VitEstimator.Options
    {
        StartFrom = from, FineTune = headOnly ? FineTuneMode.HeadOnly : FineTuneMode.Full, LayerDecay = headOnly ? null : 0.75,
        Epochs = epochs, BatchSize = 16, Progress = progress,
        StartFromOptions = cli.Int("--heads", 0) is > 0 and var heads ? new PretrainedVitOptions { Heads = heads } : null,
    };
    var (before, after) = FineTune(options, train, test);
    Console.WriteLine($"test accuracy: before fine-tuning {Percent(before)}, after {Percent(after)}");
    return 0;
}

// 1. The checkpoints, made with PyTorch and torchvision (cached in --out).
var checkpoints = Path.Combine(outDir, "checkpoints");
var pth = Path.Combine(checkpoints, "vit_fmnist04.pth");
var hf = Path.Combine(checkpoints, "hf");
if (!File.Exists(pth) || !Directory.Exists(hf))
{
    Console.WriteLine("1) PyTorch pretrains a torchvision VisionTransformer on Fashion-MNIST classes 0-4 (pretrain_torchvision.py)");
    var python = Environment.GetEnvironmentVariable("VIT_PYTHON") is { Length: > 0 } p ? p : "/usr/bin/python3";
    var script = Path.Combine(AppContext.BaseDirectory, "pretrain_torchvision.py");
    var psi = new ProcessStartInfo(python) { UseShellExecute = false };
    foreach (var a in new[] { script, FashionMnist.DefaultDirectory, checkpoints, cli.Int("--pretrain-epochs", 2).ToString(CultureInfo.InvariantCulture) })
        psi.ArgumentList.Add(a);
    using var run = Process.Start(psi)!;
    run.WaitForExit();
    if (run.ExitCode != 0)
    {
        Console.Error.WriteLine($"{python} {script} failed (exit code {run.ExitCode}); it needs Debian's python3-torchvision (sudo bash eng/install-deps.sh)");
        return 2;
    }
}
else
{
    Console.WriteLine($"1) using the checkpoints made earlier in {checkpoints}");
}

var trainSet = FashionMnist.Load(train: true);
var testSet = FashionMnist.Load(train: false);
var images = Path.Combine(outDir, "images");
var oldTest = FashionMnistFiles.Rows(ml, testSet, images, "test", 0, 4, int.MaxValue);
var newTrain = FashionMnistFiles.Rows(ml, trainSet, images, "train", 5, 9, perClass);
var newTest = FashionMnistFiles.Rows(ml, testSet, images, "test", 5, 9, int.MaxValue);

// 2. The Hugging Face classifier as it is: its own labels (id2label) and preprocessing (preprocessor_config.json).
Console.WriteLine("2) the Hugging Face folder imported as a classifier, no training (its labels, its preprocessing)");
using (var imported = ml.Model.LoadPretrainedVit(hf))
{
    imported.Precision = Precision.Float32;  // as PyTorch scored it above (the default, Auto, scores in bfloat16 where the CPU has it)
    Console.WriteLine($"   labels: {string.Join(", ", imported.Labels)}");
    var accuracy = ml.MulticlassClassification.EvaluateVit(imported, load.Fit(oldTest).Transform(oldTest)).MicroAccuracy;
    Console.WriteLine($"   test accuracy on classes 0-4: {Percent(accuracy)} (PyTorch printed its own above)");
}

// 3. A new head on the torchvision backbone, frozen (the reference notebooks' recipe for vit_b_16).
Console.WriteLine($"3) classes 5-9 from {perClass} images per class: a new head on the frozen backbone of {Path.GetFileName(pth)}");
var (headBefore, headAfter) = FineTune(new VitEstimator.Options
{
    StartFrom = pth, FineTune = FineTuneMode.HeadOnly, Epochs = epochs, LearningRate = headLr, Progress = progress,
}, newTrain, newTest);

// 4. Every weight from the Hugging Face folder, with layer-wise learning-rate decay.
Console.WriteLine("4) classes 5-9, every weight fine-tuned from the Hugging Face folder (layer decay 0.75)");
var (fullBefore, fullAfter) = FineTune(new VitEstimator.Options
{
    StartFrom = hf, FineTune = FineTuneMode.Full, LayerDecay = 0.75, Epochs = epochs, LearningRate = fullLr, Progress = progress,
}, newTrain, newTest, save: Path.Combine(outDir, "model.zip"));

// 5. For comparison: the same architecture from scratch on the same images.
Console.WriteLine("5) classes 5-9 from scratch, the same architecture and images");
double scratch;
using (var fromScratch = load.Append(new VitEstimator(ml, new VitEstimator.Options
{
    Architecture = VitArchitecture.Custom, Epochs = epochs, Progress = progress,
    CustomConfig = new Vit.Torch.Model.VitConfig { ImageSize = 28, PatchSize = 7, Dim = 192, Depth = 4, Heads = 3, MlpDim = 384 },
})).Fit(newTrain))
    scratch = ml.MulticlassClassification.EvaluateVit(fromScratch, newTest).MicroAccuracy;

// 5b. The small grayscale ViT the PyTorch peer of benchmarks/peer/few-images trains, on the defaults.
Console.WriteLine("5b) classes 5-9 from scratch: the PyTorch peer's ViT (1 channel, patch 7, D 96, depth 4), default options");
double small;
using (var fromScratch = load.Append(new VitEstimator(ml, new VitEstimator.Options
{
    Architecture = VitArchitecture.Custom, Epochs = epochs, Progress = progress, Channels = 1, Normalization = FashionMnist.Normalization,
    CustomConfig = new Vit.Torch.Model.VitConfig { ImageSize = 28, PatchSize = 7, Channels = 1, Dim = 96, Depth = 4, Heads = 4, MlpDim = 192 },
})).Fit(newTrain))
    small = ml.MulticlassClassification.EvaluateVit(fromScratch, newTest).MicroAccuracy;

// 6. The backbone's features for an ML.NET trainer, the recipe ML.NET users know from DnnFeaturizeImage with ResNet18.
Console.WriteLine("6) classes 5-9: the Hugging Face backbone's pooled features + ML.NET's L-BFGS maximum entropy");
double features;
var clock6 = Stopwatch.StartNew();
using (var featured = ml.Transforms.Conversion.MapValueToKey("Label")
    .Append(load)
    .Append(ml.Transforms.FeaturizeImageWithVit(hf, outputColumnName: "Features", inputColumnName: "Image"))
    .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy("Label", "Features"))
    .Fit(newTrain))
    features = ml.MulticlassClassification.Evaluate(featured.Transform(newTest)).MicroAccuracy;
Console.WriteLine($"   {Percent(features)} ({clock6.Elapsed.TotalSeconds:F0} s)");

Console.WriteLine($"test accuracy on classes 5-9 ({perClass} training images per class):");
Console.WriteLine($"  torchvision .pth, new head on the frozen backbone: before {Percent(headBefore)}, after {Percent(headAfter)}");
Console.WriteLine($"  Hugging Face folder, every weight fine-tuned:      before {Percent(fullBefore)}, after {Percent(fullAfter)}");
Console.WriteLine($"  from scratch:                                      {Percent(scratch)}");
Console.WriteLine($"  from scratch, the PyTorch peer's small ViT:       {Percent(small)}");
Console.WriteLine($"  Hugging Face backbone's features + L-BFGS:         {Percent(features)}");
return 0;

// Accuracy with a fresh, untrained head (0 epochs), then after training with the given options.
(double Before, double After) FineTune(VitEstimator.Options options, IDataView train, IDataView test, string? save = null)
{
    var epochsWanted = options.Epochs;
    options.Epochs = 0;
    double before, after;
    using (var untrained = load.Append(new VitEstimator(ml, options)).Fit(train))
        before = ml.MulticlassClassification.EvaluateVit(untrained, test).MicroAccuracy;
    options.Epochs = epochsWanted;
    var clock = Stopwatch.StartNew();
    using var tuned = load.Append(new VitEstimator(ml, options)).Fit(train);
    after = ml.MulticlassClassification.EvaluateVit(tuned, test).MicroAccuracy;
    Console.WriteLine($"   before {Percent(before)}, after {Percent(after)} ({clock.Elapsed.TotalSeconds:F0} s)");
    if (save is not null)
    {
        ml.Model.Save(tuned, train.Schema, save);
        Console.WriteLine($"   saved {save}");
    }
    return (before, after);
}
