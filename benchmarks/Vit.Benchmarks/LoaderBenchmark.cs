using System.Diagnostics;
using System.Globalization;
using Vit.Torch;
using Vit.Torch.Data;
using Vit.Torch.Imaging;

/// <summary>
/// Decode + resize + augment + normalise throughput of <see cref="ImageBatchLoader"/> on JPEG files it writes to a
/// temporary folder (photo-like content: smooth gradients plus noise), with the default worker count.
/// </summary>
internal static class LoaderBenchmark
{
    public static int Run(Func<string, int, int> get, string presetName)
    {
        int count = get("images", 256), sourceSize = get("source-size", 224), size = get("size", 224);
        int batch = get("batch", 32), epochs = get("epochs", 2);
        var preset = Enum.Parse<AugmentPreset>(presetName, ignoreCase: true);
        var dir = Directory.CreateTempSubdirectory("vit-loader-bench-").FullName;
        try
        {
            var samples = BenchImages.Write(dir, count, sourceSize).Select((path, i) => (IImageSample)new FileImageSample(path, i % 10)).ToList();
            var data = new ImageDataset(samples, Enumerable.Range(0, 10).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToList());
            if (get("fashion", 0) > 0)
            {
                // Fashion-MNIST as the example feeds it: decoded 28x28 pixels, flip only.
                var fm = FashionMnist.LoadImages(train: true);
                data = new ImageDataset(fm.Samples.Take(get("fashion", 0)).ToList(), fm.ClassNames);
                size = 28;
            }
            var options = new ImageLoaderOptions
            {
                BatchSize = batch, ImageSize = size, Channels = get("fashion", 0) > 0 ? 1 : 3, Seed = 1,
                Normalization = get("fashion", 0) > 0 ? FashionMnist.Normalization : Normalization.ImageNet,
                Augment = preset == AugmentPreset.None ? null
                    : get("fashion", 0) > 0 ? (img, r) => Augment.RandomHorizontalFlip(img, r)
                    : AugmentationPipeline.Training(preset, size, size).Apply,
            };
            if (opts("workers") is int w) options = options with { Workers = w };
            var loader = new ImageBatchLoader(data, options);
            foreach (var b in loader.Batches(0)) b.Dispose();  // warm-up: page cache, SkiaSharp, JIT
            var clock = Stopwatch.StartNew();
            long images = 0;
            for (int e = 1; e <= epochs; e++)
                foreach (var b in loader.Batches(e))
                    using (b)
                        images += b.Count;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"vit-dotnet loader images/s {images / clock.Elapsed.TotalSeconds:F1} ({sourceSize}x{sourceSize} JPEG -> {size}x{size}, " +
                $"augmentation {preset}, workers {options.Workers}, batch {batch}, {images} images)"));
            return 0;

            int? opts(string key) => get(key, -1) is var v && v >= 0 ? v : null;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
