using System.Text.Json.Nodes;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.Tests;

/// <summary>Our JSON writes enum values in snake_case, as its keys; files written with the .NET names still read.</summary>
[TestClass]
public sealed class JsonConventionTests
{
    [TestMethod]
    public void EnumValuesAreWrittenInSnakeCaseAndReadInBothForms()
    {
        var config = new VitConfig { ImageSize = 32, PatchSize = 8, Dim = 32, Depth = 1, Heads = 2, MlpDim = 64, NumClasses = 3, Pooling = VitPooling.Mean, ClassToken = true };
        var json = config.ToJson();
        Assert.AreEqual("mean", (string?)json["pooling"]);
        Assert.AreEqual(config, VitConfig.FromJson(json, "test"));
        foreach (var (written, expected) in new[] { ("Mean", VitPooling.Mean), ("ClassToken", VitPooling.ClassToken), ("class_token", VitPooling.ClassToken) })
        {
            var old = (JsonObject)json.DeepClone();
            old["pooling"] = written;
            Assert.AreEqual(expected, VitConfig.FromJson(old, "test").Pooling, written);
        }

        var pre = new VitPreprocessing(32, 3, Normalization.ImageNet) { ResizeMode = ResizeMode.Pad, Interpolation = Interpolation.Bicubic };
        var p = JsonNode.Parse(pre.ToJson().ToJsonString())!.AsObject();  // as a file holds it
        Assert.AreEqual("pad", (string?)p["resize_mode"]);
        Assert.AreEqual("bicubic", (string?)p["interpolation"]);
        p["resize_mode"] = "Pad";
        p["interpolation"] = "Bicubic";
        var read = VitPreprocessing.FromJson(p, "test");
        Assert.AreEqual(ResizeMode.Pad, read.ResizeMode);
        Assert.AreEqual(Interpolation.Bicubic, read.Interpolation);

        p["resize_mode"] = "PAD";
        var e = Assert.ThrowsExactly<InvalidDataException>(() => VitPreprocessing.FromJson(p, "test"));
        StringAssert.Contains(e.Message, "'resize_mode' is 'PAD', not one of stretch, pad, crop");
    }
}
