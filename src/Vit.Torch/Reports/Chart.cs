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
            using var png = image.Encode(SKEncodedImageFormat.Png, 100);
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

    /// <summary>A sans-serif family this system has (ScottPlot's own choice falls back to a serif one on Debian).</summary>
    private static readonly Lazy<string?> Sans = new(() =>
    {
        var installed = SKFontManager.Default.FontFamilies.ToHashSet(StringComparer.OrdinalIgnoreCase);
        return new[] { "DejaVu Sans", "Liberation Sans", "Noto Sans", "Arial", "Helvetica", "Segoe UI" }.FirstOrDefault(installed.Contains);
    });

    /// <summary>A new plot whose texts use a sans-serif font where the system has one.</summary>
    internal static Plot NewPlot()
    {
        var plot = new Plot();
        if (Sans.Value is { } family) plot.Font.Set(family);
        else plot.Font.Automatic();
        return plot;
    }

    /// <summary>A colour from "#rrggbb".</summary>
    internal static Color Hex(string hex) => Color.FromHex(hex);
}
