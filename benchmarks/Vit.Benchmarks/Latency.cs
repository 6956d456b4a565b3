using System.Diagnostics;

/// <summary>Single-request latency: a few calls to warm up, then each call timed on its own.</summary>
internal static class Latency
{
    /// <summary>Times <paramref name="requests"/> calls of <paramref name="call"/> (given the call's number) after
    /// <paramref name="warmup"/> untimed ones; returns the times in milliseconds, sorted.</summary>
    public static double[] Measure(int warmup, int requests, Action<int> call)
    {
        for (int i = 0; i < warmup; i++) call(i);
        var times = new double[requests];
        for (int i = 0; i < requests; i++)
        {
            var t = Stopwatch.GetTimestamp();
            call(i);
            times[i] = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
        }
        Array.Sort(times);
        return times;
    }

    /// <summary>The <paramref name="q"/>-quantile of sorted times (the nearest rank).</summary>
    public static double Quantile(double[] sorted, double q) => sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
}
