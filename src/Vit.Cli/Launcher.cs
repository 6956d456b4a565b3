using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Vit.Torch.Distributed;

namespace Vit.Cli;

/// <summary>How a command spreads over processes: <c>--nproc</c> workers on this host, <c>--nnodes</c> hosts.</summary>
internal sealed record LaunchSettings(int Processes, int Nodes, int NodeRank, string? MasterAddress, int? MasterPort, TimeSpan Timeout)
{
    public int WorldSize => Processes * Nodes;
}

/// <summary>
/// Multi-process runs, as torchrun does them: <c>--nproc N</c> starts N copies of the same command line on this host,
/// each told its place through torchrun's variables (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR,
/// MASTER_PORT) and given cores / N threads. Global rank 0's output is this command's; another rank's error lines come
/// prefixed with its rank. When a worker fails the others are stopped, and the exit code is the failed worker's. Ctrl+C
/// (or SIGTERM) is passed on as SIGTERM, which the workers take as their Ctrl+C: they agree on a batch to stop at, and
/// rank 0 saves the checkpoint. A second Ctrl+C kills them.
/// </summary>
internal static partial class Launcher
{
    /// <summary>Set to 1 in a worker's environment.</summary>
    public const string WorkerVariable = "VIT_WORKER";

    /// <summary>True in a process this launcher started.</summary>
    public static bool IsWorker => Environment.GetEnvironmentVariable(WorkerVariable) == "1";

    /// <summary>The options of a command that can run over processes.</summary>
    public sealed class Options
    {
        public Option<int> Processes { get; } = new("--nproc") { Description = "Processes on this host (data-parallel; each gets cores / N threads).", DefaultValueFactory = _ => 1 };
        public Option<int> Nodes { get; } = new("--nnodes") { Description = "Hosts taking part (run the same command on each, with its --node-rank).", DefaultValueFactory = _ => 1 };
        public Option<int> NodeRank { get; } = new("--node-rank") { Description = "This host's place among the hosts, 0 .. nnodes-1 (0 hosts the rendezvous).", DefaultValueFactory = _ => 0 };
        public Option<string?> MasterAddress { get; } = new("--master-addr") { Description = "Host 0's address (needed with --nnodes above 1; else 127.0.0.1)." };
        public Option<int?> MasterPort { get; } = new("--master-port") { Description = "The rendezvous port on host 0 (default: a free port on one host, 29500 across hosts)." };
        public Option<int> Timeout { get; } = new("--dist-timeout") { Description = "Seconds a worker waits for the others (joining, and each exchange) before it fails.", DefaultValueFactory = _ => 60 };

        public void AddTo(Command command)
        {
            foreach (var o in new Option[] { Processes, Nodes, NodeRank, MasterAddress, MasterPort, Timeout }) command.Add(o);
        }

        public LaunchSettings Read(ParseResult r)
        {
            int n = r.GetValue(Processes), nodes = r.GetValue(Nodes), node = r.GetValue(NodeRank), timeout = r.GetValue(Timeout);
            if (n < 1) throw new UsageException($"--nproc must be at least 1, got {n}");
            if (nodes < 1) throw new UsageException($"--nnodes must be at least 1, got {nodes}");
            if (node < 0 || node >= nodes) throw new UsageException($"--node-rank must be in 0..{nodes - 1}, got {node}");
            if (timeout < 1) throw new UsageException($"--dist-timeout must be at least 1 second, got {timeout}");
            var address = r.GetValue(MasterAddress);
            if (nodes > 1 && string.IsNullOrWhiteSpace(address)) throw new UsageException("--nnodes above 1 needs --master-addr (host 0's address)");
            var port = r.GetValue(MasterPort);
            if (port is < 1 or > 65535) throw new UsageException($"--master-port must be in 1..65535, got {port}");
            return new LaunchSettings(n, nodes, node, address, port, TimeSpan.FromSeconds(timeout));
        }
    }

    /// <summary>This process's group: the one a launcher (or torchrun's variables with WORLD_SIZE above 1) asks for; null when
    /// it runs alone.</summary>
    public static ProcessGroup? Join(LaunchSettings settings)
    {
        DistributedOptions? options;
        try
        {
            options = DistributedOptions.FromEnvironment();
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
        if (options is null || options.WorldSize <= 1) return null;
        return ProcessGroup.Create(options with { Timeout = settings.Timeout });
    }

    /// <summary>Starts this host's workers of <paramref name="args"/> (this command line) and waits for them; returns the
    /// exit code.</summary>
    public static int Run(CliOutput io, LaunchSettings s, IReadOnlyList<string> args, Func<int, IReadOnlyDictionary<string, string>>? environment = null)
    {
        string address = s.MasterAddress ?? "127.0.0.1";
        int port = s.MasterPort ?? (s.Nodes == 1 ? FreePort() : 29500);
        int threads = Math.Max(1, Environment.ProcessorCount / s.Processes);
        var (program, prefix) = Self();
        var workers = new List<Worker>();
        using var stop = new SignalRelay(workers);
        for (int local = 0; local < s.Processes; local++)
        {
            int rank = s.NodeRank * s.Processes + local;
            var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in prefix.Concat(args)) psi.ArgumentList.Add(a);
            var env = psi.Environment;
            env[WorkerVariable] = "1";
            env["RANK"] = rank.ToString(CultureInfo.InvariantCulture);
            env["LOCAL_RANK"] = local.ToString(CultureInfo.InvariantCulture);
            env["WORLD_SIZE"] = s.WorldSize.ToString(CultureInfo.InvariantCulture);
            env["LOCAL_WORLD_SIZE"] = s.Processes.ToString(CultureInfo.InvariantCulture);
            env["MASTER_ADDR"] = address;
            env["MASTER_PORT"] = port.ToString(CultureInfo.InvariantCulture);
            if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("VIT_THREADS"))) env["VIT_THREADS"] = threads.ToString(CultureInfo.InvariantCulture);
            foreach (var (key, value) in environment?.Invoke(rank) ?? new Dictionary<string, string>()) env[key] = value;
            var process = Process.Start(psi) ?? throw new IOException($"could not start worker {rank} ({program})");
            var w = new Worker(rank, process);
            // Rank 0 speaks for the run; the others' stdout holds nothing, their stderr only what went wrong.
            w.Pumps.Add(Pump(process.StandardOutput, rank == 0 ? io.Out : TextWriter.Null, ""));
            w.Pumps.Add(Pump(process.StandardError, io.Error, rank == 0 ? "" : $"[rank {rank}] "));
            lock (workers) workers.Add(w);
        }
        if (s.NodeRank == 0 || s.Processes > 1)
            io.Note($"started {s.Processes} worker{(s.Processes == 1 ? "" : "s")} ({threads} thread{(threads == 1 ? "" : "s")} each) of {s.WorldSize}, rendezvous {address}:{port}");

        // Wait; after the first failure give the others a moment to fail on their own (they notice a dead peer at once,
        // a stuck one within the timeout), then stop them.
        Worker? firstFailure = null;
        var deadline = DateTime.MaxValue;
        while (workers.Any(w => !w.Process.HasExited))
        {
            if (firstFailure is null && workers.FirstOrDefault(w => w.Process.HasExited && w.Process.ExitCode is not (0 or ExitCodes.Interrupted)) is { } f)
            {
                firstFailure = f;
                deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            }
            if (DateTime.UtcNow > deadline)
                foreach (var w in workers.Where(w => !w.Process.HasExited)) w.Process.Kill(entireProcessTree: true);
            Thread.Sleep(50);
        }
        foreach (var w in workers)
        {
            w.Process.WaitForExit();
            Task.WaitAll([.. w.Pumps]);
        }
        firstFailure ??= workers.FirstOrDefault(w => w.Process.ExitCode is not (0 or ExitCodes.Interrupted));
        int code;
        if (firstFailure is { } failed)
        {
            io.Note($"vit: worker {failed.Rank} failed (exit code {failed.Process.ExitCode}); " +
                    string.Join(", ", workers.Where(w => w != failed).Select(w => $"worker {w.Rank}: exit code {w.Process.ExitCode}")));
            code = failed.Process.ExitCode is > 0 and < 256 ? failed.Process.ExitCode : ExitCodes.Failed;
        }
        else
        {
            code = workers.Any(w => w.Process.ExitCode == ExitCodes.Interrupted) ? ExitCodes.Interrupted : ExitCodes.Ok;
        }
        foreach (var w in workers) w.Process.Dispose();
        return code;
    }

    private sealed record Worker(int Rank, Process Process)
    {
        public List<Task> Pumps { get; } = [];
    }

    private static Task Pump(StreamReader from, TextWriter to, string prefix) => Task.Run(() =>
    {
        string? line;
        while ((line = from.ReadLine()) is not null)
            lock (to) to.WriteLine(prefix + line);
        lock (to) to.Flush();
    });

    /// <summary>How to start this program again: the apphost itself, or dotnet with the assembly.</summary>
    private static (string Program, string[] Prefix) Self()
    {
        var path = Environment.ProcessPath ?? "dotnet";
        var dll = typeof(Launcher).Assembly.Location;
        var name = Path.GetFileNameWithoutExtension(path);
        if (name == Path.GetFileNameWithoutExtension(dll)) return (path, []);  // the vit apphost
        if (name == "dotnet") return (path, [dll]);
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");  // e.g. inside a test host
        return (string.IsNullOrEmpty(host) ? "dotnet" : host, [dll]);
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    private const int SigTerm = 15;

    /// <summary>Passes Ctrl+C and SIGTERM on to the workers as SIGTERM; the second one kills them.</summary>
    private sealed class SignalRelay : IDisposable
    {
        private readonly List<Worker> workers;
        private readonly PosixSignalRegistration sigint, sigterm;
        private int signals;

        public SignalRelay(List<Worker> workers)
        {
            this.workers = workers;
            sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
            sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        }

        private void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;  // the launcher waits for its workers
            bool first = Interlocked.Increment(ref signals) == 1;
            lock (workers)
                foreach (var w in workers.Where(w => !w.Process.HasExited))
                {
                    if (first) Kill(w.Process.Id, SigTerm);
                    else w.Process.Kill(entireProcessTree: true);
                }
        }

        public void Dispose()
        {
            sigint.Dispose();
            sigterm.Dispose();
        }
    }
}
