using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.Torch.Tests;

/// <summary>
/// Damaged copies are refused, not served: a model zip checks every entry it reads against the archive's CRC-32, and a
/// safetensors file of ours checks its tensor data against the CRC-32 in its metadata. A byte flipped anywhere either
/// makes the load fail with an error that says the file is corrupted or damaged, or leaves the weights as they were.
/// </summary>
[TestClass]
public sealed class IntegrityTests : TempDirectoryTests
{
    private static readonly VitConfig Small = new()
    {
        ImageSize = 16, PatchSize = 8, Channels = 3, Dim = 32, Depth = 2, Heads = 4, MlpDim = 64, NumClasses = 3,
    };

    private static VisionTransformer NewModel()
    {
        Torch.ManualSeed(5);
        var m = new VisionTransformer(Small);
        TestModels.Randomize(m);
        return m;
    }

    private static float[] Weights(VisionTransformer model) => model.NamedParameters().SelectMany(p => p.Parameter.ToArray<float>()).ToArray();

    private string SavedZip(VisionTransformer model)
    {
        var zip = Path.Combine(Dir, "model.zip");
        VitModelZip.Save(zip, model, ["a", "b", "c"], new VitPreprocessing(16, 3, Normalization.ImageNet));
        return zip;
    }

    /// <summary>Where an entry's data starts in the file.</summary>
    private static long DataOffset(string zip, string entry)
    {
        using var reader = VitModelZip.OpenZip(zip);
        return reader.Locate(reader.Find(entry)!);
    }

    private static void Flip(string path, long at)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        fs.Position = at;
        int b = fs.ReadByte();
        fs.Position = at;
        fs.WriteByte((byte)(b ^ 0x10));
    }

    /// <summary>The zip as files written before the weights carried their own CRC-32: the metadata key renamed (same
    /// length, so every offset stays), the archive rebuilt, so that only the zip's CRC-32 guards the weights.</summary>
    private static void WithoutWeightsCrc(string zip)
    {
        var entries = new List<(string Name, byte[] Data)>();
        using (var read = System.IO.Compression.ZipFile.OpenRead(zip))
            foreach (var entry in read.Entries)
            {
                using var s = entry.Open();
                using var m = new MemoryStream();
                s.CopyTo(m);
                entries.Add((entry.FullName, m.ToArray()));
            }
        File.Delete(zip);
        using var write = System.IO.Compression.ZipFile.Open(zip, System.IO.Compression.ZipArchiveMode.Create);
        foreach (var (name, data) in entries)
        {
            if (name == VitModelZip.WeightsEntry)
            {
                var text = System.Text.Encoding.Latin1.GetString(data);
                int at = text.IndexOf(Safetensors.CrcKey, StringComparison.Ordinal);
                Assert.IsGreaterThan(0, at);
                System.Text.Encoding.ASCII.GetBytes("vit.crcXX").CopyTo(data, at);
            }
            using var s = write.CreateEntry(name, System.IO.Compression.CompressionLevel.NoCompression).Open();
            s.Write(data);
        }
    }

    [TestMethod]
    [DataRow(true, DisplayName = "weights with their own CRC-32")]
    [DataRow(false, DisplayName = "weights without (an older file): the zip's CRC-32 alone")]
    public void AFlippedBitInAModelZipsWeightsIsRefusedAsCorrupted(bool weightsCrc)
    {
        using var model = NewModel();
        var zip = SavedZip(model);
        if (!weightsCrc)
        {
            WithoutWeightsCrc(zip);
            using var intact = VitModelZip.Load(zip, null, out _, out _);
            CollectionAssert.AreEqual(Weights(model), Weights(intact.Model), "the rebuilt file loads as it was");
        }
        long start = DataOffset(zip, VitModelZip.WeightsEntry);
        // The last byte of the weights: a float's low mantissa bits, a change no shape or header check can see.
        long length = new FileInfo(zip).Length;
        using (var reader = VitModelZip.OpenZip(zip)) length = reader.Find(VitModelZip.WeightsEntry)!.Length;
        Flip(zip, start + length - 1);
        var e = Assert.Throws<InvalidDataException>(() => VitModelZip.Load(zip, null, out _, out _));
        StringAssert.Contains(e.Message, "corrupted");
        StringAssert.Contains(e.Message, VitModelZip.WeightsEntry);
        StringAssert.Contains(e.Message, zip);
    }

    [TestMethod]
    public void AFlippedBitInASafetensorsCheckpointIsRefusedAsCorrupted()
    {
        using var model = NewModel();
        var path = Path.Combine(Dir, "weights.safetensors");
        Safetensors.Save(path, model.NamedParameters());
        var header = Safetensors.ReadHeader(path);
        Assert.IsTrue(header.Metadata.ContainsKey(Safetensors.CrcKey));
        Flip(path, header.DataStart + header.DataLength / 2);
        var e = Assert.Throws<InvalidDataException>(() => Safetensors.Open(path).Dispose());
        StringAssert.Contains(e.Message, "corrupted");
        Assert.Throws<InvalidDataException>(() => PretrainedVit.Load(path));
    }

    [TestMethod]
    public void FiftyZipsWithRandomFlipsAreEachRefusedOrLoadTheSameWeights()
    {
        using var model = NewModel();
        var zip = SavedZip(model);
        var expected = Weights(model);
        var original = File.ReadAllBytes(zip);
        var rng = new Random(13);
        int refused = 0, same = 0;
        for (int trial = 0; trial < 50; trial++)
        {
            var bytes = (byte[])original.Clone();
            for (int k = 0; k < 3; k++) bytes[rng.Next(bytes.Length)] ^= (byte)(1 << rng.Next(8));
            var path = Path.Combine(Dir, $"flipped-{trial}.zip");
            File.WriteAllBytes(path, bytes);
            try
            {
                using var loaded = VitModelZip.Load(path, null, out _, out _);
                // Loaded: the flips hit bytes no reader uses (a timestamp, a comment): the weights must be the original ones.
                CollectionAssert.AreEqual(expected, Weights(loaded.Model), $"trial {trial} loaded different weights without a word");
                same++;
            }
            catch (InvalidDataException e)
            {
                StringAssert.Contains(e.Message, path);
                refused++;
            }
        }
        TestContext.WriteLine($"{refused} refused, {same} loaded with the original weights");
        Assert.IsGreaterThan(40, refused, "nearly every flip lands in data the CRC covers");
    }
}
