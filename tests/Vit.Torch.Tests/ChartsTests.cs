using System.Xml.Linq;
using ScottPlot;
using SkiaSharp;
using Vit.Torch.Reports;
using Vit.Torch.Training;

namespace Vit.Torch.Tests;

/// <summary>
/// The learning curves and the confusion matrix, drawn with ScottPlot: the plots are read back (every point, line
/// break, cell and count against the numbers given), and the files decoded (PNG as pixels, SVG as XML).
/// </summary>
[TestClass]
public sealed class ChartsTests
{
    private string dir = "";

    [TestInitialize]
    public void Init() => dir = Directory.CreateTempSubdirectory("vit-charts-").FullName;

    [TestCleanup]
    public void Cleanup() => Directory.Delete(dir, recursive: true);

    private string File(string name) => Path.Combine(dir, name);

    // ============================================================================== training curves

    private static EpochResult Epoch(int epoch, double trainLoss, double trainAccuracy, double? valLoss, double? valAccuracy, double lr) =>
        new(epoch, trainLoss, trainAccuracy, valLoss is null ? null : new EvaluationResult(100, valLoss.Value, valAccuracy!.Value, 1),
            1000, TimeSpan.FromSeconds(epoch), lr);

    /// <summary>12 epochs whose values are not monotonic, so that the order of the points is really checked.</summary>
    private static List<EpochResult> History12()
    {
        double[] train = [2.1, 1.6, 1.2, 1.25, 0.9, 0.8, 0.85, 0.6, 0.55, 0.5, 0.52, 0.45];
        double[] val = [2.0, 1.7, 1.3, 1.2, 1.0, 0.95, 0.9, 0.8, 0.82, 0.78, 0.8, 0.79];
        var history = new List<EpochResult>();
        for (int i = 0; i < 12; i++)
            history.Add(Epoch(i + 1, train[i], 0.3 + 0.05 * i + (i == 3 ? -0.08 : 0), val[i], 0.28 + 0.045 * i, 1e-3 * Math.Cos(i / 8.0)));
        return history;
    }

    private static ScottPlot.Plottables.Scatter[] Lines(Plot plot) => plot.GetPlottables().OfType<ScottPlot.Plottables.Scatter>().ToArray();

    private static (double X, double Y)[] PointsOf(ScottPlot.Plottables.Scatter s) =>
        s.Data.GetScatterPoints().Select(c => (c.X, c.Y)).ToArray();

    /// <summary>The points of one series (all its line pieces), by colour.</summary>
    private static (double X, double Y)[] Series(Plot plot, string color) =>
        Lines(plot).Where(s => s.LineColor == Color.FromHex(color)).SelectMany(PointsOf).ToArray();

    [TestMethod]
    public void Curves_OnePointPerEpochPerSeries_AtTheirValues()
    {
        var history = History12();
        var panels = TrainingCurves.Build(history);
        Assert.HasCount(3, panels);
        var (loss, accuracy, rate) = (panels[0], panels[1], panels[2]);
        CollectionAssert.AreEqual(history.Select(e => ((double)e.Epoch, e.TrainLoss)).ToArray(), Series(loss, TrainingCurves.TrainColor));
        CollectionAssert.AreEqual(history.Select(e => ((double)e.Epoch, e.Evaluation!.Loss)).ToArray(), Series(loss, TrainingCurves.ValidationColor));
        CollectionAssert.AreEqual(history.Select(e => ((double)e.Epoch, e.TrainAccuracy)).ToArray(), Series(accuracy, TrainingCurves.TrainColor));
        CollectionAssert.AreEqual(history.Select(e => ((double)e.Epoch, e.Evaluation!.Accuracy)).ToArray(), Series(accuracy, TrainingCurves.ValidationColor));
        CollectionAssert.AreEqual(history.Select(e => ((double)e.Epoch, e.LearningRate)).ToArray(), Series(rate, TrainingCurves.RateColor));

        // Every point inside its panel's axes.
        foreach (var (panel, values) in new[] { (loss, history.Select(e => e.TrainLoss)), (accuracy, history.Select(e => e.TrainAccuracy)), (rate, history.Select(e => e.LearningRate)) })
        {
            var limits = panel.Axes.GetLimits();
            foreach (var v in values) Assert.IsTrue(v > limits.Bottom && v < limits.Top, $"{v} inside {limits.Bottom}..{limits.Top}");
            Assert.IsTrue(limits.Left < 1 && limits.Right > 12, "epochs 1 and 12 inside the x axis");
        }
    }

    [TestMethod]
    public void Curves_HaveTitlesAxisLabelsLegendsAndPercentTicks()
    {
        var panels = TrainingCurves.Build(History12());
        CollectionAssert.AreEqual(new[] { "Loss, epochs 1-12", "Accuracy, epochs 1-12", "Learning rate, epochs 1-12" },
            panels.Select(p => p.Axes.Title.Label.Text).ToArray());
        foreach (var p in panels) Assert.AreEqual("epoch", p.Axes.Bottom.Label.Text);
        Assert.AreEqual("top-1 accuracy", panels[1].Axes.Left.Label.Text);
        CollectionAssert.AreEqual(new[] { "train", "validation" }, panels[0].LegendItems().ToArray());
        CollectionAssert.AreEqual(new[] { "learning rate" }, panels[2].LegendItems().ToArray());
        var percent = (ScottPlot.TickGenerators.NumericAutomatic)panels[1].Axes.Left.TickGenerator;
        Assert.AreEqual("45%", percent.LabelFormatter(0.45), "accuracies between 0 and 1 are labelled in percent");
    }

    [TestMethod]
    public void Curves_NonFiniteValues_BreakTheLineAndAreMarked()
    {
        var history = History12();
        history[4] = history[4] with { TrainLoss = double.NaN };
        history[8] = history[8] with { TrainLoss = double.PositiveInfinity };
        var loss = TrainingCurves.Build(history)[0];
        var train = Lines(loss).Where(s => s.LineColor == Color.FromHex(TrainingCurves.TrainColor)).Select(PointsOf).ToArray();
        CollectionAssert.AreEqual(new[] { 4, 3, 3 }, train.Select(l => l.Length).ToArray(), "three pieces: 1-4, 6-8, 10-12");
        Assert.AreEqual(6.0, train[1][0].X);
        var marks = loss.GetPlottables().OfType<ScottPlot.Plottables.VerticalLine>().ToArray();
        CollectionAssert.AreEqual(new[] { 5.0, 9.0 }, marks.Select(m => m.X).ToArray());
        CollectionAssert.Contains(loss.LegendItems().ToArray(), "train: not finite");
        Assert.IsTrue(double.IsFinite(loss.Axes.GetLimits().Top), "the axis is set by the finite values");
    }

    [TestMethod]
    public void Curves_AllValuesNonFinite_StillDraw()
    {
        var path = File("curves.png");
        TrainingCurves.Write(path, [Epoch(1, double.NaN, double.NaN, null, null, 1e-3), Epoch(2, double.NaN, double.NaN, null, null, 1e-3)]);
        AssertPng(path, 3 * TrainingCurves.PanelWidth, TrainingCurves.PanelHeight);
        var loss = TrainingCurves.Build([Epoch(1, double.NaN, double.NaN, null, null, 1e-3)])[0];
        Assert.IsTrue(loss.GetPlottables().OfType<ScottPlot.Plottables.Text>().Any(t => t.LabelText == "no values"));
    }

    [TestMethod]
    public void Curves_WithoutValidation_ShowTrainingOnly()
    {
        var history = History12().Select(e => e with { Evaluation = null }).ToList();
        var panels = TrainingCurves.Build(history);
        CollectionAssert.AreEqual(new[] { "train" }, panels[0].LegendItems().ToArray());
        Assert.IsEmpty(Series(panels[0], TrainingCurves.ValidationColor));
    }

    [TestMethod]
    public void Curves_OneEpoch_AndFlatValues_AreDrawnInsideThePanel()
    {
        var panels = TrainingCurves.Build([Epoch(7, 0.5, 0.5, 0.5, 0.5, 0)]);
        foreach (var p in panels)
        {
            var limits = p.Axes.GetLimits();
            Assert.IsTrue(limits.Left < 7 && limits.Right > 7 && limits.Bottom < limits.Top, p.Axes.Title.Label.Text);
        }
        var loss = panels[0].Axes.GetLimits();
        Assert.IsTrue(loss.Bottom < 0.5 && loss.Top > 0.5);
        Assert.AreEqual(0.0, panels[2].Axes.GetLimits().Bottom, 0.01, "a learning rate of 0 sits inside a small range around it");
    }

    [TestMethod]
    public void Curves_AConstantSmallRate_KeepsAPositiveAxisAroundIt()
    {
        var rate = TrainingCurves.Build([Epoch(1, 1, 0.5, null, null, 3e-4), Epoch(2, 0.9, 0.6, null, null, 3e-4)])[2].Axes.GetLimits();
        Assert.IsTrue(rate.Bottom >= 0 && rate.Bottom < 3e-4 && rate.Top > 3e-4, $"{rate.Bottom}..{rate.Top}");
        Assert.IsLessThan(1e-4, rate.Top - rate.Bottom, "a range of the value's own size, not a fixed 1e-3");
    }

    [TestMethod]
    public void Curves_TickLabelsAreInvariantAndTheProcessFontIsLeftAlone()
    {
        var culture = System.Globalization.CultureInfo.CurrentCulture;
        string before = ScottPlot.Fonts.Default;
        try
        {
            // A culture with a decimal comma (built by hand: this test host may run in globalization-invariant mode).
            var comma = (System.Globalization.CultureInfo)System.Globalization.CultureInfo.InvariantCulture.Clone();
            comma.NumberFormat.NumberDecimalSeparator = ",";
            System.Globalization.CultureInfo.CurrentCulture = comma;
            Assert.AreEqual("0,25", 0.25.ToString(), "the culture really writes a comma");
            var panels = TrainingCurves.Build(History12());
            var loss = (ScottPlot.TickGenerators.NumericAutomatic)panels[0].Axes.Left.TickGenerator;
            Assert.AreEqual("0.25", loss.LabelFormatter(0.25));
            ConfusionMatrixPicture.Build(["a", "b"], [[1, 0], [0, 1]]);
        }
        finally
        {
            System.Globalization.CultureInfo.CurrentCulture = culture;
        }
        Assert.AreEqual(before, ScottPlot.Fonts.Default, "an application's own ScottPlot default font is not changed");
    }

    [TestMethod]
    public void Curves_AsPngAndSvg()
    {
        var png = File("curves.png");
        TrainingCurves.Write(png, History12());
        AssertPng(png, 3 * TrainingCurves.PanelWidth, TrainingCurves.PanelHeight);
        AssertHasColour(png, Color.FromHex(TrainingCurves.TrainColor));
        AssertHasColour(png, Color.FromHex(TrainingCurves.ValidationColor));

        // Text is drawn: the title band above the panels has near-black pixels (the titles), not only the background.
        using (var bitmap = SKBitmap.Decode(png))
        {
            int dark = 0;
            for (int y = 0; y < 30; y++)
                for (int x = 0; x < bitmap.Width; x++)
                    if (bitmap.GetPixel(x, y) is { Red: < 80, Green: < 80, Blue: < 80 }) dark++;
            Assert.IsGreaterThan(50, dark, "the panel titles are drawn");
        }

        var svg = File("curves.svg");
        TrainingCurves.Write(svg, History12());
        var doc = XDocument.Load(svg);  // throws on XML that is not well-formed
        Assert.AreEqual("svg", doc.Root!.Name.LocalName);
        Assert.AreEqual(3.0 * TrainingCurves.PanelWidth, double.Parse(doc.Root.Attribute("width")!.Value, System.Globalization.CultureInfo.InvariantCulture));
    }

    [TestMethod]
    public void Curves_BadInput_IsRefusedWithTheProblem()
    {
        var path = File("curves.png");
        var empty = Assert.ThrowsExactly<ArgumentException>(() => TrainingCurves.Write(path, []));
        StringAssert.Contains(empty.Message, "history is empty");
        Assert.ThrowsExactly<ArgumentNullException>(() => TrainingCurves.Write(path, null!));
        var nul = Assert.ThrowsExactly<ArgumentException>(() => TrainingCurves.Write(path, [Epoch(1, 1, 0, null, null, 1), null!]));
        StringAssert.Contains(nul.Message, "entry 1 is null");
        var order = Assert.ThrowsExactly<ArgumentException>(() =>
            TrainingCurves.Write(path, [Epoch(1, 1, 0, null, null, 1), Epoch(3, 1, 0, null, null, 1), Epoch(2, 1, 0, null, null, 1)]));
        StringAssert.Contains(order.Message, "entry 2 is epoch 2, after epoch 3");
        Assert.ThrowsExactly<ArgumentException>(() => TrainingCurves.Write("", History12()));
        var format = Assert.ThrowsExactly<ArgumentException>(() => TrainingCurves.Write(File("curves.jpg"), History12()));
        StringAssert.Contains(format.Message, "as .png or .svg, not as '.jpg'");
        Assert.IsEmpty(Directory.GetFiles(dir), "nothing is written for bad input");
        Assert.ThrowsExactly<DirectoryNotFoundException>(() => TrainingCurves.Write(Path.Combine(dir, "missing", "c.png"), History12()));
    }

    [TestMethod]
    public void Curves_ReplaceAnExistingFile()
    {
        var path = File("curves.png");
        System.IO.File.WriteAllText(path, "old");
        TrainingCurves.Write(path, History12());
        AssertPng(path, 3 * TrainingCurves.PanelWidth, TrainingCurves.PanelHeight);
        Assert.HasCount(1, Directory.GetFiles(dir), "no temporary file is left behind");
    }

    // ============================================================================== confusion matrix

    /// <summary>The tick labels of an axis, left to right or bottom to top, as drawn (ticks are made at rendering).</summary>
    private static string[] TickLabels(ConfusionMatrixPicture.Picture p, ScottPlot.IAxis axis)
    {
        p.Plot.RenderInMemory(p.Width, p.Height);
        return axis.TickGenerator.Ticks.Where(t => t.IsMajor).OrderBy(t => t.Position).Select(t => t.Label).ToArray();
    }

    private static (double X, double Y, string Text)[] Counts(ConfusionMatrixPicture.Picture p) =>
        p.Plot.GetPlottables().OfType<ScottPlot.Plottables.Text>().Select(t => (t.Location.X, t.Location.Y, t.LabelText)).ToArray();

    [TestMethod]
    public void Confusion_KxKCells_WithTheirCountsInPlace_ColouredByTheirShareOfTheRow()
    {
        string[] labels = ["cat", "dog", "bird"];
        long[][] counts = [[50, 3, 7], [0, 40, 1], [12, 0, 88]];
        var picture = ConfusionMatrixPicture.Build(labels, counts);
        var tones = picture.Cells.Intensities;
        Assert.AreEqual(3, tones.GetLength(0));
        Assert.AreEqual(3, tones.GetLength(1));
        var texts = Counts(picture);
        Assert.HasCount(9, texts);
        for (int i = 0; i < 3; i++)
        {
            double rowSum = counts[i].Sum();
            for (int j = 0; j < 3; j++)
            {
                // The tone is the square root of the share of the row (the formula, from the counts given).
                Assert.AreEqual(Math.Sqrt(counts[i][j] / rowSum), tones[i, j], 1e-12, $"cell [{i},{j}]");
                // Row i is drawn at y = 2 - i (the first class on top), column j at x = j.
                Assert.AreEqual(counts[i][j].ToString(), texts.Single(t => t.X == j && t.Y == 2 - i).Text, $"count [{i},{j}]");
            }
        }
        CollectionAssert.AreEqual(labels, TickLabels(picture, picture.Plot.Axes.Bottom));
        CollectionAssert.AreEqual(labels.Reverse().ToArray(), TickLabels(picture, picture.Plot.Axes.Left));
        StringAssert.Contains(picture.Plot.Axes.Title.Label.Text, "201 examples, accuracy 88.56%");

        var path = File("cm.png");
        ConfusionMatrixPicture.Write(path, labels, counts);
        AssertPng(path, picture.Width, picture.Height);
    }

    [TestMethod]
    public void Confusion_DrawnCells_AreWhereTheMatrixSaysAndARowWithoutExamplesIsGrey()
    {
        // Rendered and sampled at the cells' centres: the heat map's own orientation, not just where the counts are put.
        long[][] counts = [[90, 0, 10], [0, 0, 0], [5, 0, 95]];
        var picture = ConfusionMatrixPicture.Build(["a", "b", "c"], counts);
        var path = File("cm.png");
        Chart.Write(path, [picture.Plot], picture.Width, picture.Height);  // as Write does; this plot keeps its layout
        using var bitmap = SKBitmap.Decode(path);
        Assert.IsNotNull(bitmap);
        SKColor At(int i, int j)
        {
            var px = picture.Plot.GetPixel(new Coordinates(j, 2 - i));
            return bitmap.GetPixel((int)px.X + 8, (int)px.Y + 8);  // off the count written in the middle
        }
        static double Luminance(SKColor c) => (0.299 * c.Red + 0.587 * c.Green + 0.114 * c.Blue) / 255;
        Assert.IsLessThan(0.5, Luminance(At(0, 0)), "90% of row a: dark");
        Assert.IsGreaterThan(0.9, Luminance(At(0, 1)), "0% of row a: near white");
        Assert.IsTrue(Luminance(At(0, 2)) > Luminance(At(0, 0)) && Luminance(At(0, 2)) < Luminance(At(0, 1)), "10%: between");
        Assert.IsLessThan(0.5, Luminance(At(2, 2)), "95% of row c, bottom right: dark");
        foreach (int j in new[] { 0, 1, 2 })
        {
            var grey = At(1, j);
            Assert.IsTrue(grey.Red == grey.Green && grey.Green == grey.Blue && grey.Red is > 200 and < 250,
                $"row b has no examples: grey, not a share (got {grey})");
        }
    }

    [TestMethod]
    public void Confusion_LargeCountsFitTheirCells()
    {
        var counts = Enumerable.Range(0, 10).Select(i => (IReadOnlyList<long>)Enumerable.Range(0, 10).Select(j => (long)(i == j ? 987_654 : 3)).ToArray()).ToArray();
        var picture = ConfusionMatrixPicture.Build(Enumerable.Range(0, 10).Select(i => $"c{i}").ToArray(), counts);
        var texts = picture.Plot.GetPlottables().OfType<ScottPlot.Plottables.Text>().ToArray();
        float size = texts.Single(t => t.LabelText == "987654" && t.Location.X == 0).LabelFontSize;
        Assert.IsLessThanOrEqualTo(46 - 4, size * 0.6f * 6, "six digits at ~0.6 em each fit a 46-pixel cell");
    }

    [TestMethod]
    public void Confusion_FiftyClassesWithLongLabels_AreCutAndTurned()
    {
        var labels = Enumerable.Range(0, 50).Select(i => $"a very long class name that goes on, number {i}").ToArray();
        var counts = Enumerable.Range(0, 50).Select(i => (IReadOnlyList<long>)Enumerable.Range(0, 50).Select(j => (long)(i == j ? 9 : (i + j) % 7 == 0 ? 1 : 0)).ToArray()).ToArray();
        var picture = ConfusionMatrixPicture.Build(labels, counts);
        var ticks = TickLabels(picture, picture.Plot.Axes.Bottom);
        Assert.HasCount(50, ticks);
        foreach (var t in ticks)
        {
            Assert.IsLessThanOrEqualTo(ConfusionMatrixPicture.MaxLabelLength, t.Length);
            Assert.EndsWith("…", t);
        }
        Assert.AreNotEqual(0f, picture.Plot.Axes.Bottom.TickLabelStyle.Rotation, "labels too long for their column are turned");
        var path = File("cm50.png");
        ConfusionMatrixPicture.Write(path, labels, counts);
        AssertPng(path, picture.Width, picture.Height);
    }

    [TestMethod]
    public void Confusion_LabelsWithMarkupAndControlCharacters_KeepTheSvgValid()
    {
        var path = File("cm.svg");
        ConfusionMatrixPicture.Write(path, ["<b>&amp;\"x\"</b>", "tab\tnew\nline\u0001", ""], [[1, 0, 0], [0, 1, 0], [0, 0, 1]]);
        var doc = XDocument.Load(path);
        var text = string.Concat(doc.Descendants().Select(e => e.Value));
        Assert.IsFalse(text.Any(ch => char.IsControl(ch) && ch is not '\n' and not '\r' and not '\t'), "no control character reaches the file");
        var picture = ConfusionMatrixPicture.Build(["<b>&amp;\"x\"</b>", "tab\tnew\nline\u0001", ""], [[1, 0, 0], [0, 1, 0], [0, 0, 1]]);
        CollectionAssert.AreEqual(new[] { "<b>&amp;\"x\"</b>", "tab new line ", "(empty)" }, TickLabels(picture, picture.Plot.Axes.Bottom));
    }

    [TestMethod]
    public void Confusion_OfAThousandClasses_ShowsTheMostConfused()
    {
        const int k = 1000;
        var labels = Enumerable.Range(0, k).Select(i => $"class {i}").ToArray();
        var counts = Enumerable.Range(0, k).Select(i => (IReadOnlyList<long>)Enumerable.Range(0, k).Select(j => (long)(i == j ? 5 : 0)).ToArray()).ToArray();
        ((long[])counts[700])[3] = 4;  // class 700 taken for class 3 four times
        ((long[])counts[12])[999] = 1;
        var picture = ConfusionMatrixPicture.Build(labels, counts);
        Assert.HasCount(ConfusionMatrixPicture.MaxClasses, picture.Classes);
        foreach (var c in new[] { 3, 12, 700, 999 }) CollectionAssert.Contains(picture.Classes, c);
        CollectionAssert.AreEqual(picture.Classes.Order().ToArray(), picture.Classes, "in their original order");
        Assert.AreEqual(ConfusionMatrixPicture.MaxClasses, picture.Cells.Intensities.GetLength(0));
        StringAssert.Contains(picture.Plot.Axes.Title.Label.Text, "the 60 of 1000 classes most often confused");
        StringAssert.Contains(picture.Plot.Axes.Title.Label.Text, "5005 examples");
        var path = File("cm1000.png");
        ConfusionMatrixPicture.Write(path, labels, counts);
        Assert.IsLessThan(2_000_000, new FileInfo(path).Length);
    }

    [TestMethod]
    public void Confusion_BadInput_IsRefusedWithTheProblem()
    {
        var path = File("cm.png");
        string[] two = ["a", "b"];
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ConfusionMatrixPicture.Write(path, two, [[1, 2], [3, 4], [5, 6]])).Message,
            "3 rows of counts for 2 labels");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ConfusionMatrixPicture.Write(path, two, [[1, 2], [3]])).Message,
            "row 1 ('b') has 1 counts for 2 labels");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ConfusionMatrixPicture.Write(path, two, [[1, -2], [3, 4]])).Message,
            "count [0][1] (true 'a', predicted 'b') is negative");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ConfusionMatrixPicture.Write(path, [], [])).Message, "no labels");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ConfusionMatrixPicture.Write(path, ["a", null!], [[1, 2], [3, 4]])).Message,
            "label 1 is null");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ConfusionMatrixPicture.Write(path, two, [[1, 2], null!])).Message,
            "row 1 ('b') of the counts is null");
        Assert.ThrowsExactly<ArgumentNullException>(() => ConfusionMatrixPicture.Write(path, two, null!));
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ConfusionMatrixPicture.Write(File("cm.txt"), two, [[1, 2], [3, 4]])).Message,
            "not as '.txt'");
        Assert.IsEmpty(Directory.GetFiles(dir), "nothing is written for bad input");
    }

    // ============================================================================== files

    private static void AssertPng(string path, int width, int height)
    {
        using var bitmap = SKBitmap.Decode(path);
        Assert.IsNotNull(bitmap, $"{path} decodes as PNG");
        Assert.AreEqual(width, bitmap.Width);
        Assert.AreEqual(height, bitmap.Height);
    }

    private static void AssertHasColour(string path, Color colour)
    {
        using var bitmap = SKBitmap.Decode(path);
        var want = new SKColor(colour.R, colour.G, colour.B);
        for (int y = 0; y < bitmap.Height; y++)
            for (int x = 0; x < bitmap.Width; x++)
                if (bitmap.GetPixel(x, y) == want) return;
        Assert.Fail($"no pixel of {colour} in {path}");
    }
}

internal static class PlotLegend
{
    /// <summary>The texts of a plot's legend entries, in order (empty texts are not shown).</summary>
    public static IEnumerable<string> LegendItems(this Plot plot) =>
        plot.GetPlottables().SelectMany(p => p.LegendItems).Select(i => i.LabelText).Where(t => !string.IsNullOrEmpty(t));
}
