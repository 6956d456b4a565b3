namespace Vit.Torch.Tests;

/// <summary>Torch.LocalThreads: a thread's own libtorch thread count, without touching the other threads'.</summary>
[TestClass]
public sealed class ThreadsTests
{
    [TestMethod]
    public void LocalThreadsChangeOnlyTheCallingThreadAndAreRestored()
    {
        int global = Torch.Threads;
        Assert.IsGreaterThanOrEqualTo(1, global);
        using var inside = new ManualResetEventSlim();
        using var checkedOther = new ManualResetEventSlim();
        int seenInside = 0, seenAfter = 0, seenOther = 0;
        var worker = new Thread(() =>
        {
            using (Torch.LocalThreads(global + 3))
            {
                seenInside = Torch.Threads;
                inside.Set();
                checkedOther.Wait();
                // Work still runs with the local count (a matrix product through ATen's parallel code).
                using var a = Tensor.Randn([64, 64]);
                using var b = a.MatMul(a);
                seenInside = Math.Min(seenInside, Torch.Threads);  // and still after libtorch's parallel code ran
            }
            seenAfter = Torch.Threads;
        });
        worker.Start();
        inside.Wait();
        var other = new Thread(() => seenOther = Torch.Threads);
        other.Start();
        other.Join();
        checkedOther.Set();
        worker.Join();
        Assert.AreEqual(global + 3, seenInside, "the calling thread's count");
        Assert.AreEqual(global, seenOther, "another thread meanwhile keeps the global count");
        Assert.AreEqual(global, seenAfter, "restored when the scope ends");
        Assert.AreEqual(global, Torch.Threads);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Torch.LocalThreads(0));
    }
}
