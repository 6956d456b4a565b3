using System.Diagnostics;
using System.Text;

namespace Vit.Package.Tests;

/// <summary>What a finished command left: its exit code and both outputs.</summary>
internal sealed record CommandResult(int ExitCode, string Output, string Error);

/// <summary>Runs commands for the package tests, either as this process's user or as an unprivileged one, and fails the
/// test with the command line and both of its outputs when a command does not succeed.</summary>
internal static class Shell
{
    /// <summary>The unprivileged user a root test runs the consumer's commands as: nobody (uid and gid 65534), who owns
    /// no files here and reads the rest as "others".</summary>
    public const int NobodyId = 65534;

    /// <summary>Whether this process runs as root (then commands meant for a user run as <see cref="NobodyId"/>).</summary>
    public static bool IsRoot => Environment.UserName == "root";

    /// <summary>Runs <paramref name="file"/> and returns what it left; throws (failing the test) on a non-zero exit or a
    /// timeout unless <paramref name="check"/> is false. <paramref name="asUser"/>: run it as the unprivileged user when
    /// this process is root (through setpriv, dropping every group and capability), as this process's user otherwise.</summary>
    public static CommandResult Run(string file, IReadOnlyList<string> args, string? workingDirectory = null,
        IReadOnlyDictionary<string, string?>? environment = null, bool asUser = false, TimeSpan? timeout = null,
        bool check = true)
    {
        var psi = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        if (asUser && IsRoot)
        {
            psi.FileName = "setpriv";
            foreach (var a in new[] { $"--reuid={NobodyId}", $"--regid={NobodyId}", "--clear-groups", "--" }) psi.ArgumentList.Add(a);
            psi.ArgumentList.Add(file);
        }
        else
        {
            psi.FileName = file;
        }
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (environment is not null)
            foreach (var (key, value) in environment)
            {
                if (value is null) psi.Environment.Remove(key);
                else psi.Environment[key] = value;
            }

        var commandLine = string.Join(' ', psi.ArgumentList.Prepend(psi.FileName).Select(Quote));
        var output = new StringBuilder();
        var error = new StringBuilder();
        using var process = new Process { StartInfo = psi };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (error) error.AppendLine(e.Data); };
        var clock = Stopwatch.StartNew();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var limit = timeout ?? TimeSpan.FromMinutes(5);
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            throw new AssertFailedException(
                $"Timed out after {limit.TotalSeconds:0} s: {commandLine}\n(in {psi.WorkingDirectory})\n{Describe(output, error)}");
        }
        process.WaitForExit();  // the asynchronous readers have drained both pipes
        Console.WriteLine($"[{clock.Elapsed.TotalSeconds,6:0.0} s] {commandLine}");
        var result = new CommandResult(process.ExitCode, output.ToString(), error.ToString());
        if (check && result.ExitCode != 0)
            throw new AssertFailedException(
                $"Exit code {result.ExitCode}: {commandLine}\n(in {psi.WorkingDirectory})\n{Describe(output, error)}");
        return result;
    }

    private static string Describe(StringBuilder output, StringBuilder error) =>
        $"--- stdout ---\n{Tail(output.ToString())}\n--- stderr ---\n{Tail(error.ToString())}";

    /// <summary>The end of a long output, where a build or a program says what went wrong.</summary>
    private static string Tail(string text, int chars = 12_000) =>
        text.Length <= chars ? text : "[...]\n" + text[^chars..];

    private static string Quote(string arg) =>
        arg.Length > 0 && arg.All(c => char.IsLetterOrDigit(c) || "-_./=:,+@".Contains(c)) ? arg : $"'{arg.Replace("'", "'\\''")}'";
}
