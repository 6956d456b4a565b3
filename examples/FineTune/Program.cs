// Pretrain a small ViT on Fashion-MNIST classes 0-4, save it, then fine-tune only a new head on classes 5-9
// starting from the saved model; print test accuracy on classes 5-9 before and after fine-tuning.
// The images are written as PNG files under runs/finetune/ (as a user's photos would be), and the fine-tuned
// model is saved as runs/finetune/model.zip, ready for examples/PredictDirectory.
//
//   dotnet run -c Release --project examples/FineTune -- [--per-class 1200] [--epochs 4] [--out runs/finetune]
using System.Globalization;
using Microsoft.ML;
using Vit.MLNet;
using Vit.Torch.Data;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

var cli = new ExampleArgs(args);
int perClass = cli.Int("--per-class", 1200), epochs = cli.Int("--epochs", 4);
var outDir = Path.GetFullPath(cli.Text("--out", "runs/finetune"));
var ml = new MLContext(seed: 1);
var train = FashionMnist.Load(train: true);
var test = FashionMnist.Load(train: false);

// Fashion-MNIST comes as pixels; each image is written as a PNG file in <out>/<split>/<class>/, like a user's photos.
IDataView Rows(InMemoryDataset d, string split, int from, int to, int max) => FashionMnistFiles.Rows(ml, d, outDir, split, from, to, max);

var config = new VitConfig { ImageSize = 28, PatchSize = 7, Channels = 1, Dim = 64, Depth = 4, Heads = 4, MlpDim = 128 };
var options = new VitEstimator.Options
{
    Architecture = VitArchitecture.Custom, CustomConfig = config, Channels = 1, Normalization = Normalization.Half,
    Epochs = epochs, BatchSize = 64, LearningRate = 2e-3, Augmentation = AugmentPreset.None,
    Progress = new Progress<Vit.Torch.Training.VitTrainingProgress>(p =>
    {
        if (p.Step % 50 == 0) Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  epoch {p.Epoch}/{p.Epochs} step {p.Step}/{p.TotalSteps} loss {p.Loss:F3} acc {p.Accuracy:P1} {p.ImagesPerSecond:F0} img/s eta {p.Eta:mm\\:ss}"));
    }),
};
var load = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath");

Console.WriteLine($"1) pretraining on classes 0-4 ({perClass} images per class)");
var preData = Rows(train, "train", 0, 4, perClass);
var pre = load.Append(new VitEstimator(ml, options)).Fit(preData);
var preAcc = ml.MulticlassClassification.EvaluateVit(pre, Rows(test, "test", 0, 4, int.MaxValue)).MicroAccuracy;
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"   test accuracy on classes 0-4: {preAcc:P2}"));
var saved = Path.Combine(outDir, "pretrained.zip");
ml.Model.Save(pre, preData.Schema, saved);
pre.Dispose();

Console.WriteLine("2) fine-tuning only a new head on classes 5-9, starting from the saved model");
var fineData = Rows(train, "train", 5, 9, perClass);
var testNew = Rows(test, "test", 5, 9, int.MaxValue);
// "Before": the saved backbone with a fresh, untrained head for the new classes (0 epochs: built, not trained).
var before = load.Append(new VitEstimator(ml, new VitEstimator.Options
{
    Architecture = VitArchitecture.Custom, CustomConfig = config, Channels = 1, Normalization = Normalization.Half,
    StartFrom = saved, FineTune = FineTuneMode.HeadOnly, Epochs = 0,
})).Fit(fineData);
var beforeAcc = ml.MulticlassClassification.EvaluateVit(before, testNew).MicroAccuracy;
before.Dispose();
options.StartFrom = saved;
options.FineTune = FineTuneMode.HeadOnly;
options.LearningRate = 5e-3;
options.Epochs = 2 * epochs;  // only the head trains: each epoch is cheap, and a linear probe needs a few more
var after = load.Append(new VitEstimator(ml, options)).Fit(fineData);
var afterAcc = ml.MulticlassClassification.EvaluateVit(after, testNew).MicroAccuracy;
var modelPath = Path.Combine(outDir, "model.zip");
ml.Model.Save(after, fineData.Schema, modelPath);
after.Dispose();
Console.WriteLine($"saved the fine-tuned model to {modelPath}; try: dotnet run -c Release --project examples/PredictDirectory -- {modelPath} {Path.Combine(outDir, "test", "Sandal")}");
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"test accuracy on classes 5-9: before fine-tuning {beforeAcc:P2}, after fine-tuning the head {afterAcc:P2}"));
return 0;
