using System.IO.Compression;
using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.Torch.Tests;

/// <summary>
/// What the fuzzers found, kept: each input (Fixtures/fuzz/, as the fuzzer wrote it) must now be refused with an
/// <see cref="InvalidDataException"/> that names the file, where it once escaped as another exception.
/// </summary>
[TestClass]
public sealed class FuzzFixtureTests : TempDirectoryTests
{
    private static readonly VitConfig Tiny = new()
    {
        ImageSize = 8, PatchSize = 4, Channels = 3, Dim = 8, Depth = 1, Heads = 2, MlpDim = 16, NumClasses = 3,
    };

    private static byte[] Fixture(string name) => File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Fixtures", "fuzz", name));

    private string ZipWithModelJson(byte[] json)
    {
        Torch.ManualSeed(3);
        using var model = new VisionTransformer(Tiny);
        var good = Path.Combine(Dir, "good.zip");
        VitModelZip.Save(good, model, ["a", "b", "c"], new VitPreprocessing(8, 3, Normalization.ImageNet));
        var path = Path.Combine(Dir, "fuzzed.zip");
        using (var read = ZipFile.OpenRead(good))
        using (var write = ZipFile.Open(path, ZipArchiveMode.Create))
            foreach (var e in read.Entries)
            {
                using var from = e.Open();
                using var to = write.CreateEntry(e.FullName, CompressionLevel.NoCompression).Open();
                if (e.FullName == VitModelZip.ModelEntry) to.Write(json);
                else from.CopyTo(to);
            }
        return path;
    }

    [TestMethod]
    public void AModelJsonWithInvalidUtf8IsRefusedNamingTheFile()
    {
        // Found by tools/Vit.Fuzz (model-json): bytes 0xFF in a key. It escaped as InvalidOperationException ("Cannot
        // transcode invalid UTF-8") from whichever field read the string.
        var zip = ZipWithModelJson(Fixture("model-json-invalid-utf8.json"));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => VitModelZip.Load(zip, null, out _, out _));
        StringAssert.Contains(e.Message, zip);
        StringAssert.Contains(e.Message, "UTF-8");
    }

    [TestMethod]
    public void AModelJsonWithALoneSurrogateEscapeIsRefusedNamingTheFile()
    {
        // Valid UTF-8 bytes, but an escape that is no character: the same escape, caught at parsing.
        var json = System.Text.Encoding.UTF8.GetString(Fixture("model-json-invalid-utf8.json").Select(b => b == 0xFF ? (byte)'x' : b).ToArray())
            .Replace("\"Vit for .NET\"", "\"Vit \\ud800 .NET\"", StringComparison.Ordinal);
        var zip = ZipWithModelJson(System.Text.Encoding.UTF8.GetBytes(json));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => VitModelZip.Load(zip, null, out _, out _));
        StringAssert.Contains(e.Message, zip);
        StringAssert.Contains(e.Message, "not valid text");
    }

    [TestMethod]
    public void AHuggingFaceConfigWithInvalidUtf8IsRefusedNamingTheFile()
    {
        // Found by tools/Vit.Fuzz (hf-config): an invalid byte inside id2label, read by CheckpointFolders.ReadId2Label.
        Torch.ManualSeed(3);
        using var model = new VisionTransformer(Tiny);
        var dir = Path.Combine(Dir, "hf");
        model.SavePretrained(dir, new VitPreprocessing(8, 3, Normalization.ImageNet), ["a", "b", "c"]);
        File.WriteAllBytes(Path.Combine(dir, "config.json"), Fixture("hf-config-invalid-utf8-id2label.json"));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => PretrainedVit.Load(dir));
        StringAssert.Contains(e.Message, "config.json");
        StringAssert.Contains(e.Message, "UTF-8");
    }

    [TestMethod]
    [DataRow("safetensors-lone-surrogate-in-metadata.safetensors")]
    [DataRow("safetensors-lone-surrogate-in-tensor-name.safetensors")]
    public void ASafetensorsHeaderWithALoneSurrogateEscapeIsRefusedNamingTheFile(string fixture)
    {
        // Found by AFL++ through SharpFuzz (eng/fuzz.sh, safetensors) in 20 s: "\ud800" in a metadata value, in a tensor's
        // name. Valid UTF-8, valid JSON; it escaped as InvalidOperationException from JsonElement.GetString / Name.
        var path = Path.Combine(Dir, "fuzzed.safetensors");
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", "fuzz", fixture), path);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => Safetensors.Open(path).Dispose());
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "not valid text");
    }

    [TestMethod]
    public void ALoneSurrogateEscapedInsideAMetadataValueIsRefusedNamingTheFile()
    {
        // The same escape one level down: the metadata string is valid text ("\\ud800" outside), the JSON it holds is not.
        Torch.ManualSeed(3);
        using var model = new VisionTransformer(Tiny);
        var metadata = VitMetadata.Of(model.Config, new VitPreprocessing(8, 3, Normalization.ImageNet), ["a", "b", "c"]);
        metadata[VitMetadata.Labels] = "[\"a\", \"\\ud800\", \"c\"]";
        var path = Path.Combine(Dir, "labels.safetensors");
        Safetensors.Save(path, model.NamedParameters(), metadata);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => PretrainedVit.Load(path).Dispose());
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "not valid text");
    }
}

/// <summary>A finding of the former native decoders' fuzzer: OpenCV 4.6's exact nearest-neighbour resize read outside a
/// source with a side of 32768 or more. Imaging is SkiaSharp now; the inputs stay, as any resampler's edge case.</summary>
[TestClass]
public sealed class WideImageResizeTests
{
    [TestMethod]
    public void TheFuzzedJpegOf63000By8ResizesWithNearestInsideTheImage()
    {
        // Found by libFuzzer with ASan: decoding is fine; resizing to 13x21 with nearest read 7 KB before the pixels.
        var bytes = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Fixtures", "fuzz", "jpeg-63000x8-resize-nearest-oob-read.jpg"));
        using var image = Imaging.Image.Decode(bytes, sourceName: "fuzzed.jpg");
        Assert.AreEqual(63000, image.Width);
        using var small = image.Resize(13, 21, Imaging.ResizeMode.Stretch, Imaging.Interpolation.Nearest);
        Assert.AreEqual((13, 21), (small.Width, small.Height));
    }

    [TestMethod]
    public void NearestFromAWideSourcePicksTheColumnsOfTheCentresFormula()
    {
        // 40000 x 2, column x holding x mod 251: output column i must come from source column floor((i + 0.5) * 40000 / 13)
        // (give or take one at a rounding edge of OpenCV's 16.16 fixed point).
        const int w = 40000, to = 13;
        var px = new byte[w * 2];
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < w; x++) px[y * w + x] = (byte)(x % 251);
        using var wide = Imaging.Image.FromPixels(px, w, 2, 1);
        using var small = wide.Resize(to, 2, Imaging.ResizeMode.Stretch, Imaging.Interpolation.Nearest);
        var got = small.ToBytes();
        for (int i = 0; i < to; i++)
        {
            int centre = (int)Math.Floor((i + 0.5) * w / to);
            var allowed = new[] { centre - 1, centre, centre + 1 }.Where(c => c >= 0 && c < w).Select(c => (byte)(c % 251)).ToArray();
            CollectionAssert.Contains(allowed, got[i], $"output column {i}");
        }
    }
}
