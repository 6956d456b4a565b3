using System.IO.Compression;
using Vit.Torch.Data;

namespace Vit.Torch.Tests;

[TestClass]
public sealed class DataTests
{
    /// <summary>An unsigned-byte IDX file: 0, 0, type 0x08, rank, then big-endian int32 sizes, then the data.</summary>
    internal static byte[] IdxBytes(byte[] data, params int[] shape)
    {
        var ms = new MemoryStream();
        ms.Write([0, 0, 0x08, (byte)shape.Length]);
        foreach (var d in shape) ms.Write([(byte)(d >> 24), (byte)(d >> 16), (byte)(d >> 8), (byte)d]);
        ms.Write(data);
        return ms.ToArray();
    }

    [TestMethod]
    public void ReadsPlainAndGzippedIdx()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var data = Enumerable.Range(0, 24).Select(i => (byte)(i * 7)).ToArray();
        var plain = Path.Combine(dir, "x.idx");
        File.WriteAllBytes(plain, IdxBytes(data, 2, 3, 4));
        var gz = Path.Combine(dir, "x.idx.gz");
        using (var f = File.Create(gz))
        using (var z = new GZipStream(f, CompressionLevel.Fastest))
            z.Write(IdxBytes(data, 2, 3, 4));
        foreach (var p in new[] { plain, gz })
        {
            var (shape, bytes) = Idx.ReadBytes(p);
            CollectionAssert.AreEqual(new[] { 2, 3, 4 }, shape);
            CollectionAssert.AreEqual(data, bytes);
        }
    }

    [TestMethod]
    public void TruncatedOrForeignIdxGivesAClearError()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var t = Path.Combine(dir, "t.idx");
        File.WriteAllBytes(t, IdxBytes(new byte[5], 2, 3)[..^1]);
        StringAssert.Contains(Assert.Throws<InvalidDataException>(() => Idx.ReadBytes(t)).Message, "is truncated");
        var f = Path.Combine(dir, "f.idx");
        File.WriteAllBytes(f, "hello world"u8.ToArray());
        StringAssert.Contains(Assert.Throws<InvalidDataException>(() => Idx.ReadBytes(f)).Message, "not an IDX file");
        var huge = Path.Combine(dir, "h.idx");
        File.WriteAllBytes(huge, IdxBytes([], 0x7fffffff, 0x7fffffff));
        StringAssert.Contains(Assert.Throws<InvalidDataException>(() => Idx.ReadBytes(huge)).Message, "allowed");
    }

    [TestMethod]
    public void LoadsFashionMnistFromDebiansPackage()
    {
        var test = FashionMnist.Load(train: false);
        Assert.AreEqual(10_000, test.Count);
        Assert.AreEqual((1, 28, 28), test.ImageShape);
        var counts = new int[10];
        for (int i = 0; i < test.Count; i++) counts[test.Label(i)]++;
        CollectionAssert.AreEqual(Enumerable.Repeat(1000, 10).ToArray(), counts);  // the test split is balanced
    }

    [TestMethod]
    public void BatchesCoverEverySampleOnceAndShuffleBySeed()
    {
        var data = TrainingTests.Noise(37, 3, seed: 1);
        var src = new InMemoryBatchSource(data, 8, shuffle: true, seed: 5);
        Assert.AreEqual(5, src.BatchesPerEpoch);
        var labels = new List<long>();
        var sizes = new List<int>();
        foreach (var b in src.Batches(0))
            using (b)
            {
                sizes.Add(b.Count);
                labels.AddRange(b.Labels.ToArray<long>());
            }
        CollectionAssert.AreEqual(new[] { 8, 8, 8, 8, 5 }, sizes);
        var order0 = src.Order(0);
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 37).ToArray(), order0);
        CollectionAssert.AreEqual(order0.Select(i => data.Label(i)).ToList(), labels);
        CollectionAssert.AreNotEqual(order0, src.Order(1));
        CollectionAssert.AreEqual(order0, new InMemoryBatchSource(data, 8, shuffle: true, seed: 5).Order(0));
    }

    [TestMethod]
    public void InvalidDatasetsAreRejected()
    {
        StringAssert.Contains(Assert.Throws<ArgumentException>(() => new InMemoryDataset(new float[4], [0], (1, 2, 2), 1)).Message, "at least two classes");
        StringAssert.Contains(Assert.Throws<ArgumentException>(() => new InMemoryDataset(new float[4], [5], (1, 2, 2), 2)).Message, "label 5 of image 0");
        StringAssert.Contains(Assert.Throws<ArgumentException>(() => new InMemoryDataset(new float[5], [0], (1, 2, 2), 2)).Message, "5 pixel values");
    }
}
