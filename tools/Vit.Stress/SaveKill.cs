using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.ML;
using Vit.MLNet;
using Vit.Torch;
using Vit.Torch.Checkpoints;
using Vit.Torch.Data;
using Vit.Torch.Imaging;
using Vit.Torch.Model;
using Vit.Torch.Training;
using Engine = Vit.Torch.Torch;

namespace Vit.Stress;

/// <summary>SIGKILL at random moments of saving: the file on disk must always be one whole version.</summary>
internal static class SaveKill
{
    public static int Run(int trials)
    {
        var versions = Versions.Make(3);
        var target = Path.Combine(versions.Dir, "served.zip");
        File.Copy(versions.Files[0], target);
        var rng = new Random(1);
        int failures = 0;
        var outcomes = new Dictionary<string, int>();
        var clock = Stopwatch.StartNew();
        for (int t = 0; t < trials; t++)
        {
            bool model = t % 2 == 0;
            var (lines, killedAfter) = RunAndKill(versions.Dir, model ? "model" : "checkpoint", rng);
            string outcome;
            if (model)
            {
                // Whole version v: the last one saved, or the one being written when the kill came.
                int v;
                try
                {
                    v = versions.Which(Versions.Sequential(target, versions.Images));
                }
                catch (InvalidDataException)
                {
                    v = -1;  // a torn file: what an atomic save must never leave
                }
                var saving = lines.LastOrDefault(l => l.StartsWith("saving ", StringComparison.Ordinal));
                var saved = lines.LastOrDefault(l => l.StartsWith("saved ", StringComparison.Ordinal));
                bool ok = v >= 0 && (saving == $"saving {v}" || saved == $"saved {v}");
                outcome = v < 0 ? "model: not a whole version" : saving == $"saving {v}" && saved != $"saved {v}" ? "model: the version in flight" : "model: the last saved version";
                if (!ok) failures++;
            }
            else
            {
                // The checkpoint holds the weights of a step the child announced (the last, or the one before it).
                var path = Path.Combine(versions.Dir, "checkpoints", "last.safetensors");
                string hash;
                try
                {
                    using var loaded = PretrainedVit.Load(path);
                    hash = Hash(loaded.Model);
                }
                catch (InvalidDataException e)
                {
                    hash = "unreadable: " + e.Message;
                }
                var announced = lines.Where(l => l.StartsWith("step ", StringComparison.Ordinal)).Select(l => l.Split(' ')[3]).ToList();
                int at = announced.LastIndexOf(hash);
                outcome = at < 0 ? "checkpoint: not an announced step" : at == announced.Count - 1 ? "checkpoint: the last step" : "checkpoint: the step before";
                if (at < announced.Count - 2) failures++;
            }
            outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
            if ((t + 1) % 10 == 0) Console.WriteLine($"save-kill: {t + 1} trials, {failures} failures ({clock.Elapsed.TotalSeconds:F0} s)");
        }
        Console.WriteLine($"save-kill: {trials} trials of SIGKILL at a random moment ({trials - trials / 2} during mlContext.Model.SaveAtomic, {trials / 2} during " +
                          $"checkpoint writes), {failures} failures in {clock.Elapsed.TotalSeconds:F0} s: " +
                          string.Join(", ", outcomes.OrderBy(o => o.Key).Select(o => $"{o.Key} {o.Value}")));
        // Each killed writer leaves its temporary file; the next save of the same file (the next trial's child) deletes it.
        int left = Directory.GetFiles(versions.Dir, "*.tmp", SearchOption.AllDirectories).Length;
        Console.WriteLine($"save-kill: {left} temporary files left beside the targets (at most one per target: the last trial's)");
        if (left > 2) failures++;
        Directory.Delete(versions.Dir, recursive: true);
        return failures == 0 ? 0 : 1;
    }

    /// <summary>Starts the saving child, lets it save for a random time once it has a whole file down, kills it (SIGKILL)
    /// and returns what it said.</summary>
    private static (List<string> Lines, TimeSpan After) RunAndKill(string dir, string what, Random rng)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet") psi.ArgumentList.Add(typeof(SaveKill).Assembly.Location);
        foreach (var a in new[] { "save-loop", dir, what }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var lines = new List<string>();
        string? line;
        string ready = what == "model" ? "saved " : "step 2 ";  // this run has one whole file down
        while ((line = p.StandardOutput.ReadLine()) is not null)
        {
            lines.Add(line);
            if (line.StartsWith(ready, StringComparison.Ordinal)) break;
        }
        // A random moment in the next ~60 ms: inside a save, between saves, at the rename.
        var delay = TimeSpan.FromMilliseconds(rng.NextDouble() * 60);
        var reader = Task.Run(() =>
        {
            string? l;
            while ((l = p.StandardOutput.ReadLine()) is not null) lock (lines) lines.Add(l);
        });
        Thread.Sleep(delay);
        p.Kill();  // SIGKILL: nothing of the child runs after it
        p.WaitForExit();
        reader.Wait();
        lock (lines) return (lines.ToList(), delay);
    }

    /// <summary>The child: saves forever (model files, or checkpoints after every training step), saying what it writes.</summary>
    public static int Loop(string dir, string what)
    {
        var target = Path.Combine(dir, "served.zip");
        if (what == "model")
        {
            var ml = new MLContext();
            var files = Directory.GetFiles(dir, "v*.zip").Order(StringComparer.Ordinal).ToArray();
            var models = files.Select(f => ml.Model.Load(f, out var schema) is var m ? (m, schema) : default).ToArray();
            for (long i = 0; ; i++)
            {
                int v = (int)(i % models.Length);
                Console.Out.WriteLine($"saving {v}");
                Console.Out.Flush();
                ml.Model.SaveAtomic(models[v].m, models[v].schema, target);
                Console.Out.WriteLine($"saved {v}");
                Console.Out.Flush();
            }
        }
        // Checkpoints: a small ViT trained on random images, a checkpoint after every step; before each checkpoint is
        // written, the hash of the weights it will hold.
        Engine.SetThreads(1);
        Engine.ManualSeed(1);
        using var model = new VisionTransformer(new VitConfig { ImageSize = 16, PatchSize = 8, Channels = 3, Dim = 64, Depth = 2, Heads = 2, MlpDim = 128, NumClasses = 3 });
        var rng = new Random(1);
        var pixels = new float[64 * 3 * 16 * 16];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (float)rng.NextDouble();
        var data = new InMemoryDataset(pixels, Enumerable.Range(0, 64).Select(i => (long)(i % 3)).ToArray(), (3, 16, 16), 3);
        var checkpoints = Path.Combine(dir, "checkpoints");
        new Trainer(model, new TrainerOptions
        {
            Epochs = 100_000, CheckpointDirectory = checkpoints, CheckpointInterval = TimeSpan.Zero, Precision = Precision.Float32,
            CheckpointMetadata = VitMetadata.Of(model.Config, VitPreprocessing.Default(16, 3), ["a", "b", "c"]),
        }).Fit(new InMemoryBatchSource(data, 16, shuffle: true), progress: new Announce(model));
        return 0;
    }

    private sealed class Announce(VisionTransformer model) : IProgress<VitTrainingProgress>
    {
        public void Report(VitTrainingProgress p)
        {
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {p.Step} hash {Hash(model)}"));
            Console.Out.Flush();
        }
    }

    private static string Hash(VisionTransformer model)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (_, p) in model.NamedParameters())
        {
            var bytes = new byte[p.NumElements * 4];
            p.CopyBytesTo(bytes);
            sha.AppendData(bytes);
        }
        return Convert.ToHexString(sha.GetHashAndReset());
    }
}
