using System.Diagnostics;
using System.Globalization;
using Vit.Torch;
using Vit.Torch.Data;
using Vit.Torch.Distributed;
using Vit.Torch.Model;
using Vit.Torch.Training;

/// <summary>
/// Data-parallel training throughput: the Trainer (loss scaled per rank, fp32 bucketed gradient allreduce over Gloo)
/// on random in-memory images, with <c>--world</c> processes of <c>--threads</c> threads each; the whole batch is
/// <c>--batch</c> over all processes. With --world 1 the same trainer runs alone (no group). Reports rank 0's images/s
/// over the steps after the warmup, the step time, and the gradient allreduce time per step.
/// </summary>
internal static class DistBenchmark
{
    private const string RankVariable = "VIT_BENCH_RANK", StoreVariable = "VIT_BENCH_STORE";

    public static int Run(string[] args, Func<string, int, int> get, VitConfig cfg, Precision precision)
    {
        int world = get("world", 1);
        if (world > 1 && Environment.GetEnvironmentVariable(RankVariable) is null) return Spawn(args, world);
        int rank = int.Parse(Environment.GetEnvironmentVariable(RankVariable) ?? "0", CultureInfo.InvariantCulture);
        return Worker(get, cfg, precision, rank, world, Environment.GetEnvironmentVariable(StoreVariable));
    }

    private static int Spawn(string[] args, int world)
    {
        var dir = Directory.CreateTempSubdirectory("vit-dist-bench-").FullName;
        try
        {
            var procs = Enumerable.Range(0, world).Select(r =>
            {
                var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true };
                if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet") psi.ArgumentList.Add(typeof(DistBenchmark).Assembly.Location);
                foreach (var a in args) psi.ArgumentList.Add(a);
                psi.Environment[RankVariable] = r.ToString(CultureInfo.InvariantCulture);
                psi.Environment[StoreVariable] = Path.Combine(dir, "store");
                return Process.Start(psi)!;
            }).ToList();
            var output = procs[0].StandardOutput.ReadToEnd();
            foreach (var p in procs.Skip(1)) p.StandardOutput.ReadToEnd();
            foreach (var p in procs) p.WaitForExit();
            Console.Write(output);
            return procs.All(p => p.ExitCode == 0) ? 0 : 1;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static int Worker(Func<string, int, int> get, VitConfig cfg, Precision precision, int rank, int world, string? store)
    {
        int batch = get("batch", 64), warmup = get("warmup", 2), steps = get("steps", 10), threads = get("threads", Environment.ProcessorCount);
        Torch.SetThreads(threads);
        using var group = world > 1 ? ProcessGroup.Create(new DistributedOptions { Rank = rank, WorldSize = world, StoreFile = store }) : null;
        int count = batch * (warmup + steps), size = cfg.Channels * cfg.ImageSize * cfg.ImageSize;
        var rng = new Random(1);
        var pixels = new float[(long)count * size];
        for (long i = 0; i < pixels.LongLength; i++) pixels[i] = (float)(rng.NextDouble() * 2 - 1);
        var labels = Enumerable.Range(0, count).Select(i => (long)(i % cfg.NumClasses)).ToArray();
        var data = new InMemoryDataset(pixels, labels, (cfg.Channels, cfg.ImageSize, cfg.ImageSize), cfg.NumClasses);
        var source = new InMemoryBatchSource(data, batch, shuffle: true, seed: 1) { Shard = group is null ? null : (rank, world) };
        Torch.ManualSeed(0);
        using var model = new VisionTransformer(cfg);
        var times = new List<double>();
        var clock = Stopwatch.StartNew();
        var result = new Trainer(model, new TrainerOptions { Epochs = 1, Precision = precision, Distributed = group, Seed = 1 })
            .Fit(source, progress: new Steps(() => times.Add(clock.Elapsed.TotalSeconds)));
        if (rank != 0) return 0;
        double seconds = times[^1] - times[warmup - 1];
        double ips = batch * steps / seconds;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"vit-dotnet dist-train images/s {ips:F1} (processes {world} x threads {threads}, batch {batch}, step {1000 * seconds / steps:F1} ms, " +
            $"gradient allreduce {result.GradientSync.TotalMilliseconds / (warmup + steps):F1} ms/step, {model.ParameterCount()} parameters, {MixedPrecision.Resolve(precision, Device.Cpu)})"));
        return 0;
    }

    /// <summary>Called synchronously after every optimizer step (rank 0 reports progress).</summary>
    private sealed class Steps(Action onStep) : IProgress<VitTrainingProgress>
    {
        public void Report(VitTrainingProgress value) => onStep();
    }
}
