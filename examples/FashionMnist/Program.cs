// Trains a Vision Transformer from scratch on Fashion-MNIST (Debian's dataset-fashion-mnist) and reports
// per-epoch loss, train/test accuracy, images/s and elapsed time. Checkpoints every epoch into --out (a killed run
// continues with --resume), then saves the weights and pictures of the run: learning curves, the test set's
// confusion matrix, attention rollout over test images.
//
//   dotnet run -c Release --project examples/FashionMnist -- [--preset long] [--epochs 10] [--out runs/fashion-mnist] [--resume]
using System.Diagnostics;
using System.Globalization;
using Vit.Torch;
using Vit.Torch.Checkpoints;
using Vit.Torch.Data;
using Vit.Torch.Imaging;
using Vit.Torch.Model;
using Vit.Torch.Training;

Args args2;
try
{
    args2 = Args.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}
if (args2.Help)
{
    Console.WriteLine(Args.Usage);
    return 0;
}

var total = Stopwatch.StartNew();
Torch.SetThreads(args2.Threads);
var train = FashionMnist.LoadImages(train: true, args2.DataDir);
var test = FashionMnist.LoadImages(train: false, args2.DataDir);
if (args2.Limit > 0)
{
    train = new ImageDataset(train.Samples.Take(args2.Limit).ToList(), train.ClassNames);
    test = new ImageDataset(test.Samples.Take(args2.Limit).ToList(), test.ClassNames);
}

var config = new VitConfig
{
    ImageSize = 28, PatchSize = args2.Patch, Channels = 1, NumClasses = 10,
    Dim = args2.Dim, Depth = args2.Depth, Heads = args2.Heads, MlpDim = args2.Mlp > 0 ? args2.Mlp : args2.Dim * 2,
    Pooling = VitPooling.ClassToken,
}.Validate();
var preprocessing = new VitPreprocessing(config.ImageSize, config.Channels, FashionMnist.Normalization);
// The recipe of the measured 91%: its own warmup, minimum learning rate and seed, not TrainerOptions.Defaults.
var options = new TrainerOptions
{
    Epochs = args2.Epochs, LearningRate = args2.LearningRate, WeightDecay = 0.05,
    WarmupFraction = 0.05, MinLearningRate = 1e-5, LabelSmoothing = args2.Smoothing, ClipGradNorm = 1.0, EmaDecay = args2.Ema > 0 ? args2.Ema : null, Seed = args2.Seed,
    CheckpointDirectory = args2.OutDir, Resume = args2.Resume, Precision = args2.Precision, CheckpointMetadata = VitMetadata.Of(config, preprocessing, FashionMnist.ClassNames),
}.Validate();

Torch.ManualSeed(args2.Seed);
using var model = new VisionTransformer(config);
Console.WriteLine($"Fashion-MNIST: {train.Count} train / {test.Count} test images, 28x28 grayscale, 10 classes");
Console.WriteLine($"ViT: patch {config.PatchSize} ({config.NumPatches} patches), D {config.Dim}, depth {config.Depth}, " +
                  $"heads {config.Heads}, MLP {config.MlpDim}, {model.ParameterCount():N0} parameters; libtorch {Torch.Version}, " +
                  $"threads {Torch.Threads}, precision {MixedPrecision.Resolve(args2.Precision, Device.Cpu)}" +
                  (args2.Precision == Precision.Auto ? " (auto)" : ""));
Console.WriteLine($"Training ({args2.PresetName} preset) {options.Epochs} epochs, batch {args2.BatchSize}, AdamW lr {options.LearningRate} " +
                  $"wd {options.WeightDecay}, warmup+cosine, label smoothing {options.LabelSmoothing}, flips {(args2.Flip ? "on" : "off")}, " +
                  $"shifts {args2.Shift} px");

// Images go through the background loader: decoded pixels -> augmentation -> normalised batch tensors.
var loader = new ImageLoaderOptions
{
    BatchSize = args2.BatchSize, Shuffle = true, Seed = (int)args2.Seed, Channels = 1, ImageSize = 28,
    Normalization = FashionMnist.Normalization, Augment = Augmentation(args2),
};
var trainBatches = new ImageBatchLoader(train, loader);
var testBatches = new ImageBatchLoader(test, loader with { Shuffle = false, Augment = null, BatchSize = 500 });

var trainer = new Trainer(model, options);
var result = trainer.Fit(trainBatches, testBatches, onEpoch: r =>
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"epoch {r.Epoch,3}/{options.Epochs}  loss {r.TrainLoss:F4}  train acc {r.TrainAccuracy:P2}  " +
        $"test acc {r.Evaluation!.Accuracy:P2}  top5 {r.Evaluation.Top5Accuracy:P2}  {r.ImagesPerSecond:F0} img/s  " +
        $"elapsed {Clock(r.Elapsed)}")));

if (result.ResumedAt is var (doneEpochs, doneBatches))
    Console.WriteLine($"resumed from {result.LastCheckpoint} after {doneEpochs} epochs and {doneBatches} batches");
var final = Trainer.Evaluate(model, testBatches, options.Precision);
Directory.CreateDirectory(args2.OutDir);
var (count, time) = result.Checkpoints;
if (count > 0)
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{count} checkpoints of {new FileInfo(result.LastCheckpoint!).Length / 1e6:F1} MB in {args2.OutDir}, {time.TotalMilliseconds / count:F0} ms each"));
WritePictures(model, result, test, testBatches, preprocessing, args2.OutDir);
var weightsPath = Path.Combine(args2.OutDir, "weights.safetensors");
// With the config, preprocessing and labels in its metadata: PretrainedVit.Load and VitEstimator's StartFrom read it back exactly.
VitSafetensors.Save(weightsPath, model, new VitPreprocessing(model.Config.ImageSize, model.Config.Channels, FashionMnist.Normalization),
    FashionMnist.ClassNames, new Dictionary<string, string>
    {
        ["dataset"] = "fashion-mnist",
        ["test_accuracy"] = final.Accuracy.ToString("R", CultureInfo.InvariantCulture),
    });
Console.WriteLine($"saved weights to {weightsPath}");
if (trainBatches.SkippedCount + testBatches.SkippedCount > 0)
    Console.WriteLine($"skipped {trainBatches.SkippedCount + testBatches.SkippedCount} unreadable images (see the warnings above)");
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"final test accuracy: {final.Accuracy:P2} (top-5 {final.Top5Accuracy:P2}) in {Clock(total.Elapsed)}"));
return 0;

// Minutes and seconds, the minutes going past 59 (an hour-long run reads 61:05, not 01:05).
static string Clock(TimeSpan t) => string.Create(CultureInfo.InvariantCulture, $"{(int)t.TotalMinutes:D2}:{t.Seconds:D2}");

// Learning curves, the test set's confusion matrix, and attention rollout over the first 12 test images.
static void WritePictures(VisionTransformer model, TrainingResult result, ImageDataset test, ImageBatchLoader testBatches,
    VitPreprocessing preprocessing, string folder)
{
    var names = FashionMnist.ClassNames;
    Vit.Torch.Reports.TrainingCurves.Write(Path.Combine(folder, "curves.png"), result.Epochs);
    var counts = names.Select(_ => new long[names.Count]).ToArray();
    var predictions = new List<int>();
    model.Eval();
    using (Torch.NoGrad())
        foreach (var batch in testBatches.Batches(0))
        {
            using var b = batch;
            using var scope = TensorScope.Begin();
            var scores = model.Forward(b.Images).ToArray<float>();
            var labels = b.Labels.ToArray<long>();
            for (int i = 0; i < labels.Length; i++)
            {
                int p = Classification.ArgMax(scores.AsSpan(i * names.Count, names.Count));
                counts[labels[i]][p]++;
                predictions.Add(p);
            }
        }
    Vit.Torch.Reports.ConfusionMatrixPicture.Write(Path.Combine(folder, "confusion.png"), names, counts);
    var images = test.Samples.Take(12).Select(s => s.Load(new ImageDecodeOptions())).ToList();
    try
    {
        using var scope = TensorScope.Begin();
        var rollout = Vit.Torch.Reports.AttentionRollout.Compute(model, ImageBatch.ToTensor(images, preprocessing.Normalization));
        Vit.Torch.Reports.AttentionRollout.WriteOverlays(Path.Combine(folder, "attention.svg"), images, rollout,
            predictions.Take(12).Select(p => names[p]).ToList(), test.Samples.Take(12).Select(s => names[(int)s.Label]).ToList(), columns: 6, tileSize: 112);
    }
    finally
    {
        foreach (var im in images) im.Dispose();
    }
    Console.WriteLine($"pictures: {Path.Combine(folder, "curves.png")}, confusion.png, attention.svg");
}

// Random horizontal flip and (optionally) a small random translation; black (the background) fills the border.
static Func<Image, Random, Image>? Augmentation(Args a)
{
    if (!a.Flip && a.Shift == 0) return null;
    return (image, rng) =>
    {
        using var shifted = a.Shift > 0 ? Augment.RandomAffine(image, rng, maxDegrees: 0, maxTranslate: a.Shift / 28.0) : image.Clone();
        return a.Flip ? Augment.RandomHorizontalFlip(shifted, rng) : shifted.Clone();
    };
}

internal sealed record Args
{
    public string PresetName { get; init; } = "standard";
    public int Epochs { get; init; } = 46;
    public int BatchSize { get; init; } = 256;
    public double LearningRate { get; init; } = 3e-3;
    public int Dim { get; init; } = 96;
    public int Depth { get; init; } = 4;
    public int Heads { get; init; } = 4;
    public int Mlp { get; init; }
    public int Patch { get; init; } = 7;
    public int Threads { get; init; } = Environment.ProcessorCount;
    public ulong Seed { get; init; } = 42;
    public int Limit { get; init; }
    public int Shift { get; init; } = 2;
    public bool Flip { get; init; } = true;
    public double Smoothing { get; init; } = 0.1;
    public double Ema { get; init; }
    public string? DataDir { get; init; }
    public string OutDir { get; init; } = "runs/fashion-mnist";
    public bool Resume { get; init; }
    public Precision Precision { get; init; } = Precision.Auto;
    public bool Help { get; init; }

    public const string Usage = """
        Trains a ViT from scratch on Fashion-MNIST.
        --preset standard|long: the recipe. standard (the default) is the values below (about 15 minutes on 2 cores
                 with bfloat16); long trains D 128, depth 6 for 100 epochs into runs/fashion-mnist-long (about an
                 hour). The options below change single values of either.
        options: --epochs N (46)  --batch-size N (256)  --lr X (0.003)  --dim N (96)  --depth N (4)  --heads N (4)
                 --mlp N (2 x dim, the MLP's hidden width)
                 --patch N (7)  --threads N (cores)  --seed N (42)  --limit N (use only N images per split)
                 --shift N (2, random translation in pixels)  --no-flip  --smoothing X (0.1, label smoothing)
                 --ema X (0: none; e.g. 0.999, the decay of a moving average of the weights that is evaluated and kept)
                 --data DIR (/usr/share/datasets/fashion-mnist)  --out DIR (runs/fashion-mnist: checkpoints, weights, pictures)
                 --resume (continue from --out's last checkpoint, as if never interrupted)
                 --precision auto|bfloat16|float32 (auto: bfloat16 mixed precision where the CPU has native bfloat16; bf16, fp32 too)
        """;

    /// <summary>The recipes --preset names; options after it (or before it) change single values.</summary>
    public static Args Preset(string name) => name switch
    {
        "standard" => new Args(),
        "long" => new Args { Epochs = 100, Dim = 128, Depth = 6, OutDir = "runs/fashion-mnist-long" },
        _ => throw new ArgumentException($"unknown preset '{name}': use standard or long"),
    };

    public static Args Parse(string[] argv)
    {
        int at = Array.IndexOf(argv, "--preset");
        if (at >= 0 && at + 1 >= argv.Length) throw new ArgumentException("--preset needs a value");
        var a = at >= 0 ? Preset(argv[at + 1]) with { PresetName = argv[at + 1] } : new Args();
        for (int i = 0; i < argv.Length; i++)
        {
            if (i == at) { i++; continue; }
            string Next() => i + 1 < argv.Length ? argv[++i] : throw new ArgumentException($"{argv[i]} needs a value");
            string name = argv[i];
            int Int() { var s = Next(); return int.TryParse(s, CultureInfo.InvariantCulture, out var v) ? v : throw new ArgumentException($"{name}: not an integer: {s}"); }
            double Double() { var s = Next(); return double.TryParse(s, CultureInfo.InvariantCulture, out var v) ? v : throw new ArgumentException($"{name}: not a number: {s}"); }
            a = argv[i] switch
            {
                "--epochs" => a with { Epochs = Int() },
                "--batch-size" => a with { BatchSize = Int() },
                "--lr" => a with { LearningRate = Double() },
                "--dim" => a with { Dim = Int() },
                "--depth" => a with { Depth = Int() },
                "--heads" => a with { Heads = Int() },
                "--mlp" => a with { Mlp = Int() },
                "--patch" => a with { Patch = Int() },
                "--threads" => a with { Threads = Int() },
                "--seed" => a with { Seed = (ulong)Int() },
                "--limit" => a with { Limit = Int() },
                "--shift" => a with { Shift = Int() },
                "--no-flip" => a with { Flip = false },
                "--smoothing" => a with { Smoothing = Double() },
                "--ema" => a with { Ema = Double() },
                "--data" => a with { DataDir = Next() },
                "--out" => a with { OutDir = Next() },
                "--resume" => a with { Resume = true },
                "--precision" => a with { Precision = MixedPrecision.Parse(Next()) },
                "-h" or "--help" => a with { Help = true },
                _ => throw new ArgumentException($"unknown option {argv[i]}\n{Usage}"),
            };
        }
        return a;
    }
}
