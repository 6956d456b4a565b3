using ScottPlot;
using SkiaSharp;
using Vit.Torch.Checkpoints;

namespace Vit.Torch.Reports;

/// <summary>Writes ScottPlot plots, side by side, into one PNG or SVG file (chosen by the file's extension).</summary>
internal static class Chart
{
    /// <summary>Refuses a path whose extension is neither .png nor .svg, naming it.</summary>
    internal static bool IsSvg(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".svg" => true,
        ".png" => false,
        var e => throw new ArgumentException(
            $"'{path}': pictures are written as .png or .svg, not as '{(e.Length == 0 ? "(no extension)" : e)}'", nameof(path)),
    };

    /// <summary>Renders <paramref name="panels"/> left to right, each <paramref name="panelWidth"/> pixels wide, and
    /// writes the picture atomically (a temporary file renamed over the target).</summary>
    internal static void Write(string path, IReadOnlyList<Plot> panels, int panelWidth, int height)
    {
        bool svg = IsSvg(path);
        int width = panelWidth * panels.Count;
        AtomicFile.Write(path, stream =>
        {
            if (svg)
            {
                using var canvas = SKSvgCanvas.Create(new SKRect(0, 0, width, height), stream);
                Draw(canvas);
                return;
            }
            using var surface = SKSurface.Create(new SKImageInfo(width, height))
                ?? throw new InvalidOperationException($"SkiaSharp could not make a {width}x{height} surface");
            Draw(surface.Canvas);
            using var image = surface.Snapshot();
            using var png = image.Encode(SKEncodedImageFormat.Png, 100)
                ?? throw new InvalidOperationException($"SkiaSharp could not encode the {width}x{height} picture for '{path}' as PNG");
            png.SaveTo(stream);
        });

        void Draw(SKCanvas canvas)
        {
            canvas.Clear(SKColors.White);
            for (int i = 0; i < panels.Count; i++)
            {
                // A plot clears the canvas before drawing: clipped to its own rectangle, it clears only that.
                canvas.Save();
                canvas.ClipRect(new SKRect(i * panelWidth, 0, (i + 1) * panelWidth, height));
                panels[i].Render(canvas, new PixelRect(i * panelWidth, (i + 1) * panelWidth, height, 0));
                canvas.Restore();
            }
        }
    }

    /// <summary>The font families installed, read once.</summary>
    private static readonly Lazy<HashSet<string>> Installed =
        new(() => SKFontManager.Default.FontFamilies.ToHashSet(StringComparer.OrdinalIgnoreCase));

    /// <summary>A sans-serif typeface this system has (ScottPlot's own default resolves to a serif one on Debian).</summary>
    private static readonly Lazy<SKTypeface?> Sans = new(() =>
    {
        var family = new[] { "DejaVu Sans", "Liberation Sans", "Noto Sans", "Arial", "Helvetica", "Segoe UI" }.FirstOrDefault(Installed.Value.Contains);
        return family is null ? null : SKTypeface.FromFamilyName(family);
    });

    /// <summary>A new plot. (Fonts are chosen per text by <see cref="UseFonts"/> once the plot is built: ScottPlot's
    /// <c>plot.Font.Set</c> would change its process-wide default, which an application may use for its own charts.)</summary>
    internal static Plot NewPlot()
    {
        if (Installed.Value.Count == 0)
            throw new InvalidOperationException(
                "no font is installed, so a chart's text cannot be drawn: install one (on Debian or Ubuntu: apt-get install fonts-dejavu-core)");
        return new Plot();
    }

    /// <summary>The font for <paramref name="text"/>: the sans-serif one when it has every character, else the one
    /// ScottPlot finds for them (class names in any script).</summary>
    internal static string FontFor(string text)
    {
        var visible = new string(text.Where(ch => !char.IsControl(ch)).ToArray());
        if (Sans.Value is { } face && face.ContainsGlyphs(visible)) return face.FamilyName;
        return ScottPlot.Fonts.Detect(visible);
    }

    /// <summary>Gives every text of a built plot its font: title, axis labels, numeric tick labels, legend and the text
    /// plottables. Tick labels that are words (class names) are the caller's to set.</summary>
    internal static void UseFonts(Plot plot)
    {
        string numbers = FontFor("0123456789.,-+%E");
        plot.Axes.Title.Label.FontName = FontFor(plot.Axes.Title.Label.Text);
        foreach (var axis in plot.Axes.GetAxes())
        {
            axis.Label.FontName = FontFor(axis.Label.Text);
            axis.TickLabelStyle.FontName = numbers;
        }
        var legend = string.Concat(plot.GetPlottables().SelectMany(p => p.LegendItems).Select(i => i.LabelText));
        plot.Legend.FontName = FontFor(legend);
        foreach (var text in plot.GetPlottables().OfType<ScottPlot.Plottables.Text>())
            text.LabelFontName = FontFor(text.LabelText);
    }

    /// <summary>Tick labels in the invariant culture ("0.25", not "0,25" under a German locale), as the titles are.</summary>
    internal static ScottPlot.TickGenerators.NumericAutomatic InvariantTicks(bool integers = false, Func<double, string>? format = null) => new()
    {
        IntegerTicksOnly = integers,
        LabelFormatter = format ?? (v => v.ToString("G5", System.Globalization.CultureInfo.InvariantCulture)),
    };
}
