using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Vit.Torch.Distributed;
using Vit.Torch.Native;

namespace Vit.Torch.Tests;

/// <summary>
/// Debian's Gloo through libvit_gloo.so on raw buffers, between real processes (this assembly run as a worker):
/// allreduce and broadcast give exactly the values computed here from the ranks' inputs, over a file store and over
/// the TCP rendezvous; a peer that dies or stalls makes the other fail with an error naming the operation within the
/// timeout, after which the group says it is unusable and closes without hanging.
/// </summary>
[TestClass]
public sealed class GlooGroupTests : TempDirectoryTests
{
    private const int Floats = 1 << 20;
    private const int BroadcastBytes = 1_000_003;
    private static readonly TimeSpan OpTimeout = TimeSpan.FromSeconds(4);

    /// <summary>Rank r's floats: seeded, signed, of magnitudes 2^-10 .. 2^10, so that sums round.</summary>
    private static float[] Input(int rank)
    {
        var rng = new Random(rank + 1);
        var v = new float[Floats];
        for (int i = 0; i < v.Length; i++) v[i] = (rng.NextSingle() - 0.5f) * MathF.ScaleB(1, rng.Next(-10, 11));
        return v;
    }

    /// <summary>The bytes rank 0 broadcasts.</summary>
    private static byte[] RootBytes()
    {
        var b = new byte[BroadcastBytes];
        new Random(42).NextBytes(b);
        return b;
    }

    private static string Hash<T>(T[] values) where T : unmanaged => Convert.ToHexString(SHA256.HashData(MemoryMarshal.AsBytes(values.AsSpan())));

    private static string Text<T>(IEnumerable<T> values) where T : IFormattable => string.Join(",", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));

    /// <summary>The worker: joins the group and runs <paramref name="mode"/> ("ops", "die", "stall", "missing"); prints
    /// what the test checks. Exit code 0, or 3 after a failure (the messages on stderr).</summary>
    public static unsafe int Worker(string store, int rank, int world, string mode)
    {
        // STORE: a directory, or tcp:PORT (rank 0 on the loopback) or tcp:HOST:PORT.
        DistributedOptions options;
        if (store.StartsWith("tcp:", StringComparison.Ordinal))
        {
            var master = store[4..].Split(':');
            options = new DistributedOptions
            {
                Rank = rank, WorldSize = world, MasterAddress = master.Length == 2 ? master[0] : "127.0.0.1",
                MasterPort = int.Parse(master[^1], CultureInfo.InvariantCulture), Timeout = TimeSpan.FromSeconds(60),
            };
        }
        else
        {
            options = new DistributedOptions { Rank = rank, WorldSize = world, StoreFile = store, Timeout = TimeSpan.FromSeconds(60) };
        }
        if (mode == "missing")
        {
            // VIT_GLOO_PATH names no file: a group of one still works, a larger one says what to install.
            using (var single = GlooGroup.Create(options with { WorldSize = 1, Rank = 0 }))
            {
                var one = new float[] { 1, 2 };
                fixed (float* p = one) single.AllReduce((IntPtr)p, one.Length, GlooElement.Float32, ReduceOp.Sum);
                single.Barrier();
                Console.Out.WriteLine($"single {Text(one)}");
            }
            try
            {
                GlooGroup.Create(options).Dispose();
                return 0;
            }
            catch (TorchException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 3;
            }
        }
        GlooGroup group;
        try
        {
            group = GlooGroup.Create(options);
        }
        catch (TorchException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 3;
        }
        if (rank == 1 && mode == "die") Process.GetCurrentProcess().Kill();  // joined, then killed (SIGKILL)
        if (rank == 1 && mode == "stall") Thread.Sleep(TimeSpan.FromMinutes(2));  // alive, but never takes part
        var clock = Stopwatch.StartNew();
        try
        {
            Operations(group, rank);
        }
        catch (TorchException e)
        {
            var took = clock.Elapsed;
            // The group is unusable now and says so; leaving it closes its connections without hanging.
            string again;
            try
            {
                group.Barrier(OpTimeout);
                again = "no error";
            }
            catch (TorchException e2)
            {
                again = e2.Message;
            }
            group.Dispose();
            Console.Error.WriteLine($"error after {took.TotalMilliseconds.ToString("F0", CultureInfo.InvariantCulture)} ms: {e.Message}");
            Console.Error.WriteLine($"again: {again}");
            Console.Error.WriteLine("disposed");
            return 3;
        }
        Console.Out.WriteLine($"rank {group.Rank} of {group.WorldSize} done");
        group.Dispose();
        return 0;
    }

    private static unsafe void Operations(GlooGroup group, int rank)
    {
        var x = Input(rank);
        var clock = Stopwatch.StartNew();
        fixed (float* p = x) group.AllReduce((IntPtr)p, x.Length, GlooElement.Float32, ReduceOp.Sum, OpTimeout);
        Console.Out.WriteLine($"allreduce-ms {clock.Elapsed.TotalMilliseconds.ToString("F1", CultureInfo.InvariantCulture)}");
        Console.Out.WriteLine($"sum {Hash(x)}");

        double[] d = [rank + 0.5, -rank * 1e300, double.Epsilon * (rank + 1)];
        fixed (double* p = d) group.AllReduce((IntPtr)p, d.Length, GlooElement.Float64, ReduceOp.Min, OpTimeout);
        Console.Out.WriteLine($"min {Text(d)}");
        long[] l = [rank, long.MinValue + rank, long.MaxValue - rank];
        fixed (long* p = l) group.AllReduce((IntPtr)p, l.Length, GlooElement.Int64, ReduceOp.Max, OpTimeout);
        Console.Out.WriteLine($"max {Text(l)}");
        long[] s = [(1L << 40) + rank, -rank];
        fixed (long* p = s) group.AllReduce((IntPtr)p, s.Length, GlooElement.Int64, ReduceOp.Sum, OpTimeout);
        Console.Out.WriteLine($"lsum {Text(s)}");
        int[] n = [rank + 1, -7 * rank, 12345];  // the last element is outside the count: a sum would double it
        fixed (int* p = n) group.AllReduce((IntPtr)p, n.Length - 1, GlooElement.Int32, ReduceOp.Sum, OpTimeout);
        Console.Out.WriteLine($"isum {Text(n)}");

        var b = rank == 0 ? RootBytes() : new byte[BroadcastBytes];
        fixed (byte* p = b) group.Broadcast((IntPtr)p, b.Length, root: 0, OpTimeout);
        Console.Out.WriteLine($"broadcast {Hash(b)}");
        var small = Enumerable.Range(0, 17).Select(i => (byte)(i * 3 + rank)).ToArray();
        fixed (byte* p = small) group.Broadcast((IntPtr)p, small.Length, root: 1, OpTimeout);
        Console.Out.WriteLine($"broadcast1 {Convert.ToHexString(small)}");
        group.Barrier(OpTimeout);
    }

    private static (int Code, string Out, string Err, TimeSpan Took)[] RunRanks(string store, string mode, bool killOthersAfterRank0 = false,
        Action<int, ProcessStartInfo>? configure = null) =>
        DistributedTests.RunWorkers(2, r => ["gloo-worker", store, r.ToString(CultureInfo.InvariantCulture), "2", mode], killOthersAfterRank0, configure);

    private static void CheckResults((int Code, string Out, string Err, TimeSpan Took)[] results)
    {
        // The references, from the inputs: the element-wise float sums (a + b, as Gloo's sum computes it for two
        // ranks), and rank 0's and rank 1's broadcast bytes.
        float[] a = Input(0), b = Input(1), sum = new float[Floats];
        for (int i = 0; i < Floats; i++) sum[i] = a[i] + b[i];
        string[] expected =
        [
            $"sum {Hash(sum)}",
            $"min {Text(new[] { 0.5, -1e300, double.Epsilon })}",
            $"max {Text(new[] { 1L, long.MinValue + 1, long.MaxValue })}",
            $"lsum {Text(new[] { (1L << 41) + 1, -1L })}",
            $"isum {Text(new[] { 3, -7, 12345 })}",
            $"broadcast {Hash(RootBytes())}",
            $"broadcast1 {Convert.ToHexString(Enumerable.Range(0, 17).Select(i => (byte)(i * 3 + 1)).ToArray())}",
        ];
        for (int r = 0; r < results.Length; r++)
        {
            var (code, output, err, _) = results[r];
            Assert.AreEqual(0, code, $"rank {r}: {err}");
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            foreach (var line in expected) CollectionAssert.Contains(lines, line, $"rank {r}: {output}");
            CollectionAssert.Contains(lines, $"rank {r} of 2 done", $"rank {r}: {output}");
        }
    }

    [TestMethod]
    public void TwoRanksOverAFileStoreSumAMillionFloatsAndBroadcastBytesExactly()
    {
        RequireLibrary();
        var store = Path.Combine(Dir, "store");
        CheckResults(RunRanks(store, "ops"));

        // The store directory now holds this run's keys: a new run through it is refused, not misled by old addresses.
        var e = Assert.ThrowsExactly<TorchException>(() => GlooGroup.Create(new DistributedOptions { WorldSize = 2, StoreFile = store, Timeout = TimeSpan.FromSeconds(2) }));
        StringAssert.Contains(e.Message, "from an earlier run; use a new, empty directory for every run");
    }

    [TestMethod]
    public void TwoRanksOverTcpSumAMillionFloatsAndBroadcastBytesExactly()
    {
        RequireLibrary();
        var results = RunRanks($"tcp:{FreePort()}", "ops");
        CheckResults(results);
        Console.WriteLine(string.Join("; ", results.Select(r => r.Out.Split('\n')[0])));
    }

    /// <summary>
    /// Two "hosts": two network namespaces joined by a veth pair (<see cref="Vit.Tests.NetworkNamespaces"/>), each rank in its
    /// own, meeting through rank 0's TCP rendezvous at its address on the pair (needs root; inconclusive otherwise).
    /// </summary>
    [TestMethod]
    public void TwoRanksInTwoNetworkNamespacesMeetOverTcpAndSumExactly()
    {
        RequireLibrary();
        var (spaces, reason) = Vit.Tests.NetworkNamespaces.TryCreate();
        if (spaces is null) Assert.Inconclusive("skipped: " + reason);
        using (spaces)
        {
            CheckResults(RunRanks($"tcp:{spaces.Addresses[0]}:29518", "ops", configure: spaces.RunInside));
            // The data crossed the veth pair: rank 1 received at least its half of rank 0's floats in the ring and the
            // broadcast bytes.
            long received = spaces.ReceivedBytes(1);
            TestContext.WriteLine($"rank 1's veth received {received} bytes");
            Assert.IsGreaterThan(Floats * 4L / 2 + BroadcastBytes, received);
        }
    }

    [TestMethod]
    public void APeerKilledAfterJoiningMakesTheOtherFailWithANamedErrorWithinTheTimeout()
    {
        RequireLibrary();
        var results = RunRanks(Path.Combine(Dir, "store"), "die");
        var err = results[0].Err;
        Assert.AreEqual(3, results[0].Code, $"rank 0 must fail: {results[0].Out} {err}");
        StringAssert.Contains(err, "allreduce failed (timeout 4000 ms; a peer may have stopped)");
        Assert.IsLessThan(4000 + 1000, FailedAfterMs(err), err);
        StringAssert.Contains(err, "again: barrier: the group is unusable after an earlier failure");
        StringAssert.Contains(err, "disposed");
    }

    [TestMethod]
    public void APeerThatStallsMakesTheOtherFailWhenTheTimeoutEnds()
    {
        RequireLibrary();
        var results = RunRanks(Path.Combine(Dir, "store"), "stall", killOthersAfterRank0: true);
        var err = results[0].Err;
        Assert.AreEqual(3, results[0].Code, $"rank 0 must fail: {results[0].Out} {err}");
        StringAssert.Contains(err, "allreduce failed (timeout 4000 ms; a peer may have stopped)");
        // The stalled peer sleeps for 2 minutes: failing at 4 s is the timeout at work.
        var ms = FailedAfterMs(err);
        Assert.IsGreaterThan(3900, ms, err);
        Assert.IsLessThan(4000 + 3000, ms, err);
        StringAssert.Contains(err, "disposed");
    }

    [TestMethod]
    public void ARankThatNeverComesFailsTheRendezvousWithinTheTimeout()
    {
        RequireLibrary();
        var timeout = TimeSpan.FromSeconds(2);
        var clock = Stopwatch.StartNew();
        var e = Assert.ThrowsExactly<TorchException>(() => GlooGroup.Create(new DistributedOptions { Rank = 1, WorldSize = 2, StoreFile = Path.Combine(Dir, "store"), Timeout = timeout }));
        StringAssert.Contains(e.Message, "forming the group (rank 1 of 2) failed (timeout 2000 ms; did every rank start?)");
        e = Assert.ThrowsExactly<TorchException>(() => GlooGroup.Create(new DistributedOptions { Rank = 1, WorldSize = 2, MasterPort = FreePort(), Timeout = timeout }));
        StringAssert.Contains(e.Message, "rendezvous: could not connect to rank 0 at 127.0.0.1:");
        StringAssert.Contains(e.Message, "within 2000 ms");
        e = Assert.ThrowsExactly<TorchException>(() => GlooGroup.Create(new DistributedOptions { Rank = 0, WorldSize = 2, MasterPort = FreePort(), Timeout = timeout }));
        StringAssert.Contains(e.Message, "was not set within 2000 ms (did every rank start?)");
        Assert.IsLessThan(TimeSpan.FromSeconds(15), clock.Elapsed);
    }

    [TestMethod]
    public void BadOptionsAndArgumentsAreRefusedBeforeAnythingStarts()
    {
        Assert.ThrowsExactly<ArgumentException>(() => GlooGroup.Create(new DistributedOptions { Rank = 2, WorldSize = 2 }));
        Assert.ThrowsExactly<ArgumentException>(() => GlooGroup.Create(new DistributedOptions { WorldSize = 0 }));
        Assert.ThrowsExactly<ArgumentException>(() => GlooGroup.Create(new DistributedOptions { WorldSize = 2, MasterPort = 70000 }));
        Assert.ThrowsExactly<ArgumentException>(() => GlooGroup.Create(new DistributedOptions { WorldSize = 2, Timeout = TimeSpan.Zero }));

        var single = GlooGroup.Create(new DistributedOptions { StoreFile = Path.Combine(Dir, "s") });
        Assert.AreEqual((0, 1), (single.Rank, single.WorldSize));
        var v = new[] { 1f, 2f };
        var pin = GCHandle.Alloc(v, GCHandleType.Pinned);
        try
        {
            var p = pin.AddrOfPinnedObject();
            single.AllReduce(p, 2, GlooElement.Float32);
            CollectionAssert.AreEqual(new[] { 1f, 2f }, v, "a group of one reduces to itself");
            Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => single.AllReduce(p, -1, GlooElement.Float32));
            Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => single.AllReduce(p, 2, (GlooElement)7));
            Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => single.Broadcast(p, 8, root: 1));
        }
        finally
        {
            pin.Free();
        }
        Assert.ThrowsExactly<ArgumentException>(() => single.AllReduce(IntPtr.Zero, 2, GlooElement.Float32));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => single.Barrier(TimeSpan.Zero));
        single.Dispose();
        Assert.ThrowsExactly<ObjectDisposedException>(() => single.Barrier());
    }

    [TestMethod]
    public void TheLibraryRunsOnDebiansGloo()
    {
        RequireLibrary();
        // Loaded with RTLD_DEEPBIND, its Gloo calls bind to libgloo.so.0, never to another copy in the process.
        StringAssert.EndsWith(GlooNative.Provider, "libgloo.so.0");
    }

    [TestMethod]
    public void AMissingLibrarySaysWhatToInstall()
    {
        var missing = Path.Combine(Dir, "nowhere", "libvit_gloo.so");
        var results = DistributedTests.RunWorkers(1, _ => ["gloo-worker", Path.Combine(Dir, "store"), "0", "2", "missing"],
            configure: (_, psi) => psi.Environment["VIT_GLOO_PATH"] = missing);
        var (code, output, err, _) = results[0];
        Assert.AreEqual(3, code, $"{output} {err}");
        StringAssert.Contains(output, "single 1,2", "a group of one needs no library");
        StringAssert.Contains(err, $"Could not load libvit_gloo.so (VIT_GLOO_PATH is set). Tried: {missing} (not found).");
        StringAssert.Contains(err, "run `apt-get install libgloo-dev cmake g++ make`, then rebuild with -p:VitGloo=true");
    }

    /// <summary>libvit_gloo.so is built only where libgloo-dev is installed: without it, the tests of groups larger than
    /// one are inconclusive, with the reason.</summary>
    private static void RequireLibrary()
    {
        if (!File.Exists(Path.Combine(AppContext.BaseDirectory, "libvit_gloo.so")))
            Assert.Inconclusive("libvit_gloo.so was not built (Debian's libgloo-dev is not installed): groups of more than one process are unavailable here");
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>The worker's "error after N ms" figure.</summary>
    private static double FailedAfterMs(string err)
    {
        const string marker = "error after ";
        int at = err.IndexOf(marker, StringComparison.Ordinal);
        Assert.IsGreaterThanOrEqualTo(0, at, err);
        var rest = err[(at + marker.Length)..];
        return double.Parse(rest[..rest.IndexOf(' ', StringComparison.Ordinal)], CultureInfo.InvariantCulture);
    }
}
