namespace Vit.Torch.Tests;

/// <summary>
/// Errors cross the native boundary as <see cref="TorchException"/> with libtorch's own text, leak nothing,
/// and leave the process working.
/// </summary>
[TestClass]
public sealed class NativeErrorTests
{
    [TestMethod]
    public void MatMulShapeMismatch_ThrowsLibtorchTextAndLeavesProcessWorking()
    {
        using var a = Tensor.Ones([2, 3]);
        using var b = Tensor.Ones([4, 5]);
        long live = Tensor.LiveCount;

        var e = Assert.ThrowsExactly<TorchException>(() => a.MatMul(b));
        Assert.Contains("shapes cannot be multiplied", e.Message);
        Assert.Contains("2x3", e.Message);
        Assert.Contains("4x5", e.Message);
        Assert.AreEqual(live, Tensor.LiveCount, "a failed op must not leave a handle behind");

        // The next op works and computes the right thing: ones(2,3) · ones(3,4) = 3 everywhere.
        using var c = Tensor.Ones([3, 4]);
        using var d = a.MatMul(c);
        CollectionAssert.AreEqual(new long[] { 2, 4 }, d.Shape);
        CollectionAssert.AreEqual(Enumerable.Repeat(3f, 8).ToArray(), d.ToArray<float>());
    }

    [TestMethod]
    public void ConsecutiveErrors_EachCarryTheirOwnMessage()
    {
        using var a = Tensor.Ones([2, 3]);
        var first = Assert.ThrowsExactly<TorchException>(() => a.Reshape(7));
        Assert.Contains("[7]", first.Message);
        Assert.Contains("6", first.Message);
        var second = Assert.ThrowsExactly<TorchException>(() => a.Select(1, 5));
        Assert.Contains("index 5", second.Message);
        Assert.DoesNotContain("[7]", second.Message, "the error text must be this call's, not a stale one");
    }

    [TestMethod]
    public void ErrorOnAnotherThread_IsReportedOnThatThread()
    {
        // The last-error text is thread-local in the shim: an error on a worker is read back on the worker.
        using var a = Tensor.Ones([2, 3]);
        using var b = Tensor.Ones([4, 5]);
        string? message = null;
        var worker = new Thread(() =>
        {
            try
            {
                a.MatMul(b).Dispose();
            }
            catch (TorchException e)
            {
                message = e.Message;
            }
        });
        worker.Start();
        worker.Join();
        Assert.IsNotNull(message);
        Assert.Contains("shapes cannot be multiplied", message);
    }

    [TestMethod]
    public void DisposedTensor_ThrowsObjectDisposedException()
    {
        using var ok = Tensor.Ones([2]);
        var t = Tensor.Ones([2]);
        t.Dispose();
        Assert.IsTrue(t.IsDisposed);
        Assert.ThrowsExactly<ObjectDisposedException>(() => _ = t.Shape);
        Assert.ThrowsExactly<ObjectDisposedException>(() => t.Item());
        Assert.ThrowsExactly<ObjectDisposedException>(() => t.ToArray<float>());
        Assert.ThrowsExactly<ObjectDisposedException>(() => t + ok);
        Assert.ThrowsExactly<ObjectDisposedException>(() => ok * t);
        Assert.ThrowsExactly<ObjectDisposedException>(() => Tensor.Cat([ok, t], 0));
        Assert.ThrowsExactly<ObjectDisposedException>(() => F.Linear(ok, t));
        Assert.AreEqual("Tensor(disposed)", t.ToString());
        t.Dispose();  // idempotent
    }

    [TestMethod]
    public void DisposingTwice_FreesTheHandleOnce()
    {
        long live = Tensor.LiveCount;
        var t = Tensor.Ones([2]);
        Assert.AreEqual(live + 1, Tensor.LiveCount);
        t.Dispose();
        t.Dispose();
        Assert.AreEqual(live, Tensor.LiveCount);
    }

    [TestMethod]
    [DataRow(1.5, "1.5")]
    [DataRow(-0.25, "-0.25")]
    [DataRow(double.NaN, "got NaN")]
    public void Dropout_ProbabilityOutOfRange_ThrowsNamingIt(double p, string shown)
    {
        using var x = Tensor.Ones([2, 3]);
        foreach (var training in new[] { true, false })
        {
            var e = Assert.ThrowsExactly<TorchException>(() => F.Dropout(x, p, training));
            Assert.Contains("dropout probability", e.Message);
            Assert.Contains(shown, e.Message);
        }
    }

    [TestMethod]
    public void CrossEntropy_LabelSmoothingOutOfRange_ThrowsNamingIt()
    {
        using var logits = Tensor.Zeros([2, 3]);
        using var target = Tensor.FromArray(new long[] { 0, 2 }, 2);
        var e = Assert.ThrowsExactly<TorchException>(() => F.CrossEntropy(logits, target, 1.5));
        Assert.Contains("label smoothing", e.Message);
        Assert.Contains("1.5", e.Message);
    }

    [TestMethod]
    public void Bernoulli_ProbabilityOutOfRange_ThrowsNamingIt()
    {
        var e = Assert.ThrowsExactly<TorchException>(() => Tensor.Bernoulli([2], 2.5));
        Assert.Contains("probability", e.Message);
        Assert.Contains("2.5", e.Message);
    }

    [TestMethod]
    public void FromArray_ShapeNotMatchingData_ThrowsNamingBothSizes()
    {
        long live = Tensor.LiveCount;
        // 5 floats = 20 bytes; shape (2, 3) needs 6 floats = 24 bytes.
        var e = Assert.ThrowsExactly<TorchException>(() => Tensor.FromArray(new float[5], 2, 3));
        Assert.Contains("20", e.Message);
        Assert.Contains("24", e.Message);
        Assert.AreEqual(live, Tensor.LiveCount);
        var tooMuch = Assert.ThrowsExactly<TorchException>(() => Tensor.FromArray(new double[7], 3));
        Assert.Contains("56", tooMuch.Message);
        Assert.Contains("24", tooMuch.Message);
    }

    [TestMethod]
    public void Chunk_NotDividingTheDimension_ThrowsNamingSizes()
    {
        using var x = Tensor.Ones([2, 4]);
        long live = Tensor.LiveCount;
        var e = Assert.ThrowsExactly<TorchException>(() => x.Chunk(3, 1));
        Assert.Contains("size 4", e.Message);
        Assert.Contains("3 chunks", e.Message);
        Assert.AreEqual(live, Tensor.LiveCount);
    }

    [TestMethod]
    public void BackwardOfTensorWithoutGraph_Throws()
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.Ones([2]).Sum();
        var e = Assert.ThrowsExactly<TorchException>(() => x.Backward());
        Assert.Contains("does not require grad", e.Message);
    }
}
