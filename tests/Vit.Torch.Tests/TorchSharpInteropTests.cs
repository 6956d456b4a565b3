using TS = TorchSharp.torch;

namespace Vit.Torch.Tests;

/// <summary>A TorchSharp tensor goes into this library's ops and gradients come back to it; disposing ours leaves the
/// caller's tensor intact.</summary>
[TestClass]
public sealed class TorchSharpInteropTests
{
    [TestMethod]
    public void GradientsReachTheTorchSharpLeafAndTheCallerKeepsIt()
    {
        using var leaf = TS.randn(4, 3).requires_grad_(true);
        float[] w = [1, -2, 0.5f, 3, 0.25f, -1];  // (out 2, in 3)
        using (var scope = TensorScope.Begin())
        {
            var x = Tensor.FromTorchSharp(leaf);
            var weight = Tensor.FromArray(w, 2, 3);
            var y = F.Linear(x, weight);
            y.Sum().Backward();
        }
        // d/dx sum(x Wᵀ) = the column sums of W, for every row of x (the formula, not our code)
        float[] expected = [w[0] + w[3], w[1] + w[4], w[2] + w[5]];
        using var grad = leaf.grad!;
        var g = grad.data<float>().ToArray();
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 3; j++)
                Assert.AreEqual(expected[j], g[i * 3 + j], 1e-6f, $"grad[{i},{j}]");
        Assert.AreEqual(12, leaf.NumberOfElements, "the caller's tensor is still alive after ours was freed");
    }

    [TestMethod]
    public void ACallersTorchSharpScopeDoesNotFreeOurTensors()
    {
        Tensor y;
        using (var theirs = TS.NewDisposeScope())
        {
            using var x = Tensor.FromTorchSharp(TS.ones(2, 3));
            using var w = Tensor.Ones([4, 3]);
            y = F.Linear(x, w);
        }
        using (y)
            CollectionAssert.AreEqual(Enumerable.Repeat(3f, 8).ToArray(), y.ToArray<float>(), "ours outlives the caller's scope");
    }

    [TestMethod]
    public void OursIsAViewOfTheSameStorage()
    {
        using var t = TS.zeros(3);
        using var ours = Tensor.FromTorchSharp(t);
        t.fill_(2.5);
        CollectionAssert.AreEqual(new[] { 2.5f, 2.5f, 2.5f }, ours.ToArray<float>());
        ours.Fill(-1);
        CollectionAssert.AreEqual(new[] { -1f, -1f, -1f }, t.data<float>().ToArray());
        Assert.ThrowsExactly<ArgumentNullException>(() => Tensor.FromTorchSharp(null!));
    }
}
