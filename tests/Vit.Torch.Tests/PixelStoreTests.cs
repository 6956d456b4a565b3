using Vit.Torch.Data;

namespace Vit.Torch.Tests;

/// <summary><see cref="PixelStore"/>: decoded images kept in memory up to a budget and in a temporary file beyond it,
/// read back exactly, from several threads at once, the file gone when the store is disposed.</summary>
[TestClass]
public sealed class PixelStoreTests
{
    /// <summary>The store's temporary files of this process (it names them vit-pixels-&lt;pid&gt;-&lt;guid&gt;.bin).</summary>
    private static HashSet<string> TemporaryFiles() =>
        Directory.EnumerateFiles(Path.GetTempPath(), $"vit-pixels-{Environment.ProcessId}-*.bin").ToHashSet();

    private static byte[][] RandomImages(int count, int bytes, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ =>
        {
            var b = new byte[bytes];
            rng.NextBytes(b);
            return b;
        }).ToArray();
    }

    private static void AssertReadsBack(PixelStore store, byte[][] images, IEnumerable<int> order)
    {
        var buffer = new byte[store.ImageBytes];
        foreach (int i in order)
        {
            store.Read(i, buffer);
            int differs = images[i].AsSpan().CommonPrefixLength(buffer);
            Assert.AreEqual(buffer.Length, differs, $"image {i} differs from byte {differs} on");
        }
    }

    [TestMethod]
    public void ImagesRoundTripExactlyInMemory()
    {
        var before = TemporaryFiles();
        var images = RandomImages(50, 7 * 5 * 3, 1);
        using (var store = new PixelStore(7, 5, 3))
        {
            Assert.AreEqual(105, store.ImageBytes);
            for (int i = 0; i < images.Length; i++) Assert.AreEqual(i, store.Add(images[i]));
            Assert.AreEqual(50, store.Count);
            Assert.AreEqual(50, store.CountInMemory);
            AssertReadsBack(store, images, Enumerable.Range(0, 50).Reverse());
            using var image = store.Load(17);
            Assert.AreEqual((7, 5, 3), (image.Width, image.Height, image.Channels));
            CollectionAssert.AreEqual(images[17], image.ToBytes());
            Assert.IsEmpty(TemporaryFiles().Except(before), "within the budget no file is made");

            Assert.ThrowsExactly<ArgumentException>(() => store.Add(new byte[104]));
            Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => store.Read(50, new byte[105]));
            Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => store.Read(-1, new byte[105]));
            Assert.ThrowsExactly<ArgumentException>(() => store.Read(0, new byte[106]));
        }
    }

    [TestMethod]
    public void ImagesBeyondTheMemoryBudgetGoToATemporaryFileDeletedOnDispose()
    {
        var before = TemporaryFiles();
        const int width = 9, height = 4, channels = 4;
        var images = RandomImages(40, width * height * channels, 2);
        var store = new PixelStore(width, height, channels, memoryBudget: 10L * width * height * channels + 100);
        string file;
        try
        {
            foreach (var image in images) store.Add(image);
            Assert.AreEqual(40, store.Count);
            Assert.AreEqual(10, store.CountInMemory, "the first images up to the budget stay in memory");
            var made = TemporaryFiles().Except(before).ToList();
            Assert.HasCount(1, made, "the rest go to one temporary file");
            file = made[0];
            Assert.AreEqual(30L * store.ImageBytes, new FileInfo(file).Length);
            // Read back in another order than written: memory and file, across their boundary.
            AssertReadsBack(store, images, Enumerable.Range(0, 40).Select(i => i * 7 % 40));
            using var fromFile = store.Load(33);
            CollectionAssert.AreEqual(images[33], fromFile.ToBytes());
        }
        finally
        {
            store.Dispose();
        }
        Assert.IsFalse(File.Exists(file), "Dispose deletes the temporary file");
        Assert.ThrowsExactly<ObjectDisposedException>(() => store.Read(0, new byte[store.ImageBytes]));
        Assert.ThrowsExactly<ObjectDisposedException>(() => store.Add(images[0]));
    }

    [TestMethod]
    public void ANoughtBudgetPutsEveryImageInTheFile()
    {
        var images = RandomImages(5, 3 * 3, 3);
        using var store = new PixelStore(3, 3, 1, memoryBudget: 0);
        foreach (var image in images) store.Add(image);
        Assert.AreEqual(0, store.CountInMemory);
        AssertReadsBack(store, images, [4, 0, 3, 1, 2]);
    }

    [TestMethod]
    public void LargeImagesSpanSeveralMemoryChunksAndTheFile()
    {
        // 20 MB images: three to a 64 MB chunk in memory; four in memory (chunks of 3 and 1), the fifth in the file.
        const int width = 5000, height = 1000, channels = 4;
        var images = RandomImages(5, width * height * channels, 4);
        using var store = new PixelStore(width, height, channels, memoryBudget: 4L * width * height * channels);
        foreach (var image in images) store.Add(image);
        Assert.AreEqual(4, store.CountInMemory);
        AssertReadsBack(store, images, [4, 3, 2, 1, 0]);
    }

    [TestMethod]
    public void SeveralThreadsReadWhileOneAdds()
    {
        // Readers take any index the store already counts, in memory or in the file, while the writer goes on adding;
        // every read must give that image's bytes exactly.
        const int width = 8, height = 8, channels = 3, count = 3000;
        var images = RandomImages(count, width * height * channels, 5);
        using var store = new PixelStore(width, height, channels, memoryBudget: 1000L * width * height * channels);
        foreach (var image in images.Take(100)) store.Add(image);
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        long reads = 0;
        using var done = new CancellationTokenSource();
        var readers = Enumerable.Range(0, 6).Select(t => Task.Factory.StartNew(() =>
        {
            var rng = new Random(100 + t);
            var buffer = new byte[store.ImageBytes];
            while (!done.IsCancellationRequested)
            {
                int i = rng.Next(store.Count);
                store.Read(i, buffer);
                if (!buffer.AsSpan().SequenceEqual(images[i])) failures.Add($"thread {t}, image {i}");
                Interlocked.Increment(ref reads);
            }
        }, TaskCreationOptions.LongRunning)).ToArray();
        foreach (var image in images.Skip(100))
        {
            store.Add(image);
            Thread.SpinWait(200);
        }
        // Then a while of reads over the whole store, half of it in the file.
        Thread.Sleep(300);
        done.Cancel();
        Task.WaitAll(readers);
        Assert.AreEqual(count, store.Count);
        Assert.AreEqual(1000, store.CountInMemory);
        Assert.IsEmpty(failures, string.Join(", ", failures.Take(10)));
        Assert.IsGreaterThan(10_000L, reads, "the readers ran");
        AssertReadsBack(store, images, Enumerable.Range(0, count));
    }
}
