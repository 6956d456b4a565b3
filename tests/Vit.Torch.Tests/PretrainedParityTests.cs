using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.Torch.Tests;

/// <summary>
/// <see cref="PretrainedVit.Load"/> against the real torchvision <c>VisionTransformer</c> (Debian's python3-torchvision):
/// parity/pretrained_reference.py builds a custom shape (4 heads at hidden size 96, where D/64 would say 1) and the
/// standard <c>vit_b_32</c> with random order-one weights, writes them as torchvision <c>.pth</c> and safetensors, timm
/// safetensors and Hugging Face folders (names converted by the script, not by our maps), and records torchvision's
/// logits and <c>torch.nn.functional.interpolate</c>'s resampled position embeddings.
/// </summary>
[TestClass]
public sealed class PretrainedParityTests
{
    private static readonly Lazy<string> Fixtures = new(() =>
    {
        var dir = Path.Combine(Path.GetTempPath(), "vit-pretrained-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        Python.RunScript(Python.Script("pretrained_reference.py"), dir);
        return dir;
    });

    private static readonly string[] Labels = ["apple", "bee", "cat", "dune", "eel"];

    public TestContext TestContext { get; set; } = null!;

    [ClassCleanup]
    public static void DeleteFixtures()
    {
        if (Fixtures.IsValueCreated) Directory.Delete(Fixtures.Value, recursive: true);
    }

    private static string Custom(string name) => Path.Combine(Fixtures.Value, "custom", name);

    private static string B32(string name) => Path.Combine(Fixtures.Value, "b32", name);

    [TestMethod]
    [DataRow("tv.pth")]
    [DataRow("tv.safetensors")]
    [DataRow("timm.safetensors")]
    [DataRow("hf")]
    [DataRow("hf_bin")]
    [DataRow("hf_sharded")]
    public void CustomShapeGivesTorchvisionsLogits(string source)
    {
        // Only Hugging Face's config.json says the head count; the bare files need it from the caller.
        var options = source.StartsWith("hf", StringComparison.Ordinal) ? null : new PretrainedVitOptions { Heads = 4 };
        using var vit = PretrainedVit.Load(Custom(source), options);
        var c = vit.Model.Config;
        Assert.AreEqual((96, 4, 2, 192, 32, 8, 5), (c.Dim, c.Heads, c.Depth, c.MlpDim, c.ImageSize, c.PatchSize, c.NumClasses));
        Assert.AreEqual(1e-6, c.LayerNormEps);
        Assert.AreEqual(VitPooling.ClassToken, c.Pooling);
        CompareLogits(vit.Model, Custom("io.safetensors"), 1e-4, source);
    }

    [TestMethod]
    public void CustomShapeMatchesTorchvisionInFloat64()
    {
        using var vit = PretrainedVit.Load(Custom("hf"));
        vit.Model.To(DType.Float64);
        using var scope = TensorScope.Begin();
        var io = Safetensors.Load(Custom("io.safetensors"));
        using var noGrad = Torch.NoGrad();
        var ours = vit.Model.Forward(io["images"].To(DType.Float64));
        double diff = MaxAbsDiff(ours, io["logits64"]);
        TestContext.WriteLine($"float64: max |ours - torchvision| = {diff:E2}");
        Assert.IsLessThanOrEqualTo(1e-10, diff);
    }

    [TestMethod]
    [DataRow("tv.pth")]
    [DataRow("hf")]
    public void VitB32GivesTorchvisionsLogits(string source)
    {
        using var vit = PretrainedVit.Load(B32(source));  // D 768: 12 heads, published
        var c = vit.Model.Config;
        Assert.AreEqual((768, 12, 12, 3072, 224, 32, 1000), (c.Dim, c.Heads, c.Depth, c.MlpDim, c.ImageSize, c.PatchSize, c.NumClasses));
        CompareLogits(vit.Model, B32("io.safetensors"), 1e-4, source);
    }

    [TestMethod]
    [DataRow(160, "pos_160")]
    [DataRow(288, "pos_288")]
    public void ResampledPositionEmbeddingsEqualInterpolate(int imageSize, string expected)
    {
        using var vit = PretrainedVit.Load(B32("tv.pth"), new PretrainedVitOptions { ImageSize = imageSize });
        Assert.AreEqual(imageSize, vit.Model.Config.ImageSize);
        Assert.AreEqual(imageSize, vit.Preprocessing.ImageSize);
        using var scope = TensorScope.Begin();
        var io = Safetensors.Load(B32("io.safetensors"));
        double diff = MaxAbsDiff(vit.Model.PosEmbed, io[expected]);
        TestContext.WriteLine($"{expected}: max |ours - interpolate| = {diff:E2}");
        CollectionAssert.AreEqual(io[expected].Shape, vit.Model.PosEmbed.Shape);
        Assert.IsLessThanOrEqualTo(1e-6, diff);
        // The model runs at the new size.
        using var noGrad = Torch.NoGrad();
        CollectionAssert.AreEqual(new long[] { 1, 1000 }, vit.Model.Forward(Tensor.Randn([1, 3, imageSize, imageSize])).Shape);
    }

    [TestMethod]
    public void HuggingFaceFolderGivesItsLabelsAndPreprocessing()
    {
        using var vit = PretrainedVit.Load(Custom("hf"));
        Assert.AreEqual(CheckpointLayout.HuggingFace, vit.Layout);
        CollectionAssert.AreEqual(Labels, vit.Labels!.ToArray());
        var p = vit.Preprocessing;
        Assert.AreEqual((32, 3, ResizeMode.Stretch, Interpolation.Bilinear, 1.0), (p.ImageSize, p.Channels, p.ResizeMode, p.Interpolation, p.CropFraction));
        CollectionAssert.AreEqual(new[] { 0.5f, 0.5f, 0.5f }, p.Normalization.Mean);
        CollectionAssert.AreEqual(new[] { 0.5f, 0.5f, 0.5f }, p.Normalization.Std);
    }

    [TestMethod]
    public void TheWeightsFileOfAFolderIsReadWithTheFoldersConfig()
    {
        using var vit = PretrainedVit.Load(Path.Combine(Custom("hf"), "model.safetensors"));
        Assert.AreEqual(4, vit.Model.Config.Heads);  // from config.json: 96 is no published size
        CollectionAssert.AreEqual(Labels, vit.Labels!.ToArray());
    }

    [TestMethod]
    public void TorchvisionFilesGetTorchvisionsPreprocessing()
    {
        using var vit = PretrainedVit.Load(Custom("tv.pth"), new PretrainedVitOptions { Heads = 4 });
        Assert.AreEqual(CheckpointLayout.Torchvision, vit.Layout);
        Assert.IsNull(vit.Labels);
        var p = vit.Preprocessing;
        Assert.AreEqual((ResizeMode.Crop, Interpolation.Bilinear, 0.875), (p.ResizeMode, p.Interpolation, p.CropFraction));  // Resize(256) + CenterCrop(224)
        Assert.AreEqual(Normalization.ImageNet, p.Normalization);
    }

    [TestMethod]
    [DataRow("tv.pth")]
    [DataRow("timm.safetensors")]
    public void UnknownHeadCountIsAnErrorThatSaysHowToPassIt(string source)
    {
        var e = Assert.Throws<ArgumentException>(() => PretrainedVit.Load(Custom(source)));
        StringAssert.Contains(e.Message, "head count is unknown");
        StringAssert.Contains(e.Message, "hidden size 96");
        StringAssert.Contains(e.Message, "Heads");
    }

    [TestMethod]
    public void HeadsThatContradictTheConfigAreRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => PretrainedVit.Load(Custom("hf"), new PretrainedVitOptions { Heads = 6 }));
        StringAssert.Contains(e.Message, "Heads is 6");
        StringAssert.Contains(e.Message, "says 4");
    }

    private void CompareLogits(VisionTransformer model, string io, double tolerance, string what)
    {
        using var scope = TensorScope.Begin();
        var reference = Safetensors.Load(io);
        using var noGrad = Torch.NoGrad();
        var logits = model.Forward(reference["images"]);
        double diff = MaxAbsDiff(logits, reference["logits"]);
        double scale = reference["logits"].Abs().Max(1).Values.Max(0).Values.Item();
        TestContext.WriteLine($"{what}: max |ours - torchvision| = {diff:E2} (max |logit| {scale:F2})");
        Assert.IsGreaterThan(0.5, scale, "the reference logits are all but zero, so the comparison would prove nothing");
        Assert.IsLessThanOrEqualTo(tolerance, diff, $"{what}: logits differ from torchvision's by {diff:E3}");
    }

    private static double MaxAbsDiff(Tensor a, Tensor b)
    {
        CollectionAssert.AreEqual(b.Shape, a.Shape);
        using var scope = TensorScope.Begin();
        return (a.To(DType.Float64) - b.To(DType.Float64)).Abs().Flatten().Max(0).Values.Item();
    }
}
