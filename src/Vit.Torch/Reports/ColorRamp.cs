// Usage (internal): var (r, g, b) = ColorRamp.Heat.At(0.3);
// byte[] lut = ColorRamp.Heat.Table();   // 256 × RGB, for colour-mapping an 8-bit heat map
// Piecewise-linear colour maps through a few chosen stops, interpolated in sRGB.
namespace Vit.Torch.Reports;

/// <summary>A colour map t ∈ [0, 1] -> RGB, linear between stops (t outside [0, 1] is clamped, NaN maps to 0).</summary>
internal sealed class ColorRamp
{
    private readonly (double At, double R, double G, double B)[] stops;

    private ColorRamp(params (double At, double R, double G, double B)[] stops) => this.stops = stops;

    /// <summary>Dark blue, cyan, yellow, red: attention heat maps (cold = little attention, red = most).</summary>
    public static ColorRamp Heat { get; } = new((0, 20, 20, 140), (0.3, 0, 130, 230), (0.55, 40, 210, 170), (0.78, 250, 220, 30), (1, 225, 30, 20));

    /// <summary>The colour at <paramref name="t"/>, each channel rounded to a byte.</summary>
    public (byte R, byte G, byte B) At(double t)
    {
        t = double.IsNaN(t) ? 0 : Math.Clamp(t, 0, 1);
        int i = 1;
        while (i < stops.Length - 1 && t > stops[i].At) i++;
        var (a, b) = (stops[i - 1], stops[i]);
        double u = (t - a.At) / (b.At - a.At);
        static byte Mix(double x, double y, double u) => (byte)Math.Round(x + (y - x) * u);
        return (Mix(a.R, b.R, u), Mix(a.G, b.G, u), Mix(a.B, b.B, u));
    }

    /// <summary>256 RGB triples (768 bytes): entry v is the colour at v / 255.</summary>
    public byte[] Table()
    {
        var lut = new byte[256 * 3];
        for (int v = 0; v < 256; v++)
        {
            var (r, g, b) = At(v / 255.0);
            lut[3 * v] = r;
            lut[3 * v + 1] = g;
            lut[3 * v + 2] = b;
        }
        return lut;
    }
}
