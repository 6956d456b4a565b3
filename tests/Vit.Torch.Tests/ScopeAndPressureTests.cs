namespace Vit.Torch.Tests;

/// <summary>
/// Tensors nobody disposes are still reclaimed in time (each tells the GC the native memory it holds), and a scope
/// disposed on another thread (after an await) fails clearly without leaving its first thread recording into it.
/// </summary>
[TestClass]
public sealed class ScopeAndPressureTests
{
    [TestMethod]
    public void UndisposedTensorsOutsideAScopeAreReclaimedBeforeTheyPileUp()
    {
        // 300 tensors of 8 MiB (2.4 GB of native memory) made and dropped without Dispose: their managed wrappers weigh a
        // few KB in all, so without the memory pressure no collection comes, and all 300 would still be alive here.
        long before = Tensor.LiveCount, peak = 0;
        for (int i = 0; i < 300; i++)
        {
            Make();
            peak = Math.Max(peak, Tensor.LiveCount - before);
        }
        Console.WriteLine($"at most {peak} of the 300 alive at once");
        Assert.IsLessThan(150, peak, "the GC must collect (and finalize) dropped tensors as their native memory grows");

        static void Make() => _ = Tensor.Zeros([2 << 20]);  // 2M floats, outside any scope, never disposed
    }

    [TestMethod]
    public void AScopeDisposedOnAnotherThreadFailsClearlyAndTheFirstThreadStopsRecordingIntoIt()
    {
        TensorScope? scope = null;
        Tensor? inside = null;
        var begun = new Thread(() =>
        {
            scope = TensorScope.Begin();
            inside = Tensor.Ones([3]);
        });
        begun.Start();
        begun.Join();
        // "After the await": the scope ends on this thread.
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => scope!.Dispose());
        StringAssert.Contains(e.Message, "another thread");
        Assert.IsTrue(inside!.IsDisposed, "what it recorded is freed");

        // The thread that began it may be reused (a pool thread): it must not go on recording into the dead scope.
        int countAfter = -1;
        TensorScope? currentThere = null;
        var reused = new Thread(() =>
        {
            // (A new thread here stands for the same one: its own scope chain is empty, as the fixed chain must be.)
            currentThere = TensorScope.Current;
            using var t = Tensor.Ones([2]);
            countAfter = scope!.Count;
        });
        reused.Start();
        reused.Join();
        Assert.IsNull(currentThere);
        Assert.AreEqual(0, countAfter);
    }

    [TestMethod]
    public void OnTheSameThreadAScopeLeftBehindIsSkipped()
    {
        // The same thread: a scope disposed elsewhere while still this thread's innermost one.
        var scope = TensorScope.Begin();
        var other = new Thread(() => Assert.ThrowsExactly<InvalidOperationException>(() => scope.Dispose()));
        other.Start();
        other.Join();
        Assert.IsNull(TensorScope.Current, "the disposed scope is no longer this thread's");
        using var t = Tensor.Ones([2]);
        Assert.AreEqual(0, scope.Count, "nothing new is recorded into it");
        Assert.IsFalse(t.IsDisposed);
    }
}
