using System.CommandLine;
using System.Runtime.InteropServices;
using Vit.Torch;
using Vit.Torch.Imaging;
using Vit.Torch.Training;

namespace Vit.Cli;

/// <summary>Exit codes of the tool (documented in the README).</summary>
internal static class ExitCodes
{
    public const int Ok = 0, Failed = 1, BadInput = 2, Interrupted = 130;
}

/// <summary>Bad usage or bad input the tool itself detects: one line on stderr, exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>The root command and the exception-to-exit-code rules.</summary>
internal static class VitCli
{
    /// <summary>Parses and runs one command line; returns the exit code. Output goes to <paramref name="stdout"/> and
    /// <paramref name="stderr"/> (the console, or a test's writers).</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        Arguments = args;
        var io = new CliOutput(stdout, stderr);
        var root = new RootCommand("vit: train, evaluate and use Vision Transformer image classifiers (Vit for .NET).")
        {
            TrainCommand.Create(io),
            EvaluateCommand.Create(io),
            PredictCommand.Create(io),
            ModelCommands.Export(io),
            ModelCommands.Import(io),
            ModelCommands.Info(io),
        };
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            var command = parsed.CommandResult.Command;
            string help = command == root ? "vit --help" : $"vit {command.Name} --help";
            stderr.WriteLine($"vit: {OneLine(parsed.Errors[0].Message)} (see {help})");
            return ExitCodes.BadInput;
        }
        try
        {
            return parsed.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e)
        {
            return Report(e, stderr);
        }
    }

    /// <summary>The command line being run (a launcher starts its workers with it).</summary>
    public static IReadOnlyList<string> Arguments { get; private set; } = [];

    /// <summary>One line (two for training failures: where the last good state is) and the exit code.</summary>
    private static int Report(Exception e, TextWriter stderr)
    {
        switch (e)
        {
            case UsageException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or ArgumentException
                or NotSupportedException or ImageDecodeException or UnauthorizedAccessException or System.Text.Json.JsonException:
                stderr.WriteLine($"vit: error: {OneLine(e.Message)}");
                return ExitCodes.BadInput;
            case TrainingDivergedException or TrainingFailedException:
                stderr.WriteLine($"vit: training failed: {OneLine(e.Message)}");
                if (e.InnerException is { } inner) stderr.WriteLine($"vit: cause: {inner.GetType().Name}: {OneLine(inner.Message)}");
                return ExitCodes.Failed;
            case OperationCanceledException:
                stderr.WriteLine("vit: interrupted");
                return ExitCodes.Interrupted;
            case IOException or TorchException:
                stderr.WriteLine($"vit: error: {OneLine(e.Message)}");
                return ExitCodes.Failed;
            default:
                stderr.WriteLine($"vit: unexpected error: {e.GetType().Name}: {OneLine(e.Message)}");
                return ExitCodes.Failed;
        }
    }

    /// <summary>The --precision option: the names of <see cref="Vit.Torch.Precision"/> in lower case (bf16 and fp32 are
    /// accepted too).</summary>
    public static Option<string> PrecisionOption(string what)
    {
        var option = new Option<string>("--precision")
        {
            Description = $"{what}: auto (bfloat16 where the CPU computes it natively, else float32), bfloat16 or float32.",
            DefaultValueFactory = _ => "auto",
        };
        option.AcceptOnlyFromAmong("auto", "bfloat16", "float32", "bf16", "fp32");
        return option;
    }

    private static string OneLine(string s) => System.Text.RegularExpressions.Regex.Replace(s, @"\s+", " ").Trim();

    /// <summary>A cancellation token cancelled by the first Ctrl+C (SIGINT) or SIGTERM; a second Ctrl+C kills at once
    /// (the default action). In a launcher's worker, Ctrl+C is left to the launcher (the terminal sends it to every
    /// process), which passes it on as SIGTERM. Dispose to restore the default handling.</summary>
    public sealed class Interrupt : IDisposable
    {
        private readonly CancellationTokenSource cts = new();
        private readonly PosixSignalRegistration sigint, sigterm;

        public Interrupt()
        {
            sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
            sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        }

        public CancellationToken Token => cts.Token;

        private void OnSignal(PosixSignalContext context)
        {
            if (context.Signal == PosixSignal.SIGINT && Launcher.IsWorker)
            {
                context.Cancel = true;
                return;
            }
            if (cts.IsCancellationRequested) return;  // the second one: let the default action end the process
            context.Cancel = true;
            cts.Cancel();
        }

        public void Dispose()
        {
            sigint.Dispose();
            sigterm.Dispose();
            cts.Dispose();
        }
    }
}
