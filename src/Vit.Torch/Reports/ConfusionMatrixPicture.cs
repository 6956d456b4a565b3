// Usage: var m = ctx.MulticlassClassification.Evaluate(scored);
//        ConfusionMatrixPicture.Write("runs/photos/confusion.svg", m.Labels, m.ConfusionMatrix);
// One SVG heat map: counts[true][predicted] written in the cells, colour = share of the true class's row.
using System.Globalization;
using Vit.Torch.Checkpoints;

namespace Vit.Torch.Reports;

/// <summary>
/// The confusion matrix as an SVG heat map: one row per true class, one column per predicted class, the count
/// written in each cell and the cell coloured by its share of the row (so the diagonal reads as per-class recall
/// whatever the class sizes), labels on both axes and a colour bar.
/// </summary>
/// <remarks>
/// The colour is the square root of the share (small confusions stay visible; the colour bar is labelled in shares).
/// Cells shrink with the class count (46 px up to 15 classes, 14 px from 50 on) so 2 to ~50 classes stay readable;
/// labels longer than 22 characters are cut with an ellipsis (the full label is in the tooltip), and column labels
/// that do not fit under their column are turned 45°. Each cell is a <c>rect</c> with <c>data-true</c>,
/// <c>data-predicted</c> and <c>data-count</c>, for scripts and tests.
/// </remarks>
public static class ConfusionMatrixPicture
{
    /// <summary>Labels longer than this are cut (with "…") on the axes; tooltips keep them whole.</summary>
    public const int MaxLabelLength = 22;

    /// <summary>Most classes drawn: with more (ImageNet's 1000), the picture shows the ones most often confused (errors
    /// in their row and column), and says so, so that it stays readable and small.</summary>
    public const int MaxClasses = 60;

    /// <summary>
    /// Writes the confusion matrix <paramref name="counts"/> (counts[true][predicted], K × K, in the order of
    /// <paramref name="labels"/>, as <c>MulticlassClassificationMetrics.ConfusionMatrix</c> holds it) to
    /// <paramref name="path"/> as SVG, atomically. A row without examples is drawn blank.
    /// </summary>
    /// <exception cref="ArgumentException">No labels, a null label, counts that are not K × K, or a negative count.</exception>
    public static void Write(string path, IReadOnlyList<string> labels, IReadOnlyList<IReadOnlyList<long>> counts)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Validate(labels, counts);
        string? note = null;
        if (labels.Count > MaxClasses)
        {
            int k = labels.Count;
            var errors = Enumerable.Range(0, k).Select(c => Enumerable.Range(0, k).Where(o => o != c).Sum(o => counts[c][o] + counts[o][c])).ToArray();
            var keep = Enumerable.Range(0, k).OrderByDescending(c => errors[c]).ThenBy(c => c).Take(MaxClasses).Order().ToArray();
            note = $"the {MaxClasses} of {k} classes most often confused";
            labels = keep.Select(c => labels[c]).ToArray();
            counts = keep.Select(i => (IReadOnlyList<long>)keep.Select(j => counts[i][j]).ToArray()).ToArray();
        }
        AtomicFile.Write(path, stream => Render(stream, labels, counts, note));
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

    private static void Render(Stream stream, IReadOnlyList<string> labels, IReadOnlyList<IReadOnlyList<long>> counts, string? note)
    {
        var inv = CultureInfo.InvariantCulture;
        int k = labels.Count;
        double cell = Math.Clamp(Math.Floor(700.0 / k), 14, 46);
        double labelFont = Math.Clamp(Math.Round(cell * 0.42, 1), 8, 13);
        var shown = labels.Select(l => l.Length == 0 ? "(empty)" : Svg.Truncate(l, MaxLabelLength)).ToArray();
        double labelWidth = shown.Max(l => Svg.TextWidth(l, labelFont));

        var rowSums = counts.Select(r => r.Sum()).ToArray();
        long total = rowSums.Sum(), correct = Enumerable.Range(0, k).Sum(i => counts[i][i]);
        long largest = counts.Max(r => r.Max());
        int digits = largest.ToString(inv).Length;
        double countFont = Math.Max(4, Math.Min(cell * 0.4, (cell - 4) / (0.6 * digits)));

        // Column labels fit horizontally only when short; else they are turned 45° (reading up to the right).
        bool rotated = labelWidth > cell - 4;
        double columnLabelHeight = rotated ? labelWidth * 0.64 + labelFont + 4 : labelFont + 10;  // 0.64: sin 45° less the estimate's slack
        double mx = 34 + Math.Max(40, labelWidth + 10), my = 70;
        double side = k * cell;
        double barX = mx + side + 22, barHeight = Math.Min(side, 240);
        double width = Math.Max(barX + 14 + 56, 520), height = my + side + columnLabelHeight + 28;

        using var svg = Svg.Begin(stream, width, height, $"Confusion matrix of {k} classes");
        svg.Text(14, 26, "Confusion matrix", 17, weight: "bold");
        string accuracy = total == 0 ? "no examples" :
            $"{total.ToString(inv)} examples, accuracy {((double)correct / total * 100).ToString("0.##", inv)}%";
        svg.Text(14, 46, $"{(note is null ? "" : note + " · ")}{accuracy} · rows: true class · columns: predicted class · colour: share of the row", 11,
            fill: "#555555", cssClass: "subtitle");

        svg.Start("g", ("class", "cells"));
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
            {
                long n = counts[i][j];
                double share = rowSums[i] == 0 ? 0 : (double)n / rowSums[i];
                double x = mx + j * cell, y = my + i * cell;
                string fill = rowSums[i] == 0 ? "#f2f2f2" : ColorRamp.Blues.Hex(Tone(share));
                svg.Start("rect", ("class", "cell"), ("x", Svg.Num(x)), ("y", Svg.Num(y)), ("width", Svg.Num(cell)),
                    ("height", Svg.Num(cell)), ("fill", fill), ("stroke", "#ffffff"), ("stroke-width", "0.5"),
                    ("data-true", i.ToString(inv)), ("data-predicted", j.ToString(inv)), ("data-count", n.ToString(inv)));
                svg.Title(rowSums[i] == 0
                    ? $"true {labels[i]}, predicted {labels[j]}: 0 (no examples of {labels[i]})"
                    : $"true {labels[i]}, predicted {labels[j]}: {n.ToString(inv)} ({(share * 100).ToString("0.#", inv)}% of {labels[i]})");
                svg.End();
                string ink = n == 0 ? "#a0a0a0" : ColorRamp.Blues.Luminance(Tone(share)) < 0.5 ? "#ffffff" : "#1a1a1a";
                svg.Text(x + cell / 2, y + cell / 2 + countFont * 0.35, n.ToString(inv), countFont, anchor: "middle", fill: ink,
                    cssClass: "count", extra: [("data-true", i.ToString(inv)), ("data-predicted", j.ToString(inv))]);
            }
        svg.End();
        svg.Empty("rect", ("x", Svg.Num(mx)), ("y", Svg.Num(my)), ("width", Svg.Num(side)), ("height", Svg.Num(side)),
            ("fill", "none"), ("stroke", "#666666"), ("stroke-width", "1"));

        // Row labels (true class) to the left, column labels (predicted class) below.
        for (int i = 0; i < k; i++)
            svg.Text(mx - 6, my + i * cell + cell / 2 + labelFont * 0.35, shown[i], labelFont, anchor: "end",
                cssClass: "row-label", title: labels[i]);
        double below = my + side;
        for (int j = 0; j < k; j++)
        {
            double cx = mx + j * cell + cell / 2;
            if (rotated)
                svg.Text(cx + labelFont * 0.3, below + 8, shown[j], labelFont, anchor: "end", rotate: -45, cssClass: "column-label", title: labels[j]);
            else
                svg.Text(cx, below + labelFont + 4, shown[j], labelFont, anchor: "middle", cssClass: "column-label", title: labels[j]);
        }
        svg.Text(mx + side / 2, below + columnLabelHeight + 16, "predicted class", 12, anchor: "middle", weight: "bold", cssClass: "x-label");
        svg.Text(16, my + side / 2, "true class", 12, anchor: "middle", weight: "bold", rotate: -90, cssClass: "y-label");

        // Colour bar: share of the row, 0 at the bottom.
        svg.Start("defs");
        svg.Start("linearGradient", ("id", "share"), ("x1", "0"), ("y1", "1"), ("x2", "0"), ("y2", "0"));
        for (int s = 0; s <= 20; s++)
            svg.Empty("stop", ("offset", (s / 20.0).ToString("0.##", inv)), ("stop-color", ColorRamp.Blues.Hex(Tone(s / 20.0))));
        svg.End();
        svg.End();
        svg.Start("g", ("class", "colour-bar"));
        svg.Empty("rect", ("x", Svg.Num(barX)), ("y", Svg.Num(my)), ("width", "14"), ("height", Svg.Num(barHeight)),
            ("fill", "url(#share)"), ("stroke", "#666666"), ("stroke-width", "0.5"));
        foreach (var (share, text) in new[] { (0.0, "0%"), (0.1, "10%"), (0.25, "25%"), (0.5, "50%"), (1.0, "100%") })
        {
            double y = my + barHeight * (1 - share);
            svg.Line(barX + 14, y, barX + 18, y, "#444444");
            svg.Text(barX + 21, y + 4, text, 10, fill: "#444444");
        }
        svg.Text(barX - 4, my + barHeight + 16, "of row", 10, fill: "#555555");
        svg.End();
    }

    /// <summary>
    /// The colour position of a share of the row: its square root, so that a confusion of 5% (0.22) already shows
    /// as a visible tint instead of near-white; the colour bar uses the same mapping, so it stays a true legend.
    /// </summary>
    internal static double Tone(double share) => Math.Sqrt(Math.Clamp(share, 0, 1));
}
