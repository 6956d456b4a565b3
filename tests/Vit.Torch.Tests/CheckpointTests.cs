using System.IO.Compression;
using System.Text.Json.Nodes;
using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.Torch.Tests;

/// <summary>
/// <see cref="PretrainedVit.Load"/> on our own files and on damaged, hostile or unsupported ones; the timm variants
/// (fc_norm, mean pooling with a class token, headless) against the plain-PyTorch reference (parity/vit_reference.py).
/// </summary>
[TestClass]
public sealed class CheckpointTests : TempDirectoryTests
{
    private string PathOf(string name) => Path.Combine(Dir, name);

    /// <summary>D 96 with 4 heads (D/64 would say 1): the Fashion-MNIST example's shape, smaller.</summary>
    private static readonly VitConfig FourHeads = new()
    {
        ImageSize = 16, PatchSize = 4, Channels = 3, Dim = 96, Depth = 2, Heads = 4, MlpDim = 128, NumClasses = 3, LayerNormEps = 1e-5,
    };

    private static VisionTransformer Randomized(VitConfig config, ulong seed = 5)
    {
        Torch.ManualSeed(seed);
        var model = new VisionTransformer(config);
        TestModels.Randomize(model);
        model.Eval();
        return model;
    }

    private static float[] Logits(VisionTransformer model, Tensor images)
    {
        using var scope = TensorScope.Begin();
        using var noGrad = Torch.NoGrad();
        return model.Forward(images).ToArray<float>();
    }

    [TestMethod]
    public void OurSafetensorsCarryConfigPreprocessingAndLabelsAndReadBackExactly()
    {
        using var model = Randomized(FourHeads);
        var pre = new VitPreprocessing(16, 3, new Normalization([0.1f, 0.2f, 0.3f], [0.4f, 0.5f, 0.6f]))
        {
            ResizeMode = ResizeMode.Pad, Interpolation = Interpolation.Area, CropFraction = 0.8,
        };
        VitSafetensors.Save(PathOf("ours.safetensors"), model, pre, ["a", "b", "c"]);
        using var loaded = PretrainedVit.Load(PathOf("ours.safetensors"));
        Assert.AreEqual(FourHeads with { ClassToken = true }, loaded.Model.Config);
        Assert.AreEqual(pre, loaded.Preprocessing);
        CollectionAssert.AreEqual(new[] { "a", "b", "c" }, loaded.Labels!.ToArray());
        using var images = Tensor.Randn([2, 3, 16, 16]);
        CollectionAssert.AreEqual(Logits(model, images), Logits(loaded.Model, images));
    }

    [TestMethod]
    public void PlainSaveSafetensorsOfAViTCarriesItsConfigToo()
    {
        using var model = Randomized(FourHeads);
        model.SaveSafetensors(PathOf("plain.safetensors"));
        Assert.IsTrue(Safetensors.ReadHeader(PathOf("plain.safetensors")).Metadata.ContainsKey(VitMetadata.Config));
        using var loaded = PretrainedVit.Load(PathOf("plain.safetensors"));
        Assert.AreEqual(4, loaded.Model.Config.Heads);
        Assert.AreEqual(1e-5, loaded.Model.Config.LayerNormEps);
        using var images = Tensor.Randn([2, 3, 16, 16]);
        CollectionAssert.AreEqual(Logits(model, images), Logits(loaded.Model, images));
    }

    [TestMethod]
    public void PublishedHiddenSizesGiveTheirHeadCount()
    {
        using var model = Randomized(FourHeads with { Dim = 192, Heads = 3, MlpDim = 64 });
        Safetensors.Save(PathOf("bare.safetensors"), model.NamedParameters());  // timm names, no metadata
        using var loaded = PretrainedVit.Load(PathOf("bare.safetensors"));
        Assert.AreEqual(3, loaded.Model.Config.Heads);
        Assert.AreEqual(1e-6, loaded.Model.Config.LayerNormEps);  // timm's; the file does not say
    }

    [TestMethod]
    [DataRow(VitPooling.Mean, true, true, "mean")]     // timm's MAE/BEiT fine-tunes: class token, mean of the patches, fc_norm
    [DataRow(VitPooling.Mean, false, false, "mean")]   // simple ViT: no class token, norm then mean
    [DataRow(VitPooling.ClassToken, null, false, "token")]
    public void TimmVariantsMatchTheReference(VitPooling pooling, bool? classToken, bool fcNorm, string referencePooling)
    {
        var config = FourHeads with { Pooling = pooling, ClassToken = classToken, FcNorm = fcNorm, LayerNormEps = 1e-6 };
        using var model = Randomized(config);
        var weights = PathOf("variant.safetensors");
        Safetensors.Save(weights, model.NamedParameters(), new Dictionary<string, string> { ["heads"] = "4", ["pooling"] = referencePooling });
        var names = model.NamedParameters().Select(p => p.Name).ToHashSet();
        Assert.AreEqual(config.HasClassToken, names.Contains("cls_token"));
        Assert.AreEqual(fcNorm, names.Contains("fc_norm.weight"));
        Assert.AreEqual(!fcNorm, names.Contains("norm.weight"));

        // The file alone (timm names, no config of ours) gives the same model, pooling inferred from its tensors.
        using (var loaded = PretrainedVit.Load(weights, new PretrainedVitOptions { Heads = 4 }))
        {
            Assert.AreEqual(pooling, loaded.Model.Config.Pooling);
            Assert.AreEqual(config.HasClassToken, loaded.Model.Config.HasClassToken);
            Assert.AreEqual(fcNorm, loaded.Model.Config.FcNorm);
        }

        var inputs = PathOf("inputs.safetensors");
        using (var scope = TensorScope.Begin())
            Safetensors.Save(inputs, [("images", Tensor.Randn([3, 3, 16, 16])), ("w", Tensor.Randn([3, 3]))]);
        var output = PathOf("reference.safetensors");
        Python.RunScript(Python.Script("vit_reference.py"), weights, inputs, output);
        using var scope2 = TensorScope.Begin();
        var reference = Safetensors.Load(output);
        var ours = Logits(model, Safetensors.Load(inputs)["images"]);
        var theirs = reference["logits_f32"].ToArray<float>();
        double diff = ours.Zip(theirs, (a, b) => Math.Abs(a - b)).Max();
        TestContext.WriteLine($"{pooling}/{classToken}/{fcNorm}: max |ours - reference| = {diff:E2}");
        Assert.IsGreaterThan(0.1, theirs.Max(Math.Abs));
        Assert.IsLessThanOrEqualTo(1e-5, diff);
    }

    [TestMethod]
    public void HeadlessCheckpointGivesFeaturesAndTakesANewHead()
    {
        using var model = Randomized(FourHeads);
        Safetensors.Save(PathOf("headless.safetensors"), model.NamedParameters().Where(p => !p.Name.StartsWith("head.")));
        using var loaded = PretrainedVit.Load(PathOf("headless.safetensors"), new PretrainedVitOptions { Heads = 4, LayerNormEps = 1e-5 });
        Assert.AreEqual(0, loaded.Model.Config.NumClasses);
        Assert.IsNull(loaded.Model.Head);
        Assert.IsNull(loaded.Labels);
        using var scope = TensorScope.Begin();
        using var noGrad = Torch.NoGrad();
        var images = Tensor.Randn([2, 3, 16, 16]);
        CollectionAssert.AreEqual(model.ForwardFeatures(images).ToArray<float>(), loaded.Model.Forward(images).ToArray<float>());
        loaded.Model.ReplaceHead(7);
        CollectionAssert.AreEqual(new long[] { 2, 7 }, loaded.Model.Forward(images).Shape);
    }

    [TestMethod]
    public void HuggingFaceViTModelWithoutPrefixLoadsHeadlessAndDropsThePooler()
    {
        // A transformers ViTModel (no "vit." prefix, no classifier, a pooler): built by renaming a timm file by hand.
        using var model = Randomized(FourHeads with { LayerNormEps = 1e-12 });
        using var tensors = TensorScope.Begin();
        var p = model.StateDict();
        var hf = new List<(string, Tensor)>
        {
            ("embeddings.cls_token", p["cls_token"]), ("embeddings.position_embeddings", p["pos_embed"]),
            ("embeddings.patch_embeddings.projection.weight", p["patch_embed.proj.weight"]),
            ("embeddings.patch_embeddings.projection.bias", p["patch_embed.proj.bias"]),
            ("layernorm.weight", p["norm.weight"]), ("layernorm.bias", p["norm.bias"]),
            ("pooler.dense.weight", Tensor.Randn([96, 96])), ("pooler.dense.bias", Tensor.Randn([96])),
        };
        for (int i = 0; i < 2; i++)
        {
            string t = $"blocks.{i}.", h = $"encoder.layer.{i}.";
            var qkv = p[t + "attn.qkv.weight"].Chunk(3, 0);
            var qkvBias = p[t + "attn.qkv.bias"].Chunk(3, 0);
            string[] parts = ["query", "key", "value"];
            for (int k = 0; k < 3; k++)
            {
                hf.Add(($"{h}attention.attention.{parts[k]}.weight", qkv[k]));
                hf.Add(($"{h}attention.attention.{parts[k]}.bias", qkvBias[k]));
            }
            foreach (var (ours, theirs) in new[]
                     {
                         ("attn.proj", "attention.output.dense"), ("norm1", "layernorm_before"), ("norm2", "layernorm_after"),
                         ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense"),
                     })
                foreach (var w in new[] { "weight", "bias" })
                    hf.Add(($"{h}{theirs}.{w}", p[$"{t}{ours}.{w}"]));
        }
        var folder = Directory.CreateDirectory(PathOf("hf-vitmodel")).FullName;
        Safetensors.Save(Path.Combine(folder, "model.safetensors"), hf);
        File.WriteAllText(Path.Combine(folder, "config.json"), """
            {"model_type": "vit", "hidden_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
             "image_size": 16, "patch_size": 4, "num_channels": 3, "hidden_act": "gelu", "id2label": {"0": "LABEL_0", "1": "LABEL_1"}}
            """);
        using var loaded = PretrainedVit.Load(folder);
        Assert.AreEqual(0, loaded.Model.Config.NumClasses);
        Assert.AreEqual(1e-12, loaded.Model.Config.LayerNormEps);  // transformers' default, as config.json does not say
        Assert.IsNull(loaded.Labels);  // a backbone's placeholder labels are not class names
        Assert.AreEqual(Normalization.Half, loaded.Preprocessing.Normalization);  // ViTImageProcessor's default
        using var scope = TensorScope.Begin();
        using var noGrad = Torch.NoGrad();
        var images = Tensor.Randn([2, 3, 16, 16]);
        CollectionAssert.AreEqual(model.ForwardFeatures(images).ToArray<float>(), loaded.Model.Forward(images).ToArray<float>());
    }

    // ------------------------------------------------------------------------------------------------ unsupported

    [TestMethod]
    [DataRow("reg_token", "register tokens")]
    [DataRow("dist_token", "distillation token")]
    [DataRow("blocks.0.ls1.gamma", "LayerScale")]
    [DataRow("blocks.0.attn.q_norm.weight", "QK normalisation")]
    [DataRow("norm_pre.weight", "norm_pre")]
    public void UnsupportedTimmFeaturesAreNamed(string extra, string feature)
    {
        using var model = Randomized(FourHeads);
        using var t = Tensor.Zeros([1, 1, 96]);
        Safetensors.Save(PathOf("variant.safetensors"), model.NamedParameters().Append((extra, t)));
        var e = Assert.Throws<NotSupportedException>(() => PretrainedVit.Load(PathOf("variant.safetensors"), new PretrainedVitOptions { Heads = 4 }));
        StringAssert.Contains(e.Message, feature);
        StringAssert.Contains(e.Message, PathOf("variant.safetensors"));
    }

    [TestMethod]
    public void TorchvisionPreLogitsAreNamed()
    {
        using var t = Tensor.Zeros([4, 4]);
        Safetensors.Save(PathOf("tv.safetensors"), [("conv_proj.weight", t), ("encoder.pos_embedding", t), ("heads.pre_logits.weight", t)]);
        StringAssert.Contains(Assert.Throws<NotSupportedException>(() => PretrainedVit.Load(PathOf("tv.safetensors"))).Message, "pre-logits");
    }

    // ------------------------------------------------------------------------------------------------ damaged, hostile

    [TestMethod]
    public void NamesOfNoViTLayoutAreRefusedWithTheFirstNames()
    {
        using var t = Tensor.Zeros([2]);
        Safetensors.Save(PathOf("other.safetensors"), [("conv1.weight", t), ("fc.bias", t)]);
        var e = Assert.Throws<InvalidDataException>(() => PretrainedVit.Load(PathOf("other.safetensors")));
        StringAssert.Contains(e.Message, "not a ViT checkpoint");
        StringAssert.Contains(e.Message, "conv1.weight");
    }

    [TestMethod]
    public void RandomBytesAreNotACheckpoint()
    {
        File.WriteAllBytes(PathOf("noise.bin"), Enumerable.Range(0, 300).Select(i => (byte)(i * 37 + 11)).ToArray());
        var e = Assert.Throws<InvalidDataException>(() => PretrainedVit.Load(PathOf("noise.bin")));
        StringAssert.Contains(e.Message, PathOf("noise.bin"));
    }

    [TestMethod]
    public void MissingAndExtraTensorsAreListed()
    {
        using var model = Randomized(FourHeads);
        using var extra = Tensor.Zeros([3]);
        Safetensors.Save(PathOf("odd.safetensors"),
            model.NamedParameters().Where(p => p.Name != "blocks.1.mlp.fc2.bias").Append(("blocks.1.mlp.extra", extra)));
        var e = Assert.Throws<InvalidDataException>(() => PretrainedVit.Load(PathOf("odd.safetensors"), new PretrainedVitOptions { Heads = 4 }));
        StringAssert.Contains(e.Message, "blocks.1.mlp.fc2.bias: missing");
        StringAssert.Contains(e.Message, "blocks.1.mlp.extra: unexpected");
    }

    [TestMethod]
    public void ConfigThatContradictsTheWeightsIsRefused()
    {
        var folder = Directory.CreateDirectory(PathOf("hf")).FullName;
        using var model = Randomized(FourHeads);
        model.SavePretrained(folder);  // then config.json is replaced by the damaged one
        File.WriteAllText(Path.Combine(folder, "config.json"), """{"model_type": "vit", "hidden_size": 768, "num_attention_heads": 12}""");
        var e = Assert.Throws<InvalidDataException>(() => PretrainedVit.Load(folder));
        StringAssert.Contains(e.Message, "says hidden size 768, but the weights have 96");
    }

    [TestMethod]
    public void HugeDeclaredSizesInOurMetadataAreRefusedBeforeAllocating()
    {
        using var model = Randomized(FourHeads);
        var huge = (FourHeads with { Dim = 16384, Heads = 16, Depth = 256, MlpDim = 65536 }).ToJson();
        huge["dim"] = 1 << 30;
        Safetensors.Save(PathOf("huge.safetensors"), model.NamedParameters(), new Dictionary<string, string> { [VitMetadata.Config] = huge.ToJsonString() });
        var e = AssertNothingBuilt(watched => PretrainedVit.Load(PathOf("huge.safetensors"), watched));
        StringAssert.Contains(e.Message, "hidden size 1073741824 is larger than the limit 16384");
    }

    [TestMethod]
    public void DepthCountedFromNormsAloneDoesNotAllocateAModelTheFileCannotBack()
    {
        // Block 0 complete at D 768, then 99 blocks that hold only their first LayerNorm (a few KB): the depth read from
        // the names would build a 700M-parameter model (2.8 GB) before noticing the missing tensors.
        using var model = Randomized(FourHeads with { Dim = 768, Heads = 12, MlpDim = 64, Depth = 1 });
        using var norm = Tensor.Ones([768]);
        var tensors = model.NamedParameters().ToList();
        for (int i = 1; i < 100; i++) tensors.Add(($"blocks.{i}.norm1.weight", norm));
        Safetensors.Save(PathOf("hollow.safetensors"), tensors);
        var e = AssertNothingBuilt(watched => PretrainedVit.Load(PathOf("hollow.safetensors"), watched));
        StringAssert.Contains(e.Message, "parameters but the file holds only");
    }

    [TestMethod]
    [DataRow("expanded.pth")]  // every tensor one float expanded (stride 0): 28 KB claiming 304M parameters
    [DataRow("shared.pth")]    // every tensor a view of one 16.8 MB storage
    public void TorchFilesWhoseViewsClaimMoreThanTheirStoragesHoldBuildNothing(string name)
    {
        var dir2 = PathOf("hollow");
        Python.RunScript(Python.Script("hollow_checkpoints.py"), dir2);
        var e = AssertNothingBuilt(watched => PretrainedVit.Load(Path.Combine(dir2, name), watched));
        StringAssert.Contains(e.Message, "304,326,632 parameters but the file holds only");
    }

    [TestMethod]
    public void TorchFileWhoseStoragesShareBytesIsRefused()
    {
        // Storage 1's entry lies inside storage 0's data (a hand-made central directory): the bytes would count twice.
        var inner = LocalEntry("archive/data/1", new byte[64], out _);
        var pickle = PickleBuilder.StateDict(("a", b => b.FloatVector("0", inner.Length / 4)), ("b", b => b.FloatVector("1", 16)));
        var path = PathOf("aliased.pth");
        using (var w = new BinaryWriter(File.Create(path)))
        {
            var entries = new List<(string Name, long Offset, int Length)>();
            void Put(string n, byte[] data)
            {
                entries.Add((n, w.BaseStream.Position, data.Length));
                w.Write(LocalEntry(n, data, out _));
            }
            Put("archive/data.pkl", pickle);
            long outer = w.BaseStream.Position;
            Put("archive/data/0", inner);
            entries.Add(("archive/data/1", outer + 30 + "archive/data/0".Length, 64));
            long directory = w.BaseStream.Position;
            foreach (var (n, offset, length) in entries)
            {
                var nb = System.Text.Encoding.UTF8.GetBytes(n);
                w.Write(0x02014b50u); w.Write((ushort)20); w.Write((ushort)20); w.Write((ushort)0); w.Write((ushort)0); w.Write(0u); w.Write(0u);
                w.Write((uint)length); w.Write((uint)length); w.Write((ushort)nb.Length); w.Write((ushort)0); w.Write((ushort)0);
                w.Write((ushort)0); w.Write((ushort)0); w.Write(0u); w.Write((uint)offset); w.Write(nb);
            }
            long end = w.BaseStream.Position;
            w.Write(0x06054b50u); w.Write((ushort)0); w.Write((ushort)0); w.Write((ushort)entries.Count); w.Write((ushort)entries.Count);
            w.Write((uint)(end - directory)); w.Write((uint)directory); w.Write((ushort)0);
        }
        var e = Assert.Throws<InvalidDataException>(() => TorchCheckpoint.Open(path));
        StringAssert.Contains(e.Message, "'archive/data/0' and 'archive/data/1' share bytes of the file");
    }

    /// <summary>A zip local header (stored, CRC left 0: the reader does not check it) followed by the data.</summary>
    private static byte[] LocalEntry(string name, byte[] data, out int headerLength)
    {
        var nb = System.Text.Encoding.UTF8.GetBytes(name);
        var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            w.Write(0x04034b50u); w.Write((ushort)20); w.Write((ushort)0); w.Write((ushort)0); w.Write(0u); w.Write(0u);
            w.Write((uint)data.Length); w.Write((uint)data.Length); w.Write((ushort)nb.Length); w.Write((ushort)0); w.Write(nb);
            w.Write(data);
        }
        headerLength = 30 + nb.Length;
        return ms.ToArray();
    }

    /// <summary>Runs a load, with options that see any model being built, that must fail with an InvalidDataException
    /// before any model is allocated.</summary>
    private static InvalidDataException AssertNothingBuilt(Action<PretrainedVitOptions> load)
    {
        VitConfig? built = null;
        var watched = new PretrainedVitOptions { BeforeBuilding = c => built = c };
        var e = Assert.Throws<InvalidDataException>(() => load(watched));
        Assert.IsNull(built, $"a model of {built?.Dim} x {built?.Depth} was allocated before the file was refused");
        return e;
    }

    [TestMethod]
    public void ModelZipWhoseArchitectureDisagreesWithItsWeightsIsRefusedBeforeBuilding()
    {
        using var model = Randomized(FourHeads);
        var zip = PathOf("model.zip");
        VitModelZip.Save(zip, model, ["a", "b", "c"], new VitPreprocessing(16, 3, Normalization.ImageNet));
        using (var loaded = VitModelZip.Load(zip, null, out _, out _))
        using (var ones = Tensor.Ones([1, 3, 16, 16]))
            CollectionAssert.AreEqual(Logits(model, ones), Logits(loaded.Model, ones));

        // A few KB of model.json asking for a big model: the weights' shapes say otherwise, and nothing is built.
        RewriteModelJson(zip, j => j["architecture"]!["depth"] = 200);
        var e = AssertNothingBuilt(watched => VitModelZip.Load(zip, watched, out _, out _));
        StringAssert.Contains(e.Message, "says depth 200, but the weights have 2");
        RewriteModelJson(zip, j => j["architecture"]!["mlp_dim"] = 1 << 20);
        StringAssert.Contains(Assert.Throws<InvalidDataException>(() => VitModelZip.Load(zip, null, out _, out _)).Message, "MLP size 1048576 is larger than the limit");
    }

    [TestMethod]
    public void ModelZipWithAnAbsurdlyCompressedWeightsEntryIsRefused()
    {
        var zip = PathOf("bomb.zip");
        using (var a = ZipFile.Open(zip, ZipArchiveMode.Create))
        {
            using (var w = new StreamWriter(a.CreateEntry("model.json").Open()))
                w.Write(new JsonObject { ["format"] = VitModelZip.Magic, ["format_version"] = 2, ["architecture"] = FourHeads.ToJson(),
                    ["labels"] = new JsonArray("a", "b", "c"), ["preprocessing"] = new VitPreprocessing(16, 3, Normalization.ImageNet).ToJson() }.ToJsonString());
            using var s = a.CreateEntry("weights.safetensors", CompressionLevel.Optimal).Open();
            s.Write(new byte[16 << 20]);  // 16 MB of zeros deflate to a few KB
        }
        var e = Assert.Throws<InvalidDataException>(() => VitModelZip.Load(zip, null, out _, out _));
        StringAssert.Contains(e.Message, "zip bomb");
    }

    [TestMethod]
    public void ShardIndexCannotPointOutsideTheFolder()
    {
        var folder = Directory.CreateDirectory(PathOf("sharded")).FullName;
        File.WriteAllText(Path.Combine(folder, "config.json"), """{"model_type": "vit"}""");
        File.WriteAllText(Path.Combine(folder, "model.safetensors.index.json"), """{"weight_map": {"vit.layernorm.weight": "../secret.safetensors"}}""");
        var e = Assert.Throws<InvalidDataException>(() => PretrainedVit.Load(folder));
        StringAssert.Contains(e.Message, "'../secret.safetensors', which is not a file name in the model's folder");
    }

    [TestMethod]
    public void LabelsThatDoNotMatchTheHeadAreRefused()
    {
        var folder = Directory.CreateDirectory(PathOf("hf")).FullName;
        using var model = Randomized(FourHeads);
        model.SavePretrained(folder);  // then config.json is replaced by the damaged one
        File.WriteAllText(Path.Combine(folder, "config.json"), """{"model_type": "vit", "num_attention_heads": 4, "id2label": {"0": "x", "1": "y"}}""");
        StringAssert.Contains(Assert.Throws<InvalidDataException>(() => PretrainedVit.Load(folder)).Message, "names 2 labels for a head with 3 outputs");
        File.WriteAllText(Path.Combine(folder, "config.json"), """{"model_type": "vit", "num_attention_heads": 4, "id2label": {"0": "x", "7": "y", "2": "z"}}""");
        StringAssert.Contains(Assert.Throws<InvalidDataException>(() => PretrainedVit.Load(folder)).Message, "id2label has the key '7'");
        File.WriteAllText(Path.Combine(folder, "config.json"), """{"model_type": "deit"}""");
        StringAssert.Contains(Assert.Throws<NotSupportedException>(() => PretrainedVit.Load(folder)).Message, "distillation token");
    }

    [TestMethod]
    public void DuplicateJsonKeysAndZeroStdAreNamedAsDamagedFiles()
    {
        var folder = Directory.CreateDirectory(PathOf("hf")).FullName;
        using var model = Randomized(FourHeads);
        model.SavePretrained(folder);  // then config.json is replaced by the damaged one
        File.WriteAllText(Path.Combine(folder, "config.json"), """{"model_type": "vit", "num_attention_heads": 4, "num_attention_heads": 6}""");
        var e = Assert.Throws<InvalidDataException>(() => PretrainedVit.Load(folder));
        StringAssert.Contains(e.Message, "config.json");
        StringAssert.Contains(e.Message, "Duplicate property");
        File.WriteAllText(Path.Combine(folder, "config.json"), """{"model_type": "vit", "num_attention_heads": 4}""");
        File.WriteAllText(Path.Combine(folder, "preprocessor_config.json"), """{"image_mean": [0.5, 0.5, 0.5], "image_std": [0, 0, 0]}""");
        e = Assert.Throws<InvalidDataException>(() => PretrainedVit.Load(folder));
        StringAssert.Contains(e.Message, "preprocessor_config.json");
        StringAssert.Contains(e.Message, "Std values must be finite and positive");
    }

    [TestMethod]
    public void ImageSizeThatIsNotAMultipleOfThePatchIsRefused()
    {
        using var model = Randomized(FourHeads);
        VitSafetensors.Save(PathOf("m.safetensors"), model);
        var e = Assert.Throws<ArgumentException>(() => PretrainedVit.Load(PathOf("m.safetensors"), new PretrainedVitOptions { ImageSize = 18 }));
        StringAssert.Contains(e.Message, "image size 18 is not divisible by patch size 4");
    }

    [TestMethod]
    public void CropFractionResizesTheShorterSideThenCropsTheCentre()
    {
        using var image = Image.FromPixels(Enumerable.Range(0, 40 * 30 * 3).Select(i => (byte)(i * 7)).ToArray(), 40, 30, 3);
        var pre = new VitPreprocessing(14, 3, Normalization.ImageNet) { ResizeMode = ResizeMode.Crop, Interpolation = Interpolation.Bilinear, CropFraction = 0.875 };
        using var ours = pre.Resize(image);
        using var scaled = image.ResizeShorterSide(16, Interpolation.Bilinear);  // floor(14 / 0.875) = 16, as Resize(16)
        using var expected = scaled.CenterCrop(14, 14);                         // then CenterCrop(14)
        CollectionAssert.AreEqual(expected.ToBytes(), ours.ToBytes());
    }

    private static void RewriteModelJson(string zip, Action<JsonObject> change)
    {
        using var a = ZipFile.Open(zip, ZipArchiveMode.Update);
        var entry = a.GetEntry("model.json")!;
        JsonObject json;
        using (var s = entry.Open()) json = (JsonObject)JsonNode.Parse(s)!;
        change(json);
        entry.Delete();
        using var w = new StreamWriter(a.CreateEntry("model.json").Open());
        w.Write(json.ToJsonString());
    }
}
