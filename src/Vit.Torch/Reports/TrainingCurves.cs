// Usage: var history = trainer.Fit(...);                       // IReadOnlyList<EpochResult>
//        TrainingCurves.Write("runs/photos/curves.svg", history);
// One SVG with three panels per epoch: loss (train, validation), accuracy (train, validation), learning rate.
using System.Globalization;
using Vit.Torch.Checkpoints;
using Vit.Torch.Training;

namespace Vit.Torch.Reports;

/// <summary>
/// Learning curves of a training run as one SVG picture: loss, accuracy and learning rate per epoch, train and
/// validation side by side, with axes, ticks, labels and a legend, as the reference notebooks plot them.
/// </summary>
/// <remarks>
/// SVG rather than a raster: the text stays sharp at any zoom and in any script, GitHub and every browser show it,
/// and every point is an element with its epoch and value (<c>data-epoch</c>, <c>data-value</c>, a tooltip), so a
/// test or a script can read the numbers back. A value that is not finite (a diverged loss) has no point: the line
/// breaks there and a cross at the top of the panel marks the epoch.
/// </remarks>
public static class TrainingCurves
{
    // Colours: train dark blue, validation orange (apart for colour-blind readers too), the EMA purple, learning rate green.
    internal const string TrainColor = "#1f5fa8";
    internal const string ValidationColor = "#e0701a";
    internal const string EmaColor = "#7b3fa0";
    internal const string RateColor = "#2e8b57";

    private const double PanelWidth = 380, PanelHeight = 330, Header = 40;
    private const double Left = 72, Right = 18, Top = 34, Bottom = 46;

    /// <summary>
    /// Writes the learning curves of <paramref name="history"/> (epochs in increasing order) to
    /// <paramref name="path"/> as SVG, atomically (a temporary file renamed over the target). Epochs without
    /// validation metrics simply have no validation point; without any, the legend shows training alone.
    /// </summary>
    /// <exception cref="ArgumentException">The history is empty, holds a null entry, or its epochs do not increase.</exception>
    public static void Write(string path, IReadOnlyList<EpochResult> history)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Validate(history);
        AtomicFile.Write(path, stream => Render(stream, history));
    }

    internal static void Validate(IReadOnlyList<EpochResult> history)
    {
        ArgumentNullException.ThrowIfNull(history);
        if (history.Count == 0)
            throw new ArgumentException("the training history is empty: there is no epoch to plot", nameof(history));
        for (int i = 0; i < history.Count; i++)
        {
            if (history[i] is null) throw new ArgumentException($"history entry {i} is null", nameof(history));
            if (i > 0 && history[i].Epoch <= history[i - 1].Epoch)
                throw new ArgumentException(
                    $"the epochs of the history must increase: entry {i} is epoch {history[i].Epoch}, after epoch {history[i - 1].Epoch}",
                    nameof(history));
        }
    }

    private sealed record Series(string Name, string Key, string Color, (int Epoch, double Value)[] Points);

    private static void Render(Stream stream, IReadOnlyList<EpochResult> history)
    {
        Series Of(string name, string key, string color, Func<EpochResult, double?> value) =>
            new(name, key, color, history.Where(e => value(e) is not null).Select(e => (e.Epoch, value(e)!.Value)).ToArray());

        var panels = new (string Title, string YLabel, bool Percent, Series[] Series)[]
        {
            ("Loss", "cross-entropy", false,
            [
                Of("train", "train-loss", TrainColor, e => e.TrainLoss),
                Of("validation", "validation-loss", ValidationColor, e => e.Evaluation?.Loss),
                Of("validation, EMA", "ema-validation-loss", EmaColor, e => e.EmaEvaluation?.Loss),
            ]),
            ("Accuracy", "top-1 accuracy", true,
            [
                Of("train", "train-accuracy", TrainColor, e => e.TrainAccuracy),
                Of("validation", "validation-accuracy", ValidationColor, e => e.Evaluation?.Accuracy),
                Of("validation, EMA", "ema-validation-accuracy", EmaColor, e => e.EmaEvaluation?.Accuracy),
            ]),
            ("Learning rate", "learning rate (last step of the epoch)", false,
            [
                Of("learning rate", "learning-rate", RateColor, e => e.LearningRate),
            ]),
        };

        int first = history[0].Epoch, last = history[^1].Epoch;
        var xAxis = AxisScale.Nice(first, last, ticks: 6, integer: true, tight: true);
        double xPad = Math.Max(0.4, (xAxis.Max - xAxis.Min) * 0.03);  // the first and last points clear of the axes
        xAxis = xAxis with { Min = xAxis.Min - xPad, Max = xAxis.Max + xPad };
        double width = PanelWidth * panels.Length, height = Header + PanelHeight;
        using var svg = Svg.Begin(stream, width, height, $"Training curves, epochs {first}-{last}");
        svg.Text(14, 26, "Training curves", 17, weight: "bold");
        svg.Text(width - 14, 26, history.Count == 1 ? $"1 epoch (epoch {first})" : $"{history.Count} epochs ({first}-{last})", 12,
            anchor: "end", fill: "#555555");
        for (int p = 0; p < panels.Length; p++)
        {
            var (title, yLabel, percent, series) = panels[p];
            svg.Start("g", ("class", "panel"), ("data-panel", title.ToLowerInvariant().Replace(' ', '-')),
                ("transform", $"translate({Svg.Num(p * PanelWidth)} {Svg.Num(Header)})"));
            DrawPanel(svg, title, yLabel, percent, series.Where(s => s.Points.Length > 0).ToArray(), xAxis);
            svg.End();
        }
    }

    private static void DrawPanel(Svg svg, string title, string yLabel, bool percent, Series[] series, AxisScale xAxis)
    {
        double x0 = Left, x1 = PanelWidth - Right, y0 = PanelHeight - Bottom, y1 = Top;  // plot area; y0 is the bottom
        svg.Text(x0, 20, title, 14, weight: "bold");

        var finite = series.SelectMany(s => s.Points).Select(pt => pt.Value).Where(double.IsFinite).ToArray();
        bool fractions = percent && finite.All(v => v is >= 0 and <= 1);
        var yAxis = finite.Length == 0
            ? AxisScale.Nice(0, 1, percent: fractions)
            : AxisScale.Nice(finite.Min(), finite.Max(), percent: fractions);

        // Grid, ticks and tick labels.
        foreach (var t in yAxis.Ticks)
        {
            double y = yAxis.Map(t, y0, y1);
            svg.Line(x0, y, x1, y, "#e6e6e6");
            svg.Line(x0 - 4, y, x0, y, "#444444");
            svg.Text(x0 - 7, y + 4, yAxis.Label(t), 11, anchor: "end", fill: "#444444", cssClass: "y-tick");
        }
        foreach (var t in xAxis.Ticks)
        {
            double x = xAxis.Map(t, x0, x1);
            svg.Line(x, y0, x, y0 + 4, "#444444");
            svg.Text(x, y0 + 17, xAxis.Label(t), 11, anchor: "middle", fill: "#444444", cssClass: "x-tick");
        }
        svg.Line(x0, y0, x1, y0, "#444444", cssClass: "x-axis");
        svg.Line(x0, y0, x0, y1, "#444444", cssClass: "y-axis");
        svg.Text((x0 + x1) / 2, y0 + 36, "epoch", 12, anchor: "middle", cssClass: "x-label");
        svg.Text(15, (y0 + y1) / 2, yLabel, 12, anchor: "middle", rotate: -90, cssClass: "y-label");

        if (series.Length == 0)
        {
            svg.Text((x0 + x1) / 2, (y0 + y1) / 2, "no values", 12, anchor: "middle", fill: "#888888");
            return;
        }

        bool anyNonFinite = false;
        bool markers = series.Max(s => s.Points.Length) <= 60;
        foreach (var s in series)
        {
            svg.Start("g", ("class", "series"), ("data-series", s.Key));
            string what = s.Name == title.ToLowerInvariant() ? s.Name : $"{s.Name} {title.ToLowerInvariant()}";  // "train loss", "learning rate"
            // Consecutive finite points form one polyline; a non-finite value breaks the line.
            var run = new List<string>();
            void Flush()
            {
                if (run.Count > 0) svg.Empty("polyline", ("points", string.Join(" ", run)), ("fill", "none"), ("stroke", s.Color),
                    ("stroke-width", "2"), ("stroke-linejoin", "round"));
                run.Clear();
            }
            foreach (var (epoch, value) in s.Points)
            {
                double x = xAxis.Map(epoch, x0, x1);
                if (!double.IsFinite(value))
                {
                    Flush();
                    anyNonFinite = true;
                    svg.Text(x, y1 + 4, "×", 13, anchor: "middle", fill: s.Color, cssClass: "non-finite",
                        title: $"epoch {epoch}: {what} is {Describe(value)}",
                        extra: ("data-epoch", epoch.ToString(CultureInfo.InvariantCulture)));
                    continue;
                }
                double y = yAxis.Map(value, y0, y1);
                run.Add($"{Svg.Num(x)},{Svg.Num(y)}");
                svg.Start("circle", ("class", "point"), ("cx", Svg.Num(x)), ("cy", Svg.Num(y)), ("r", markers ? "2.6" : "0"),
                    ("fill", s.Color), ("data-epoch", epoch.ToString(CultureInfo.InvariantCulture)),
                    ("data-value", value.ToString("R", CultureInfo.InvariantCulture)));
                svg.Title($"epoch {epoch}: {what} {Format(value, percent && yAxis.Percent)}");
                svg.End();
            }
            Flush();
            svg.End();
        }

        // Legend: top right, above the plot area, so it never hides a point.
        var entries = series.Select(s => (s.Name, s.Color, Cross: false)).ToList();
        if (anyNonFinite) entries.Add(("not finite", "#555555", true));
        double lx = x1;
        svg.Start("g", ("class", "legend"));
        for (int i = entries.Count - 1; i >= 0; i--)
        {
            var (name, color, cross) = entries[i];
            double textWidth = Svg.TextWidth(name, 11);
            lx -= textWidth;
            svg.Text(lx, 20, name, 11, fill: "#333333", cssClass: "legend-entry");
            if (cross) svg.Text(lx - 10, 21, "×", 13, anchor: "middle", fill: color);
            else svg.Line(lx - 22, 16, lx - 4, 16, color, 2.5);
            lx -= 34;
        }
        svg.End();
    }

    private static string Describe(double v) => double.IsNaN(v) ? "NaN" : v > 0 ? "+infinity" : "-infinity";

    private static string Format(double v, bool percent) =>
        percent ? (v * 100).ToString("0.##", CultureInfo.InvariantCulture) + "%"
        : v.ToString("G5", CultureInfo.InvariantCulture);
}
