using System.Globalization;
using System.Net;
using System.Net.Sockets;
using TS = TorchSharp.torch;

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
public sealed class ProcessGroup : IDisposable
{
    private GlooGroup? group;

    private ProcessGroup(GlooGroup group)
    {
        this.group = group;
        Rank = group.Rank;
        WorldSize = group.WorldSize;
    }

    /// <summary>This process's rank, 0..<see cref="WorldSize"/>-1.</summary>
    public int Rank { get; }

    /// <summary>Number of processes in the group.</summary>
    public int WorldSize { get; }

    /// <summary>Joins the group described by <paramref name="options"/>, waiting up to its timeout for every rank.</summary>
    public static ProcessGroup Create(DistributedOptions options) => new(GlooGroup.Create(options));

    private GlooGroup Group => group ?? throw new ObjectDisposedException(nameof(ProcessGroup));

    private static GlooElement ElementOf(Tensor t) => t.DType switch
    {
        DType.Float32 => GlooElement.Float32,
        DType.Float64 => GlooElement.Float64,
        DType.Int64 => GlooElement.Int64,
        DType.Int32 => GlooElement.Int32,
        _ => throw new ArgumentException($"a collective reduces float32, float64, int32 and int64 tensors, not {t.DType}"),
    };

    private static void CheckCollectible(Tensor t, string what)
    {
        if (t.Device.Type != DeviceType.Cpu) throw new ArgumentException($"{what}: tensors must be on the CPU, got {t.Device}");
        if (!t.Native.is_contiguous()) throw new ArgumentException($"{what}: tensors must be contiguous");
    }

    /// <summary>Reduces each tensor over all ranks in place (every rank ends with the result). Tensors must be contiguous
    /// CPU tensors of float32, float64, int32 or int64.</summary>
    public void AllReduce(IReadOnlyList<Tensor> tensors, ReduceOp op = ReduceOp.Sum, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        foreach (var t in tensors)
        {
            CheckCollectible(t, "allreduce");
            ElementOf(t);
        }
        foreach (var t in tensors)
        {
            using var lease = t.LeaseData();
            Group.AllReduce(lease.Pointer, t.NumElements, ElementOf(t), op, timeout);
        }
    }

    /// <summary>Copies each tensor of rank <paramref name="root"/> into the same tensors of the other ranks.</summary>
    public void Broadcast(IReadOnlyList<Tensor> tensors, int root = 0, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (root < 0 || root >= WorldSize) throw new ArgumentOutOfRangeException(nameof(root), root, $"root must be a rank in 0..{WorldSize - 1}");
        foreach (var t in tensors) CheckCollectible(t, "broadcast");
        foreach (var t in tensors)
        {
            using var lease = t.LeaseData();
            Group.Broadcast(lease.Pointer, t.NumElements * t.DType.ElementSize(), root, timeout);
        }
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
        // The layout first: every rank's element count and parameter count, so that different models fail clearly
        // instead of summing unrelated numbers. One MAX over (total, n, -total, -n) gives each one's largest and smallest.
        long total = 0;
        foreach (var p in parameters) total += p.NumElements;
        long n = parameters.Count;
        var layout = new long[] { total, n, -total, -n };
        unsafe
        {
            fixed (long* l = layout) Group.AllReduce((IntPtr)l, 4, GlooElement.Int64, ReduceOp.Max, timeout);
        }
        if (layout[0] != -layout[2] || layout[1] != -layout[3])
            throw new TorchException(
                $"gradient allreduce: the ranks' models differ (parameter elements {-layout[2]}..{layout[0]}, tensors {-layout[3]}..{layout[1]})");
        long perBucket = Math.Max(1, bucketBytes / 4);
        using var noGrad = TS.no_grad();
        int i = 0;
        while (i < parameters.Count)
        {
            int j = i;
            long elements = 0;
            var grads = new List<TS.Tensor>();
            try
            {
                while (j < parameters.Count && (j == i || elements + parameters[j].NumElements <= perBucket))
                {
                    var p = parameters[j].Native;
                    var g = p.grad;
                    if (g is null)
                    {
                        using var zeros = TS.zeros_like(p, TS.ScalarType.Float32);
                        p.grad = zeros;
                        g = p.grad!;
                    }
                    grads.Add(g);
                    elements += p.NumberOfElements;
                    j++;
                }
                var flats = grads.Select(g => g.reshape(-1)).ToArray();
                using var joined = TS.cat(flats, 0);
                foreach (var f in flats) f.Dispose();
                using var flat = joined.to_type(TS.ScalarType.Float32);
                Group.AllReduce(TorchSharpNative.DataPointer(flat), elements, GlooElement.Float32, ReduceOp.Sum, timeout);
                long at = 0;
                foreach (var g in grads)
                {
                    long count = g.NumberOfElements;
                    using var slice = flat.narrow(0, at, count);
                    using var part = slice.view_as(g);
                    g.copy_(part);
                    at += count;
                }
            }
            finally
            {
                foreach (var g in grads) g.Dispose();
            }
            i = j;
        }
    }

    /// <summary>Waits until every rank has reached this call.</summary>
    public void Barrier(TimeSpan? timeout = null) => Group.Barrier(timeout);

    /// <summary>Leaves the group (closes its connections).</summary>
    public void Dispose() => Interlocked.Exchange(ref group, null)?.Dispose();
}
