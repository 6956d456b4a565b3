using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Vit.Torch.Data;
using Vit.Torch.Imaging;
using static Vit.Torch.Tests.ImageFixtures;

namespace Vit.Torch.Tests;

/// <summary>
/// <see cref="ImageBatchLoader"/>: coverage of every sample per epoch, seeded order and augmentation independent
/// of the worker count (and of the process), batch values, bounded prefetch, clean stops (break, cancellation),
/// and bad files (issue 3 item 7). Each image carries its own index in its first pixel, so a batch says which
/// samples it holds without trusting the loader's bookkeeping. Tensor and image counts are process-wide, which
/// these tests can check because the assembly runs one test at a time (MSTestSettings.cs).
/// </summary>
[TestClass]
public sealed class LoaderTests
{
    private static readonly Normalization Half = Normalization.Half;

    /// <summary>Sample (x, y, c) of image <paramref name="index"/>: the index itself at (0, 0, 0), distinct elsewhere.</summary>
    private static int PixelValue(int index, int x, int y, int c) => (index + 16 * x + 32 * y + 64 * c) & 255;

    private static byte[] IndexPixels(int index, int size, int channels)
    {
        var px = new byte[size * size * channels];
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                for (int c = 0; c < channels; c++) px[(y * size + x) * channels + c] = (byte)PixelValue(index, x, y, c);
        return px;
    }

    /// <summary>Counts the images loaders decode, across threads.</summary>
    private sealed class Counter
    {
        private int loads;

        public int Loads => Volatile.Read(ref loads);

        public void Add() => Interlocked.Increment(ref loads);
    }

    /// <summary>An in-memory image that counts its decodes and can be made slow.</summary>
    private sealed class CountingSample(int index, long label, int size, Counter counter, int delayMs = 0) : IImageSample
    {
        public string Name => $"sample{index}";

        public long Label => label;

        public Image Load(ImageDecodeOptions options)
        {
            counter.Add();
            if (delayMs > 0) Thread.Sleep(delayMs);
            return Image.FromPixels(IndexPixels(index, size, 1), size, size, 1);
        }
    }

    private static ImageDataset Counting(int count, Counter counter, int size = 4, int delayMs = 0) =>
        new(Enumerable.Range(0, count).Select(i => (IImageSample)new CountingSample(i, i % 2, size, counter, delayMs)).ToList(), ["even", "odd"]);

    /// <summary>The index each image of a batch carries in its first pixel (channel 0), undoing the normalisation.</summary>
    private static int[] Indices(Batch batch, Normalization norm)
    {
        var shape = batch.Images.Shape;
        long per = shape[1] * shape[2] * shape[3];
        var values = batch.Images.ToArray<float>();
        return Enumerable.Range(0, (int)shape[0]).Select(b => (int)Math.Round((values[b * per] * norm.Std[0] + norm.Mean[0]) * 255)).ToArray();
    }

    private static long SettledTensorCount()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return Tensor.LiveCount;
    }

    // ------------------------------------------------------------------ coverage and order

    [TestMethod]
    public void Loader_EveryFileOncePerEpoch_LastBatchPartial_LabelsFollowTheFolders()
    {
        using var dir = new TempDir();
        string[] classes = ["apple", "banana", "cherry"];
        const int n = 23;
        for (int i = 0; i < n; i++)
        {
            var folder = Path.Combine(dir.Path, classes[i % 3]);
            Directory.CreateDirectory(folder);
            using var img = Image.FromPixels(IndexPixels(i, 8, 3), 8, 8, 3);
            File.WriteAllBytes(Path.Combine(folder, $"{i:D2}.png"), img.EncodePng());
        }
        var loader = new ImageBatchLoader(ImageDataset.FromFolder(dir.Path),
            new() { BatchSize = 5, ImageSize = 8, Workers = 2, Seed = 3, Normalization = Half, OnBadImage = BadImagePolicy.Throw });
        Assert.AreEqual(5, loader.BatchesPerEpoch);
        Assert.AreEqual(n, loader.Count);

        var orders = new List<int[]>();
        for (int epoch = 0; epoch < 2; epoch++)
        {
            var sizes = new List<int>();
            var seen = new List<int>();
            foreach (var batch in loader.Batches(epoch))
                using (batch)
                {
                    sizes.Add(batch.Count);
                    CollectionAssert.AreEqual(new long[] { batch.Count, 3, 8, 8 }, batch.Images.Shape);
                    var indices = Indices(batch, Half);
                    CollectionAssert.AreEqual(indices.Select(i => (long)(i % 3)).ToArray(), batch.Labels.ToArray<long>(), "label = folder of the file");
                    seen.AddRange(indices);
                }
            CollectionAssert.AreEqual(new[] { 5, 5, 5, 5, 3 }, sizes, $"epoch {epoch}");
            CollectionAssert.AreEquivalent(Enumerable.Range(0, n).ToArray(), seen, $"epoch {epoch}: every image exactly once");
            orders.Add(seen.ToArray());
        }
        CollectionAssert.AreNotEqual(orders[0], orders[1], "each epoch has its own order");
        Assert.AreEqual(0, loader.SkippedCount);
    }

    [TestMethod]
    public void Loader_WithoutShuffle_KeepsTheDatasetOrder_BatchSizeLargerThanTheData()
    {
        var counter = new Counter();
        var loader = new ImageBatchLoader(Counting(7, counter), new() { BatchSize = 3, ImageSize = 4, Channels = 1, Shuffle = false, Workers = 3, Normalization = Half });
        var seen = new List<int[]>();
        foreach (var b in loader.Batches(5))
            using (b) seen.Add(Indices(b, Half));
        Assert.AreEqual("0,1,2|3,4,5|6", string.Join("|", seen.Select(s => string.Join(",", s))));

        var whole = new ImageBatchLoader(Counting(7, counter), new() { BatchSize = 100, ImageSize = 4, Channels = 1, Normalization = Half, Seed = 1 });
        Assert.AreEqual(1, whole.BatchesPerEpoch);
        var only = whole.Batches(0).Single();
        using (only)
        {
            Assert.AreEqual(7, only.Count);
            CollectionAssert.AreEquivalent(Enumerable.Range(0, 7).ToArray(), Indices(only, Half));
        }
    }

    /// <summary>A training-style augmentation that draws from the generator: a random 4x4 crop of the 6x6 image and a coin-flip mirror.</summary>
    private static Image CropFlip(Image img, Random rng)
    {
        using var crop = img.Crop(rng.Next(3), rng.Next(3), 4, 4);
        return rng.Next(2) == 0 ? crop.FlipHorizontal() : crop.Clone();
    }

    private static List<(float[] Images, long[] Labels)> Collect(ImageBatchLoader loader, int epoch)
    {
        var result = new List<(float[], long[])>();
        foreach (var b in loader.Batches(epoch))
            using (b) result.Add((b.Images.ToArray<float>(), b.Labels.ToArray<long>()));
        return result;
    }

    private static void AssertSameBatches(List<(float[] Images, long[] Labels)> a, List<(float[] Images, long[] Labels)> b, string what)
    {
        Assert.HasCount(a.Count, b, what);
        for (int i = 0; i < a.Count; i++)
        {
            CollectionAssert.AreEqual(a[i].Labels, b[i].Labels, $"{what}: labels of batch {i}");
            CollectionAssert.AreEqual(a[i].Images, b[i].Images, $"{what}: pixels of batch {i}");
        }
    }

    private static bool SameBatches(List<(float[] Images, long[] Labels)> a, List<(float[] Images, long[] Labels)> b) =>
        a.Count == b.Count && a.Zip(b).All(p => p.First.Labels.SequenceEqual(p.Second.Labels) && p.First.Images.SequenceEqual(p.Second.Images));

    /// <summary>20 images, one class each, so the labels spell out the order.</summary>
    private static ImageDataset Distinct(int count, int size) =>
        new(Enumerable.Range(0, count).Select(i => (IImageSample)new PixelImageSample($"p{i}", IndexPixels(i, size, 1), size, size, 1, i)).ToList(),
            Enumerable.Range(0, count).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToList());

    [TestMethod]
    public void Loader_ShardsSplitEveryGlobalBatchIntoSlicesThatAddUpToIt()
    {
        var data = Distinct(20, 6);
        ImageLoaderOptions Options((int, int)? shard) =>
            new() { BatchSize = 7, ImageSize = 4, Channels = 1, Workers = 2, Seed = 5, Normalization = Half, Augment = CropFlip, Shard = shard };
        for (int epoch = 0; epoch < 2; epoch++)
        {
            var whole = Collect(new ImageBatchLoader(data, Options(null)), epoch);
            var shards = Enumerable.Range(0, 3).Select(r => Collect(new ImageBatchLoader(data, Options((r, 3))), epoch)).ToList();
            Assert.HasCount(3, whole, "20 images, batches of 7: 7, 7, 6");
            for (int b = 0; b < whole.Count; b++)
            {
                // Shard r of a batch of n holds rows [n*r/3, n*(r+1)/3): concatenated in rank order they are the batch.
                var labels = shards.SelectMany(s => s[b].Labels).ToArray();
                var pixels = shards.SelectMany(s => s[b].Images).ToArray();
                CollectionAssert.AreEqual(whole[b].Labels, labels, $"epoch {epoch}, batch {b}: labels");
                CollectionAssert.AreEqual(whole[b].Images, pixels, $"epoch {epoch}, batch {b}: augmented pixels");
                int n = whole[b].Labels.Length;
                for (int r = 0; r < 3; r++) Assert.HasCount(n * (r + 1) / 3 - n * r / 3, shards[r][b].Labels);
            }
            // Every sample once per epoch over the shards.
            CollectionAssert.AreEquivalent(Enumerable.Range(0, 20).Select(i => (long)i).ToArray(), shards.SelectMany(s => s.SelectMany(x => x.Labels)).ToArray());
        }
        using (var first = new ImageBatchLoader(data, Options((1, 3))).Batches(0).First())
            Assert.AreEqual(7, first.GlobalCount);
        Assert.ThrowsExactly<ArgumentException>(() => new ImageBatchLoader(data, Options((3, 3))));
        Assert.AreNotEqual(new ImageBatchLoader(data, Options((0, 2))).Fingerprint["shard"], new ImageBatchLoader(data, Options((0, 3))).Fingerprint["shard"]);
    }

    [TestMethod]
    public void Loader_SameSeedSameBatches_WhateverTheWorkerCount_IncludingTheAugmentation()
    {
        var data = Distinct(20, 6);
        ImageLoaderOptions Options(int workers, int seed) =>
            new() { BatchSize = 3, ImageSize = 4, Channels = 1, Workers = workers, Seed = seed, Normalization = Half, Augment = CropFlip };

        for (int epoch = 0; epoch < 2; epoch++)
        {
            var one = Collect(new ImageBatchLoader(data, Options(1, 11)), epoch);
            var three = Collect(new ImageBatchLoader(data, Options(3, 11)), epoch);
            var threeAgain = Collect(new ImageBatchLoader(data, Options(3, 11)), epoch);
            AssertSameBatches(one, three, $"epoch {epoch}, 1 vs 3 workers");
            AssertSameBatches(three, threeAgain, $"epoch {epoch}, 3 workers twice");
            Assert.IsFalse(SameBatches(one, Collect(new ImageBatchLoader(data, Options(3, 12)), epoch)), $"epoch {epoch}: another seed, other batches");
        }
        var loader = new ImageBatchLoader(data, Options(2, 11));
        Assert.IsFalse(SameBatches(Collect(loader, 0), Collect(loader, 1)), "epochs differ");

        // The augmentation depends on the sample, not on where the shuffle put it: without shuffling, the same
        // epoch gives the same augmented image for each sample.
        var ordered = Collect(new ImageBatchLoader(data, Options(2, 11) with { Shuffle = false, BatchSize = 20 }), 0).Single();
        var shuffled = Collect(new ImageBatchLoader(data, Options(3, 11) with { BatchSize = 20 }), 0).Single();
        for (int b = 0; b < 20; b++)
        {
            int sample = (int)shuffled.Labels[b];
            CollectionAssert.AreEqual(ordered.Images.AsSpan(sample * 16, 16).ToArray(), shuffled.Images.AsSpan(b * 16, 16).ToArray(), $"sample {sample}");
        }
        var outcomes = Enumerable.Range(0, 20).Select(s => string.Join(",", ordered.Images.AsSpan(s * 16, 16).ToArray().Select(v => Math.Round((v * 0.5 + 0.5) * 255) - s))).Distinct().Count();
        Assert.IsGreaterThan(3, outcomes, "the augmentation does draw different crops and flips for different samples");
    }

    /// <summary>
    /// A digest of two epochs of a seeded, augmented loader. The test runs it here and in a fresh process
    /// (Program.Main): a seed must name the same batches in every run, not just within one process.
    /// </summary>
    internal static string Fingerprint(int seed)
    {
        var loader = new ImageBatchLoader(Distinct(12, 6),
            new() { BatchSize = 5, ImageSize = 4, Channels = 1, Workers = 2, Seed = seed, Normalization = Half, Augment = CropFlip });
        var text = new StringBuilder();
        for (int epoch = 0; epoch < 2; epoch++)
            foreach (var (images, labels) in Collect(loader, epoch))
            {
                var bytes = new byte[images.Length * sizeof(float)];
                Buffer.BlockCopy(images, 0, bytes, 0, bytes.Length);
                text.Append(string.Join(",", labels)).Append(' ').Append(Convert.ToHexString(SHA256.HashData(bytes))[..16]).Append('\n');
            }
        return text.ToString();
    }

    [TestMethod]
    public void Loader_SameSeedSameBatches_InAnotherProcess()
    {
        var here = Fingerprint(7);
        Assert.AreNotEqual(here, Fingerprint(8), "the fingerprint sees the seed");

        using var child = Process.Start(Program.Child("loader-fingerprint", "7"))!;
        var stderr = child.StandardError.ReadToEndAsync();
        var there = child.StandardOutput.ReadToEnd();
        Assert.IsTrue(child.WaitForExit(30_000), "the child process finished");
        Assert.AreEqual(0, child.ExitCode, stderr.Result);
        Assert.AreEqual(here, there, "seed 7 in a fresh process");
    }

    // ------------------------------------------------------------------ values

    [TestMethod]
    public void Loader_BatchHoldsTheNormalisedPixels_PlanarChw()
    {
        const int size = 4, n = 5;
        var norm = new Normalization([0.1f, 0.5f, 0.9f], [0.2f, 0.4f, 0.8f]);
        var samples = Enumerable.Range(0, n).Select(i =>
        {
            using var img = Image.FromPixels(IndexPixels(i, size, 3), size, size, 3);
            return (IImageSample)new BytesImageSample($"b{i}", img.EncodePng(), i % 2);
        }).ToList();
        var loader = new ImageBatchLoader(new ImageDataset(samples, ["a", "b"]),
            new() { BatchSize = 3, ImageSize = size, Shuffle = false, Workers = 2, ResizeMode = ResizeMode.Stretch, Normalization = norm });

        int first = 0;
        foreach (var batch in loader.Batches(0))
            using (batch)
            {
                int count = batch.Count;
                Assert.AreEqual(DType.Float32, batch.Images.DType);
                Assert.AreEqual(DType.Int64, batch.Labels.DType);
                CollectionAssert.AreEqual(new long[] { count, 3, size, size }, batch.Images.Shape);
                CollectionAssert.AreEqual(new long[] { count }, batch.Labels.Shape);
                CollectionAssert.AreEqual(Enumerable.Range(first, count).Select(i => (long)(i % 2)).ToArray(), batch.Labels.ToArray<long>());
                var got = batch.Images.ToArray<float>();
                double[] mean = [0.1, 0.5, 0.9], std = [0.2, 0.4, 0.8];
                for (int b = 0; b < count; b++)
                    for (int c = 0; c < 3; c++)
                        for (int y = 0; y < size; y++)
                            for (int x = 0; x < size; x++)
                            {
                                double want = (PixelValue(first + b, x, y, c) / 255.0 - mean[c]) / std[c];
                                float have = got[((b * 3 + c) * size + y) * size + x];
                                Assert.AreEqual(want, have, 1e-5, $"image {first + b}, channel {c}, ({x}, {y})");
                            }
                first += count;
            }
        Assert.AreEqual(n, first);

        // One channel: a gray image with the single-value normalisation.
        var gray = new ImageBatchLoader(Counting(3, new Counter()), new() { BatchSize = 3, ImageSize = 4, Channels = 1, Shuffle = false, Normalization = Half });
        using var g = gray.Batches(0).Single();
        CollectionAssert.AreEqual(new long[] { 3, 1, 4, 4 }, g.Images.Shape);
        var gv = g.Images.ToArray<float>();
        for (int i = 0; i < gv.Length; i++)
        {
            int b = i / 16, y = i % 16 / 4, x = i % 4;
            Assert.AreEqual((PixelValue(b, x, y, 0) / 255.0 - 0.5) / 0.5, gv[i], 1e-5, $"gray image {b} ({x}, {y})");
        }
    }

    // ------------------------------------------------------------------ bounded prefetch, clean stops

    [TestMethod]
    public void Loader_PrefetchIsBounded_WhateverTheDatasetSize()
    {
        const int batchSize = 4, prefetch = 2, workers = 2;
        const int bound = (prefetch + workers) * batchSize;
        foreach (int n in new[] { 64, 2048 })
        {
            long baseline = SettledTensorCount();
            var counter = new Counter();
            var loader = new ImageBatchLoader(Counting(n, counter),
                new() { BatchSize = batchSize, Prefetch = prefetch, Workers = workers, ImageSize = 4, Channels = 1, Normalization = Half });
            int consumed = 0, maxAhead = 0;
            long maxTensors = 0;
            foreach (var batch in loader.Batches(0))
            {
                using (batch)
                {
                    consumed += batch.Count;
                    Thread.Sleep(40);  // a slow training step: the workers have all the time they want to run ahead
                    maxAhead = Math.Max(maxAhead, counter.Loads - consumed);
                    maxTensors = Math.Max(maxTensors, Tensor.LiveCount - baseline);
                }
                if (consumed >= 6 * batchSize) break;
            }
            Assert.IsLessThanOrEqualTo(bound, maxAhead, $"{n} images: decoded ahead of the consumer");
            Assert.IsGreaterThanOrEqualTo(prefetch * batchSize, maxAhead, $"{n} images: the workers did prefetch while the consumer was busy");
            // The batch in hand and at most Prefetch + Workers batches in flight, two tensors each.
            Assert.IsLessThanOrEqualTo(2 * (prefetch + workers + 1), maxTensors, $"{n} images: live tensors");
            Assert.IsLessThanOrEqualTo(6 * batchSize + bound, counter.Loads, $"{n} images: decoded in all");
            Assert.AreEqual(baseline, Tensor.LiveCount, $"{n} images: nothing left after the break");
        }
    }

    /// <summary>
    /// Runs <paramref name="consume"/> on another thread and fails, instead of hanging, if it has not ended within
    /// 10 s (workers that were never told to stop would block the enumerator's clean-up for ever); then rethrows
    /// what it threw.
    /// </summary>
    private static void EndsWithin10s(Action consume)
    {
        var task = Task.Run(consume);
        bool ended;
        try
        {
            ended = task.Wait(10_000);
        }
        catch (AggregateException)
        {
            ended = true;
        }
        Assert.IsTrue(ended, "the enumeration ended");
        task.GetAwaiter().GetResult();
    }

    [TestMethod]
    public void Loader_BreakingEarly_StopsTheWorkers_AndFreesTheBatchesInFlight()
    {
        long tensors = SettledTensorCount();
        long images = Image.LiveCount;
        var counter = new Counter();
        // A deep prefetch, so that workers left running would go on decoding for a while.
        var loader = new ImageBatchLoader(Counting(400, counter, delayMs: 2),
            new() { BatchSize = 2, Prefetch = 50, Workers = 2, ImageSize = 4, Channels = 1, Normalization = Half });
        int taken = 0;
        EndsWithin10s(() =>
        {
            foreach (var batch in loader.Batches(0))
            {
                batch.Dispose();
                if (++taken == 2) break;
            }
        });
        int atBreak = counter.Loads;
        Thread.Sleep(150);
        Assert.AreEqual(atBreak, counter.Loads, "no decodes after the enumeration ended");
        Assert.IsLessThan(100, atBreak);
        Assert.AreEqual(tensors, Tensor.LiveCount, "the batches prepared ahead were freed");
        Assert.AreEqual(images, Image.LiveCount, "no decoded image left behind");

        // An exception in the consumer's loop stops the workers the same way.
        Assert.ThrowsExactly<InvalidOperationException>(() => EndsWithin10s(() =>
        {
            foreach (var batch in loader.Batches(1))
                using (batch) throw new InvalidOperationException("training step failed");
        }));
        int atThrow = counter.Loads;
        Thread.Sleep(100);
        Assert.AreEqual(atThrow, counter.Loads);
        Assert.AreEqual(tensors, Tensor.LiveCount);
        Assert.AreEqual(images, Image.LiveCount);
    }

    [TestMethod]
    public void Loader_Cancellation_ThrowsPromptly_AndStopsTheWorkers()
    {
        long tensors = SettledTensorCount();
        var counter = new Counter();
        // 200 images at 20 ms on 2 workers: an epoch would take about 2 s.
        var loader = new ImageBatchLoader(Counting(200, counter, delayMs: 20),
            new() { BatchSize = 4, Workers = 2, ImageSize = 4, Channels = 1, Normalization = Half });
        using var cts = new CancellationTokenSource();
        int received = 0;
        Assert.Throws<OperationCanceledException>(() => EndsWithin10s(() =>
        {
            foreach (var batch in loader.Batches(0, cts.Token))
                using (batch)
                    if (++received == 2) cts.CancelAfter(50);
        }));
        Assert.IsGreaterThanOrEqualTo(2, received);
        // Counted, not timed (a busy machine stretches wall time): prefetch bounds how far workers run ahead, so a
        // prompt stop leaves most of the 200 images never decoded.
        Assert.IsLessThan(100, counter.Loads, "cancelled well before the end of the epoch");
        int atCancel = counter.Loads;
        Thread.Sleep(100);
        Assert.AreEqual(atCancel, counter.Loads, "no decodes after cancellation");
        Assert.AreEqual(tensors, Tensor.LiveCount);

        // A token cancelled before the start: nothing is decoded.
        var idle = new Counter();
        var fresh = new ImageBatchLoader(Counting(20, idle), new() { BatchSize = 4, ImageSize = 4, Channels = 1, Normalization = Half });
        Assert.Throws<OperationCanceledException>(() => fresh.Batches(0, new CancellationToken(true)).First().Dispose());
        Assert.AreEqual(0, idle.Loads);
    }

    [TestMethod]
    public void Loader_AugmentationOfTheWrongShape_IsAClearError_AndLeaksNothing()
    {
        long tensors = SettledTensorCount();
        long images = Image.LiveCount;
        var loader = new ImageBatchLoader(Counting(6, new Counter()),
            new() { BatchSize = 3, ImageSize = 4, Channels = 1, Normalization = Half, Augment = (img, _) => img.Resize(5, 5) });
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => loader.Batches(0).ToList());
        Assert.AreEqual("the augmentation returned a 5x5 image; the model needs 4x4", e.Message);
        Assert.AreEqual(tensors, Tensor.LiveCount);
        Assert.AreEqual(images, Image.LiveCount, "the wrong-sized image is freed too");

        var wrongChannels = new ImageBatchLoader(Counting(6, new Counter()),
            new() { BatchSize = 3, ImageSize = 4, Channels = 1, Normalization = Half, Augment = (img, _) => img.ToChannels(3) });
        var e2 = Assert.ThrowsExactly<ArgumentException>(() => wrongChannels.Batches(0).ToList());
        Assert.Contains("image 0 is 4x4 with 3 channel(s), but the batch holds 4x4 with 1", e2.Message);
        Assert.AreEqual(tensors, Tensor.LiveCount, "the batch tensor is freed");
        Assert.AreEqual(images, Image.LiveCount);
    }

    [TestMethod]
    public void Options_InvalidValues_AreNamed()
    {
        var data = Counting(4, new Counter());
        (ImageLoaderOptions Options, string Message)[] cases =
        [
            (new() { BatchSize = 0 }, "batch size must be at least 1, got 0"),
            (new() { Workers = 0 }, "worker count must be at least 1, got 0"),
            (new() { Prefetch = 0 }, "prefetch must be at least 1 batch, got 0"),
            (new() { Channels = 2 }, "channels must be 1 or 3, got 2"),
            (new() { ImageSize = 0 }, "image size must be positive, got 0"),
            (new() { Channels = 1 }, "normalization has 3 means for 1 channels"),
            (new() { MaxPixels = 0 }, "pixel limit must be positive, got 0"),
        ];
        foreach (var (options, message) in cases)
            Assert.AreEqual(message, Assert.ThrowsExactly<ArgumentException>(() => new ImageBatchLoader(data, options)).Message);
        Assert.AreEqual(BadImagePolicy.Skip, new ImageLoaderOptions().OnBadImage, "the default skips bad images");
    }

    // ------------------------------------------------------------------ bad input (issue 3 item 7)

    /// <summary>
    /// Eight good 8x8 PNGs (index in the first pixel, label = index % 2) and five bad files with the reason each
    /// must be reported with: empty, truncated, text named .jpg, missing, and 64x64 against a 1000-pixel limit.
    /// </summary>
    private static (List<IImageSample> Good, List<(IImageSample Sample, string Reason)> Bad) Files(TempDir dir)
    {
        var good = new List<IImageSample>();
        for (int i = 0; i < 8; i++)
        {
            using var img = Image.FromPixels(IndexPixels(i, 8, 3), 8, 8, 3);
            File.WriteAllBytes(dir.File($"good{i}.png"), img.EncodePng());
            good.Add(new FileImageSample(dir.File($"good{i}.png"), i % 2));
        }
        using var big = Image.FromPixels(RandomBytes(64 * 64 * 3, 4), 64, 64, 3);
        var bigPng = big.EncodePng();
        using var small = Image.FromPixels(RandomBytes(20 * 20 * 3, 5), 20, 20, 3);  // under the limit: the cut is what is wrong
        var smallPng = small.EncodePng();
        File.WriteAllBytes(dir.File("empty.png"), []);
        File.WriteAllBytes(dir.File("cut.png"), smallPng[..(smallPng.Length / 2)]);
        File.WriteAllText(dir.File("notes.jpg"), "this is not a picture, just text\n");
        File.WriteAllBytes(dir.File("big.png"), bigPng);
        var bad = new List<(IImageSample, string)>
        {
            (new FileImageSample(dir.File("empty.png"), 0), "the file is empty (0 bytes)"),
            (new FileImageSample(dir.File("cut.png"), 1), "truncated PNG"),
            (new FileImageSample(dir.File("notes.jpg"), 0), "it starts with the text \"this is not a picture"),
            (new FileImageSample(dir.File("missing.png"), 1), "cannot open the file"),
            (new FileImageSample(dir.File("big.png"), 0), "64x64"),
        };
        return (good, bad);
    }

    private static ImageLoaderOptions BadFileOptions => new()
    {
        BatchSize = 3, ImageSize = 8, Workers = 2, Seed = 9, Normalization = Half, MaxPixels = 1000,
    };

    [TestMethod]
    public void BadFiles_Skip_LeavesThemOut_NamesEachFileAndReason_AndKeepsTheRest()
    {
        using var dir = new TempDir();
        var (good, bad) = Files(dir);
        var all = good.Concat(bad.Select(b => b.Sample)).ToList();
        new Random(1).Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(all));
        long tensors = SettledTensorCount();
        long images = Image.LiveCount;
        var heard = new ConcurrentQueue<string>();
        var loader = new ImageBatchLoader(new ImageDataset(all, ["even", "odd"]), BadFileOptions with { OnBadImage = BadImagePolicy.Skip })
        {
            OnWarning = heard.Enqueue,
        };

        var seen = new List<int>();
        foreach (var batch in loader.Batches(0))
            using (batch)
            {
                var indices = Indices(batch, Half);
                CollectionAssert.AreEqual(indices.Select(i => (long)(i % 2)).ToArray(), batch.Labels.ToArray<long>(), "labels stay with their images");
                seen.AddRange(indices);
            }

        CollectionAssert.AreEquivalent(Enumerable.Range(0, 8).ToArray(), seen, "every good image once, no bad one");
        Assert.AreEqual(5, loader.SkippedCount);
        Assert.HasCount(5, loader.Warnings);
        CollectionAssert.AreEquivalent(loader.Warnings.ToArray(), heard.ToArray(), "the callback hears every warning");
        foreach (var (sample, reason) in bad)
        {
            var lines = loader.Warnings.Where(w => w.Contains(sample.Name + ":", StringComparison.Ordinal)).ToList();
            Assert.HasCount(1, lines, sample.Name);
            Assert.StartsWith($"skipped {sample.Name}: ", lines[0]);
            Assert.Contains(reason, lines[0], sample.Name);
        }
        Assert.Contains("more than the limit", loader.Warnings.Single(w => w.Contains("big.png", StringComparison.Ordinal)));
        Assert.AreEqual(tensors, Tensor.LiveCount);
        Assert.AreEqual(images, Image.LiveCount);

        // The next epoch works the same, and the count keeps growing ("skipped so far").
        int again = 0;
        foreach (var batch in loader.Batches(1))
            using (batch) again += batch.Count;
        Assert.AreEqual(8, again);
        Assert.AreEqual(10, loader.SkippedCount);
    }

    [TestMethod]
    public void BadFiles_Skip_ABatchOfOnlyBadFilesIsLeftOut_ThePartialOneKept()
    {
        using var dir = new TempDir();
        var (good, bad) = Files(dir);
        // In order, batches of 2: [empty, notes] [good0, good1] [missing, good2] [good3]
        var samples = new List<IImageSample> { bad[0].Sample, bad[2].Sample, good[0], good[1], bad[3].Sample, good[2], good[3] };
        var loader = new ImageBatchLoader(new ImageDataset(samples, ["even", "odd"]),
            BadFileOptions with { BatchSize = 2, Shuffle = false })
        {
            OnWarning = _ => { },
        };
        var batches = new List<string>();
        foreach (var batch in loader.Batches(0))
            using (batch) batches.Add(string.Join(",", Indices(batch, Half)));
        CollectionAssert.AreEqual(new[] { "0,1", "2", "3" }, batches);
        Assert.AreEqual(3, loader.SkippedCount);
    }

    [TestMethod]
    public void BadFiles_Throw_StopsWithTheFileAndTheReason_AndTheProcessGoesOn()
    {
        using var dir = new TempDir();
        var (good, bad) = Files(dir);
        long tensors = SettledTensorCount();
        long images = Image.LiveCount;
        foreach (var (sample, reason) in bad)
        {
            // In order, batches of 3: [good0, good1, good2] [good3, BAD, good4] [good5]
            var samples = new List<IImageSample> { good[0], good[1], good[2], good[3], sample, good[4], good[5] };
            var warned = new List<string>();
            var loader = new ImageBatchLoader(new ImageDataset(samples, ["even", "odd"]),
                BadFileOptions with { Shuffle = false, OnBadImage = BadImagePolicy.Throw })
            {
                OnWarning = warned.Add,
            };
            var delivered = new List<int>();
            var e = Assert.ThrowsExactly<ImageDecodeException>(() =>
            {
                foreach (var batch in loader.Batches(0))
                    using (batch) delivered.AddRange(Indices(batch, Half));
            }, sample.Name);
            Assert.AreEqual(sample.Name, e.Path);
            Assert.Contains(reason, e.Reason, sample.Name);
            Assert.Contains(sample.Name, e.Message);
            CollectionAssert.AreEqual(new[] { 0, 1, 2 }, delivered, $"{sample.Name}: the batch before the bad file arrived intact");
            Assert.AreEqual(0, loader.SkippedCount);
            Assert.IsEmpty(warned);
            Assert.AreEqual(tensors, Tensor.LiveCount, $"{sample.Name}: batches in flight freed");
            Assert.AreEqual(images, Image.LiveCount, $"{sample.Name}: decoded images freed");
        }

        // The process carries on: the good files still load through a loader.
        var rest = new ImageBatchLoader(new ImageDataset(good, ["even", "odd"]), BadFileOptions with { OnBadImage = BadImagePolicy.Throw });
        int count = 0;
        foreach (var batch in rest.Batches(0))
            using (batch) count += batch.Count;
        Assert.AreEqual(8, count);
    }
}
