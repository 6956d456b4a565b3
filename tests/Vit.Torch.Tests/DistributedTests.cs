using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Vit.Torch.Distributed;

namespace Vit.Torch.Tests;

/// <summary>
/// c10d/Gloo through the shim, between real processes (this assembly run as a worker): allreduce and broadcast give
/// the values computed here from the ranks' inputs, over a file store and over TCP; a peer that dies makes the other
/// fail with a clear error within the timeout instead of hanging.
/// </summary>
[TestClass]
public sealed class DistributedTests : TempDirectoryTests
{
    private const int Elements = 1 << 20;

    /// <summary>Rank r's input: element i is (r + 1) * (i % 1000) + r.</summary>
    private static float Input(int rank, int i) => (rank + 1) * (i % 1000) + rank;

    /// <summary>The worker: joins the group and runs <paramref name="mode"/>; prints what the test checks.</summary>
    public static int Worker(string store, int rank, int world, string mode)
    {
        var options = store.StartsWith("tcp:", StringComparison.Ordinal)
            ? new DistributedOptions { Rank = rank, WorldSize = world, MasterAddress = "127.0.0.1", MasterPort = int.Parse(store[4..], CultureInfo.InvariantCulture), Timeout = TimeSpan.FromSeconds(60) }
            : new DistributedOptions { Rank = rank, WorldSize = world, StoreFile = store, Timeout = TimeSpan.FromSeconds(60) };
        try
        {
            // The rendezvous may wait for a slow start of the other process; the collectives get 4 s.
            var group = ProcessGroup.Create(options);
            var op = TimeSpan.FromSeconds(4);
            if (rank == 1 && mode == "die") Process.GetCurrentProcess().Kill();  // joined, then killed (SIGKILL)
            if (rank == 1 && mode == "stall") Thread.Sleep(TimeSpan.FromMinutes(2));  // alive, but never takes part
            if (mode is "grads" or "grads-mismatch") return Gradients(group, rank, mode == "grads-mismatch", op);
            var values = Enumerable.Range(0, Elements).Select(i => Input(rank, i)).ToArray();
            using var x = Tensor.FromArray(values, Elements);
            using var y = Tensor.FromArray(values.Take(7).ToArray(), 7);
            var clock = Stopwatch.StartNew();
            group.AllReduce([x, y], timeout: op);
            Console.Out.WriteLine($"allreduce-ms {clock.Elapsed.TotalMilliseconds.ToString("F1", CultureInfo.InvariantCulture)}");
            Console.Out.WriteLine($"sum {Checksum(x.ToArray<float>())} {string.Join(",", y.ToArray<float>().Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}");
            using var b = Tensor.FromArray(Enumerable.Range(0, 5).Select(i => (float)(i * 10 + rank)).ToArray(), 5);
            group.Broadcast([b], root: 0, timeout: op);
            Console.Out.WriteLine($"broadcast {string.Join(",", b.ToArray<float>().Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}");
            group.Barrier(op);
            Console.Out.WriteLine($"rank {group.Rank} of {group.WorldSize} done");
            group.Dispose();
            return 0;
        }
        catch (TorchException e)
        {
            return Abandon(e.Message);
        }
    }

    /// <summary>Gradients of 3 parameters (the middle one without a gradient on rank 1) summed over the ranks in buckets of
    /// 16 bytes; with <paramref name="mismatch"/>, rank 1's last parameter has one more element.</summary>
    private static int Gradients(ProcessGroup group, int rank, bool mismatch, TimeSpan timeout)
    {
        int[] sizes = [5, 3, mismatch && rank == 1 ? 5 : 4];
        var ps = sizes.Select(n => Tensor.FromArray(new float[n], n)).ToArray();
        for (int k = 0; k < ps.Length; k++)
        {
            ps[k].RequiresGrad = true;
            if (rank == 1 && k == 1) continue;
            using var w = Tensor.FromArray(Enumerable.Range(0, sizes[k]).Select(i => GradInput(rank, k, i)).ToArray(), sizes[k]);
            using var loss = (ps[k] * w).Sum();
            loss.Backward();
        }
        group.AllReduceGradients(ps, bucketBytes: 16, timeout: timeout);
        Console.Out.WriteLine("grads " + string.Join(" ", ps.Select(p => string.Join(",", p.Grad()!.ToArray<float>().Select(v => v.ToString("R", CultureInfo.InvariantCulture))))));
        group.Dispose();
        return 0;
    }

    /// <summary>Rank r's gradient of element i of parameter k.</summary>
    private static float GradInput(int rank, int k, int i) => (rank + 1) * 10 + k * 100 + i;

    /// <summary>A worker's way out after a failure: a failed group cannot be closed cleanly (its work is still queued), so
    /// report on stderr and leave at once with exit code 3.</summary>
    internal static int Abandon(string message)
    {
        Console.Error.WriteLine($"error: {message}");
        Console.Error.Flush();
        Environment.Exit(3);
        return 3;
    }

    private static string Checksum(float[] v)
    {
        double s = 0;
        for (int i = 0; i < v.Length; i++) s += v[i] * ((i % 7) + 1);
        return s.ToString("R", CultureInfo.InvariantCulture);
    }

    private static (int Code, string Out, string Err, TimeSpan Took)[] RunRanks(string store, string mode, int world = 2, bool killOthersAfterRank0 = false) =>
        RunWorkers(world, r => ["dist-worker", store, r.ToString(CultureInfo.InvariantCulture), world.ToString(CultureInfo.InvariantCulture), mode], killOthersAfterRank0);

    /// <summary>Runs this assembly as <paramref name="world"/> worker processes (rank r with <paramref name="args"/>(r))
    /// and returns each one's exit code, output, error output and the time until it ended.</summary>
    internal static (int Code, string Out, string Err, TimeSpan Took)[] RunWorkers(int world, Func<int, string[]> args, bool killOthersAfterRank0 = false,
        Action<int, ProcessStartInfo>? configure = null)
    {
        var clock = Stopwatch.StartNew();
        var procs = Enumerable.Range(0, world).Select(r =>
        {
            var psi = Program.Child(args(r));
            configure?.Invoke(r, psi);
            var p = Process.Start(psi)!;
            return (p, Out: p.StandardOutput.ReadToEndAsync(), Err: p.StandardError.ReadToEndAsync());
        }).ToList();
        var results = new (int, string, string, TimeSpan)[world];
        for (int r = 0; r < world; r++)
        {
            var (p, o, e) = procs[r];
            if (r > 0 && killOthersAfterRank0 && !p.HasExited) p.Kill(entireProcessTree: true);
            if (!p.WaitForExit(TimeSpan.FromSeconds(90)))
            {
                foreach (var q in procs) q.p.Kill(entireProcessTree: true);
                Assert.Fail($"rank {r} hung: {e.Result}");
            }
            results[r] = (p.ExitCode, o.Result, e.Result, clock.Elapsed);
            p.Dispose();
        }
        return results;
    }

    private static void CheckResults((int Code, string Out, string Err, TimeSpan Took)[] results)
    {
        // The references, from the inputs: the element-wise sum over the ranks, and rank 0's broadcast values.
        var sum = Enumerable.Range(0, Elements).Select(i => Input(0, i) + Input(1, i)).ToArray();
        string expectedSum = $"sum {Checksum(sum)} {string.Join(",", sum.Take(7).Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}";
        string expectedBroadcast = $"broadcast {string.Join(",", Enumerable.Range(0, 5).Select(i => ((float)(i * 10)).ToString("R", CultureInfo.InvariantCulture)))}";
        for (int r = 0; r < results.Length; r++)
        {
            var (code, output, err, _) = results[r];
            Assert.AreEqual(0, code, $"rank {r}: {err}");
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            CollectionAssert.Contains(lines, expectedSum, $"rank {r}: {output}");
            CollectionAssert.Contains(lines, expectedBroadcast, $"rank {r}: {output}");
            CollectionAssert.Contains(lines, $"rank {r} of 2 done");
        }
    }

    [TestMethod]
    public void TwoRanksOverAFileStoreAllReduceAndBroadcastExactly()
    {
        var results = RunRanks(Path.Combine(Dir, "store"), "ops");
        CheckResults(results);
    }

    [TestMethod]
    public void TwoRanksOverTcpAllReduceAndBroadcastExactly()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        var results = RunRanks($"tcp:{port}", "ops");
        CheckResults(results);
        Console.WriteLine(string.Join("; ", results.Select(r => r.Out.Split('\n')[0])));
    }

    [TestMethod]
    public void GradientsAreSummedAcrossBuckets_AMissingGradientCountsAsZero_DifferentModelsAreRefused()
    {
        var results = RunRanks(Path.Combine(Dir, "store"), "grads");
        // The reference, from the inputs: rank 0's gradient plus rank 1's (rank 1 has none for parameter 1).
        string expected = "grads " + string.Join(" ", new[] { 5, 3, 4 }.Select((n, k) => string.Join(",", Enumerable.Range(0, n)
            .Select(i => (GradInput(0, k, i) + (k == 1 ? 0 : GradInput(1, k, i))).ToString("R", CultureInfo.InvariantCulture)))));
        for (int r = 0; r < 2; r++)
        {
            Assert.AreEqual(0, results[r].Code, $"rank {r}: {results[r].Err}");
            Assert.AreEqual(expected, results[r].Out.Trim(), $"rank {r}");
        }

        results = RunRanks(Path.Combine(Dir, "store2"), "grads-mismatch");
        for (int r = 0; r < 2; r++)
        {
            Assert.AreEqual(3, results[r].Code, $"rank {r}: {results[r].Out}");
            StringAssert.Contains(results[r].Err, "the ranks' models differ (parameter elements 12..13, tensors 3..3)", $"rank {r}");
        }
    }

    [TestMethod]
    public void APeerKilledAfterJoiningMakesTheOtherFailWithANamedError()
    {
        var results = RunRanks(Path.Combine(Dir, "store"), "die");
        Assert.AreEqual(3, results[0].Code, $"rank 0 must fail: {results[0].Out} {results[0].Err}");
        StringAssert.Contains(results[0].Err, "allreduce failed");
    }

    [TestMethod]
    public void APeerThatStallsMakesTheOtherFailWhenTheTimeoutEnds()
    {
        var results = RunRanks(Path.Combine(Dir, "store"), "stall", killOthersAfterRank0: true);
        Assert.AreEqual(3, results[0].Code, $"rank 0 must fail: {results[0].Out} {results[0].Err}");
        StringAssert.Contains(results[0].Err, "allreduce failed (timeout 4000 ms");
        // The stalled peer sleeps for 2 minutes: failing well before that is the timeout at work.
        Assert.IsLessThan(TimeSpan.FromSeconds(60), results[0].Took, "the 4 s timeout, plus the processes' start-up");
    }

    [TestMethod]
    public void BadOptionsAreRefusedBeforeAnythingStarts()
    {
        Assert.ThrowsExactly<ArgumentException>(() => ProcessGroup.Create(new DistributedOptions { Rank = 2, WorldSize = 2 }));
        Assert.ThrowsExactly<ArgumentException>(() => ProcessGroup.Create(new DistributedOptions { WorldSize = 0 }));
        Assert.ThrowsExactly<ArgumentException>(() => ProcessGroup.Create(new DistributedOptions { MasterPort = 70000 }));
        using (var single = ProcessGroup.Create(new DistributedOptions { StoreFile = Path.Combine(Dir, "s") }))
        {
            using var t = Tensor.FromArray(new[] { 1f, 2f }, 2);
            single.AllReduce([t]);
            CollectionAssert.AreEqual(new[] { 1f, 2f }, t.ToArray<float>(), "a group of one reduces to itself");
            Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => single.Barrier(TimeSpan.Zero));
        }
    }
}
