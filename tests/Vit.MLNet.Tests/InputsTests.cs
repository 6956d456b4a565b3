using Vit.MLNet;
using Vit.Torch.Imaging;
using Vit.Torch.Training;

namespace Vit.MLNet.Tests;

[TestClass]
public sealed class InputsTests
{
    private static readonly Lazy<TransformerChain<VitTransformer>> model = new(() =>
    {
        var ctx = new VitContext(seed: 3);
        return Fixtures.Pipeline(ctx, Fixtures.TinyOptions(epochs: 2)).Fit(ctx.Data.LoadFromImageFolder(Fixtures.Folder));
    });

    private static string File0(string cls) => Directory.GetFiles(Path.Combine(Fixtures.Folder, cls)).Order(StringComparer.Ordinal).First();

    [TestMethod]
    public void CsvWithRelativePathsLoadsThroughImageFolder()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var csv = Path.Combine(dir, "data.csv");
        File.WriteAllLines(csv, ["ImagePath,Label", $"red/{Path.GetFileName(File0("red"))},red", $"\"blue/{Path.GetFileName(File0("blue"))}\",blue"]);
        var ctx = new VitContext();
        var data = ctx.Data.LoadFromTextFile(csv);
        var rows = ctx.Transforms.LoadImages("Image", imageFolder: Fixtures.Folder, inputColumnName: "ImagePath").Fit(data).Transform(data).GetRows().ToList();
        Assert.HasCount(2, rows);
        Assert.AreEqual(Path.Combine(Fixtures.Folder, "blue", Path.GetFileName(File0("blue"))), ((ImageSource)rows[1]["Image"]!).Path);
        var scored = model.Value.LastTransformer.Transform(ctx.Transforms.ResizeImages("Image", 16, 16).Fit(data)
            .Transform(ctx.Transforms.LoadImages("Image", Fixtures.Folder, "ImagePath").Fit(data).Transform(data)));
        Assert.AreEqual(2, scored.GetRows().Count());
    }

    [TestMethod]
    public void InMemoryBytesScoreLikeTheFile()
    {
        var ctx = new VitContext();
        var file = File0("green");
        var fromFile = ctx.Data.LoadFromEnumerable(new[] { new ImageInput { ImagePath = file } });
        var fromBytes = ctx.Data.LoadFromEnumerable(new[] { new BytesInput { ImagePath = File.ReadAllBytes(file) } });
        float[] Score(IDataView d) => (float[])model.Value.Transform(d).GetRows().Single()["Score"]!;
        CollectionAssert.AreEqual(Score(fromFile), Score(fromBytes));
    }

    private sealed class BytesInput
    {
        public byte[] ImagePath { get; set; } = [];
    }

    [TestMethod]
    public void EngineAndTransformGiveTheSameNumbers()
    {
        var ctx = new VitContext();
        var files = Fixtures.Classes.Select(File0).ToArray();
        var view = model.Value.Transform(ctx.Data.LoadFromEnumerable(files.Select(f => new ImageInput { ImagePath = f }).ToList()));
        var batch = view.GetRows().Select(r => (float[])r["Score"]!).ToList();
        var engine = ctx.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(model.Value);
        // Batches of 3 and of 1 go through matrix products of different shapes, which may round the last bit differently.
        for (int i = 0; i < files.Length; i++)
        {
            var single = engine.Predict(new ImageInput { ImagePath = files[i] }).Score;
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
        var engine = new VitContext().Model.CreatePredictionEngine<ImageInput, ImagePrediction>(model.Value);
        var fromRgb = engine.Predict(new ImageInput { ImagePath = Save("rgb.png", rgb, 3) });
        var fromRgba = engine.Predict(new ImageInput { ImagePath = Save("rgba.png", rgba, 4) });
        CollectionAssert.AreEqual(fromRgb.Score, fromRgba.Score);   // alpha dropped, colour kept
        var fromGray = engine.Predict(new ImageInput { ImagePath = Save("gray.png", gray, 1) });
        Assert.HasCount(3, fromGray.Score);                          // gray replicated to RGB: scored, not refused
    }

    [TestMethod]
    public void MissingOrEmptyImageAtScoringTimeIsNamed()
    {
        var engine = new VitContext().Model.CreatePredictionEngine<ImageInput, ImagePrediction>(model.Value);
        var missing = Path.Combine(Fixtures.Folder, "gone.png");
        var e = Assert.Throws<FileNotFoundException>(() => engine.Predict(new ImageInput { ImagePath = missing }));
        StringAssert.Contains(e.Message, "gone.png");
        var e2 = Assert.Throws<ArgumentException>(() => engine.Predict(new ImageInput { ImagePath = "" }));
        StringAssert.Contains(e2.Message, "has no image in column 'Image'");
        Assert.AreEqual("red", engine.Predict(new ImageInput { ImagePath = File0("red") }).PredictedLabel);  // and it still works
    }

    [TestMethod]
    public void CancellationWithAValidationSetKeepsTheBestEvaluatedEpoch()
    {
        var ctx = new VitContext(seed: 1);
        using var cts = new CancellationTokenSource();
        var options = Fixtures.TinyOptions(epochs: 50);
        options.ValidationFraction = 0.25;
        int stepsPerEpoch = (int)Math.Ceiling(45 / 8.0);
        options.Progress = new SyncProgress<VitTrainingProgress>(p =>
        {
            if (p.Step == 2 * stepsPerEpoch + 2) cts.Cancel();   // in the middle of the third epoch
        });
        options.CancellationToken = cts.Token;
        using var m = Fixtures.Pipeline(ctx, options).Fit(ctx.Data.LoadFromImageFolder(Fixtures.Folder));
        var r = m.LastTransformer.History!.Result;
        Assert.IsTrue(r.Cancelled);
        Assert.HasCount(2, r.Epochs.Where(e => e.Evaluation is not null).ToList());   // the partial epoch was not evaluated
        var best = r.Epochs.Where(e => e.Evaluation is not null).MaxBy(e => e.Evaluation!.Accuracy)!;
        Assert.AreEqual(best.Epoch, r.BestEpoch);
    }

    [TestMethod]
    public void ModelJsonOfAnotherFormatIsNotOurs()
    {
        var p = Path.Combine(Directory.CreateTempSubdirectory().FullName, "foreign.zip");
        using (var zip = System.IO.Compression.ZipFile.Open(p, System.IO.Compression.ZipArchiveMode.Create))
        using (var w = new StreamWriter(zip.CreateEntry("model.json").Open()))
            w.Write("{\"format\": \"onnx-something\", \"format_version\": 1}");
        var e = Assert.Throws<InvalidDataException>(() => new VitContext().Model.Load(p, out _));
        StringAssert.Contains(e.Message, "not a Vit for .NET model file");
    }
}
