using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Vit.MLNet;
using Vit.Torch;
using Vit.Torch.Imaging;

/// <summary>
/// Training through the ML.NET-style pipeline, as a user runs it: LoadImages -> ResizeImages(224) -> VitEstimator
/// (ViT-Ti/16 from scratch, default augmentation, the background loader decoding JPEGs) on a folder of 256x256 JPEGs.
/// Reports the training throughput of the last epoch (the first one warms up). With --dir the JPEGs are written there
/// and kept, for the PyTorch peer benchmarks/peer/fit.py (torchvision's ImageFolder and DataLoader over the same files).
/// </summary>
internal static class FitBenchmark
{
    public static int Run(Func<string, int, int> get, Precision precision, string? keep)
    {
        int count = get("images", 160), batch = get("batch", 32), epochs = get("epochs", 2);
        var dir = keep ?? Directory.CreateTempSubdirectory("vit-fit-bench-").FullName;
        try
        {
            BenchImages.Write(dir, count, 256, classes: 10);
            var ml = new MLContext(seed: 1);
            var data = ml.Data.LoadFromImageFolder(dir);
            var options = new VitEstimator.Options
            {
                Architecture = VitArchitecture.TinyPatch16, Epochs = epochs, BatchSize = batch, Precision = precision,
            };
            var clock = System.Diagnostics.Stopwatch.StartNew();
            using var model = ml.Transforms.LoadImages("Image", null, "ImagePath")
                .Append(ml.Transforms.ResizeImages("Image", 224, 224, resizing: ImageResizingEstimator.ResizingKind.IsoCrop))
                .Append(new VitEstimator(ml, options))
                .Fit(data);
            double total = clock.Elapsed.TotalSeconds;
            var epochsRun = model.LastTransformer.History!.Result.Epochs;
            var last = epochsRun[^1];
            // The read pass (decode and resize through the pipeline, once) is what the whole Fit took beyond its epochs.
            double reading = total - epochsRun[^1].Elapsed.TotalSeconds;
            var t = Torch.Threads;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"vit-dotnet fit ViT-Ti/16@224 images/s {last.ImagesPerSecond:F1} (threads {t}, batch {batch}, {count} JPEGs 256x256, " +
                $"epoch {last.Epoch} of {epochs}, {MixedPrecision.Resolve(precision, Device.Cpu)}; whole Fit {count * epochs / total:F1} img/s, " +
                $"of which reading the images once {Math.Max(0, reading):F1} s)"));
            return 0;
        }
        finally
        {
            if (keep is null) Directory.Delete(dir, recursive: true);
        }
    }
}
