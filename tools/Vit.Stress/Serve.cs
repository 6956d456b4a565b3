using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Vit.MLNet;
using Vit.MLNet.Tests;

namespace Vit.Stress;

/// <summary>The prediction pool under load while its model file is replaced again and again.</summary>
internal static class Serve
{
    private static long RssKb()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        return 0;
    }

    public static int Run(int threads, int perThread, int secondsBetweenSwaps)
    {
        var versions = Versions.Make(3);
        var served = Path.Combine(versions.Dir, "served.zip");
        File.Copy(versions.Files[0], served);
        using var pool = new PredictionEnginePool<ImageInput, ImagePrediction>(new PredictionEnginePoolOptions { ReloadDelay = TimeSpan.FromMilliseconds(100) });
        pool.AddModelFromFile("m", served, watchForChanges: true);
        long done = 0, errors = 0, mismatches = 0, inconsistent = 0, total = (long)threads * perThread;
        var generationToFile = new ConcurrentDictionary<long, int>();
        var latencies = new ConcurrentBag<double>();
        string? firstProblem = null;
        var stop = new CancellationTokenSource();

        // Every second a whole other version is moved over the watched file (written beside it, then renamed).
        int swaps = 0;
        var swapper = Task.Run(async () =>
        {
            for (int i = 1; !stop.IsCancellationRequested; i++)
            {
                try { await Task.Delay(TimeSpan.FromSeconds(secondsBetweenSwaps), stop.Token); } catch (OperationCanceledException) { break; }
                var tmp = served + ".new";
                File.Copy(versions.Files[i % versions.Files.Length], tmp, overwrite: true);
                File.Move(tmp, served, overwrite: true);
                swaps++;
            }
        });
        // Resident memory every 200 ms; the figure counts after the warm-up (the first tenth of the predictions).
        var rss = new ConcurrentQueue<long>();
        var sampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                if (Interlocked.Read(ref done) > total / 10) rss.Enqueue(RssKb());
                try { await Task.Delay(200, stop.Token); } catch (OperationCanceledException) { break; }
            }
        });

        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            var rng = new Random(t);
            for (int i = 0; i < perThread; i++)
            {
                int k = rng.Next(versions.Images.Length);
                var start = Stopwatch.GetTimestamp();
                try
                {
                    var r = pool.PredictWithDetails("m", new ImageInput { ImagePath = versions.Images[k] });
                    latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    int v = versions.Which(k, r.Prediction.Score);
                    if (v < 0)
                    {
                        Interlocked.Increment(ref mismatches);
                        Interlocked.CompareExchange(ref firstProblem, $"image {k}: an answer equal to no version's sequential answer (pool version {r.ModelVersion})", null);
                    }
                    else if (generationToFile.GetOrAdd(r.ModelVersion, v) != v)
                    {
                        Interlocked.Increment(ref inconsistent);
                        Interlocked.CompareExchange(ref firstProblem, $"pool version {r.ModelVersion} answered as file version {v} and as {generationToFile[r.ModelVersion]}", null);
                    }
                }
                catch (Exception e)
                {
                    Interlocked.Increment(ref errors);
                    Interlocked.CompareExchange(ref firstProblem, $"{e.GetType().Name}: {e.Message}", null);
                }
                Interlocked.Increment(ref done);
            }
        })).ToList();
        foreach (var w in workers) w.Start();
        foreach (var w in workers) w.Join();
        clock.Stop();
        stop.Cancel();
        swapper.Wait();
        sampler.Wait();
        var sorted = latencies.Order().ToArray();
        var samples = rss.ToArray();
        long lo = samples.Length == 0 ? 0 : samples.Min(), hi = samples.Length == 0 ? 0 : samples.Max();
        double spread = lo == 0 ? 0 : (double)(hi - lo) / lo;
        bool ok = errors == 0 && mismatches == 0 && inconsistent == 0 && spread <= 0.05;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"serve: {threads} threads x {perThread} = {total} predictions in {clock.Elapsed.TotalSeconds:F1} s ({total / clock.Elapsed.TotalSeconds:F0}/s), " +
            $"p50 {sorted[sorted.Length / 2]:F2} ms, p99 {sorted[(int)(sorted.Length * 0.99)]:F2} ms; model file replaced {swaps} times, " +
            $"{generationToFile.Count} pool versions answered; errors {errors}, answers equal to no version {mismatches}, versions answering as two files " +
            $"{inconsistent}; RSS after warm-up {lo / 1024.0:F0}..{hi / 1024.0:F0} MB ({100 * spread:F1}% spread, {samples.Length} samples)")
            + (firstProblem is null ? "" : $"; first problem: {firstProblem}"));
        Directory.Delete(versions.Dir, recursive: true);
        return ok ? 0 : 1;
    }
}
