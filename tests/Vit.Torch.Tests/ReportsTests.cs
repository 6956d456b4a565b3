using System.Globalization;
using System.Xml.Linq;
using Vit.Torch.Imaging;
using Vit.Torch.Model;
using Vit.Torch.Native;
using Vit.Torch.Reports;
using Vit.Torch.Training;

namespace Vit.Torch.Tests;

/// <summary>
/// The pictures of Vit.Torch.Reports read back: the SVGs are parsed as XML and their coordinates checked against
/// the numbers drawn; attention rollout is compared with a direct computation in double loops; overlay rasters are
/// decoded from the SVG and their pixels checked.
/// </summary>
[TestClass]
public sealed class ReportsTests
{
    private static readonly XNamespace S = "http://www.w3.org/2000/svg";
    private static readonly XNamespace Xlink = "http://www.w3.org/1999/xlink";
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private string dir = "";

    [TestInitialize]
    public void Init() => dir = Directory.CreateTempSubdirectory("vit-reports-").FullName;

    [TestCleanup]
    public void Cleanup() => Directory.Delete(dir, recursive: true);

    private string File(string name) => Path.Combine(dir, name);

    private static XDocument Load(string path) => XDocument.Load(path);  // throws on XML that is not well-formed

    /// <summary>The text an element shows: its own text nodes, without the tooltip of a <c>title</c> child.</summary>
    private static string Shown(XElement e) => string.Concat(e.Nodes().OfType<XText>().Select(n => n.Value));

    private static double Attr(XElement e, string name) => double.Parse(e.Attribute(name)!.Value, Inv);

    private static IEnumerable<XElement> WithClass(XContainer root, string element, string cssClass) =>
        root.Descendants(S + element).Where(e => (string?)e.Attribute("class") == cssClass);

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

    private static XElement Panel(XDocument doc, string name) =>
        WithClass(doc, "g", "panel").Single(p => (string?)p.Attribute("data-panel") == name);

    private static XElement Series(XElement panel, string key) =>
        WithClass(panel, "g", "series").Single(s => (string?)s.Attribute("data-series") == key);

    private static XElement? SeriesOrNull(XElement panel, string key) =>
        WithClass(panel, "g", "series").SingleOrDefault(s => (string?)s.Attribute("data-series") == key);

    private static List<(int Epoch, double X, double Y)> Points(XElement series) =>
        WithClass(series, "circle", "point")
            .Select(c => (int.Parse(c.Attribute("data-epoch")!.Value, Inv), Attr(c, "cx"), Attr(c, "cy"))).ToList();

    /// <summary>The vertices of every polyline of a series, in document order.</summary>
    private static List<List<(double X, double Y)>> Polylines(XElement series) =>
        series.Descendants(S + "polyline").Select(p => p.Attribute("points")!.Value.Split(' ')
            .Select(xy => xy.Split(',')).Select(xy => (double.Parse(xy[0], Inv), double.Parse(xy[1], Inv))).ToList()).ToList();

    /// <summary>
    /// The points of one panel must lie on y = a + b·value with b &lt; 0 (up is larger), and the tick labels must sit
    /// on the same line: the picture says the numbers it was given.
    /// </summary>
    private static void AssertYFollowsValues(XElement panel, IReadOnlyList<(double Value, double Y)> points, bool percent)
    {
        var (v0, y0) = points.MinBy(p => p.Value);
        var (v1, y1) = points.MaxBy(p => p.Value);
        Assert.IsTrue(v1 > v0, "test data needs a range");
        double slope = (y1 - y0) / (v1 - v0);
        Assert.IsLessThan(0, slope, "a larger value must be drawn higher (smaller y)");
        foreach (var (v, y) in points)
            Assert.AreEqual(y0 + slope * (v - v0), y, 0.02, $"value {v} is not where the axis puts it");
        int ticks = 0;
        foreach (var t in WithClass(panel, "text", "y-tick"))
        {
            var label = Shown(t);
            double value = percent ? double.Parse(label.TrimEnd('%'), Inv) / 100 : double.Parse(label, Inv);
            Assert.AreEqual(y0 + slope * (value - v0), Attr(t, "y") - 4, 0.05, $"tick '{label}' is not at its value");
            ticks++;
        }
        Assert.IsGreaterThanOrEqualTo(3, ticks, "an axis needs ticks");
    }

    [TestMethod]
    public void Curves_OnePointPerEpochPerSeries_AtTheirValues()
    {
        var history = History12();
        var path = File("curves.svg");
        TrainingCurves.Write(path, history);
        var doc = Load(path);
        Assert.AreEqual("svg", doc.Root!.Name.LocalName);
        Assert.AreEqual(3, WithClass(doc, "g", "panel").Count(), "loss, accuracy, learning rate");

        foreach (var (panelName, keys, value, percent) in new (string, string[], Func<EpochResult, double>[], bool)[]
        {
            ("loss", ["train-loss", "validation-loss"], [e => e.TrainLoss, e => e.Evaluation!.Loss], false),
            ("accuracy", ["train-accuracy", "validation-accuracy"], [e => e.TrainAccuracy, e => e.Evaluation!.Accuracy], true),
            ("learning-rate", ["learning-rate"], [e => e.LearningRate], false),
        })
        {
            var panel = Panel(doc, panelName);
            var all = new List<(double, double)>();
            for (int s = 0; s < keys.Length; s++)
            {
                var series = Series(panel, keys[s]);
                var points = Points(series);
                CollectionAssert.AreEqual(Enumerable.Range(1, 12).ToArray(), points.Select(p => p.Epoch).ToArray(), $"{keys[s]}: one point per epoch, in order");
                for (int i = 1; i < points.Count; i++) Assert.IsGreaterThan(points[i - 1].X, points[i].X, "x grows with the epoch");
                var line = Polylines(series).Single();
                Assert.HasCount(12, line, $"{keys[s]}: one polyline vertex per epoch");
                for (int i = 0; i < 12; i++)
                {
                    Assert.AreEqual(points[i].X, line[i].X, 1e-9);
                    Assert.AreEqual(points[i].Y, line[i].Y, 1e-9);
                }
                // The extreme values at the extreme heights.
                var values = history.Select(value[s]).ToArray();
                int lowest = Array.IndexOf(values, values.Min()), highest = Array.IndexOf(values, values.Max());
                Assert.AreEqual(points.Max(p => p.Y), points[lowest].Y, 1e-9, $"{keys[s]}: the lowest value is the lowest point");
                Assert.AreEqual(points.Min(p => p.Y), points[highest].Y, 1e-9, $"{keys[s]}: the highest value is the highest point");
                all.AddRange(points.Select((p, i) => (values[i], p.Y)));
            }
            AssertYFollowsValues(panel, all, percent);  // train and validation share one axis
        }
        // Every panel has the same epoch axis.
        var xs = WithClass(doc, "g", "panel").Select(p => WithClass(p, "circle", "point").Select(c => Attr(c, "cx")).Take(12).ToArray()).ToList();
        CollectionAssert.AreEqual(xs[0], xs[1]);
        CollectionAssert.AreEqual(xs[0], xs[2]);
    }

    [TestMethod]
    public void Curves_HaveLegendsTitlesAndAxisLabels()
    {
        var path = File("curves.svg");
        TrainingCurves.Write(path, History12());
        var doc = Load(path);
        string[] Legend(string panel) => WithClass(Panel(doc, panel), "text", "legend-entry").Select(t => Shown(t)).ToArray();
        CollectionAssert.AreEquivalent(new[] { "train", "validation" }, Legend("loss"));
        CollectionAssert.AreEquivalent(new[] { "train", "validation" }, Legend("accuracy"));
        CollectionAssert.AreEquivalent(new[] { "learning rate" }, Legend("learning-rate"));
        foreach (var panel in WithClass(doc, "g", "panel"))
        {
            Assert.AreEqual("epoch", Shown(WithClass(panel, "text", "x-label").Single()));
            Assert.IsFalse(string.IsNullOrWhiteSpace(Shown(WithClass(panel, "text", "y-label").Single())));
            Assert.IsGreaterThanOrEqualTo(3, WithClass(panel, "text", "x-tick").Count());
        }
        var texts = doc.Descendants(S + "text").Select(t => Shown(t)).ToList();
        CollectionAssert.IsSubsetOf(new[] { "Training curves", "Loss", "Accuracy", "Learning rate" }, texts);
        // Legend swatches have the series' colours.
        var swatches = Panel(doc, "loss").Descendants(S + "g").Single(g => (string?)g.Attribute("class") == "legend")
            .Elements(S + "line").Select(l => l.Attribute("stroke")!.Value).ToList();
        CollectionAssert.AreEquivalent(new[] { TrainingCurves.TrainColor, TrainingCurves.ValidationColor }, swatches);
    }

    [TestMethod]
    public void Curves_NonFiniteValues_BreakTheLineAndAreMarked()
    {
        var history = History12();
        history[4] = history[4] with { TrainLoss = double.NaN };
        history[7] = history[7] with { Evaluation = history[7].Evaluation! with { Loss = double.PositiveInfinity } };
        history[9] = history[9] with { LearningRate = double.NegativeInfinity };
        var path = File("curves.svg");
        TrainingCurves.Write(path, history);
        var doc = Load(path);

        // No coordinate anywhere is NaN or infinite.
        foreach (var e in doc.Descendants())
            foreach (var a in e.Attributes().Where(a => a.Name.LocalName is "x" or "y" or "cx" or "cy" or "x1" or "y1" or "x2" or "y2"))
                Assert.IsTrue(double.IsFinite(double.Parse(a.Value, Inv)), $"{e.Name.LocalName} {a.Name}={a.Value}");

        var loss = Panel(doc, "loss");
        var train = Series(loss, "train-loss");
        CollectionAssert.AreEqual(Enumerable.Range(1, 12).Where(e => e != 5).ToArray(), Points(train).Select(p => p.Epoch).ToArray());
        var lines = Polylines(train);
        Assert.HasCount(2, lines, "the NaN at epoch 5 splits the line in two");
        Assert.HasCount(4, lines[0]);
        Assert.HasCount(7, lines[1]);
        var mark = WithClass(train, "text", "non-finite").Single();
        Assert.AreEqual("5", mark.Attribute("data-epoch")!.Value);
        StringAssert.Contains(mark.Element(S + "title")!.Value, "NaN");

        var val = Series(loss, "validation-loss");
        Assert.AreEqual("8", WithClass(val, "text", "non-finite").Single().Attribute("data-epoch")!.Value);
        StringAssert.Contains(WithClass(val, "text", "non-finite").Single().Element(S + "title")!.Value, "+infinity");
        Assert.HasCount(11, Points(val));
        Assert.AreEqual("10", WithClass(Series(Panel(doc, "learning-rate"), "learning-rate"), "text", "non-finite").Single().Attribute("data-epoch")!.Value);
        CollectionAssert.Contains(WithClass(loss, "text", "legend-entry").Select(t => Shown(t)).ToList(), "not finite");

        // The axis is set by the finite values alone: the top tick is the first nice number above the largest loss.
        var top = WithClass(loss, "text", "y-tick").Select(t => double.Parse(Shown(t), Inv)).Max();
        Assert.IsTrue(top >= 2.1 && top <= 2.5, $"top tick {top}");
        var finite = history.Select(e => e.TrainLoss).Concat(history.Select(e => e.Evaluation!.Loss)).Where(double.IsFinite).ToList();
        var ys = Points(train).Select(p => p.Y).Concat(Points(val).Select(p => p.Y)).ToList();
        Assert.HasCount(finite.Count, ys);
        AssertYFollowsValues(loss, finite.Zip(ys, (v, y) => (v, y)).ToList(), percent: false);
    }

    [TestMethod]
    public void Curves_AllValuesNonFinite_StillDraw()
    {
        var history = Enumerable.Range(1, 3).Select(e => Epoch(e, double.NaN, double.NaN, null, null, double.NaN)).ToList();
        var path = File("curves.svg");
        TrainingCurves.Write(path, history);
        var doc = Load(path);
        Assert.AreEqual(0, WithClass(doc, "circle", "point").Count());
        Assert.AreEqual(9, WithClass(doc, "text", "non-finite").Count(), "train loss, train accuracy and learning rate of 3 epochs");
    }

    [TestMethod]
    public void Curves_WithoutValidation_ShowTrainingOnly()
    {
        var history = History12().Select(e => e with { Evaluation = null }).ToList();
        var path = File("curves.svg");
        TrainingCurves.Write(path, history);
        var doc = Load(path);
        foreach (var (panel, key) in new[] { ("loss", "validation-loss"), ("accuracy", "validation-accuracy") })
        {
            Assert.IsNull(SeriesOrNull(Panel(doc, panel), key), $"{key} has no values, so no series");
            CollectionAssert.AreEqual(new[] { "train" }, WithClass(Panel(doc, panel), "text", "legend-entry").Select(t => Shown(t)).ToArray());
        }
        Assert.HasCount(12, Points(Series(Panel(doc, "loss"), "train-loss")));

        // Validation on some epochs only (e.g. every third): points at those epochs, one line through them.
        var some = History12().Select(e => e.Epoch % 3 == 0 ? e : e with { Evaluation = null }).ToList();
        TrainingCurves.Write(path, some);
        var val = Series(Panel(Load(path), "accuracy"), "validation-accuracy");
        CollectionAssert.AreEqual(new[] { 3, 6, 9, 12 }, Points(val).Select(p => p.Epoch).ToArray());
        Assert.HasCount(4, Polylines(val).Single());
    }

    [TestMethod]
    public void Curves_OneEpoch_AndFlatValues_AreDrawnInsideThePanel()
    {
        var path = File("curves.svg");
        TrainingCurves.Write(path, [Epoch(7, 0.5, 0.5, 0.5, 0.5, 0)]);
        var doc = Load(path);
        foreach (var panel in WithClass(doc, "g", "panel"))
            foreach (var c in WithClass(panel, "circle", "point"))
            {
                double x = Attr(c, "cx"), y = Attr(c, "cy");
                Assert.IsTrue(x > 72 && x < 380 - 18 && y >= 34 && y <= 330 - 46, $"point ({x}, {y}) outside the plot area");
            }
        Assert.AreEqual(5, WithClass(doc, "circle", "point").Count());
        // Restarting training as a run with later epochs only (epochs need not start at 1).
        TrainingCurves.Write(path, [Epoch(10, 1, 0.1, null, null, 1e-4), Epoch(11, 0.9, 0.2, null, null, 1e-4)]);
        Assert.HasCount(2, Points(Series(Panel(Load(path), "loss"), "train-loss")));
    }

    [TestMethod]
    public void Curves_BadInput_IsRefusedWithTheProblem()
    {
        var path = File("curves.svg");
        var empty = Assert.ThrowsExactly<ArgumentException>(() => TrainingCurves.Write(path, []));
        StringAssert.Contains(empty.Message, "history is empty");
        Assert.ThrowsExactly<ArgumentNullException>(() => TrainingCurves.Write(path, null!));
        var nul = Assert.ThrowsExactly<ArgumentException>(() => TrainingCurves.Write(path, [Epoch(1, 1, 0, null, null, 1), null!]));
        StringAssert.Contains(nul.Message, "entry 1 is null");
        var order = Assert.ThrowsExactly<ArgumentException>(() =>
            TrainingCurves.Write(path, [Epoch(1, 1, 0, null, null, 1), Epoch(3, 1, 0, null, null, 1), Epoch(2, 1, 0, null, null, 1)]));
        StringAssert.Contains(order.Message, "entry 2 is epoch 2, after epoch 3");
        Assert.ThrowsExactly<ArgumentException>(() => TrainingCurves.Write("", History12()));
        Assert.IsFalse(System.IO.File.Exists(path), "nothing is written for bad input");
        Assert.ThrowsExactly<DirectoryNotFoundException>(() => TrainingCurves.Write(Path.Combine(dir, "missing", "c.svg"), History12()));
    }

    [TestMethod]
    public void Curves_ReplaceAnExistingFile()
    {
        var path = File("curves.svg");
        System.IO.File.WriteAllText(path, "old");
        TrainingCurves.Write(path, History12());
        Load(path);
        Assert.AreEqual(1, Directory.GetFiles(dir).Length, "no temporary file is left behind");
    }

    // ============================================================================== confusion matrix

    [TestMethod]
    public void Confusion_KxKCells_WithTheirCountsInPlace()
    {
        string[] labels = ["cat", "dog", "bird"];
        long[][] counts = [[50, 3, 7], [0, 40, 1], [12, 0, 88]];
        var path = File("cm.svg");
        ConfusionMatrixPicture.Write(path, labels, counts);
        var doc = Load(path);

        var cells = WithClass(doc, "rect", "cell").ToList();
        Assert.HasCount(9, cells);
        var texts = WithClass(doc, "text", "count").ToList();
        Assert.HasCount(9, texts);
        var seen = new HashSet<(int, int)>();
        foreach (var c in cells)
        {
            int t = int.Parse(c.Attribute("data-true")!.Value, Inv), p = int.Parse(c.Attribute("data-predicted")!.Value, Inv);
            Assert.IsTrue(seen.Add((t, p)), "each (true, predicted) once");
            Assert.AreEqual(counts[t][p], long.Parse(c.Attribute("data-count")!.Value, Inv));
            var text = texts.Single(x => x.Attribute("data-true")!.Value == $"{t}" && x.Attribute("data-predicted")!.Value == $"{p}");
            Assert.AreEqual(counts[t][p].ToString(Inv), Shown(text), "the count is written in its cell");
            // The text sits inside its rectangle; rows go down with the true class, columns right with the prediction.
            double x = Attr(c, "x"), y = Attr(c, "y"), w = Attr(c, "width"), h = Attr(c, "height");
            Assert.IsTrue(Attr(text, "x") > x && Attr(text, "x") < x + w && Attr(text, "y") > y && Attr(text, "y") < y + h);
            var origin = cells.Single(o => o.Attribute("data-true")!.Value == "0" && o.Attribute("data-predicted")!.Value == "0");
            Assert.AreEqual(Attr(origin, "x") + p * w, x, 1e-6);
            Assert.AreEqual(Attr(origin, "y") + t * h, y, 1e-6);
        }
        CollectionAssert.AreEqual(labels, WithClass(doc, "text", "row-label").Select(t => Shown(t)).ToArray());
        CollectionAssert.AreEqual(labels, WithClass(doc, "text", "column-label").Select(t => Shown(t)).ToArray());
        StringAssert.Contains(Shown(WithClass(doc, "text", "subtitle").Single()), "201 examples, accuracy 88.56%");
        Assert.AreEqual("predicted class", Shown(WithClass(doc, "text", "x-label").Single()));
        Assert.AreEqual("true class", Shown(WithClass(doc, "text", "y-label").Single()));
    }

    [TestMethod]
    public void Confusion_ColourIsNormalisedPerRow()
    {
        // Rows 0 and 1 have the same shares at very different sizes: the same colours. Row 2 is empty.
        string[] labels = ["a", "b", "c"];
        long[][] counts = [[9, 1, 0], [900, 100, 0], [0, 0, 0]];
        var path = File("cm.svg");
        ConfusionMatrixPicture.Write(path, labels, counts);
        var cells = WithClass(Load(path), "rect", "cell")
            .ToDictionary(c => (int.Parse(c.Attribute("data-true")!.Value, Inv), int.Parse(c.Attribute("data-predicted")!.Value, Inv)),
                c => c.Attribute("fill")!.Value);
        for (int j = 0; j < 3; j++) Assert.AreEqual(cells[(0, j)], cells[(1, j)], $"column {j}: same share, same colour");
        static double Luma(string hex) => 0.299 * Convert.ToInt32(hex[1..3], 16) + 0.587 * Convert.ToInt32(hex[3..5], 16) + 0.114 * Convert.ToInt32(hex[5..7], 16);
        Assert.IsTrue(Luma(cells[(0, 0)]) < Luma(cells[(0, 1)]) && Luma(cells[(0, 1)]) < Luma(cells[(0, 2)]), "a larger share is darker");
        Assert.AreEqual(ColorRamp.Blues.Hex(ConfusionMatrixPicture.Tone(0.9)), cells[(0, 0)]);
        Assert.AreEqual(ColorRamp.Blues.Hex(0), cells[(0, 2)]);
        for (int j = 0; j < 3; j++) Assert.AreEqual("#f2f2f2", cells[(2, j)], "a row without examples is blank, not NaN");
    }

    [TestMethod]
    public void Confusion_FiftyClassesWithLongLabels_AreCutAndTurned()
    {
        int k = 50;
        var labels = Enumerable.Range(0, k).Select(i => $"a very long class name that goes on, number {i}").ToList();
        var counts = Enumerable.Range(0, k).Select(i => (IReadOnlyList<long>)Enumerable.Range(0, k).Select(j => (long)(i == j ? 1000 + i : (i * j) % 7)).ToArray()).ToList();
        var path = File("cm50.svg");
        ConfusionMatrixPicture.Write(path, labels, counts);
        var doc = Load(path);
        Assert.AreEqual(k * k, WithClass(doc, "rect", "cell").Count());
        Assert.AreEqual(1049L, long.Parse(WithClass(doc, "rect", "cell").Single(c => c.Attribute("data-true")!.Value == "49" && c.Attribute("data-predicted")!.Value == "49").Attribute("data-count")!.Value, Inv));
        var columns = WithClass(doc, "text", "column-label").ToList();
        Assert.HasCount(k, columns);
        foreach (var (label, i) in columns.Select((c, i) => (c, i)))
        {
            Assert.IsLessThanOrEqualTo(ConfusionMatrixPicture.MaxLabelLength, Shown(label).Length);
            StringAssert.EndsWith(Shown(label), "…");
            Assert.AreEqual(labels[i], label.Element(S + "title")!.Value, "the tooltip keeps the whole label");
            StringAssert.StartsWith(label.Attribute("transform")!.Value, "rotate(-45 ");
        }
        // Cells stay at least 14 px, and the picture grows to hold them (no overlap of labels and cells).
        var cell = WithClass(doc, "rect", "cell").First();
        Assert.IsGreaterThanOrEqualTo(14, Attr(cell, "width"));
        Assert.IsGreaterThanOrEqualTo(Attr(cell, "x") + k * Attr(cell, "width"), Attr(doc.Root!, "width"));

        // Short labels of a 2-class matrix stay horizontal.
        ConfusionMatrixPicture.Write(path, ["cat", "dog"], [[40, 10], [3, 47]]);
        Assert.IsTrue(WithClass(Load(path), "text", "column-label").All(t => t.Attribute("transform") is null));
    }

    [TestMethod]
    public void Confusion_LabelsWithMarkupAndControlCharacters_KeepTheDocumentValid()
    {
        string[] labels = ["<cat & \"dog\">", "tab\there\u0001", "\U0001F431 emoji"];
        long[][] counts = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
        var path = File("cm.svg");
        ConfusionMatrixPicture.Write(path, labels, counts);
        var rows = WithClass(Load(path), "text", "row-label").Select(t => Shown(t)).ToArray();
        CollectionAssert.AreEqual(new[] { "<cat & \"dog\">", "tab\there\uFFFD", "\U0001F431 emoji" }, rows);
    }

    [TestMethod]
    public void Confusion_BadInput_IsRefusedWithTheProblem()
    {
        var path = File("cm.svg");
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
        Assert.IsFalse(System.IO.File.Exists(path));
    }

    // ============================================================================== attention rollout

    private static VitConfig TinyConfig(VitPooling pooling = VitPooling.ClassToken, bool? classToken = null, int heads = 2, int depth = 3) => new()
    {
        ImageSize = 8, PatchSize = 2, Channels = 1, Dim = 8, Depth = depth, Heads = heads, MlpDim = 16, NumClasses = 3,
        Pooling = pooling, ClassToken = classToken,
    };

    private static VisionTransformer RandomModel(VitConfig config, ulong seed = 11)
    {
        Torch.ManualSeed(seed);
        var model = new VisionTransformer(config);
        TestModels.Randomize(model);
        return model;
    }

    private static Tensor RandomImages(int b, ulong seed = 5)
    {
        Torch.ManualSeed(seed);
        return Tensor.Randn([b, 1, 8, 8]);
    }

    /// <summary>Each block's attention (B, H, T, T) as double[b][l][h, i, j], from the model in evaluation mode.</summary>
    private static double[][][,,] AttentionOf(VisionTransformer model, Tensor images)
    {
        using var scope = TensorScope.Begin();
        model.Eval();
        var maps = new List<Tensor>();
        using (Torch.NoGrad()) model.Forward(images, maps);
        int b = (int)images.Size(0), h = model.Config.Heads, t = model.Config.NumTokens;
        var result = new double[b][][,,];
        for (int n = 0; n < b; n++)
        {
            result[n] = new double[maps.Count][,,];
            for (int l = 0; l < maps.Count; l++)
            {
                var v = maps[l].Select(0, n).Contiguous().ToArray<float>();
                var a = new double[h, t, t];
                for (int hh = 0; hh < h; hh++)
                    for (int i = 0; i < t; i++)
                        for (int j = 0; j < t; j++)
                            a[hh, i, j] = v[(hh * t + i) * t + j];
                result[n][l] = a;
            }
        }
        return result;
    }

    /// <summary>
    /// Attention rollout written from Abnar &amp; Zuidema (2020) eq. for "attention rollout" with double loops:
    /// Â = rownorm(mean_h A + I), R = Â_L ··· Â_1, then the read-out row over the patch columns.
    /// </summary>
    private static double[][] DirectRollout(double[][,,] blocks, int heads, int tokens, int prefix, bool classRow, bool normalize)
    {
        var r = new double[tokens, tokens];
        for (int i = 0; i < tokens; i++) r[i, i] = 1;
        foreach (var a in blocks)
        {
            var hat = new double[tokens, tokens];
            for (int i = 0; i < tokens; i++)
            {
                double sum = 0;
                for (int j = 0; j < tokens; j++)
                {
                    double m = 0;
                    for (int h = 0; h < heads; h++) m += a[h, i, j];
                    hat[i, j] = m / heads + (i == j ? 1 : 0);
                    sum += hat[i, j];
                }
                for (int j = 0; j < tokens; j++) hat[i, j] /= sum;
            }
            var next = new double[tokens, tokens];
            for (int i = 0; i < tokens; i++)
                for (int j = 0; j < tokens; j++)
                {
                    double s = 0;
                    for (int k = 0; k < tokens; k++) s += hat[i, k] * r[k, j];
                    next[i, j] = s;
                }
            r = next;
        }
        int n = tokens - prefix;
        var row = new double[n];
        for (int j = 0; j < n; j++)
        {
            if (classRow) row[j] = r[0, prefix + j];
            else
            {
                for (int i = prefix; i < tokens; i++) row[j] += r[i, prefix + j];
                row[j] /= n;
            }
        }
        if (normalize)
        {
            double total = row.Sum();
            for (int j = 0; j < n; j++) row[j] /= total;
        }
        return [row];
    }

    public static IEnumerable<object[]> Poolings =>
    [
        [VitPooling.ClassToken, null!],
        [VitPooling.Mean, false],
        [VitPooling.Mean, true],
    ];

    [TestMethod]
    [DynamicData(nameof(Poolings))]
    public void Rollout_EqualsADirectComputation(VitPooling pooling, bool? classToken)
    {
        var config = TinyConfig(pooling, classToken);
        using var model = RandomModel(config);
        using var images = RandomImages(3);
        var attention = AttentionOf(model, images);
        int prefix = config.HasClassToken ? 1 : 0, g = config.GridSize;
        foreach (bool normalize in new[] { true, false })
        {
            using var rollout = AttentionRollout.Compute(model, images, normalize);
            CollectionAssert.AreEqual(new long[] { 3, g, g }, rollout.Shape);
            Assert.AreEqual(DType.Float32, rollout.DType);
            var got = rollout.ToArray<float>();
            for (int b = 0; b < 3; b++)
            {
                var want = DirectRollout(attention[b], config.Heads, config.NumTokens, prefix, pooling == VitPooling.ClassToken, normalize)[0];
                for (int p = 0; p < g * g; p++)
                    Assert.AreEqual(want[p], got[b * g * g + p], 1e-5, $"image {b}, patch ({p / g}, {p % g}), normalize {normalize}");
                // Not a trivial map: a random model attends unevenly.
                Assert.IsGreaterThan(1.2 * want.Min(), want.Max());
            }
        }
    }

    [TestMethod]
    public void Rollout_SumsToOneOverThePatches()
    {
        using var cls = RandomModel(TinyConfig());
        using var mean = RandomModel(TinyConfig(VitPooling.Mean));
        using var images = RandomImages(4);
        double[] Sums(VisionTransformer m, bool normalize)
        {
            using var r = AttentionRollout.Compute(m, images, normalize);
            using var s = r.Sum([1, 2]).To(DType.Float64);
            return s.ToArray<double>();
        }
        foreach (var s in Sums(cls, true)) Assert.AreEqual(1, s, 1e-5);
        foreach (var s in Sums(mean, true)) Assert.AreEqual(1, s, 1e-5);
        // Unnormalised, a mean-pooled model's map is a mean of rows of a row-stochastic matrix: it sums to 1 as it is.
        foreach (var s in Sums(mean, false)) Assert.AreEqual(1, s, 1e-5);
        // The class token keeps a share of its own row, so its map over the patches sums to less than 1.
        foreach (var s in Sums(cls, false)) Assert.IsTrue(s > 0.05 && s < 0.999, $"sum {s}");
    }

    [TestMethod]
    public void Rollout_UniformAttention_GivesTheClosedForm()
    {
        // Zero queries: every logit is 0, so every attention row is uniform, A = J/T. Then Â = (J/T + I)/2 and,
        // J/T being idempotent, Â^L = 2^-L I + (1 - 2^-L) J/T: each patch gets (1 - 2^-L)/T of the class token's row.
        const int depth = 3;
        var config = TinyConfig(depth: depth);
        using var model = RandomModel(config);
        long d = config.Dim;
        foreach (var block in model.Blocks)
        {
            using var scope = TensorScope.Begin();
            var w = block.Attn.Qkv.Weight;
            using (Torch.NoGrad())
            {
                w.Slice(0, 0, d).Fill(0);
                block.Attn.Qkv.Bias!.Slice(0, 0, d).Fill(0);
            }
        }
        using var images = RandomImages(2);
        int t = config.NumTokens, n = config.NumPatches;
        foreach (var blocks in AttentionOf(model, images))
            foreach (var a in blocks)
                foreach (var v in a) Assert.AreEqual(1.0 / t, v, 1e-6, "precondition: uniform attention");
        using var raw = AttentionRollout.Compute(model, images, normalize: false);
        foreach (var v in raw.ToArray<float>()) Assert.AreEqual((1 - Math.Pow(0.5, depth)) / t, v, 1e-6);
        using var normalized = AttentionRollout.Compute(model, images);
        foreach (var v in normalized.ToArray<float>()) Assert.AreEqual(1.0 / n, v, 1e-6);
    }

    /// <summary>
    /// Makes every block attend each token to itself alone: one head, q = s·LN(x), k = LN(x) with a unit LayerNorm,
    /// so q_i·k_j = s·y_i·y_j, which is largest at j = i (|y_i|² = D, and y_i·y_j &lt; D for distinct tokens);
    /// s = 1e4 turns the softmax into a one-hot row.
    /// </summary>
    private static void ForceIdentityAttention(VisionTransformer model)
    {
        long d = model.Config.Dim;
        using var scope = TensorScope.Begin();
        var eye = new float[d * d];
        for (int i = 0; i < d; i++) eye[i * d + i] = 1;
        using var identity = Tensor.FromArray(eye, d, d);
        using (Torch.NoGrad())
            foreach (var block in model.Blocks)
            {
                block.Norm1.Weight!.Fill(1);
                block.Norm1.Bias!.Fill(0);
                var w = block.Attn.Qkv.Weight;
                w.Slice(0, 0, d).CopyFrom(identity * 1e4);
                w.Slice(0, d, 2 * d).CopyFrom(identity);
                block.Attn.Qkv.Bias!.Slice(0, 0, 2 * d).Fill(0);
            }
    }

    [TestMethod]
    public void Rollout_IdentityAttention_GivesTheExpectedMaps()
    {
        using var images = RandomImages(2);
        // Mean pooling: R = I, so the mean of the patch rows is uniform, 1/N on every patch.
        var meanConfig = TinyConfig(VitPooling.Mean, heads: 1);
        using var mean = RandomModel(meanConfig);
        ForceIdentityAttention(mean);
        foreach (var blocks in AttentionOf(mean, images))
            foreach (var a in blocks)
                for (int i = 0; i < meanConfig.NumTokens; i++) Assert.AreEqual(1, a[0, i, i], 1e-6, "precondition: identity attention");
        foreach (bool normalize in new[] { true, false })
        {
            using var r = AttentionRollout.Compute(mean, images, normalize);
            foreach (var v in r.ToArray<float>()) Assert.AreEqual(1.0 / meanConfig.NumPatches, v, 1e-6);
        }
        // Class token: it only ever attends to itself, so no patch reaches it: the raw map is 0 and stays finite normalised.
        using var cls = RandomModel(TinyConfig(heads: 1));
        ForceIdentityAttention(cls);
        using var raw = AttentionRollout.Compute(cls, images, normalize: false);
        foreach (var v in raw.ToArray<float>()) Assert.AreEqual(0, v, 1e-6);
        using var normalized = AttentionRollout.Compute(cls, images);
        Assert.IsTrue(normalized.ToArray<float>().All(float.IsFinite));
    }

    [TestMethod]
    public void Rollout_RunsInEvaluationMode_RestoresTheMode_AndLeaksNothing()
    {
        var config = TinyConfig() with { Dropout = 0.5, AttentionDropout = 0.5, DropPath = 0.5 };
        using var model = RandomModel(config);
        using var images = RandomImages(2);
        model.Train();
        using (var first = AttentionRollout.Compute(model, images))
        {
            Assert.IsTrue(model.Training, "the caller's training mode comes back");
            using var second = AttentionRollout.Compute(model, images);
            CollectionAssert.AreEqual(first.ToArray<float>(), second.ToArray<float>(), "no dropout: the same map twice");
            var direct = DirectRollout(AttentionOf(model, images)[0], config.Heads, config.NumTokens, 1, classRow: true, normalize: true)[0];
            var got = first.ToArray<float>();
            for (int p = 0; p < direct.Length; p++) Assert.AreEqual(direct[p], got[p], 1e-5);
        }
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long live = Tensor.LiveCount;
        for (int i = 0; i < 3; i++) AttentionRollout.Compute(model, images).Dispose();
        Assert.AreEqual(live, Tensor.LiveCount, "every intermediate freed");
    }

    [TestMethod]
    public void ConfusionMatrix_OfAThousandClasses_ShowsTheMostConfusedAndStaysSmall()
    {
        const int k = 1000;
        var labels = Enumerable.Range(0, k).Select(i => $"class {i}").ToArray();
        var counts = Enumerable.Range(0, k).Select(i => (IReadOnlyList<long>)Enumerable.Range(0, k).Select(j => (long)(i == j ? 5 : 0)).ToArray()).ToArray();
        ((long[])counts[700])[3] = 4;  // class 700 taken for class 3 four times
        ((long[])counts[12])[999] = 1;
        var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"vit-cm-{Guid.NewGuid():N}.svg");
        try
        {
            ConfusionMatrixPicture.Write(path, labels, counts);
            Assert.IsLessThan(2_000_000, new FileInfo(path).Length);
            var doc = XDocument.Load(path);
            var cells = doc.Descendants().Where(e => e.Attribute("data-count") is not null).ToList();
            Assert.HasCount(ConfusionMatrixPicture.MaxClasses * ConfusionMatrixPicture.MaxClasses, cells);
            var text = string.Concat(doc.Descendants().Select(e => e.Value));
            StringAssert.Contains(text, "the 60 of 1000 classes most often confused");
            foreach (var name in new[] { "class 700", "class 3", "class 12", "class 999" }) StringAssert.Contains(text, name);
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }

    [TestMethod]
    public void Rollout_BadInput_IsRefusedWithTheProblem()
    {
        var config = TinyConfig();
        using var model = RandomModel(config);
        using var rgb = Tensor.Randn([2, 3, 8, 8]);
        var e = Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.Compute(model, rgb));
        StringAssert.Contains(e.Message, "(B >= 1, 1, 8, 8)");
        StringAssert.Contains(e.Message, "got (2, 3, 8, 8)");
        using var flat = Tensor.Randn([1, 8, 8]);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.Compute(model, flat)).Message, "got (1, 8, 8)");
        using var big = Tensor.Randn([1, 1, 16, 16]);
        Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.Compute(model, big));
        Assert.ThrowsExactly<ArgumentNullException>(() => AttentionRollout.Compute(null!, big));

        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.FromAttentionMaps([], config)).Message, "no attention maps");
        using var wrongTokens = Tensor.Ones([1, 2, 16, 16]);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.FromAttentionMaps([wrongTokens], config)).Message,
            "attention map 0 has shape (1, 2, 16, 16); expected (B, heads, 17, 17)");
        using var one = Tensor.Ones([1, 2, 17, 17]);
        using var two = Tensor.Ones([2, 2, 17, 17]);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.FromAttentionMaps([one, two], config)).Message,
            "attention map 1 holds 2 images, map 0 holds 1");
    }

    // ============================================================================== overlays

    private static Image Gray(int w, int h, byte value) => Image.Filled(w, h, 1, value);

    private static List<(XElement Tile, Image Picture)> Tiles(XDocument doc) =>
        WithClass(doc, "g", "tile").Select(t =>
        {
            var href = t.Element(S + "image")!.Attribute(Xlink + "href")!.Value;
            const string prefix = "data:image/png;base64,";
            StringAssert.StartsWith(href, prefix);
            return (t, Image.Decode(Convert.FromBase64String(href[prefix.Length..])));
        }).ToList();

    [TestMethod]
    public void Overlays_DecodeAtTheExpectedSize_WithColouredCaptions()
    {
        var images = new[] { Gray(32, 32, 100), Gray(32, 32, 150), Gray(32, 32, 200) };
        using var rollout = Tensor.Rand([3, 4, 4]);
        var path = File("overlay.svg");
        AttentionRollout.WriteOverlays(path, images, rollout, ["cat", "dog", "cat"], ["cat", "cat", "cat"], columns: 2, tileSize: 160);
        foreach (var im in images) im.Dispose();
        var doc = Load(path);
        var tiles = Tiles(doc);
        Assert.HasCount(3, tiles);
        foreach (var (tile, picture) in tiles)
            using (picture)
            {
                Assert.AreEqual(160, picture.Width, "32 px enlarged 5 times");
                Assert.AreEqual(160, picture.Height);
                Assert.AreEqual(3, picture.Channels);
                var img = tile.Element(S + "image")!;
                Assert.AreEqual(160, Attr(img, "width"));
                Assert.AreEqual(160, Attr(img, "height"));
            }
        var captions = WithClass(doc, "text", "caption").ToList();
        Assert.AreEqual("✓ cat / cat", Shown(captions[0]));
        Assert.AreEqual("✗ dog / cat", Shown(captions[1]));
        Assert.AreEqual(AttentionRollout.RightColor, captions[0].Attribute("fill")!.Value);
        Assert.AreEqual(AttentionRollout.WrongColor, captions[1].Attribute("fill")!.Value);
        Assert.AreEqual(AttentionRollout.RightColor, captions[2].Attribute("fill")!.Value);
        // Two columns: the third image starts the second row.
        var xs = tiles.Select(t => Attr(t.Tile.Element(S + "image")!, "x")).ToArray();
        var ys = tiles.Select(t => Attr(t.Tile.Element(S + "image")!, "y")).ToArray();
        Assert.AreEqual(xs[0], xs[2]);
        Assert.IsGreaterThan(xs[0], xs[1]);
        Assert.IsGreaterThan(ys[0], ys[2]);
        StringAssert.Contains(Shown(WithClass(doc, "text", "subtitle").Single()), "2 of 3 right");
    }

    [TestMethod]
    public void Overlays_PutTheHeatWhereTheAttentionIs()
    {
        // A gray image and a map whose only attention is on the top-right patch of a 4x4 grid.
        using var image = Gray(64, 64, 128);
        var map = new float[16];
        map[3] = 1;
        using var rollout = Tensor.FromArray(map, 1, 4, 4);
        var path = File("overlay.svg");
        AttentionRollout.WriteOverlays(path, [image], rollout, ["a"], ["b"], tileSize: 128, opacity: 0.5);
        var (_, picture) = Tiles(Load(path)).Single();
        using (picture)
        {
            Assert.AreEqual(128, picture.Width);
            var px = picture.ToBytes();
            (byte R, byte G, byte B) At(int x, int y) => (px[(y * 128 + x) * 3], px[(y * 128 + x) * 3 + 1], px[(y * 128 + x) * 3 + 2]);
            static void Near((byte R, byte G, byte B) want, (byte R, byte G, byte B) got, string where)
            {
                Assert.AreEqual((double)want.R, got.R, 2, where);
                Assert.AreEqual((double)want.G, got.G, 2, where);
                Assert.AreEqual((double)want.B, got.B, 2, where);
            }
            static (byte, byte, byte) Blend((byte R, byte G, byte B) c) =>
                ((byte)Math.Round(0.5 * 128 + 0.5 * c.R), (byte)Math.Round(0.5 * 128 + 0.5 * c.G), (byte)Math.Round(0.5 * 128 + 0.5 * c.B));
            // Patch (0, 3) covers x 96..127, y 0..31 of the 128-px tile; towards the corner (away from the bilinear ramp
            // to its neighbours) it has the hottest colour.
            Near(Blend(ColorRamp.Heat.At(1)), At(120, 8), "inside the attended patch");
            Near(Blend(ColorRamp.Heat.At(0)), At(16, 112), "a far patch");
            Near(Blend(ColorRamp.Heat.At(0)), At(16, 16), "the top-left patch");
        }
    }

    [TestMethod]
    public void Overlays_LargeAndNonSquareImages_FitTheTile()
    {
        using var wide = Image.FromPixels(ImageFixtures.RandomBytes(400 * 200 * 3, 1), 400, 200, 3);
        using var small = Gray(20, 20, 10);
        using var rollout = Tensor.Rand([2, 7, 7]);
        var path = File("overlay.svg");
        AttentionRollout.WriteOverlays(path, [wide, small], rollout, ["x", "y"], ["x", "y"], tileSize: 100);
        var tiles = Tiles(Load(path));
        Assert.AreEqual((100, 50), (tiles[0].Picture.Width, tiles[0].Picture.Height), "the longer side reduced to the tile");
        Assert.AreEqual((100, 100), (tiles[1].Picture.Width, tiles[1].Picture.Height), "20 px enlarged 5 times");
        foreach (var t in tiles) t.Picture.Dispose();
    }

    [TestMethod]
    public void Overlays_BadInput_IsRefusedWithTheProblem()
    {
        using var a = Gray(16, 16, 0);
        using var b = Gray(16, 16, 0);
        using var two = Tensor.Rand([2, 4, 4]);
        var path = File("overlay.svg");
        Image[] images = [a, b];
        string[] labels = ["x", "y"];
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.WriteOverlays(path, images, two, ["x"], labels)).Message,
            "1 predicted labels for 2 images");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.WriteOverlays(path, images, two, labels, ["x", "y", "z"])).Message,
            "3 true labels for 2 images");
        using var three = Tensor.Rand([3, 4, 4]);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.WriteOverlays(path, images, three, labels, labels)).Message,
            "(B, gridH, gridW) with B = 2 images; got (3, 4, 4)");
        using var flat = Tensor.Rand([2, 16]);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.WriteOverlays(path, images, flat, labels, labels)).Message,
            "got (2, 16)");
        var bad = new float[32];
        bad[21] = float.NaN;
        using var nan = Tensor.FromArray(bad, 2, 4, 4);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.WriteOverlays(path, images, nan, labels, labels)).Message,
            "rollout value [1, 1, 1] is NaN");
        bad[21] = -1;
        using var negative = Tensor.FromArray(bad, 2, 4, 4);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.WriteOverlays(path, images, negative, labels, labels)).Message,
            "is -1");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.WriteOverlays(path, [], two, [], [])).Message, "no images");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.WriteOverlays(path, images, two, ["x", null!], labels)).Message,
            "predicted label 1 is null");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => AttentionRollout.WriteOverlays(path, images, two, labels, labels, tileSize: 8));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => AttentionRollout.WriteOverlays(path, images, two, labels, labels, opacity: 1.5));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => AttentionRollout.WriteOverlays(path, images, two, labels, labels, columns: 0));
        Assert.IsFalse(System.IO.File.Exists(path));
    }

    // ============================================================================== Image.Blend (the shim's addWeighted)

    [TestMethod]
    public void Blend_IsTheWeightedSumOfTheSamples()
    {
        var pa = ImageFixtures.RandomBytes(5 * 4 * 3, 2);
        var pb = ImageFixtures.RandomBytes(5 * 4 * 3, 3);
        using var a = Image.FromPixels(pa, 5, 4, 3);
        using var b = Image.FromPixels(pb, 5, 4, 3);
        using var c = a.Blend(b, 0.25);
        var pc = c.ToBytes();
        for (int i = 0; i < pc.Length; i++) Assert.AreEqual(0.75 * pa[i] + 0.25 * pb[i], pc[i], 0.5 + 1e-9, $"sample {i}");
        using var none = a.Blend(b, 0);
        CollectionAssert.AreEqual(pa, none.ToBytes());
        using var all = a.Blend(b, 1);
        CollectionAssert.AreEqual(pb, all.ToBytes());
        CollectionAssert.AreEqual(pa, a.ToBytes(), "the inputs are unchanged");
    }

    [TestMethod]
    public void Blend_MismatchedImages_AreRefusedOnBothSidesOfTheBoundary()
    {
        using var a = Image.Filled(4, 4, 3, 0);
        using var b = Image.Filled(4, 5, 3, 0);
        using var g = Image.Filled(4, 4, 1, 0);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => a.Blend(b, 0.5)).Message, "size and channels must match");
        Assert.ThrowsExactly<ArgumentException>(() => a.Blend(g, 0.5));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => a.Blend(a, double.NaN));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => a.Blend(a, -0.1));
        // The shim checks on its own too (status, message in the error buffer, nothing allocated).
        long live = Image.LiveCount;
        Assert.AreEqual(1, ImagingNative.vit_image_blend(a.Handle, b.Handle, 0.5, out var o));
        Assert.AreEqual(IntPtr.Zero, o);
        StringAssert.Contains(ImagingNative.LastErrorText(), "cannot blend a 4x5 image with 3 channel(s) over a 4x4 image");
        Assert.AreEqual(1, ImagingNative.vit_image_blend(a.Handle, a.Handle, 2, out _));
        StringAssert.Contains(ImagingNative.LastErrorText(), "blend weight must be in [0, 1]");
        using var nullHandle = new ImageHandle(IntPtr.Zero);
        Assert.AreEqual(1, ImagingNative.vit_image_blend(nullHandle, a.Handle, 0.5, out _));
        StringAssert.Contains(ImagingNative.LastErrorText(), "null image handle");
        Assert.AreEqual(live, Image.LiveCount);
    }
}
