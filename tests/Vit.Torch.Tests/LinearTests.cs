namespace Vit.Torch.Tests;

/// <summary>
/// <see cref="F.Linear"/> in float32 held to y = x Wᵀ + b in float64, forward and backward (for y's sum: dx = 1·W,
/// dW = 1ᵀ x, db = rows). The shapes include (300 rows, 96 -> 40), where a 1×1 convolution over a channels-last view of
/// the input, tried as a faster float32 route through oneDNN, came out wrong by up to 32 in libtorch 2.10.
/// </summary>
[TestClass]
public sealed class LinearTests
{
    [TestMethod]
    [DataRow(2, 197, 192, 64, true, DisplayName = "tokens of a batch")]
    [DataRow(1, 300, 96, 40, false, DisplayName = "no bias, the shape oneDNN got wrong")]
    [DataRow(1, 4, 24, 10, true, DisplayName = "small input")]
    public void Float32LinearEqualsTheFormula(int batch, int rows, int inF, int outF, bool withBias)
    {
        Torch.ManualSeed(11);
        using var scope = TensorScope.Begin();
        var x = Tensor.Randn([batch, rows, inF]);
        x.RequiresGrad = true;
        var w = Tensor.Randn([outF, inF]);
        w.RequiresGrad = true;
        var b = withBias ? Tensor.Randn([outF]) : null;
        if (b is not null) b.RequiresGrad = true;

        var y = F.Linear(x, w, b);
        CollectionAssert.AreEqual(new long[] { batch, rows, outF }, y.Shape);
        y.Sum().Backward();

        float[] xs = x.ToArray<float>(), ws = w.ToArray<float>();
        var expected = ReferenceMath.Linear(ReferenceMath.ToDouble(xs), batch * rows, inF, ws, b?.ToArray<float>(), outF);
        ReferenceMath.AssertClose(expected, ReferenceMath.ToDouble(y.ToArray<float>()), 1e-4, 1e-5, "y");

        var dx = new double[batch * rows * inF];
        for (int r = 0; r < batch * rows; r++)
            for (int i = 0; i < inF; i++)
                for (int o = 0; o < outF; o++) dx[r * inF + i] += ws[o * inF + i];
        ReferenceMath.AssertClose(dx, ReferenceMath.ToDouble(x.Grad()!.ToArray<float>()), 1e-4, 1e-5, "dx");

        var dw = new double[outF * inF];
        for (int o = 0; o < outF; o++)
            for (int i = 0; i < inF; i++)
                for (int r = 0; r < batch * rows; r++) dw[o * inF + i] += xs[r * inF + i];
        ReferenceMath.AssertClose(dw, ReferenceMath.ToDouble(w.Grad()!.ToArray<float>()), 1e-3, 1e-5, "dW");

        if (b is not null)
            ReferenceMath.AssertClose(Enumerable.Repeat((double)(batch * rows), outF).ToArray(),
                ReferenceMath.ToDouble(b.Grad()!.ToArray<float>()), 1e-3, 1e-6, "db");
    }

    [TestMethod]
    public void Float32LinearOfATransposedInputEqualsItsContiguousCopy()
    {
        Torch.ManualSeed(12);
        using var scope = TensorScope.Begin();
        var x = Tensor.Randn([2, 64, 300]).Transpose(1, 2);   // (2, 300, 64), not contiguous
        var w = Tensor.Randn([48, 64]);
        var b = Tensor.Randn([48]);
        var viaView = F.Linear(x, w, b).ToArray<float>();
        var viaCopy = F.Linear(x.Contiguous(), w, b).ToArray<float>();
        ReferenceMath.AssertClose(ReferenceMath.ToDouble(viaCopy), ReferenceMath.ToDouble(viaView), 1e-4, 1e-5, "y");
    }
}
