// Usage: var history = trainer.Fit(...);                       // IReadOnlyList<EpochResult>
//        TrainingCurves.Write("runs/photos/curves.png", history);  // or curves.svg
// Three panels per epoch, drawn with ScottPlot: loss (train, validation), accuracy (train, validation), learning rate.
using System.Globalization;
using ScottPlot;
using Vit.Torch.Training;

namespace Vit.Torch.Reports;

/// <summary>
/// Learning curves of a training run as one picture (PNG or SVG, by the file's extension), drawn with ScottPlot:
/// loss, accuracy and learning rate per epoch, train and validation side by side, with axes, labels and legends, as
/// the reference notebooks plot them.
/// </summary>
/// <remarks>
/// A value that is not finite (a diverged loss) has no point: the line breaks there, and a dashed vertical line in
/// the series' colour marks the epoch ("not finite" in the legend).
/// </remarks>
public static class TrainingCurves
{
    // Colours: train dark blue, validation orange (apart for colour-blind readers too), the EMA purple, learning rate green.
    internal const string TrainColor = "#1f5fa8";
    internal const string ValidationColor = "#e0701a";
    internal const string EmaColor = "#7b3fa0";
    internal const string RateColor = "#2e8b57";

    internal const int PanelWidth = 420, PanelHeight = 380;

    /// <summary>Series drawn with markers up to this many epochs; beyond, lines alone.</summary>
    private const int MarkersUpTo = 60;

    /// <summary>
    /// Writes the learning curves of <paramref name="history"/> (epochs in increasing order) to
    /// <paramref name="path"/>, a .png or .svg file, atomically (a temporary file renamed over the target). Epochs
    /// without validation metrics simply have no validation point; without any, the legend shows training alone.
    /// </summary>
    /// <exception cref="ArgumentException">The path is not .png or .svg; the history is empty, holds a null entry, or its
    /// epochs do not increase.</exception>
    public static void Write(string path, IReadOnlyList<EpochResult> history)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Chart.IsSvg(path);
        Validate(history);
        Chart.Write(path, Build(history), PanelWidth, PanelHeight);
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

    private sealed record Series(string Name, string Color, (int Epoch, double Value)[] Points);

    /// <summary>The three panels (loss, accuracy, learning rate) as ScottPlot plots, ready to render.</summary>
    internal static Plot[] Build(IReadOnlyList<EpochResult> history)
    {
        Series Of(string name, string color, Func<EpochResult, double?> value) =>
            new(name, color, history.Where(e => value(e) is not null).Select(e => (e.Epoch, value(e)!.Value)).ToArray());

        var panels = new (string Title, string YLabel, bool Percent, Series[] Series)[]
        {
            ("Loss", "cross-entropy", false,
            [
                Of("train", TrainColor, e => e.TrainLoss),
                Of("validation", ValidationColor, e => e.Evaluation?.Loss),
                Of("validation, EMA", EmaColor, e => e.EmaEvaluation?.Loss),
            ]),
            ("Accuracy", "top-1 accuracy", true,
            [
                Of("train", TrainColor, e => e.TrainAccuracy),
                Of("validation", ValidationColor, e => e.Evaluation?.Accuracy),
                Of("validation, EMA", EmaColor, e => e.EmaEvaluation?.Accuracy),
            ]),
            ("Learning rate", "learning rate (last step of the epoch)", false,
            [
                Of("learning rate", RateColor, e => e.LearningRate),
            ]),
        };
        int first = history[0].Epoch, last = history[^1].Epoch;
        string span = history.Count == 1 ? $"epoch {first}" : $"epochs {first}-{last}";
        return panels.Select(p => Panel($"{p.Title}, {span}", p.YLabel, p.Percent, p.Series.Where(s => s.Points.Length > 0).ToArray(), first, last))
            .ToArray();
    }

    private static Plot Panel(string title, string yLabel, bool percent, Series[] series, int first, int last)
    {
        var plot = Chart.NewPlot();
        plot.Title(title, 15);
        plot.XLabel("epoch", 13);
        plot.YLabel(yLabel, 13);
        plot.Axes.Bottom.TickGenerator = Chart.InvariantTicks(integers: true);

        var finite = series.SelectMany(s => s.Points).Select(pt => pt.Value).Where(double.IsFinite).ToArray();
        plot.Axes.Left.TickGenerator = percent && finite.Length > 0 && finite.All(v => v is >= 0 and <= 1)
            ? Chart.InvariantTicks(format: v => (v * 100).ToString("0.##", CultureInfo.InvariantCulture) + "%")
            : Chart.InvariantTicks();

        bool markers = series.Length > 0 && series.Max(s => s.Points.Length) <= MarkersUpTo;
        foreach (var s in series)
        {
            var color = Color.FromHex(s.Color);
            bool named = false, crossed = false;
            // Consecutive finite points form one line; a value that is not finite breaks it and is marked.
            var run = new List<(int Epoch, double Value)>();
            void Flush()
            {
                if (run.Count == 0) return;
                var line = plot.Add.Scatter(run.Select(p => (double)p.Epoch).ToArray(), run.Select(p => p.Value).ToArray(), color);
                line.LineWidth = 2;
                line.MarkerSize = markers ? 6 : 0;
                line.LegendText = named ? "" : s.Name;
                named = true;
                run.Clear();
            }
            foreach (var point in s.Points)
            {
                if (double.IsFinite(point.Value))
                {
                    run.Add(point);
                    continue;
                }
                Flush();
                var mark = plot.Add.VerticalLine(point.Epoch, 1.5f, color, LinePattern.Dashed);
                mark.LegendText = crossed ? "" : $"{s.Name}: not finite";
                crossed = true;
            }
            Flush();
        }

        double pad = Math.Max(0.5, (last - first) * 0.03);
        if (finite.Length == 0)
        {
            plot.Add.Text("no values", (first + last) / 2.0, 0.5).Alignment = Alignment.MiddleCenter;
            plot.Axes.SetLimits(first - pad, last + pad, 0, 1);
        }
        else
        {
            double lo = finite.Min(), hi = finite.Max();
            double margin = hi > lo ? (hi - lo) * 0.08 : hi != 0 ? Math.Abs(hi) * 0.1 : 1e-3;  // a flat series: ±10% around it
            double bottom = lo - margin;
            if (lo > 0 && bottom < 0) bottom = 0;  // values that cannot be negative (rates, accuracies) get no negative axis
            plot.Axes.SetLimits(first - pad, last + pad, bottom, hi + margin);
        }
        if (series.Length > 0) plot.ShowLegend(Edge.Bottom);
        Chart.UseFonts(plot);
        return plot;
    }
}
