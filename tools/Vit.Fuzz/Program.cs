// Vit.Fuzz: coverage-guided fuzzing of every file reader a user can hand a file to, with AFL++ driving SharpFuzz
// (eng/fuzz.sh runs the campaign). Per input the contract (Contract.cs) says what happened: loaded; refused with a
// documented error naming the file; or anything else, a finding, which afl-fuzz keeps (crashes/, hangs/).
//
//   Vit.Fuzz list                                             the formats, one a line
//   Vit.Fuzz corpus FORMAT --work DIR --in DIR --dict FILE    the seeds (AFL's input folder) and the dictionary
//   Vit.Fuzz afl FORMAT --work DIR --stats FILE               the target afl-fuzz runs (Vit.Torch.dll instrumented)
//   Vit.Fuzz replay FORMAT --work DIR FILE...                 inputs through the contract; a finding's stack
// Every command runs on the instrumented copy as on the plain build.
// Formats: safetensors, model-zip, model-json, hf-config, pth, pickle, csv (Targets.All). DIR for --work holds the
// files the reader is handed (the input written out, the rest of a zip or a Hugging Face folder): /dev/shm is best.
using System.Runtime.InteropServices;

namespace Vit.Fuzz;

internal static class Program
{
    private static unsafe int Main(string[] args)
    {
        if (args is ["list"])
        {
            foreach (var name in Targets.Names) Console.WriteLine(name);
            return 0;
        }
        if (args.Length < 2) return Usage("a command and a format");
        var opts = new Dictionary<string, string>();
        var files = new List<string>();
        for (int i = 2; i < args.Length; i++)
            if (args[i].StartsWith("--", StringComparison.Ordinal) && i + 1 < args.Length) opts[args[i][2..]] = args[++i];
            else files.Add(args[i]);
        Target target;
        try
        {
            target = Targets.Get(args[1]);
        }
        catch (ArgumentException e)
        {
            return Usage(e.Message);
        }
        // Outside afl-fuzz the instrumented Vit.Torch.dll still counts branches: give it memory to count into (the
        // uninstrumented one never reads this).
        if (args[0] != "afl") SharpFuzz.Common.Trace.SharedMem = (byte*)NativeMemory.AllocZeroed(1 << 16);
        var work = Path.GetFullPath(opts.GetValueOrDefault("work", Path.Combine(Path.GetTempPath(), $"vit-fuzz-{target.Name}")));
        switch (args[0])
        {
            case "corpus" when opts.ContainsKey("in") && opts.ContainsKey("dict"):
                AflHarness.WriteCorpus(target, work, opts["in"], opts["dict"]);
                return 0;
            case "afl" when opts.ContainsKey("stats"):
                return AflHarness.Run(target, work, Path.GetFullPath(opts["stats"]));
            case "replay" when files.Count > 0:
                return AflHarness.Replay(target, work, files);
            default:
                return Usage($"'{string.Join(' ', args)}'");
        }
    }

    private static int Usage(string problem)
    {
        Console.Error.WriteLine($"Vit.Fuzz: {problem}? Usage: list | corpus FORMAT --work DIR --in DIR --dict FILE | afl FORMAT --work DIR --stats FILE | " +
                                $"replay FORMAT --work DIR FILE...   formats: {string.Join(", ", Targets.Names)}");
        return 2;
    }
}
