using System.Globalization;
using System.Net;
using System.Net.Sockets;
using static Vit.Torch.Native.NativeMethods;

namespace Vit.Torch.Distributed;

/// <summary>How the processes of a group find each other (torchrun's variables, or explicit values).</summary>
public sealed record DistributedOptions
{
    /// <summary>This process's rank, 0 .. <see cref="WorldSize"/> - 1.</summary>
    public int Rank { get; init; }

    /// <summary>The number of processes.</summary>
    public int WorldSize { get; init; } = 1;

    /// <summary>Rank 0's host (the TCP rendezvous; it listens on <see cref="MasterPort"/>). Ignored with <see cref="StoreFile"/>.</summary>
    public string MasterAddress { get; init; } = "127.0.0.1";

    /// <summary>The TCP rendezvous port (torchrun's default 29500).</summary>
    public int MasterPort { get; init; } = 29500;

    /// <summary>A file every process can reach (one machine, or a shared file system) to meet through instead of TCP. Use
    /// a new path for every run: a file left by an earlier run holds its addresses.</summary>
    public string? StoreFile { get; init; }

    /// <summary>The address this process's connections use (default: the local address that routes to the master).</summary>
    public string? BindAddress { get; init; }

    /// <summary>How long forming the group and each collective may take before it fails: a dead peer becomes an error
    /// within this time.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>The options torchrun's environment gives: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (null when
    /// WORLD_SIZE is not set). Values that do not parse are an <see cref="ArgumentException"/> naming the variable.</summary>
    public static DistributedOptions? FromEnvironment()
    {
        if (Environment.GetEnvironmentVariable("WORLD_SIZE") is not { Length: > 0 } world) return null;
        static int Int(string name, string value) => int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v
            : throw new ArgumentException($"environment variable {name}='{value}' is not an integer");
        return new DistributedOptions
        {
            WorldSize = Int("WORLD_SIZE", world),
            Rank = Int("RANK", Environment.GetEnvironmentVariable("RANK") ?? "0"),
            MasterAddress = Environment.GetEnvironmentVariable("MASTER_ADDR") is { Length: > 0 } a ? a : "127.0.0.1",
            MasterPort = Int("MASTER_PORT", Environment.GetEnvironmentVariable("MASTER_PORT") is { Length: > 0 } p ? p : "29500"),
        };
    }

    internal void Validate()
    {
        if (WorldSize < 1) throw new ArgumentException($"the world size must be at least 1, got {WorldSize}");
        if (Rank < 0 || Rank >= WorldSize) throw new ArgumentException($"rank {Rank} is outside 0..{WorldSize - 1}");
        if (StoreFile is null && (MasterPort < 1 || MasterPort > 65535)) throw new ArgumentException($"the master port must be in 1..65535, got {MasterPort}");
        if (StoreFile is null && string.IsNullOrWhiteSpace(MasterAddress)) throw new ArgumentException("no master address");
        if (Timeout <= TimeSpan.Zero) throw new ArgumentException($"the timeout must be positive, got {Timeout}");
    }
}

/// <summary>The reductions of <see cref="ProcessGroup.AllReduce"/>.</summary>
public enum ReduceOp
{
    /// <summary>Element-wise sum.</summary>
    Sum = 0,
    /// <summary>Element-wise minimum.</summary>
    Min = 1,
    /// <summary>Element-wise maximum.</summary>
    Max = 2,
}

/// <summary>
/// A group of processes that compute together (libtorch's c10d with the Gloo backend, as torch.distributed's "gloo"):
/// collectives over CPU tensors, each bounded by the group's timeout, so that a peer that died makes the others fail
/// with an error naming the operation instead of hanging. Create one per process with the same options except the
/// rank; every rank must make the same calls in the same order.
/// </summary>
public sealed unsafe class ProcessGroup : IDisposable
{
    private IntPtr group;

    private ProcessGroup(IntPtr group, int rank, int size)
    {
        this.group = group;
        Rank = rank;
        WorldSize = size;
    }

    /// <summary>This process's rank.</summary>
    public int Rank { get; }

    /// <summary>The number of processes.</summary>
    public int WorldSize { get; }

    /// <summary>Forms the group: waits (up to the timeout) until all <see cref="DistributedOptions.WorldSize"/> processes have joined.</summary>
    /// <exception cref="ArgumentException">Options out of range.</exception>
    /// <exception cref="TorchException">The rendezvous failed or timed out (libtorch's message).</exception>
    public static ProcessGroup Create(DistributedOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        EnsureLoaded();
        var bind = options.BindAddress ?? (options.StoreFile is null ? LocalAddressTowards(options.MasterAddress, options.MasterPort) : null);
        if (bind is null && options.StoreFile is null && options.WorldSize > 1)
            throw new ArgumentException($"cannot tell which local address reaches the master {options.MasterAddress}:{options.MasterPort}; set DistributedOptions.BindAddress");
        Check(options.StoreFile is { } file
            ? vit_dist_init(2, Path.GetFullPath(file), 0, options.Rank, options.WorldSize, (long)options.Timeout.TotalMilliseconds, bind, out var g)
            : vit_dist_init(1, options.MasterAddress, options.MasterPort, options.Rank, options.WorldSize, (long)options.Timeout.TotalMilliseconds, bind, out g));
        return new ProcessGroup(g, options.Rank, options.WorldSize);
    }

    /// <summary>The local address a connection to the master would leave from (no packet is sent): the interface the
    /// other ranks can reach this one on.</summary>
    private static string? LocalAddressTowards(string host, int port)
    {
        try
        {
            var target = IPAddress.TryParse(host, out var ip) ? ip : Dns.GetHostAddresses(host).First(a => a.AddressFamily == AddressFamily.InterNetwork);
            using var probe = new Socket(target.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            probe.Connect(target, port);
            return ((IPEndPoint)probe.LocalEndPoint!).Address.ToString();
        }
        catch (Exception e) when (e is SocketException or InvalidOperationException)
        {
            return null;  // libtorch's own choice (this host's name)
        }
    }

    private IntPtr Handle => group != IntPtr.Zero ? group : throw new ObjectDisposedException(nameof(ProcessGroup));

    private static long Ms(TimeSpan? t) => t is not { } v ? 0
        : v > TimeSpan.Zero ? Math.Max(1, (long)v.TotalMilliseconds)
        : throw new ArgumentOutOfRangeException(nameof(t), t, "a timeout must be positive (null: the group's)");

    /// <summary>Reduces each tensor over all ranks in place (every rank ends with the result). Tensors must be contiguous
    /// CPU tensors; Gloo reduces float32, float64 and the integer types (not bfloat16).</summary>
    public void AllReduce(IReadOnlyList<Tensor> tensors, ReduceOp op = ReduceOp.Sum, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        using var h = new HandleArray(tensors);
        Check(vit_dist_allreduce(Handle, h.Pointer, tensors.Count, (int)op, Ms(timeout)));
    }

    /// <summary>Copies each tensor of rank <paramref name="root"/> into the same tensors of the other ranks.</summary>
    public void Broadcast(IReadOnlyList<Tensor> tensors, int root = 0, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        using var h = new HandleArray(tensors);
        Check(vit_dist_broadcast(Handle, h.Pointer, tensors.Count, root, Ms(timeout)));
    }

    /// <summary>The default size of a gradient bucket: 25 MB, as DistributedDataParallel's.</summary>
    public const long DefaultBucketBytes = 25L << 20;

    /// <summary>Sums the gradients of <paramref name="parameters"/> over all ranks in place, in float32 buckets of
    /// about <paramref name="bucketBytes"/> (one collective each). A parameter without a gradient contributes zeros.
    /// Every rank must pass the same parameters in the same order; different layouts are refused before any sum.</summary>
    public void AllReduceGradients(IReadOnlyList<Tensor> parameters, long bucketBytes = DefaultBucketBytes, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentOutOfRangeException.ThrowIfLessThan(bucketBytes, 4L, nameof(bucketBytes));
        using var h = new HandleArray(parameters);
        Check(vit_dist_allreduce_grads(Handle, h.Pointer, parameters.Count, bucketBytes, Ms(timeout)));
    }

    /// <summary>Waits until every rank has reached this call.</summary>
    public void Barrier(TimeSpan? timeout = null) => Check(vit_dist_barrier(Handle, Ms(timeout)));

    /// <summary>Leaves the group (closes its connections).</summary>
    public void Dispose()
    {
        var g = Interlocked.Exchange(ref group, IntPtr.Zero);
        if (g != IntPtr.Zero) Check(vit_dist_free(g));
    }
}
