using System.Net;
using System.Net.Sockets;
using Vit.Torch.Native;
using static Vit.Torch.Native.GlooNative;

namespace Vit.Torch.Distributed;

/// <summary>The element types <see cref="GlooGroup.AllReduce"/> reduces (the codes of <c>vit_gloo_allreduce</c>).</summary>
internal enum GlooElement
{
    /// <summary>32-bit float (<see cref="float"/>).</summary>
    Float32 = 0,
    /// <summary>64-bit float (<see cref="double"/>).</summary>
    Float64 = 1,
    /// <summary>64-bit integer (<see cref="long"/>).</summary>
    Int64 = 2,
    /// <summary>32-bit integer (<see cref="int"/>).</summary>
    Int32 = 3,
}

/// <summary>
/// A group of processes that compute together, over Debian's Gloo (<c>libvit_gloo.so</c>): allreduce, broadcast and
/// barrier on raw memory, each bounded by a timeout, so that a peer that died or stalls makes the others fail with an
/// error naming the operation and the limit instead of hanging. Create one per process with the same options except
/// the rank; every rank must make the same calls in the same order. One thread at a time. After a failed collective
/// the group is unusable: every rank should stop, or create a new group with a new store.
/// </summary>
/// <remarks>
/// A group of one process needs no native library: its collectives return at once (every buffer already holds the
/// result). Larger groups need <c>libvit_gloo.so</c>, built only where libgloo-dev is installed; <see cref="Create"/>
/// says so when it is missing.
/// </remarks>
internal sealed class GlooGroup : IDisposable
{
    private readonly GlooHandle? handle;  // null: a group of one

    private GlooGroup(GlooHandle? handle, int rank, int worldSize)
    {
        this.handle = handle;
        Rank = rank;
        WorldSize = worldSize;
    }

    /// <summary>This process's rank, 0 .. <see cref="WorldSize"/> - 1.</summary>
    public int Rank { get; }

    /// <summary>The number of processes.</summary>
    public int WorldSize { get; }

    /// <summary>Forms the group: waits (up to <see cref="DistributedOptions.Timeout"/>) until all
    /// <see cref="DistributedOptions.WorldSize"/> processes have joined, through <see cref="DistributedOptions.StoreFile"/>
    /// (used as a directory, made if missing; a new one for every run) or the TCP rendezvous rank 0 serves on
    /// <see cref="DistributedOptions.MasterAddress"/>:<see cref="DistributedOptions.MasterPort"/>.</summary>
    /// <exception cref="ArgumentException">Options out of range, or no local address reaches the master.</exception>
    /// <exception cref="TorchException">The native library is missing (the message says what to install), or the
    /// rendezvous failed or timed out (Gloo's message).</exception>
    public static GlooGroup Create(DistributedOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (options.WorldSize == 1) return new GlooGroup(null, 0, 1);
        var bind = options.BindAddress ?? (options.StoreFile is null ? LocalAddressTowards(options.MasterAddress, options.MasterPort) : null);
        if (bind is null && options.StoreFile is null)
            throw new ArgumentException($"cannot tell which local address reaches the master {options.MasterAddress}:{options.MasterPort}; set DistributedOptions.BindAddress");
        EnsureLoaded();
        long timeoutMs = Math.Max(1, (long)options.Timeout.TotalMilliseconds);
        Check(options.StoreFile is { } file
            ? vit_gloo_init(2, Path.GetFullPath(file), 0, options.Rank, options.WorldSize, timeoutMs, bind, out var raw)
            : vit_gloo_init(1, options.MasterAddress, options.MasterPort, options.Rank, options.WorldSize, timeoutMs, bind, out raw));
        return new GlooGroup(new GlooHandle(raw), options.Rank, options.WorldSize);
    }

    /// <summary>The local address a connection to the master would leave from (no packet is sent): the interface the
    /// other ranks can reach this one on. Null when it cannot be told.</summary>
    internal static string? LocalAddressTowards(string host, int port)
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
            return null;
        }
    }

    /// <summary>Reduces a buffer over all ranks, in place: every rank ends with the element-wise result. Sums run in
    /// Gloo's ring order: with two ranks each element is exactly a + b; with more, float sums may differ in the last bit
    /// from a sum in another order (but agree across the ranks).</summary>
    /// <param name="data">The elements; valid and untouched by others until the call returns.</param>
    /// <param name="count">The number of elements (not bytes).</param>
    /// <param name="type">The element type.</param>
    /// <param name="op">The reduction.</param>
    /// <param name="timeout">How long the collective may take (null: the group's timeout).</param>
    public void AllReduce(IntPtr data, long count, GlooElement type, ReduceOp op = ReduceOp.Sum, TimeSpan? timeout = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (data == IntPtr.Zero && count > 0) throw new ArgumentException("null buffer for a non-empty allreduce", nameof(data));
        if (!Enum.IsDefined(type)) throw new ArgumentOutOfRangeException(nameof(type), type, "unknown element type");
        if (!Enum.IsDefined(op)) throw new ArgumentOutOfRangeException(nameof(op), op, "unknown reduce op");
        var ms = Milliseconds(timeout);
        var h = Handle;
        if (h is null || count == 0) return;
        Check(vit_gloo_allreduce(h, data, count, (int)type, (int)op, ms));
    }

    /// <summary>Copies rank <paramref name="root"/>'s buffer into the same buffer of every other rank.</summary>
    /// <param name="data">The buffer; valid and untouched by others until the call returns.</param>
    /// <param name="bytes">Its length in bytes (the same on every rank).</param>
    /// <param name="root">The rank whose bytes everyone ends with.</param>
    /// <param name="timeout">How long the collective may take (null: the group's timeout).</param>
    public void Broadcast(IntPtr data, long bytes, int root = 0, TimeSpan? timeout = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (data == IntPtr.Zero && bytes > 0) throw new ArgumentException("null buffer for a non-empty broadcast", nameof(data));
        if (root < 0 || root >= WorldSize) throw new ArgumentOutOfRangeException(nameof(root), root, $"the root must be a rank, 0..{WorldSize - 1}");
        var ms = Milliseconds(timeout);
        var h = Handle;
        if (h is null || bytes == 0) return;
        Check(vit_gloo_broadcast(h, data, bytes, root, ms));
    }

    /// <summary>Returns once every rank has called it.</summary>
    /// <param name="timeout">How long to wait (null: the group's timeout).</param>
    public void Barrier(TimeSpan? timeout = null)
    {
        var ms = Milliseconds(timeout);
        if (Handle is { } h) Check(vit_gloo_barrier(h, ms));
    }

    /// <summary>Leaves the group (closes its connections; rank 0 of a TCP rendezvous stops serving it).</summary>
    public void Dispose()
    {
        disposed = true;
        handle?.Dispose();
    }

    private bool disposed;

    private GlooHandle? Handle => !disposed ? handle : throw new ObjectDisposedException(nameof(GlooGroup));

    private static long Milliseconds(TimeSpan? t) => t is not { } v ? 0
        : v > TimeSpan.Zero ? Math.Max(1, (long)v.TotalMilliseconds)
        : throw new ArgumentOutOfRangeException(nameof(t), t, "a timeout must be positive (null: the group's)");
}
