// ML.NET's own recipe for classifying images with few labelled examples, as an ML.NET user writes it: image files ->
// LoadImages -> ResizeImages(224, 224) -> ExtractPixels -> DnnFeaturizeImage with the ImageNet ResNet18 of the
// Microsoft.ML.DnnImageFeaturizer.ResNet18 package (512 features per image) -> L-BFGS maximum entropy.
//
// Split: Fashion-MNIST classes 5-9; training = the first 100 images of each of those classes in the order of the
// official training file (500 images), test = every test image of those classes (5,000). The images are written as
// 28x28 8-bit grayscale PNG files to a temporary folder, which is deleted at the end.
//
// Usage: dotnet run -c Release --project benchmarks/peer/few-images/ResNet18Recipe [-- --data DIR] [-- --keep]
using System.Diagnostics;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using SkiaSharp;

string dataDir = "/usr/share/datasets/fashion-mnist"; // Debian's dataset-fashion-mnist
bool keep = false;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--data": dataDir = args[++i]; break;
        case "--keep": keep = true; break;
        default:
            Console.Error.WriteLine($"unknown argument {args[i]}; usage: [--data DIR (IDX .gz files)] [--keep (leave the PNG folder)]");
            return 2;
    }
}

string[] classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
const int FirstClass = 5, PerClass = 100;

var (trainImages, trainLabels) = (Idx.Images(Path.Combine(dataDir, "train-images-idx3-ubyte.gz")),
                                  Idx.Labels(Path.Combine(dataDir, "train-labels-idx1-ubyte.gz")));
var (testImages, testLabels) = (Idx.Images(Path.Combine(dataDir, "t10k-images-idx3-ubyte.gz")),
                                Idx.Labels(Path.Combine(dataDir, "t10k-labels-idx1-ubyte.gz")));

// The first PerClass training images of each class >= FirstClass, in file order; every test image of those classes.
var taken = new int[classNames.Length];
var trainIndices = Enumerable.Range(0, trainLabels.Length)
    .Where(i => trainLabels[i] >= FirstClass && taken[trainLabels[i]]++ < PerClass).ToArray();
var testIndices = Enumerable.Range(0, testLabels.Length).Where(i => testLabels[i] >= FirstClass).ToArray();

string folder = Path.Combine(Path.GetTempPath(), $"few-images-{Environment.ProcessId}");
Directory.CreateDirectory(folder);
try
{
    var train = Write(folder, "train", trainIndices, trainImages, trainLabels);
    var test = Write(folder, "test", testIndices, testImages, testLabels);
    CheckRoundTrip(Path.Combine(folder, train[0].ImagePath), trainImages[trainIndices[0]]);
    Console.WriteLine($"split: train {train.Length} images ({string.Join(", ", Counts(train))}), " +
                      $"test {test.Length} images ({string.Join(", ", Counts(test))}), PNGs in {folder}");

    var ml = new MLContext(seed: 0);
    var trainView = ml.Data.LoadFromEnumerable(train);
    var testView = ml.Data.LoadFromEnumerable(test);

    // ExtractPixels: the ResNet18 package's preprocessing model (ResNetPrepOnnx/ResNetPreprocess.onnx) takes a
    // 1x3x224x224 tensor, planar (not interleaved), R, G, B planes of raw 0-255 values; it reorders them to B, G, R and
    // subtracts its ImageNet mean image (about 103, 116, 123) itself. So: no interleaving, offset 0, scale 1, RGB.
    var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
        .Append(ml.Transforms.LoadImages("Image", folder, nameof(ImageRow.ImagePath)))
        .Append(ml.Transforms.ResizeImages("Image", imageWidth: 224, imageHeight: 224))
        .Append(ml.Transforms.ExtractPixels("Pixels", "Image",
            colorsToExtract: Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorBits.Rgb,
            orderOfExtraction: Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorsOrder.ARGB,
            interleavePixelColors: false, offsetImage: 0f, scaleImage: 1f))
        .Append(ml.Transforms.DnnFeaturizeImage("Features",
            m => m.ModelSelector.ResNet18(ml, m.OutputColumn, m.InputColumn), "Pixels"))
        .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(labelColumnName: "Label", featureColumnName: "Features"));

    var clock = Stopwatch.StartNew();
    var model = pipeline.Fit(trainView);
    double fitSeconds = clock.Elapsed.TotalSeconds;

    clock.Restart();
    var metrics = ml.MulticlassClassification.Evaluate(model.Transform(testView), labelColumnName: "Label");
    double evaluateSeconds = clock.Elapsed.TotalSeconds;

    Console.WriteLine(metrics.ConfusionMatrix.GetFormattedConfusionTable());
    Console.WriteLine($"micro accuracy {metrics.MicroAccuracy:P2}");
    Console.WriteLine($"macro accuracy {metrics.MacroAccuracy:P2}");
    Console.WriteLine($"log-loss {metrics.LogLoss:F4}");
    Console.WriteLine($"fit seconds {fitSeconds:F1} (featurizing the 500 training images and L-BFGS)");
    Console.WriteLine($"evaluate seconds {evaluateSeconds:F1} (featurizing and scoring the 5,000 test images)");
    Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["peer"] = "mlnet-resnet18-lbfgs", ["train"] = train.Length, ["test"] = test.Length,
        ["micro_accuracy"] = Math.Round(metrics.MicroAccuracy, 6), ["macro_accuracy"] = Math.Round(metrics.MacroAccuracy, 6),
        ["log_loss"] = Math.Round(metrics.LogLoss, 6), ["fit_seconds"] = Math.Round(fitSeconds, 2),
        ["evaluate_seconds"] = Math.Round(evaluateSeconds, 2),
    }));
    return 0;
}
finally
{
    if (!keep) Directory.Delete(folder, recursive: true);
}

// Writes each selected image as <split>/<n>.png (8-bit grayscale) and returns its row (path relative to the folder).
ImageRow[] Write(string root, string split, int[] indices, byte[][] images, byte[] labels)
{
    Directory.CreateDirectory(Path.Combine(root, split));
    var rows = new ImageRow[indices.Length];
    for (int n = 0; n < indices.Length; n++)
    {
        string relative = Path.Combine(split, $"{n:D5}.png");
        using (var bitmap = new SKBitmap(new SKImageInfo(Idx.Side, Idx.Side, SKColorType.Gray8, SKAlphaType.Opaque)))
        {
            if (bitmap.RowBytes != Idx.Side) throw new InvalidOperationException($"unexpected row stride {bitmap.RowBytes}");
            Marshal.Copy(images[indices[n]], 0, bitmap.GetPixels(), Idx.Side * Idx.Side);
            using var file = File.Create(Path.Combine(root, relative));
            if (!bitmap.Encode(file, SKEncodedImageFormat.Png, 100)) throw new IOException($"PNG encoding failed for {relative}");
        }
        rows[n] = new ImageRow { ImagePath = relative, Label = classNames[labels[indices[n]]] };
    }
    return rows;
}

// Decodes one PNG the way LoadImages does (MLImage) and checks every pixel against the IDX bytes.
static void CheckRoundTrip(string path, byte[] expected)
{
    using var image = MLImage.CreateFromFile(path);
    var pixels = image.Pixels;
    int stride = image.BitsPerPixel / 8;
    for (int k = 0; k < expected.Length; k++)
        for (int c = 0; c < 3; c++)
            if (pixels[k * stride + c] != expected[k])
                throw new InvalidOperationException($"{path}: pixel {k} channel {c} is {pixels[k * stride + c]}, expected {expected[k]}");
}

static IEnumerable<string> Counts(ImageRow[] rows) => rows.GroupBy(r => r.Label).Select(g => $"{g.Key} {g.Count()}");

/// <summary>One image file and its class name.</summary>
sealed class ImageRow
{
    public string ImagePath { get; set; } = "";
    public string Label { get; set; } = "";
}

/// <summary>Reads the gzipped IDX files of Fashion-MNIST (big-endian header, then unsigned bytes).</summary>
static class Idx
{
    public const int Side = 28;

    public static byte[][] Images(string path)
    {
        var bytes = Read(path, magic: 0x803, headerInts: 4);
        int count = BigEndian(bytes, 4);
        if (BigEndian(bytes, 8) != Side || BigEndian(bytes, 12) != Side) throw new InvalidDataException($"{path}: not 28x28");
        return Enumerable.Range(0, count).Select(i => bytes.AsSpan(16 + i * Side * Side, Side * Side).ToArray()).ToArray();
    }

    public static byte[] Labels(string path)
    {
        var bytes = Read(path, magic: 0x801, headerInts: 2);
        return bytes.AsSpan(8, BigEndian(bytes, 4)).ToArray();
    }

    static byte[] Read(string path, int magic, int headerInts)
    {
        using var gzip = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var memory = new MemoryStream();
        gzip.CopyTo(memory);
        var bytes = memory.ToArray();
        if (bytes.Length < headerInts * 4 || BigEndian(bytes, 0) != magic)
            throw new InvalidDataException($"{path}: not an IDX file with magic 0x{magic:X}");
        return bytes;
    }

    static int BigEndian(byte[] b, int at) => b[at] << 24 | b[at + 1] << 16 | b[at + 2] << 8 | b[at + 3];
}
