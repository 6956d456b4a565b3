using System.Diagnostics;
using System.Globalization;
using System.Text;
using SharpFuzz;
using Engine = Vit.Torch.Torch;

namespace Vit.Fuzz;

/// <summary>One format under AFL++, through SharpFuzz's out-of-process fork server: afl-fuzz mutates the inputs and keeps
/// those that reach new branches of the instrumented Vit.Torch.dll; <see cref="Contract.Check"/> judges each input, and
/// what escapes it SharpFuzz reports to afl-fuzz as a crash (the input lands in crashes/). A native crash or a hang
/// ends the child process that reads; SharpFuzz starts another and afl-fuzz keeps the input (crashes/, hangs/).</summary>
internal static class AflHarness
{
    public static int Run(Target target, string work, string statsPath)
    {
        Stats? stats = null;
        // Out of process: a crash or a timeout kills the child that reads, not the fork server afl-fuzz talks to. The
        // server runs this same program and never calls the action, so nothing is loaded before the first input: the
        // engine, the seeds and the statistics start there, in the child.
        Fuzzer.OutOfProcess.Run(stream =>
        {
            stats ??= Stats.Start(target, work, statsPath);
            var input = ReadAll(stream);
            long before = GC.GetAllocatedBytesForCurrentThread();
            var outcome = Contract.Check(target, input, work);
            stats.Record(outcome, GC.GetAllocatedBytesForCurrentThread() - before, input.Length);
        });
        return 0;
    }

    private static byte[] ReadAll(Stream stream)
    {
        using var m = new MemoryStream();
        stream.CopyTo(m);
        return m.ToArray();
    }

    /// <summary>Makes the engine ready and checks that every seed of <paramref name="target"/> loads: fuzzing starts
    /// from valid files, and a harness whose seeds no longer load is broken, not fuzzing.</summary>
    public static List<byte[]> Prepare(Target target, string work)
    {
        Engine.SetThreads(1);
        Directory.CreateDirectory(work);
        var seeds = target.Seeds(work);
        for (int i = 0; i < seeds.Count; i++)
        {
            var outcome = Contract.Check(target, seeds[i], work);
            if (outcome != Contract.Outcome.Loaded)
                throw new InvalidOperationException($"{target.Name}: seed {i} did not load ({outcome}): the harness is broken");
        }
        return seeds;
    }

    /// <summary>Writes the seed corpus of <paramref name="target"/> (AFL's input folder) and a dictionary of the tokens
    /// a JSON, pickle or CSV reader branches on (every format carries some text: the safetensors header is JSON).</summary>
    public static void WriteCorpus(Target target, string work, string inputDir, string dictionary)
    {
        var seeds = Prepare(target, work);
        Directory.CreateDirectory(inputDir);
        for (int i = 0; i < seeds.Count; i++) File.WriteAllBytes(Path.Combine(inputDir, $"seed-{i}"), seeds[i]);
        var lines = Tokens.Select((t, i) => $"token_{i}=\"{AflEscape(Encoding.UTF8.GetBytes(t))}\"");
        File.WriteAllLines(dictionary, lines);
    }

    private static readonly string[] Tokens =
    [
        "-1", "0", "1", "65536", "2147483648", "99999999999999999999", "1e308", "-1e308", "NaN", "1.5", "null", "true", "\"\"",
        "\"x\"", "[]", "{}", "[", "]", "{", "}", ",", ":", "\"", "\\", "\\u0000", "\\ud800", "\n", "\r\n", "\"\"\"", "éü✓", "\uFFFD",
        "\"shape\"", "\"dtype\"", "\"data_offsets\"", "\"F32\"", "\"BF16\"", "\"__metadata__\"", "\"id2label\"", "\"num_attention_heads\"",
    ];

    /// <summary>A dictionary value as afl-fuzz reads it: printable ASCII, with quotes, backslashes and other bytes as \xNN.</summary>
    private static string AflEscape(byte[] bytes) =>
        string.Concat(bytes.Select(b => b is >= 0x20 and < 0x7F and not (byte)'"' and not (byte)'\\' ? ((char)b).ToString() : $"\\x{b:X2}"));

    /// <summary>Runs inputs through the contract outside afl-fuzz, one at a time: for a finding, its full stack.</summary>
    public static int Replay(Target target, string work, IEnumerable<string> files)
    {
        Prepare(target, work);
        int findings = 0;
        foreach (var file in files)
        {
            try
            {
                Console.WriteLine($"{file}: {Contract.Check(target, File.ReadAllBytes(file), work)}");
            }
            catch (Exception e)
            {
                findings++;
                Console.WriteLine($"{file}: FINDING {e}");
            }
        }
        return findings > 0 ? 1 : 0;
    }

    /// <summary>What afl-fuzz does not count: how inputs fared under the contract, memory, the largest allocation. Kept
    /// in a file the child rewrites every second and adds to when SharpFuzz starts another child (after a crash or a
    /// hang); afl-fuzz ends a run with SIGKILL, so the last second's inputs are not in it.</summary>
    private sealed class Stats
    {
        private readonly string path;
        private readonly Dictionary<string, long> values;
        private readonly Stopwatch sinceWrite = Stopwatch.StartNew();

        private Stats(string path, Dictionary<string, long> values) => (this.path, this.values) = (path, values);

        public static Stats Start(Target target, string work, string path)
        {
            Prepare(target, work);
            var values = File.Exists(path)
                ? File.ReadLines(path).Select(l => l.Split(' ')).ToDictionary(p => p[0], p => long.Parse(p[1], CultureInfo.InvariantCulture))
                : [];
            var stats = new Stats(path, values);
            stats.Add("children", 1);
            stats.Max("start_rss_kb", Status("VmRSS:"));
            stats.Write();
            return stats;
        }

        public void Record(Contract.Outcome outcome, long allocated, int inputLength)
        {
            Add("inputs", 1);
            Add(outcome switch { Contract.Outcome.Loaded => "loaded", Contract.Outcome.Refused => "refused", _ => "refused_unnamed" }, 1);
            if (allocated > values.GetValueOrDefault("largest_alloc_bytes"))
            {
                values["largest_alloc_bytes"] = allocated;
                values["largest_alloc_input_bytes"] = inputLength;
            }
            if (sinceWrite.ElapsedMilliseconds >= 1000) Write();
        }

        private void Add(string key, long n) => values[key] = values.GetValueOrDefault(key) + n;

        private void Max(string key, long v) => values[key] = Math.Max(values.GetValueOrDefault(key), v);

        private void Write()
        {
            Max("peak_rss_kb", Status("VmHWM:"));
            var temp = path + ".tmp";
            File.WriteAllLines(temp, values.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value}")));
            File.Move(temp, path, overwrite: true);
            sinceWrite.Restart();
        }

        private static long Status(string key)
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith(key, StringComparison.Ordinal))
                    return long.Parse(line[key.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            return 0;
        }
    }
}
