using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Vit.Torch.Checkpoints;
using Vit.Torch.Model;

namespace Vit.Torch.Tests;

[TestClass]
public sealed class SafetensorsTests
{
    private static readonly VitConfig TinyConfig = new()
    {
        ImageSize = 8, PatchSize = 4, Channels = 1, Dim = 16, Depth = 2, Heads = 2, MlpDim = 32, NumClasses = 3,
    };

    private string dir = "";

    // Values that bfloat16 (8 significant bits) holds exactly.
    private static readonly float[] BFloat16Exact = [1, -2.5f, (float)Math.Pow(2, 100), 3.140625f, 0];

    [TestInitialize]
    public void Init()
    {
        dir = Path.Combine(Path.GetTempPath(), "vit-st-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
    }

    [TestCleanup]
    public void Cleanup()
    {
        Directory.Delete(dir, recursive: true);
    }

    private string PathOf(string name) => Path.Combine(dir, name);

    private static byte[] BytesOf(Tensor t)
    {
        var b = new byte[t.NumElements * t.DType.ElementSize()];
        t.CopyBytesTo(b);
        return b;
    }

    /// <summary>Writes a file by hand (not with the code under test): length prefix, header text, data.</summary>
    private string WriteRaw(string name, string header, byte[] data, ulong? lengthOverride = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var file = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, lengthOverride ?? (ulong)h.Length);
        h.CopyTo(file, 8);
        data.CopyTo(file, 8 + h.Length);
        var path = PathOf(name);
        File.WriteAllBytes(path, file);
        return path;
    }

    private static void AssertInvalid(string path, Action action, params string[] fragments)
    {
        var e = Assert.ThrowsExactly<InvalidDataException>(action);
        StringAssert.Contains(e.Message, path, "the message names the file");
        foreach (var f in fragments) StringAssert.Contains(e.Message, f);
    }

    private static void AssertInvalidOnLoadAndHeader(string path, params string[] fragments)
    {
        long live = Tensor.LiveCount;
        AssertInvalid(path, () => Safetensors.Load(path), fragments);
        AssertInvalid(path, () => Safetensors.ReadHeader(path), fragments);
        Assert.AreEqual(live, Tensor.LiveCount, "a failed load frees what it allocated");
    }

    // ------------------------------------------------------------------------------------------ round trips

    [TestMethod]
    public void RoundTripsEveryDTypeAndShape()
    {
        using var scope = TensorScope.Begin();
        Torch.ManualSeed(7);
        var f32 = Tensor.Randn([2, 3]);
        var tensors = new List<(string, Tensor)>
        {
            ("f32", f32),
            ("f64", Tensor.FromArray(new[] { 1.0 / 3, -0.0, double.MaxValue, double.Epsilon }, 4)),
            ("f16", Tensor.FromArray(new[] { (Half)1.5, (Half)(-2), Half.MaxValue, (Half)0.1, (Half)0, (Half)3 }, 3, 2)),
            ("bf16", Tensor.FromArray(BFloat16Exact, 5).To(DType.BFloat16)),
            ("i64", Tensor.FromArray(new[] { long.MinValue, -1, 0, long.MaxValue }, 2, 2)),
            ("i32", Tensor.FromArray(new[] { int.MinValue, 7, int.MaxValue }, 3)),
            ("i16", Tensor.FromArray(new short[] { short.MinValue, -3, short.MaxValue }, 3, 1)),
            ("i8", Tensor.FromArray(new sbyte[] { -128, -1, 127 }, 1, 3)),
            ("u8", Tensor.FromArray(new byte[] { 0, 128, 255 }, 3)),
            ("bool", Tensor.FromArray(new[] { true, false, true, true }, 2, 2)),
            ("scalar", Tensor.Scalar(42.5)),
            ("empty", Tensor.Empty([0, 3])),
            ("transposed", f32.Transpose(0, 1)),  // not contiguous: saved in row-major order of its own shape
        };
        var path = PathOf("all.safetensors");
        Safetensors.Save(path, tensors);

        var loaded = Safetensors.Load(path);
        CollectionAssert.AreEqual(tensors.Select(t => t.Item1).ToList(), loaded.Keys.ToList(), "header order is kept");
        foreach (var (name, t) in tensors)
        {
            var l = loaded[name];
            Assert.AreEqual(t.DType, l.DType, name);
            CollectionAssert.AreEqual(t.Shape, l.Shape, name);
            using var c = t.Contiguous();
            CollectionAssert.AreEqual(BytesOf(c), BytesOf(l), name);
        }
        Assert.AreEqual(0, loaded["scalar"].Dim);
        Assert.AreEqual(42.5, loaded["scalar"].Item());
        CollectionAssert.AreEqual(BFloat16Exact, loaded["bf16"].To(DType.Float32).ToArray<float>());
        using var expectT = f32.Transpose(0, 1).Contiguous();
        CollectionAssert.AreEqual(expectT.ToArray<float>(), loaded["transposed"].ToArray<float>());
    }

    [TestMethod]
    public void WrittenFileFollowsTheSpec()
    {
        // Checked byte by byte against the format, not by reading it back with the code under test.
        using var scope = TensorScope.Begin();
        var path = PathOf("spec.safetensors");
        Safetensors.Save(path, [("a", Tensor.FromArray(new float[] { 1, 2, 3 }, 3)), ("b", Tensor.FromArray(new long[] { -5 }, 1, 1))],
            new Dictionary<string, string> { ["format"] = "pt" });
        var file = File.ReadAllBytes(path);
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(file);
        Assert.AreEqual(0, (8 + n) % 8, "the data buffer starts 8-byte aligned");
        Assert.AreEqual(8 + n + 12 + 8, file.Length);
        var text = Encoding.UTF8.GetString(file, 8, (int)n);
        Assert.AreEqual(text.TrimEnd(' '), text.TrimEnd(), "padding is spaces");
        using var doc = JsonDocument.Parse(text);
        var root = doc.RootElement;
        Assert.AreEqual("pt", root.GetProperty("__metadata__").GetProperty("format").GetString());
        Assert.AreEqual("F32", root.GetProperty("a").GetProperty("dtype").GetString());
        Assert.AreEqual("[3]", root.GetProperty("a").GetProperty("shape").GetRawText());
        Assert.AreEqual("[0,12]", root.GetProperty("a").GetProperty("data_offsets").GetRawText());
        Assert.AreEqual("I64", root.GetProperty("b").GetProperty("dtype").GetString());
        Assert.AreEqual("[1,1]", root.GetProperty("b").GetProperty("shape").GetRawText());
        Assert.AreEqual("[12,20]", root.GetProperty("b").GetProperty("data_offsets").GetRawText());
        var data = file.AsSpan(8 + (int)n);
        Assert.AreEqual(2f, BinaryPrimitives.ReadSingleLittleEndian(data[4..]));
        Assert.AreEqual(-5L, BinaryPrimitives.ReadInt64LittleEndian(data[12..]));
    }

    [TestMethod]
    public void MetadataAndHeaderRoundTrip()
    {
        using var scope = TensorScope.Begin();
        var meta = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "quotes \" and ünïcödé ✓\nnewline", ["empty"] = "" };
        var path = PathOf("meta.safetensors");
        Safetensors.Save(path, [("x", Tensor.Zeros([2, 5])), ("e", Tensor.Zeros([0])), ("y", Tensor.Zeros([3], DType.Float16))], meta);

        var h = Safetensors.ReadHeader(path);
        // The given metadata, and the CRC-32 of the 46 data bytes (all zero here).
        var crc = System.IO.Hashing.Crc32.HashToUInt32(new byte[46]).ToString("x8");
        CollectionAssert.AreEquivalent(meta.Append(KeyValuePair.Create(Safetensors.CrcKey, crc)).ToList(), h.Metadata.ToList());
        Assert.AreEqual(0, h.DataStart % 8);
        Assert.AreEqual(46, h.DataLength);
        Assert.HasCount(3, h.Entries);
        var x = h.Entries[0];
        Assert.AreEqual(("x", DType.Float32, 0L, 40L), (x.Name, x.DType, x.Begin, x.End));
        CollectionAssert.AreEqual(new long[] { 2, 5 }, x.Shape.ToArray());
        Assert.AreEqual(("e", 0L), (h.Entries[1].Name, h.Entries[1].ByteLength));
        Assert.AreEqual(("y", DType.Float16, 40L, 46L), (h.Entries[2].Name, h.Entries[2].DType, h.Entries[2].Begin, h.Entries[2].End));

        Safetensors.Save(path, [("x", Tensor.Zeros([1]))]);
        CollectionAssert.AreEqual(new[] { Safetensors.CrcKey }, Safetensors.ReadHeader(path).Metadata.Keys.ToArray(), "only the CRC-32 when no metadata is given");
    }

    [TestMethod]
    public void VitRoundTripGivesBitIdenticalWeightsAndOutput()
    {
        Torch.ManualSeed(1);
        using var a = new VisionTransformer(TinyConfig);
        Torch.ManualSeed(2);
        using var b = new VisionTransformer(TinyConfig);
        a.Eval();
        b.Eval();
        using var scope = TensorScope.Begin();
        var x = Tensor.Randn([2, 1, 8, 8]);
        CollectionAssert.AreNotEqual(a.Forward(x).ToArray<float>(), b.Forward(x).ToArray<float>(), "differently seeded models differ before loading");

        var path = PathOf("vit.safetensors");
        a.SaveSafetensors(path, new Dictionary<string, string> { ["heads"] = "2" });
        long live = Tensor.LiveCount;
        b.LoadSafetensors(path);
        Assert.AreEqual(live, Tensor.LiveCount, "the loaded tensors are freed after copying");

        var pa = a.NamedParameters().ToList();
        var pb = b.NamedParameters().ToList();
        CollectionAssert.AreEqual(pa.Select(p => p.Name).ToList(), pb.Select(p => p.Name).ToList());
        Assert.Contains("blocks.1.attn.qkv.weight", pa.Select(p => p.Name).ToList());
        for (int i = 0; i < pa.Count; i++)
            CollectionAssert.AreEqual(BytesOf(pa[i].Parameter), BytesOf(pb[i].Parameter), pa[i].Name);
        Assert.IsTrue(pb.All(p => p.Parameter.RequiresGrad), "loaded parameters are still trainable");
        CollectionAssert.AreEqual(a.Forward(x).ToArray<float>(), b.Forward(x).ToArray<float>());
    }

    [TestMethod]
    public void StateDictSharesMemoryAndConvertsOnLoad()
    {
        Torch.ManualSeed(3);
        using var model = new VisionTransformer(TinyConfig);
        using var scope = TensorScope.Begin();
        var sd = model.StateDict();
        Assert.HasCount(model.NamedParameters().Count(), sd);
        sd["head.bias"].Dispose();  // disposing a state-dict handle does not free the parameter
        CollectionAssert.AreEqual(new float[3], model.Head!.Bias!.ToArray<float>());

        // A float64 checkpoint goes into a float32 model, converted.
        var doubled = model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.To(DType.Float64) * 2);
        var before = model.PosEmbed.ToArray<float>();
        model.LoadStateDict(doubled);
        Assert.AreEqual(DType.Float32, model.PosEmbed.DType);
        CollectionAssert.AreEqual(before.Select(v => v * 2).ToArray(), model.PosEmbed.ToArray<float>());
        CollectionAssert.AreEqual(model.PosEmbed.ToArray<float>(), sd["pos_embed"].ToArray<float>(), "state-dict tensors alias the parameters");
    }

    // ------------------------------------------------------------------------------------------ bad files

    [TestMethod]
    public void FileShorterThanEightBytes()
    {
        var path = PathOf("short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3, 4, 5]);
        AssertInvalidOnLoadAndHeader(path, "5 bytes long", "shorter than the 8-byte header length");
    }

    [TestMethod]
    public void HeaderLengthLargerThanFile()
    {
        var path = WriteRaw("long.safetensors", "{}", new byte[10], lengthOverride: 1000);
        AssertInvalidOnLoadAndHeader(path, "header length 1000 is larger than the 12 bytes that follow it");
        // A length near 2^64 must be rejected before anything is allocated for it.
        path = WriteRaw("huge.safetensors", "{}", [], lengthOverride: ulong.MaxValue - 3);
        AssertInvalidOnLoadAndHeader(path, $"header length {ulong.MaxValue - 3} is larger than the 2 bytes");
    }

    [TestMethod]
    public void TruncatedFile()
    {
        using var scope = TensorScope.Begin();
        var path = PathOf("trunc.safetensors");
        Safetensors.Save(path, [("a", Tensor.Ones([4])), ("b", Tensor.Ones([2, 2]))]);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^3]);
        AssertInvalidOnLoadAndHeader(path, "tensor 'b'", "data_offsets [16, 32] beyond the end of the data buffer (29 bytes; truncated file?)");
    }

    [TestMethod]
    public void HeaderIsNotJson()
    {
        var path = WriteRaw("nojson.safetensors", "this is not json", new byte[8]);
        AssertInvalidOnLoadAndHeader(path, "the header is not valid JSON");
        path = WriteRaw("array.safetensors", "[1, 2]  ", []);
        AssertInvalidOnLoadAndHeader(path, "the header is a JSON array, not an object");
        path = WriteRaw("utf8.safetensors", "{\"ab\": 1}", []);
        var raw = File.ReadAllBytes(path);
        raw[10] = 0xff;  // 'a' -> a byte that never occurs in UTF-8
        File.WriteAllBytes(path, raw);
        AssertInvalidOnLoadAndHeader(path, "not valid UTF-8");
    }

    [TestMethod]
    public void UnknownDType()
    {
        var path = WriteRaw("dtype.safetensors", """{"w": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}}""", new byte[4]);
        AssertInvalidOnLoadAndHeader(path, "tensor 'w'", "dtype 'F8_E4M3'", "unknown or not supported");
    }

    [TestMethod]
    public void ShapeAndOffsetSizeMismatch()
    {
        var path = WriteRaw("size.safetensors", """{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}""", new byte[8]);
        AssertInvalidOnLoadAndHeader(path, "tensor 'w' of dtype F32 and shape (3) needs 12 bytes, but its data_offsets [0, 8] span 8");
    }

    [TestMethod]
    public void BadShapesAndOffsets()
    {
        var path = WriteRaw("neg.safetensors", """{"w": {"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 0]}}""", []);
        AssertInvalidOnLoadAndHeader(path, "tensor 'w' has shape entry 1 = -1", "non-negative integers");
        path = WriteRaw("frac.safetensors", """{"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 10]}}""", new byte[10]);
        AssertInvalidOnLoadAndHeader(path, "tensor 'w' has shape entry 0 = 2.5");
        path = WriteRaw("order.safetensors", """{"w": {"dtype": "U8", "shape": [0], "data_offsets": [4, 2]}}""", new byte[4]);
        AssertInvalidOnLoadAndHeader(path, "tensor 'w' has data_offsets [4, 2]: begin is after end");
        path = WriteRaw("nooffsets.safetensors", """{"w": {"dtype": "U8", "shape": [1]}}""", new byte[1]);
        AssertInvalidOnLoadAndHeader(path, "tensor 'w' has no \"data_offsets\"");
        path = WriteRaw("dup.safetensors", """{"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "w": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}""", new byte[2]);
        AssertInvalidOnLoadAndHeader(path, "lists 'w' twice");
        path = WriteRaw("meta.safetensors", """{"__metadata__": {"epochs": 3}}""", []);
        AssertInvalidOnLoadAndHeader(path, "metadata 'epochs' is a JSON number, not a string");
        path = WriteRaw("bool.safetensors", """{"m": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}""", [1, 7]);
        AssertInvalid(path, () => Safetensors.Load(path), "tensor 'm' is BOOL but holds the byte 7");
    }

    [TestMethod]
    public void OverlappingTensors()
    {
        var path = WriteRaw("overlap.safetensors",
            """{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}""",
            new byte[12]);
        AssertInvalidOnLoadAndHeader(path, "tensors 'a' [0, 8] and 'b' [4, 12] overlap");
    }

    [TestMethod]
    public void HolesInTheDataBuffer()
    {
        var path = WriteRaw("hole.safetensors",
            """{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}}""",
            new byte[20]);
        AssertInvalidOnLoadAndHeader(path, "bytes [8, 12) of the data buffer belong to no tensor", "forbids holes");
        path = WriteRaw("tail.safetensors", """{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""", new byte[11]);
        AssertInvalidOnLoadAndHeader(path, "bytes [8, 11) at the end of the data buffer belong to no tensor");
        path = WriteRaw("start.safetensors", """{"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}""", new byte[12]);
        AssertInvalidOnLoadAndHeader(path, "bytes [0, 4) of the data buffer belong to no tensor");
    }

    [TestMethod]
    public void HandWrittenFileLoads()
    {
        // The positive control for the hand-written files above: an unpadded, out-of-order, valid file.
        var data = new byte[12];
        BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(0), 0.5f);
        BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(4), -9);
        var path = WriteRaw("ok.safetensors",
            """{"b": {"dtype": "I64", "shape": [], "data_offsets": [4, 12]}, "z": {"dtype": "F64", "shape": [0, 2], "data_offsets": [12, 12]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}""",
            data);
        var t = Safetensors.Load(path);
        try
        {
            CollectionAssert.AreEqual(new[] { "b", "z", "a" }, t.Keys.ToArray());
            Assert.AreEqual(-9, t["b"].Item());
            CollectionAssert.AreEqual(new long[] { 0, 2 }, t["z"].Shape);
            CollectionAssert.AreEqual(new[] { 0.5f }, t["a"].ToArray<float>());
        }
        finally
        {
            foreach (var v in t.Values) v.Dispose();
        }
    }

    // ------------------------------------------------------------------------------------------ saving

    [TestMethod]
    public void SaveRejectsBadNames()
    {
        using var scope = TensorScope.Begin();
        var t = Tensor.Zeros([1]);
        var path = PathOf("names.safetensors");
        var e = Assert.ThrowsExactly<ArgumentException>(() => Safetensors.Save(path, [("a", t), ("blocks.0.x", t), ("blocks.0.x", t)]));
        StringAssert.Contains(e.Message, "duplicate tensor name 'blocks.0.x'");
        e = Assert.ThrowsExactly<ArgumentException>(() => Safetensors.Save(path, [("", t)]));
        StringAssert.Contains(e.Message, "name is empty");
        e = Assert.ThrowsExactly<ArgumentException>(() => Safetensors.Save(path, [("__metadata__", t)]));
        StringAssert.Contains(e.Message, "reserved");
        Assert.IsFalse(File.Exists(path));
        Assert.IsEmpty(Directory.GetFiles(dir));
    }

    private static IEnumerable<(string, Tensor)> ThrowsAfterFirst(Tensor t)
    {
        yield return ("first", t);
        throw new IOException("simulated failure while enumerating");
    }

    [TestMethod]
    public void FailedSaveLeavesThePreviousFileIntact()
    {
        using var scope = TensorScope.Begin();
        var path = PathOf("model.safetensors");
        Safetensors.Save(path, [("old", Tensor.Full([100], 1.25))], new Dictionary<string, string> { ["v"] = "1" });
        var original = File.ReadAllBytes(path);
        var big = Tensor.Randn([64, 64]);

        // 1) The tensor sequence throws after its first item.
        var e = Assert.ThrowsExactly<IOException>(() => Safetensors.Save(path, ThrowsAfterFirst(big)));
        Assert.AreEqual("simulated failure while enumerating", e.Message);
        CollectionAssert.AreEqual(original, File.ReadAllBytes(path));
        CollectionAssert.AreEqual(new[] { path }, Directory.GetFiles(dir), "no temporary file is left behind");

        // 2) A crash midway through the data: the header and the first tensor are already on disk.
        long partialSize = -1;
        void DiskFailsAtTheSecondTensor(string name)
        {
            if (name != "second") return;
            var temp = Directory.GetFiles(dir).Single(f => f != path);
            partialSize = new FileInfo(temp).Length;
            throw new IOException("simulated disk failure");
        }
        e = Assert.ThrowsExactly<IOException>(() => Safetensors.SaveObserved(path, [("first", big), ("second", big)], null, DiskFailsAtTheSecondTensor));
        Assert.AreEqual("simulated disk failure", e.Message);
        Assert.IsGreaterThan(64 * 64 * 4, partialSize, "the failure happened after the first tensor's data was written");
        CollectionAssert.AreEqual(original, File.ReadAllBytes(path));
        CollectionAssert.AreEqual(new[] { path }, Directory.GetFiles(dir), "no temporary file is left behind");

        // 3) The same save without the fault replaces the file.
        Safetensors.Save(path, [("first", big), ("second", big)]);
        CollectionAssert.AreEqual(new[] { "first", "second" }, Safetensors.ReadHeader(path).Entries.Select(x => x.Name).ToArray());
    }

    // ------------------------------------------------------------------------------------------ state dicts

    [TestMethod]
    public void LoadWithWrongShapesListsEveryProblemAndChangesNothing()
    {
        Torch.ManualSeed(4);
        using var model = new VisionTransformer(TinyConfig);
        using var scope = TensorScope.Begin();
        var before = model.NamedParameters().Select(p => BytesOf(p.Parameter)).ToList();

        var weights = model.NamedParameters().ToDictionary(p => p.Name, p => Tensor.Ones(p.Parameter.Shape));
        weights["blocks.0.attn.qkv.weight"] = Tensor.Ones([30, 16]);
        weights.Remove("norm.bias");
        weights["fc_norm.weight"] = Tensor.Ones([16]);
        var path = PathOf("wrong.safetensors");
        Safetensors.Save(path, weights.Select(kv => (kv.Key, kv.Value)));

        var e = Assert.ThrowsExactly<ArgumentException>(() => model.LoadSafetensors(path));
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "3 problem(s), nothing was loaded");
        StringAssert.Contains(e.Message, "blocks.0.attn.qkv.weight: expected (48, 16), file has (30, 16)");
        StringAssert.Contains(e.Message, "norm.bias: missing (expected (16))");
        StringAssert.Contains(e.Message, "fc_norm.weight: unexpected");
        var after = model.NamedParameters().Select(p => BytesOf(p.Parameter)).ToList();
        for (int i = 0; i < before.Count; i++) CollectionAssert.AreEqual(before[i], after[i], "no weight changed");

        // Not strict: extra names are ignored, but a missing name and a wrong shape still are errors.
        e = Assert.ThrowsExactly<ArgumentException>(() => model.LoadStateDict(weights, strict: false));
        StringAssert.Contains(e.Message, "2 problem(s)");
        StringAssert.Contains(e.Message, "blocks.0.attn.qkv.weight: expected (48, 16), checkpoint has (30, 16)");
        Assert.DoesNotContain("fc_norm", e.Message);

        weights["blocks.0.attn.qkv.weight"] = Tensor.Ones([48, 16]);
        weights["norm.bias"] = Tensor.Ones([16]);
        weights["head.weight"] = Tensor.Ones([3, 16], DType.Int64);
        e = Assert.ThrowsExactly<ArgumentException>(() => model.LoadStateDict(weights, strict: false));
        StringAssert.Contains(e.Message, "head.weight: expected floating-point values, checkpoint has Int64");

        weights["head.weight"] = Tensor.Ones([3, 16]);
        model.LoadStateDict(weights, strict: false);
        Assert.IsTrue(model.Parameters().All(p => p.ToArray<float>().All(v => v == 1)), "every parameter was loaded");
    }
}
