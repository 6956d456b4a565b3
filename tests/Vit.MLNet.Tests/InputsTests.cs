using Microsoft.ML.Transforms.Image;
using Vit.MLNet;
using Vit.Torch.Imaging;
using Vit.Torch.Training;

namespace Vit.MLNet.Tests;

/// <summary>What the ViT step takes: images from LoadImages (of the model's size or not), images made in memory in either
/// of MLImage's pixel formats, the bytes of image files; and how a missing or unreadable image is reported.</summary>
[TestClass]
public sealed class InputsTests
{
    private static readonly Lazy<TransformerChain<Microsoft.ML.Transforms.KeyToValueMappingTransformer>> model = new(() =>
    {
        var ml = new MLContext(seed: 3);
        return Fixtures.Pipeline(ml, Fixtures.TinyOptions(epochs: 2)).Fit(ml.Data.LoadFromImageFolder(Fixtures.Folder));
    });

    private static VitTransformer Vit => VitPipeline.Find(model.Value, "test");

    /// <summary>Three pictures of the model's size (16 px), one per class, as PNG files and as RGB bytes.</summary>
    private static readonly Lazy<(string[] Files, byte[][] Rgb)> Pictures16 = new(() =>
    {
        var dir = Directory.CreateTempSubdirectory("vit-16px-").FullName;
        var rng = new Random(21);
        var rgb = Enumerable.Range(0, 3).Select(c => Fixtures.Pixels(c, 16, rng)).ToArray();
        var files = rgb.Select((px, c) =>
        {
            using var image = Image.FromPixels(px, 16, 16, 3);
            var path = Path.Combine(dir, $"{Fixtures.Classes[c]}.png");
            File.WriteAllBytes(path, image.EncodePng());
            return path;
        }).ToArray();
        return (files, rgb);
    });

    private sealed class MLImageRow
    {
        [ImageType(16, 16)]
        public MLImage Image { get; set; } = null!;
    }

    private sealed class BytesRow
    {
        public byte[] Image { get; set; } = [];
    }

    /// <summary>RGB bytes as 4-byte pixels in the order of <paramref name="format"/>.</summary>
    private static byte[] Four(byte[] rgb, MLPixelFormat format)
    {
        var four = new byte[rgb.Length / 3 * 4];
        for (int i = 0; i < rgb.Length / 3; i++)
        {
            byte r = rgb[i * 3], g = rgb[i * 3 + 1], b = rgb[i * 3 + 2];
            (four[i * 4], four[i * 4 + 1], four[i * 4 + 2], four[i * 4 + 3]) = format == MLPixelFormat.Rgba32 ? (r, g, b, (byte)255) : (b, g, r, (byte)255);
        }
        return four;
    }

    private static List<float[]> ScoreImages(MLContext ml, IEnumerable<MLImage> images) =>
        Rows.Vectors(Vit.Transform(ml.Data.LoadFromEnumerable(images.Select(i => new MLImageRow { Image = i }).ToList())));

    private static List<float[]> ScoreFiles(MLContext ml, IEnumerable<string> files, bool resize = false)
    {
        var paths = ml.Data.LoadFromEnumerable(files.Select(f => new ImageInput { ImagePath = f }).ToList());
        IEstimator<ITransformer> load = ml.Transforms.LoadImages("Image", null, "ImagePath");
        if (resize) load = load.Append(ml.Transforms.ResizeImages("Image", 16, 16));
        return Rows.Vectors(Vit.Transform(load.Fit(paths).Transform(paths)));
    }

    private static void AssertSame(List<float[]> expected, List<float[]> actual, string what)
    {
        Assert.HasCount(expected.Count, actual, what);
        for (int i = 0; i < expected.Count; i++) CollectionAssert.AreEqual(expected[i], actual[i], $"{what}, row {i}");
    }

    /// <summary>MLImages made in memory score the same in ML.NET's two pixel formats, and the same as LoadImages of the same
    /// PNG files: the pixels reach the model identically (PNG is lossless, so the decoded bytes are the same bytes).</summary>
    [TestMethod]
    public void MLImagesInBothPixelFormats_ScoreAsLoadImagesOfTheSamePng()
    {
        var ml = new MLContext();
        var (files, rgb) = Pictures16.Value;
        var bgra = ScoreImages(ml, rgb.Select(px => MLImage.CreateFromPixels(16, 16, MLPixelFormat.Bgra32, Four(px, MLPixelFormat.Bgra32))));
        var rgba = ScoreImages(ml, rgb.Select(px => MLImage.CreateFromPixels(16, 16, MLPixelFormat.Rgba32, Four(px, MLPixelFormat.Rgba32))));
        var loaded = ScoreFiles(ml, files);
        AssertSame(rgba, bgra, "Bgra32 against Rgba32");
        AssertSame(rgba, loaded, "LoadImages against Rgba32");

        // The test sees the channels: the same bytes read in the other order (red and blue swapped) score otherwise.
        var swapped = ScoreImages(ml, rgb.Select(px => MLImage.CreateFromPixels(16, 16, MLPixelFormat.Rgba32, Four(px, MLPixelFormat.Bgra32))));
        Assert.IsFalse(swapped.Zip(rgba).All(p => p.First.SequenceEqual(p.Second)), "swapped channels must change the scores");
    }

    /// <summary>
    /// The bytes of the files (LoadRawImageBytes, or a byte array made in memory) score exactly as LoadImages of the same
    /// files: two decoders (ours, SkiaSharp's) but PNG is lossless, so both give the same 8-bit pixels, and from there the
    /// same code runs. No tolerance is needed, and none is allowed.
    /// </summary>
    [TestMethod]
    public void RawImageBytes_ScoreExactlyAsLoadImagesOfThePng()
    {
        var ml = new MLContext();
        var files = Fixtures.Classes.Select(Rows.First).Concat(Pictures16.Value.Files).ToList();  // 24 px and 16 px
        var paths = ml.Data.LoadFromEnumerable(files.Select(f => new ImageInput { ImagePath = f }).ToList());
        var raw = ml.Transforms.LoadRawImageBytes("Image", null, "ImagePath").Fit(paths).Transform(paths);
        Assert.IsInstanceOfType<VectorDataViewType>(raw.Schema["Image"].Type);
        var fromRaw = Rows.Vectors(Vit.Transform(raw));
        var fromMemory = Rows.Vectors(Vit.Transform(ml.Data.LoadFromEnumerable(files.Select(f => new BytesRow { Image = File.ReadAllBytes(f) }).ToList())));
        var loaded = ScoreFiles(ml, files);
        AssertSame(loaded, fromRaw, "LoadRawImageBytes against LoadImages");
        AssertSame(loaded, fromMemory, "bytes in memory against LoadImages");
    }

    /// <summary>Images of another size than the model's (no ResizeImages) are brought to it by the model's own
    /// preprocessing: they score as the same images resized by hand with <see cref="VitImageTransformer.Preprocessing"/>.
    /// Training takes them too.</summary>
    [TestMethod]
    public void ImagesOfAnotherSize_AreResizedByTheModelsPreprocessing()
    {
        var ml = new MLContext(seed: 5);
        var files = Rows.Files(Fixtures.Folder).Where((_, i) => i % 10 == 0).ToList();  // 24 px
        var resizedByHand = files.Select(f =>
        {
            using var decoded = Image.Decode(f);
            Assert.AreEqual((24, 24), (decoded.Width, decoded.Height));
            using var rgb = decoded.ToChannels(3);
            using var resized = Vit.Preprocessing.Resize(rgb);
            Assert.AreEqual((16, 16), (resized.Width, resized.Height));
            return MLImage.CreateFromPixels(16, 16, MLPixelFormat.Rgba32, Four(resized.ToBytes(), MLPixelFormat.Rgba32));
        }).ToList();
        var expected = ScoreImages(ml, resizedByHand);
        AssertSame(expected, ScoreFiles(ml, files), "24 px images against the same resized by hand");
        // ML.NET's ResizeImages resizes otherwise: the numbers above are the model's preprocessing, not any resize.
        Assert.IsFalse(expected.Zip(ScoreFiles(ml, files, resize: true)).All(p => p.First.SequenceEqual(p.Second)));

        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        using var trained = ml.Transforms.LoadImages("Image", null, "ImagePath").Append(new VitEstimator(ml, Fixtures.TinyOptions(epochs: 1))).Fit(data);
        var vit = VitPipeline.Find(trained, "test");
        Assert.AreEqual(16, vit.Model.Config.ImageSize, "the configured size: the column's size is not fixed");
        Assert.AreEqual(0, vit.History!.SkippedImages);
        Assert.HasCount(60, Rows.Vectors(trained.Transform(data)));
    }

    [TestMethod]
    public void AMissingFile_FailsTransformNamingIt()
    {
        var ml = new MLContext();
        var missing = Path.Combine(Fixtures.Folder, "gone.png");
        var rows = ml.Data.LoadFromEnumerable(new[] { new ImageInput { ImagePath = Rows.First("red") }, new ImageInput { ImagePath = missing } });
        var scored = model.Value.Transform(rows);
        var e = Assert.ThrowsExactly<FileNotFoundException>(() => Rows.Vectors(scored));
        StringAssert.Contains(e.Message, missing);
        StringAssert.Contains(e.Message, "row 1");
    }

    [TestMethod]
    public void CsvWithRelativePaths_LoadsThroughLoadImagesImageFolder()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var csv = Path.Combine(dir, "data.csv");
        string red = Rows.First("red"), blue = Rows.First("blue");
        File.WriteAllLines(csv, ["ImagePath,Label", $"red/{Path.GetFileName(red)},red", $"\"blue/{Path.GetFileName(blue)}\",blue"]);
        var ml = new MLContext();
        var data = ml.Data.LoadFromTextFile<CsvRow>(csv, separatorChar: ',', hasHeader: true, allowQuoting: true);
        var pipeline = ml.Transforms.LoadImages("Image", imageFolder: Fixtures.Folder, inputColumnName: "ImagePath")
            .Append(ml.Transforms.ResizeImages("Image", 16, 16));
        var scored = Rows.Vectors(Vit.Transform(pipeline.Fit(data).Transform(data)));
        AssertSame(ScoreFiles(ml, [red, blue], resize: true), scored, "relative paths against absolute ones");
    }

    private sealed class CsvRow
    {
        [LoadColumn(0)] public string ImagePath { get; set; } = "";
        [LoadColumn(1)] public string Label { get; set; } = "";
    }

    [TestMethod]
    public void EngineAndTransformGiveTheSameNumbers()
    {
        var ml = new MLContext();
        var files = Fixtures.Classes.Select(Rows.First).ToArray();
        var batch = Rows.Vectors(model.Value.Transform(ml.Data.LoadFromEnumerable(files.Select(f => new ImageInput { ImagePath = f }).ToList())));
        // Not disposed: an engine made by CreatePredictionEngine owns its model and would dispose the shared one.
        var engine = ml.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(model.Value);
        // Batches of 3 and of 1 go through matrix products of different shapes, which may round the last bit differently.
        for (int i = 0; i < files.Length; i++)
        {
            var single = engine.Predict(new ImageInput { ImagePath = files[i] }).Score;
            Assert.HasCount(3, single);
            for (int c = 0; c < single.Length; c++) Assert.AreEqual(batch[i][c], single[c], 1e-6f);
        }
    }

    [TestMethod]
    public void GrayAndRgbaImagesAreConvertedToTheModelsChannels()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var rng = new Random(5);
        var rgb = Fixtures.Pixels(2, 16, rng);                    // red
        var gray = new byte[16 * 16];
        var rgba = new byte[16 * 16 * 4];
        for (int i = 0; i < 16 * 16; i++)
        {
            gray[i] = rgb[i * 3];
            for (int c = 0; c < 3; c++) rgba[i * 4 + c] = rgb[i * 3 + c];
            rgba[i * 4 + 3] = 255;
        }
        string Save(string name, byte[] px, int ch)
        {
            using var img = Image.FromPixels(px, 16, 16, ch);
            var p = Path.Combine(dir, name);
            File.WriteAllBytes(p, img.EncodePng());
            return p;
        }
        var engine = new MLContext().Model.CreatePredictionEngine<ImageInput, ImagePrediction>(model.Value);
        var fromRgb = engine.Predict(new ImageInput { ImagePath = Save("rgb.png", rgb, 3) });
        var fromRgba = engine.Predict(new ImageInput { ImagePath = Save("rgba.png", rgba, 4) });
        CollectionAssert.AreEqual(fromRgb.Score, fromRgba.Score);   // alpha dropped, colour kept
        var fromGray = engine.Predict(new ImageInput { ImagePath = Save("gray.png", gray, 1) });
        Assert.HasCount(3, fromGray.Score);                          // gray replicated to RGB: scored, not refused
    }

    [TestMethod]
    public void MissingOrEmptyImageAtScoringTimeIsNamed()
    {
        var engine = new MLContext().Model.CreatePredictionEngine<ImageInput, ImagePrediction>(model.Value);
        var missing = Path.Combine(Fixtures.Folder, "gone.png");
        var e = Assert.ThrowsExactly<FileNotFoundException>(() => engine.Predict(new ImageInput { ImagePath = missing }));
        StringAssert.Contains(e.Message, "gone.png");
        var e2 = Assert.ThrowsExactly<InvalidDataException>(() => engine.Predict(new ImageInput { ImagePath = "" }));
        StringAssert.Contains(e2.Message, "image column 'Image' has no image");
        Assert.AreEqual("red", engine.Predict(new ImageInput { ImagePath = Rows.First("red") }).PredictedLabel);  // and it still works
    }

    [TestMethod]
    public void CancellationWithAValidationSetKeepsTheBestEvaluatedEpoch()
    {
        var ml = new MLContext(seed: 1);
        using var cts = new CancellationTokenSource();
        var options = Fixtures.TinyOptions(epochs: 50);
        options.ValidationFraction = 0.25;
        int stepsPerEpoch = (int)Math.Ceiling(45 / 8.0);
        options.Progress = new SyncProgress<VitTrainingProgress>(p =>
        {
            if (p.Step == 2 * stepsPerEpoch + 2) cts.Cancel();   // in the middle of the third epoch
        });
        options.CancellationToken = cts.Token;
        using var m = Fixtures.Pipeline(ml, options).Fit(ml.Data.LoadFromImageFolder(Fixtures.Folder));
        var r = VitPipeline.Find(m, "test").History!.Result;
        Assert.IsTrue(r.Cancelled);
        Assert.HasCount(2, r.Epochs.Where(e => e.Evaluation is not null).ToList());   // the partial epoch was not evaluated
        var best = r.Epochs.Where(e => e.Evaluation is not null).MaxBy(e => e.Evaluation!.Accuracy)!;
        Assert.AreEqual(best.Epoch, r.BestEpoch);
    }
}
