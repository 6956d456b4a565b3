using Vit.Torch;
using Vit.Torch.Model;

namespace Vit.Torch.Tests;

[TestClass]
public sealed class SmokeTests
{
    [TestMethod]
    public void AddsAndReadsBack()
    {
        using var a = Tensor.FromArray(new float[] { 1, 2, 3 }, 3);
        using var b = Tensor.FromArray(new float[] { 10, 20, 30 }, 3);
        using var c = a + b;
        CollectionAssert.AreEqual(new float[] { 11, 22, 33 }, c.ToArray<float>());
        Assert.StartsWith("2.10.", Torch.Version);
    }

    [TestMethod]
    public void TinyVitForward()
    {
        Torch.ManualSeed(1);
        var cfg = new VitConfig { ImageSize = 8, PatchSize = 4, Channels = 1, Dim = 16, Depth = 2, Heads = 2, MlpDim = 32, NumClasses = 3 };
        using var model = new VisionTransformer(cfg);
        using var scope = TensorScope.Begin();
        var x = Tensor.Randn([2, 1, 8, 8]);
        var y = model.Forward(x);
        CollectionAssert.AreEqual(new long[] { 2, 3 }, y.Shape);
    }
}
