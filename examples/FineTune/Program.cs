// Pretrain a small ViT on Fashion-MNIST classes 0-4, save it, then fine-tune only a new head on classes 5-9
// starting from the saved model; print test accuracy on classes 5-9 before and after fine-tuning.
//
//   dotnet run -c Release --project examples/FineTune -- [--per-class 1200] [--epochs 4]
using System.Globalization;
using Vit.MLNet;
using Vit.Torch.Data;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

int perClass = Arg("--per-class", 1200), epochs = Arg("--epochs", 4);
var ctx = new VitContext(seed: 1);
var train = FashionMnist.Load(train: true);
var test = FashionMnist.Load(train: false);

// Fashion-MNIST comes as pixels; encode each image as PNG bytes, as an app would receive uploads.
IDataView Rows(InMemoryDataset d, int from, int to, int max) => ctx.Data.LoadFromEnumerable(
    Enumerable.Range(0, d.Count).Where(i => d.Label(i) >= from && d.Label(i) <= to)
        .GroupBy(i => d.Label(i)).SelectMany(g => g.Take(max))
        .Select(i => new Row { ImageBytes = Png(d, i), Label = FashionMnist.ClassNames[(int)d.Label(i)] }).ToList());

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
var load = ctx.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImageBytes");

Console.WriteLine($"1) pretraining on classes 0-4 ({perClass} images per class)");
var pre = load.Append(new VitEstimator(ctx, options)).Fit(Rows(train, 0, 4, perClass));
var preAcc = ctx.MulticlassClassification.Evaluate(pre.Transform(Rows(test, 0, 4, int.MaxValue))).MicroAccuracy;
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"   test accuracy on classes 0-4: {preAcc:P2}"));
var saved = Path.Combine(Path.GetTempPath(), "vit-finetune-pretrained.zip");
ctx.Model.Save(pre, Rows(train, 0, 0, 1).Schema, saved);
pre.Dispose();

Console.WriteLine("2) fine-tuning only a new head on classes 5-9, starting from the saved model");
var fineData = Rows(train, 5, 9, perClass);
var testNew = Rows(test, 5, 9, int.MaxValue);
// "Before": the saved backbone with a fresh, untrained head for the new classes (0 epochs: built, not trained).
var before = load.Append(new VitEstimator(ctx, new VitEstimator.Options
{
    Architecture = VitArchitecture.Custom, CustomConfig = config, Channels = 1, Normalization = Normalization.Half,
    StartFrom = saved, FineTune = FineTuneMode.HeadOnly, Epochs = 0,
})).Fit(fineData);
var beforeAcc = ctx.MulticlassClassification.Evaluate(before.Transform(testNew)).MicroAccuracy;
before.Dispose();
options.StartFrom = saved;
options.FineTune = FineTuneMode.HeadOnly;
options.LearningRate = 5e-3;
var after = load.Append(new VitEstimator(ctx, options)).Fit(fineData);
var afterAcc = ctx.MulticlassClassification.Evaluate(after.Transform(testNew)).MicroAccuracy;
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"test accuracy on classes 5-9: before fine-tuning {beforeAcc:P2}, after fine-tuning the head {afterAcc:P2}"));
after.Dispose();
return 0;

static byte[] Png(InMemoryDataset d, int i)
{
    var px = new byte[28 * 28];
    var src = d.Image(i);
    for (int k = 0; k < px.Length; k++) px[k] = (byte)Math.Clamp(MathF.Round((src[k] * FashionMnist.Std + FashionMnist.Mean) * 255f), 0, 255);
    using var img = Image.FromPixels(px, 28, 28, 1);
    return img.EncodePng();
}

int Arg(string name, int fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}

internal sealed class Row
{
    public byte[] ImageBytes { get; set; } = [];

    public string Label { get; set; } = "";
}
