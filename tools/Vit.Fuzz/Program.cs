// Vit.Fuzz: a seeded mutation fuzzer of every file reader a user can hand a file to (SharpFuzz is not served, so no
// coverage feedback: mutants of valid seeds, and of mutants that still loaded). Per input it records what happened:
// loaded; refused with a named error (InvalidDataException, NotSupportedException: the readers' documented failures);
// or anything else, which is a finding (the input is saved). A watchdog turns an input that runs too long into a hang
// finding; a crash of the process is caught by the parent run, which saves the input that was running.
//
//   dotnet tools/Vit.Fuzz/bin/Release/net10.0/Vit.Fuzz.dll all [--inputs N] [--seed S] [--out DIR]
//   dotnet tools/Vit.Fuzz/bin/Release/net10.0/Vit.Fuzz.dll run FORMAT --inputs N --seed S --out DIR   (one format, in this process)
// Formats: safetensors, model-zip, model-json, hf-config, pth, pickle, csv.
using System.Diagnostics;
using System.Globalization;
using Vit.Fuzz;

var opts = new Dictionary<string, string>();
for (int i = 1; i + 1 < args.Length; i++)
    if (args[i].StartsWith("--", StringComparison.Ordinal)) opts[args[i][2..]] = args[++i];
long inputs = long.Parse(opts.GetValueOrDefault("inputs", "1000000"), CultureInfo.InvariantCulture);
int seed = int.Parse(opts.GetValueOrDefault("seed", "1"), CultureInfo.InvariantCulture);
string output = Path.GetFullPath(opts.GetValueOrDefault("out", "fuzz-findings"));

if (args is ["run", var one, ..]) return Fuzzer.Run(one, inputs, seed, output);
if (args is ["all", ..])
{
    // Each format in a child process: a native crash ends the child, not the run, and its last input is kept.
    int worst = 0;
    foreach (var format in Targets.Names)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet") psi.ArgumentList.Add(typeof(Fuzzer).Assembly.Location);
        foreach (var a in new[] { "run", format, "--inputs", $"{inputs}", "--seed", $"{seed}", "--out", output }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        p.WaitForExit();
        if (p.ExitCode is not (0 or 1))
        {
            // Killed by a signal (or the watchdog): the input that was running is the finding.
            var current = Fuzzer.CurrentInputPath(format);
            var kept = Path.Combine(output, $"{format}-crash-{DateTime.UtcNow:yyyyMMddHHmmss}.bin");
            Directory.CreateDirectory(output);
            if (File.Exists(current)) File.Copy(current, kept, overwrite: true);
            Console.WriteLine($"{format}: the fuzzing process ended with code {p.ExitCode}; the input it was reading is in {kept}");
        }
        worst = Math.Max(worst, p.ExitCode);
    }
    return worst;
}
Console.Error.WriteLine("usage: Vit.Fuzz all|run FORMAT [--inputs N] [--seed S] [--out DIR]   formats: " + string.Join(", ", Targets.Names));
return 2;
