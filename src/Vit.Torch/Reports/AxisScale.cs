// Usage (internal): var axis = AxisScale.Nice(0.23, 2.31); double y = axis.Map(v, bottom, top);
// foreach (var t in axis.Ticks) ... axis.Label(t)
// "Nice" numbers for axes: steps of 1, 2 or 5 times a power of ten, bounds on whole steps (Heckbert, Graphics Gems 1990).
using System.Globalization;

namespace Vit.Torch.Reports;

/// <summary>A linear axis from <see cref="Min"/> to <see cref="Max"/> with ticks every <see cref="Step"/>.</summary>
internal sealed record AxisScale(double Min, double Max, double Step, bool Percent = false)
{
    /// <summary>Largest magnitude an axis takes: beyond it arithmetic on the range could overflow.</summary>
    private const double Limit = 1e300;

    /// <summary>
    /// An axis covering [<paramref name="lo"/>, <paramref name="hi"/>] with about <paramref name="ticks"/> ticks,
    /// bounds rounded out to whole steps (or exactly the data range when <paramref name="tight"/>). A single value
    /// gets a range around it. <paramref name="integer"/> keeps steps whole (epochs).
    /// </summary>
    public static AxisScale Nice(double lo, double hi, int ticks = 5, bool integer = false, bool tight = false, bool percent = false)
    {
        lo = Math.Clamp(lo, -Limit, Limit);
        hi = Math.Clamp(hi, -Limit, Limit);
        if (hi < lo) (lo, hi) = (hi, lo);
        if (hi == lo)
        {
            double pad = integer ? 1 : lo == 0 ? 1 : Math.Abs(lo) * 0.1;
            (lo, hi) = (lo - pad, hi + pad);
            if (lo < 0 && hi - pad >= 0 && !integer) lo = 0;  // a flat non-negative series keeps a zero baseline
        }
        double step = NiceStep((hi - lo) / Math.Max(1, ticks));
        if (integer) step = Math.Max(1, Math.Round(step));
        if (tight) return new AxisScale(lo, hi, step, percent);
        return new AxisScale(Math.Floor(lo / step) * step, Math.Ceiling(hi / step) * step, step, percent);
    }

    /// <summary>1, 2 or 5 × 10^k nearest above <paramref name="rough"/>.</summary>
    private static double NiceStep(double rough)
    {
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(rough)));
        double f = rough / magnitude;
        return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * magnitude;
    }

    /// <summary>The tick values inside [Min, Max] (multiples of Step).</summary>
    public IEnumerable<double> Ticks
    {
        get
        {
            double first = Math.Ceiling(Min / Step - 1e-9) * Step;
            for (int i = 0; i < 1000; i++)
            {
                double v = first + i * Step;
                if (v > Max + Step * 1e-9) yield break;
                yield return Math.Abs(v) < Step * 1e-9 ? 0 : v;  // no "-0" or 1e-17 at zero
            }
        }
    }

    /// <summary>Maps <paramref name="v"/> (clamped to the axis) linearly onto [<paramref name="at"/>, <paramref name="to"/>]
    /// (pixels; <paramref name="to"/> may be smaller, as for a y axis pointing up).</summary>
    public double Map(double v, double at, double to)
    {
        v = Math.Clamp(v, Min, Max);
        return at + (v - Min) / (Max - Min) * (to - at);
    }

    /// <summary>A tick label: as many decimals as the step needs, exponent notation for very small or large values,
    /// percent when the axis holds fractions.</summary>
    public string Label(double v)
    {
        if (v == 0) return Percent ? "0%" : "0";
        var inv = CultureInfo.InvariantCulture;
        double step = Percent ? Step * 100 : Step;
        double x = Percent ? v * 100 : v;
        double top = Math.Max(Math.Abs(Min), Math.Abs(Max)) * (Percent ? 100 : 1);
        if (!Percent && (step < 1e-3 || top >= 1e6)) return x.ToString("0.##e0", inv);
        int decimals = Math.Clamp((int)-Math.Floor(Math.Log10(step) + 1e-9), 0, 10);
        return x.ToString("F" + decimals, inv) + (Percent ? "%" : "");
    }
}
