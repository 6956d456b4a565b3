// Usage: var m = ctx.MulticlassClassification.Evaluate(scored);
//        ConfusionMatrixPicture.Write("runs/photos/confusion.png", m.Labels, m.ConfusionMatrix);  // or .svg
// One heat map drawn with ScottPlot: counts[true][predicted] written in the cells, colour = share of the true class's row.
using System.Globalization;
using ScottPlot;
using ScottPlot.TickGenerators;

namespace Vit.Torch.Reports;

/// <summary>
/// The confusion matrix as a heat map (PNG or SVG, by the file's extension), drawn with ScottPlot: one row per true
/// class, one column per predicted class, the count written in each cell and the cell coloured by its share of the
/// row (so the diagonal reads as per-class recall whatever the class sizes), labels on both axes and a colour bar.
/// </summary>
/// <remarks>
/// The colour is the square root of the share (small confusions stay visible; the colour bar is labelled in shares).
/// A row without examples is grey. Labels longer than <see cref="MaxLabelLength"/> characters are cut with an ellipsis,
/// and column labels are turned when they would not fit under their column.
/// </remarks>
public static class ConfusionMatrixPicture
{
    /// <summary>Labels longer than this are cut (with "…") on the axes.</summary>
    public const int MaxLabelLength = 22;

    /// <summary>Most classes drawn: with more (ImageNet's 1000), the picture shows the ones most often confused (errors
    /// in their row and column), and says so, so that it stays readable and small.</summary>
    public const int MaxClasses = 60;

    /// <summary>
    /// Writes the confusion matrix <paramref name="counts"/> (counts[true][predicted], K × K, in the order of
    /// <paramref name="labels"/>, as <c>MulticlassClassificationMetrics.ConfusionMatrix</c> holds it) to
    /// <paramref name="path"/>, a .png or .svg file, atomically. A row without examples is drawn grey.
    /// </summary>
    /// <exception cref="ArgumentException">The path is not .png or .svg; no labels, a null label, counts that are not
    /// K × K, or a negative count.</exception>
    public static void Write(string path, IReadOnlyList<string> labels, IReadOnlyList<IReadOnlyList<long>> counts)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Chart.IsSvg(path);
        Validate(labels, counts);
        var picture = Build(labels, counts);
        Chart.Write(path, [picture.Plot], picture.Width, picture.Height);
    }

    internal static void Validate(IReadOnlyList<string> labels, IReadOnlyList<IReadOnlyList<long>> counts)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(counts);
        int k = labels.Count;
        if (k == 0) throw new ArgumentException("no labels: a confusion matrix needs at least one class", nameof(labels));
        for (int i = 0; i < k; i++)
            if (labels[i] is null) throw new ArgumentException($"label {i} is null", nameof(labels));
        if (counts.Count != k)
            throw new ArgumentException(
                $"{counts.Count} rows of counts for {k} labels: the confusion matrix must be {k}x{k} (counts[true][predicted])", nameof(counts));
        for (int i = 0; i < k; i++)
        {
            var row = counts[i] ?? throw new ArgumentException($"row {i} ('{labels[i]}') of the counts is null", nameof(counts));
            if (row.Count != k)
                throw new ArgumentException($"row {i} ('{labels[i]}') has {row.Count} counts for {k} labels: the confusion matrix must be {k}x{k}", nameof(counts));
            for (int j = 0; j < k; j++)
                if (row[j] < 0)
                    throw new ArgumentException($"count [{i}][{j}] (true '{labels[i]}', predicted '{labels[j]}') is negative: {row[j]}", nameof(counts));
        }
    }

    /// <summary>The picture as a ScottPlot plot, its size, the classes it shows (all, or the <see cref="MaxClasses"/>
    /// most confused, in their original order) and its heat map.</summary>
    internal sealed record Picture(Plot Plot, int Width, int Height, int[] Classes, ScottPlot.Plottables.Heatmap Cells);

    /// <summary>The heat map of valid <paramref name="labels"/> and <paramref name="counts"/>.</summary>
    internal static Picture Build(IReadOnlyList<string> labels, IReadOnlyList<IReadOnlyList<long>> counts)
    {
        var inv = CultureInfo.InvariantCulture;
        int all = labels.Count;
        var classes = Enumerable.Range(0, all).ToArray();
        string? note = null;
        if (all > MaxClasses)
        {
            var errors = classes.Select(c => classes.Where(o => o != c).Sum(o => counts[c][o] + counts[o][c])).ToArray();
            classes = classes.OrderByDescending(c => errors[c]).ThenBy(c => c).Take(MaxClasses).Order().ToArray();
            note = $"the {MaxClasses} of {all} classes most often confused";
        }
        int k = classes.Length;
        long Count(int i, int j) => counts[classes[i]][classes[j]];
        var rowSums = Enumerable.Range(0, k).Select(i => Enumerable.Range(0, k).Sum(j => Count(i, j))).ToArray();
        long total = Enumerable.Range(0, all).Sum(i => counts[i].Sum()), correct = Enumerable.Range(0, all).Sum(i => counts[i][i]);

        var plot = Chart.NewPlot();
        string accuracy = total == 0 ? "no examples" :
            $"{total.ToString(inv)} examples, accuracy {((double)correct / total * 100).ToString("0.##", inv)}%";
        plot.Title($"Confusion matrix: {accuracy}{(note is null ? "" : "\n" + note)}", 15);
        plot.XLabel("predicted class", 13);
        plot.YLabel("true class (colour: share of the row)", 13);

        // ScottPlot draws row i of the intensities centred on y = k - 1 - i and column j on x = j: the first class at the top.
        var tones = new double[k, k];
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
                tones[i, j] = rowSums[i] == 0 ? double.NaN : Tone((double)Count(i, j) / rowSums[i]);
        var cells = plot.Add.Heatmap(tones);
        cells.Colormap = new ScottPlot.Colormaps.Reversed(new ScottPlot.Colormaps.Blues());  // white for 0, dark blue for the whole row
        cells.ManualRange = new ScottPlot.Range(0, 1);
        cells.NaNCellColor = Color.FromHex("#ececec");

        int cell = Math.Clamp(700 / k, 14, 46);
        int digits = Enumerable.Range(0, k).Max(i => Enumerable.Range(0, k).Max(j => Count(i, j))).ToString(inv).Length;
        float countFont = Math.Max(4, Math.Min(cell * 0.36f, (cell - 4) / (0.6f * digits)));  // the largest count fits its cell
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
            {
                long n = Count(i, j);
                double tone = double.IsNaN(tones[i, j]) ? 0 : tones[i, j];
                var text = plot.Add.Text(n.ToString(inv), j, k - 1 - i);
                text.Alignment = Alignment.MiddleCenter;
                text.LabelFontSize = countFont;
                text.LabelFontColor = n == 0 ? Color.FromHex("#a0a0a0") : cells.Colormap.GetColor(tone).Luminance < 0.5 ? Colors.White : Color.FromHex("#1a1a1a");
            }

        var shown = classes.Select(c => Shown(labels[c])).ToArray();
        float labelFont = Math.Clamp(cell * 0.42f, 8, 13);
        plot.Axes.Bottom.TickGenerator = new NumericManual(Enumerable.Range(0, k).Select(j => (double)j).ToArray(), shown);
        plot.Axes.Left.TickGenerator = new NumericManual(Enumerable.Range(0, k).Select(i => (double)(k - 1 - i)).ToArray(), shown);
        plot.Axes.Bottom.TickLabelStyle.FontSize = labelFont;
        plot.Axes.Left.TickLabelStyle.FontSize = labelFont;
        Chart.UseFonts(plot);
        string labelFamily = Chart.FontFor(string.Concat(shown));
        plot.Axes.Bottom.TickLabelStyle.FontName = labelFamily;
        plot.Axes.Left.TickLabelStyle.FontName = labelFamily;
        int longest = shown.Max(s => s.Length);
        double labelWidth = longest * labelFont * 0.6;  // an estimate: ScottPlot does not make room for turned labels
        bool turned = labelWidth > cell - 4;
        if (turned)
        {
            plot.Axes.Bottom.TickLabelStyle.Rotation = 45;
            plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
            plot.Axes.Bottom.MinimumSize = (float)(labelWidth * 0.75 + 30);
        }
        plot.Axes.SetLimits(-0.5, k - 0.5, -0.5, k - 0.5);
        plot.Grid.IsVisible = false;

        var bar = plot.Add.ColorBar(cells);
        var barTicks = new NumericManual();
        foreach (var (share, text) in new[] { (0.0, "0%"), (0.1, "10%"), (0.25, "25%"), (0.5, "50%"), (1.0, "100%") })
            barTicks.AddMajor(Tone(share), text);
        bar.Axis.TickGenerator = barTicks;
        bar.Axis.TickLabelStyle.FontName = Chart.FontFor("0123456789%");

        int width = (int)(k * cell + labelWidth + 190);
        int height = (int)(k * cell + (turned ? labelWidth * 0.75 : labelFont) + 150);
        return new Picture(plot, Math.Max(width, 520), Math.Max(height, 360), classes, cells);
    }

    /// <summary>A label as the axes show it: control characters as spaces, cut to <see cref="MaxLabelLength"/>
    /// characters with an ellipsis; an empty label as "(empty)".</summary>
    internal static string Shown(string label)
    {
        if (label.Length == 0) return "(empty)";
        var clean = new string(label.Select(ch => char.IsControl(ch) ? ' ' : ch).ToArray());
        return Svg.Truncate(clean, MaxLabelLength);
    }

    /// <summary>
    /// The colour position of a share of the row: its square root, so that a confusion of 5% (0.22) already shows
    /// as a visible tint instead of near-white; the colour bar uses the same mapping, so it stays a true legend.
    /// </summary>
    internal static double Tone(double share) => Math.Sqrt(Math.Clamp(share, 0, 1));
}
