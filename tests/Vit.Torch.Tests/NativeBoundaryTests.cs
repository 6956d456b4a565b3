using static Vit.Torch.Native.NativeMethods;

namespace Vit.Torch.Tests;

/// <summary>
/// The native boundary's sharp edges, each through the raw export: null arrays and buffers are errors, not crashes;
/// AdamW's step is all or nothing; a data pointer handed out under a lease keeps its tensor alive through a Dispose.
/// </summary>
[TestClass]
public sealed unsafe class NativeBoundaryTests
{
    private static string LastError()
    {
        int n = vit_last_error(null, 0);
        var buf = new byte[n + 1];
        fixed (byte* p = buf) vit_last_error(p, buf.Length);
        return System.Text.Encoding.UTF8.GetString(buf, 0, n);
    }

    private static Tensor Parameter(float value, int n)
    {
        var p = Tensor.Full([n], value);
        p.RequiresGrad = true;
        using (var loss = (p * p).Sum()) loss.Backward();  // grad = 2 * value
        return p;
    }

    [TestMethod]
    public void AdamWStepRefusedAtTheSecondParameterChangesNothing()
    {
        // Parameter 1's first moment has the wrong shape. The step must refuse before touching parameter 0 (before the
        // fix it stepped parameter 0, then threw at parameter 1).
        using var p0 = Parameter(1f, 4);
        using var p1 = Parameter(2f, 3);
        using var m0 = Tensor.Zeros([4]);
        using var v0 = Tensor.Zeros([4]);
        using var m1 = Tensor.Zeros([5]);   // wrong: p1 has 3 elements
        using var v1 = Tensor.Zeros([3]);
        IntPtr[] ps = [p0.Handle.DangerousGetHandle(), p1.Handle.DangerousGetHandle()];
        IntPtr[] ms = [m0.Handle.DangerousGetHandle(), m1.Handle.DangerousGetHandle()];
        IntPtr[] vs = [v0.Handle.DangerousGetHandle(), v1.Handle.DangerousGetHandle()];
        double[] decay = [0.05, 0.05];
        int status;
        fixed (IntPtr* pp = ps)
        fixed (IntPtr* mp = ms)
        fixed (IntPtr* vp = vs)
        fixed (double* dp = decay)
            status = vit_optim_adamw_step(pp, mp, vp, dp, null, 2, 0.1, 0.9, 0.999, 1e-8, 1);
        Assert.AreEqual(1, status);
        StringAssert.Contains(LastError(), "parameter 1");
        CollectionAssert.AreEqual(new[] { 1f, 1f, 1f, 1f }, p0.ToArray<float>(), "parameter 0 must be untouched");
        CollectionAssert.AreEqual(new float[4], m0.ToArray<float>(), "its moments too");
        CollectionAssert.AreEqual(new[] { 2f, 2f, 2f }, p1.ToArray<float>());

        // The same call with the right moment steps both, by AdamW's first step: p -= lr * (p * decay + sign(g)) (m/√v = ±1).
        using var m1Right = Tensor.Zeros([3]);
        ms[1] = m1Right.Handle.DangerousGetHandle();
        fixed (IntPtr* pp = ps)
        fixed (IntPtr* mp = ms)
        fixed (IntPtr* vp = vs)
        fixed (double* dp = decay)
            Assert.AreEqual(0, vit_optim_adamw_step(pp, mp, vp, dp, null, 2, 0.1, 0.9, 0.999, 1e-8, 1), LastError());
        Assert.AreEqual(1f * (1 - 0.1f * 0.05f) - 0.1f, p0.ToArray<float>()[0], 1e-6f);
        Assert.AreEqual(2f * (1 - 0.1f * 0.05f) - 0.1f, p1.ToArray<float>()[0], 1e-6f);
    }

    [TestMethod]
    public void NullArraysAndBuffersAreErrorsNotCrashes()
    {
        Assert.AreEqual(1, vit_optim_adamw_step(null, null, null, null, null, 2, 0.1, 0.9, 0.999, 1e-8, 1));
        StringAssert.Contains(LastError(), "null");
        Assert.AreEqual(1, vit_tensor_cat(null, 2, 0, out _));
        StringAssert.Contains(LastError(), "null tensor array");
        IntPtr[] holes = [IntPtr.Zero, IntPtr.Zero];
        fixed (IntPtr* h = holes) Assert.AreEqual(1, vit_tensor_cat(h, 2, 0, out _));
        StringAssert.Contains(LastError(), "tensor 0 is null");
        using var t = Tensor.Ones([2, 3]);
        Assert.AreEqual(1, vit_tensor_shape(t.Handle, null, 2));
        StringAssert.Contains(LastError(), "null shape buffer");
    }

    [TestMethod]
    public void ALeasedPointerKeepsItsTensorAliveThroughADispose()
    {
        var t = Tensor.Zeros([1000]).DetachFromScope();
        long live = Tensor.LiveCount;
        using (var lease = t.LeaseData())
        {
            t.Dispose();  // e.g. another thread, while a batch is being written
            Assert.IsTrue(t.IsDisposed);
            Assert.AreEqual(live, Tensor.LiveCount, "the native tensor must live while the lease holds it");
            var data = new Span<float>((void*)lease.Pointer, 1000);
            data.Fill(3f);  // memory still owned by the tensor: no use after free
            Assert.AreEqual(3f, data[999]);
        }
        Assert.AreEqual(live - 1, Tensor.LiveCount, "freed when the lease ends");
        Assert.ThrowsExactly<ObjectDisposedException>(() => t.LeaseData());
    }

    [TestMethod]
    public void AnErrorLongerThanTheBufferArrivesTruncatedNotAsACrash()
    {
        // 3,000 dimensions of size 1 in the message of a failed reshape: libtorch's text (~9 KB) runs past the 4 KB buffer.
        using var t = Tensor.Ones([2]);
        var dims = Enumerable.Repeat(1L, 3000).ToArray();
        var e = Assert.ThrowsExactly<TorchException>(() => t.Reshape(dims));
        Assert.IsLessThan(4096 + 200, e.Message.Length, "the native text is cut at its 4 KB buffer");
        StringAssert.Contains(e.Message, "shape '[1, 1, 1");
        Assert.AreEqual(2L, t.NumElements, "and the process goes on");
    }
}
