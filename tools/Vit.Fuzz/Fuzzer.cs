using System.Diagnostics;
using System.Globalization;
using System.Text;
using Vit.Torch;
using Engine = Vit.Torch.Torch;

namespace Vit.Fuzz;

/// <summary>The fuzzing loop of one format: mutate, read, classify, watch time, leaks and memory.</summary>
internal static class Fuzzer
{
    private static string WorkDir(string format) =>
        Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath(), $"vit-fuzz-{format}");

    /// <summary>Where the input being read is kept (for the parent, when the reader takes the process down).</summary>
    public static string CurrentInputPath(string format) => Path.Combine(WorkDir(format), "current.bin");

    private static long Status(string key)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(key, StringComparison.Ordinal))
                return long.Parse(line[(key.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        return 0;
    }

    public static int Run(string format, long inputs, int seed, string output)
    {
        var target = Targets.Get(format);
        var work = WorkDir(format);
        if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        Directory.CreateDirectory(work);
        Directory.CreateDirectory(output);
        Engine.SetThreads(1);
        var seeds = target.Seeds(work);
        foreach (var s in seeds) target.Read(s, work);  // every seed must load: the fuzzer starts from valid files
        var pool = new List<byte[]>(seeds);
        var rng = new Random(seed);
        var current = CurrentInputPath(format);
        long loaded = 0, refused = 0, findings = 0, unnamedMessages = 0, largestAlloc = 0, largestInput = 0;
        double worstRatio = 0;
        var kinds = new Dictionary<string, long>();
        long startRss = Status("VmRSS:");
        long liveBefore = Tensor.LiveCount;

        // The watchdog: an input that runs for more than 10 s is a hang; it is kept and the run ends.
        long started = 0;
        byte[] running = [];
        var watchdog = new Thread(() =>
        {
            while (true)
            {
                Thread.Sleep(200);
                long s = Interlocked.Read(ref started);
                if (s != 0 && Stopwatch.GetElapsedTime(s) > TimeSpan.FromSeconds(10))
                {
                    var kept = Path.Combine(output, $"{format}-hang.bin");
                    File.WriteAllBytes(kept, running);
                    Console.WriteLine($"{format}: HANG: an input ran for more than 10 s; kept in {kept}");
                    Environment.Exit(3);
                }
            }
        }) { IsBackground = true };
        watchdog.Start();

        var clock = Stopwatch.StartNew();
        for (long i = 0; i < inputs; i++)
        {
            var input = Mutator.Mutate(pool[rng.Next(pool.Count)], rng, target.Text);
            File.WriteAllBytes(current, input);
            running = input;
            long before = GC.GetAllocatedBytesForCurrentThread();
            Interlocked.Exchange(ref started, Stopwatch.GetTimestamp());
            try
            {
                target.Read(input, work);
                loaded++;
                if (pool.Count < 256 && rng.Next(4) == 0) pool.Add(input);  // a mutant that still loads reaches deeper
            }
            // The readers' documented failures; an ArgumentException counts when it names the file (a file that does
            // not say what an option could: PretrainedVitOptions.Heads).
            catch (Exception e) when (e is InvalidDataException or NotSupportedException ||
                                      e is ArgumentException && e.Message.Contains(work, StringComparison.Ordinal))
            {
                refused++;
                if (!e.Message.Contains(work, StringComparison.Ordinal) && !e.Message.Contains("fuzz.csv", StringComparison.Ordinal)) unnamedMessages++;
            }
            catch (Exception e)
            {
                findings++;
                string kind = $"{e.GetType().Name} at {FirstFrame(e)}";
                if (!kinds.TryAdd(kind, 1)) kinds[kind]++;
                else
                {
                    var kept = Path.Combine(output, $"{format}-{kinds.Count}-{e.GetType().Name}.bin");
                    File.WriteAllBytes(kept, input);
                    Console.WriteLine($"{format}: FINDING {kind}: {e.Message.Split('\n')[0]} (input kept in {kept})");
                }
            }
            Interlocked.Exchange(ref started, 0);
            long alloc = GC.GetAllocatedBytesForCurrentThread() - before;
            if (alloc > largestAlloc) (largestAlloc, largestInput) = (alloc, input.Length);
            worstRatio = Math.Max(worstRatio, (double)alloc / Math.Max(1, input.Length));
            if (Tensor.LiveCount != liveBefore)
            {
                findings++;
                Console.WriteLine($"{format}: FINDING tensor leak: {Tensor.LiveCount - liveBefore} handles left after input {i}");
                File.WriteAllBytes(Path.Combine(output, $"{format}-leak.bin"), input);
                liveBefore = Tensor.LiveCount;
            }
            if ((i + 1) % 100_000 == 0)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{format}: {i + 1} inputs, {(i + 1) / clock.Elapsed.TotalSeconds:F0}/s, loaded {loaded}, refused {refused}, findings {findings}, RSS {Status("VmRSS:") / 1024} MB"));
        }
        long peak = Status("VmHWM:");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{format}: {inputs} inputs in {clock.Elapsed.TotalSeconds:F0} s ({inputs / clock.Elapsed.TotalSeconds:F0}/s): loaded {loaded}, refused {refused} " +
            $"({unnamedMessages} of them without the file's name), findings {findings}{(kinds.Count > 0 ? " [" + string.Join("; ", kinds.Select(k => $"{k.Key}: {k.Value}")) + "]" : "")}; " +
            $"RSS {startRss / 1024} MB at the start, peak {peak / 1024} MB; largest managed allocation for one input {largestAlloc / 1024} KB " +
            $"(input {largestInput} bytes), worst allocation/input ratio {worstRatio:F0}x; seeds {seeds.Count}, pool {pool.Count}"));
        Directory.Delete(work, recursive: true);
        return findings > 0 ? 1 : 0;
    }

    private static string FirstFrame(Exception e)
    {
        var frame = new StackTrace(e, false).GetFrames().FirstOrDefault(f => f.GetMethod()?.DeclaringType?.Namespace?.StartsWith("Vit.Torch", StringComparison.Ordinal) == true)
            ?? new StackTrace(e, false).GetFrame(0);
        var m = frame?.GetMethod();
        return m is null ? "?" : $"{m.DeclaringType?.Name}.{m.Name}";
    }
}

/// <summary>Byte and text mutations of a seed: a few at a time, seeded, so a run repeats.</summary>
internal static class Mutator
{
    private static readonly byte[][] Interesting =
    [
        [0], [0xFF], [0x7F], [0x80], [0xFF, 0xFF, 0xFF, 0x7F], [0, 0, 0, 0x80], [0xFF, 0xFF, 0xFF, 0xFF],
        [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], [0, 0, 0, 0, 0, 0, 0, 0x80], [0, 0, 0, 0, 1, 0, 0, 0],
    ];

    private static readonly string[] Tokens =
    [
        "-1", "0", "1", "65536", "2147483648", "99999999999999999999", "1e308", "-1e308", "NaN", "1.5", "null", "true", "\"\"",
        "\"x\"", "[]", "{}", "[", "]", "{", "}", ",", ":", "\"", "\\", "\\u0000", "\n", "\r\n", "\"\"\"", "éü✓", "\uFFFD",
    ];

    public static byte[] Mutate(byte[] parent, Random rng, bool text)
    {
        var b = new List<byte>(parent);
        int count = 1 + rng.Next(4);
        for (int k = 0; k < count; k++)
        {
            int op = rng.Next(text ? 11 : 9);
            int at = b.Count == 0 ? 0 : rng.Next(b.Count);
            switch (op)
            {
                case 0 when b.Count > 0: b[at] ^= (byte)(1 << rng.Next(8)); break;                        // a bit
                case 1 when b.Count > 0: b[at] = (byte)rng.Next(256); break;                               // a byte
                case 2:                                                                                    // an interesting value
                    var v = Interesting[rng.Next(Interesting.Length)];
                    for (int j = 0; j < v.Length && at + j < b.Count; j++) b[at + j] = v[j];
                    break;
                case 3 when b.Count > 0: b.RemoveRange(at, Math.Min(b.Count - at, 1 + rng.Next(16))); break; // delete
                case 4: b.InsertRange(at, Enumerable.Range(0, 1 + rng.Next(16)).Select(_ => (byte)rng.Next(256))); break;
                case 5 when b.Count > 0:                                                                    // duplicate a run
                    int len = Math.Min(b.Count - at, 1 + rng.Next(64));
                    b.InsertRange(rng.Next(b.Count), b.GetRange(at, len));
                    break;
                case 6 when b.Count > 0: b.RemoveRange(at, b.Count - at); break;                            // truncate
                case 7 when b.Count > 1:                                                                    // copy a run elsewhere
                    int n = Math.Min(b.Count - at, 1 + rng.Next(32)), to = rng.Next(b.Count - 1);
                    var run = b.GetRange(at, n);
                    for (int j = 0; j < n && to + j < b.Count; j++) b[to + j] = run[j];
                    break;
                case 8 when b.Count > 0: b[at] = (byte)(b[at] + rng.Next(-3, 4)); break;                    // nudge
                case 9:                                                                                    // a token
                    b.InsertRange(at, Encoding.UTF8.GetBytes(Tokens[rng.Next(Tokens.Length)]));
                    break;
                case 10:                                                                                   // a number replaced
                    int start = at;
                    while (start < b.Count && !char.IsAsciiDigit((char)b[start])) start++;
                    int end = start;
                    while (end < b.Count && (char.IsAsciiDigit((char)b[end]) || b[end] == '.')) end++;
                    if (start < b.Count)
                    {
                        b.RemoveRange(start, end - start);
                        b.InsertRange(start, Encoding.UTF8.GetBytes(Tokens[rng.Next(8)]));
                    }
                    break;
            }
        }
        return b.ToArray();
    }
}
