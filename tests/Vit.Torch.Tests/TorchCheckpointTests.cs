using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;
using Vit.Torch.Checkpoints;
using static Vit.Torch.Tests.PickleBuilder;

namespace Vit.Torch.Tests;

/// <summary>
/// <see cref="TorchCheckpoint"/> on real torch.save files (parity/torch_checkpoints.py, run once per class with
/// Debian's python3-torch), compared bit for bit with the tensors that the script wrote independently; and on hostile
/// or broken files made here opcode by opcode, each of which must be refused with an InvalidDataException that names
/// the file and the problem, without running anything.
/// </summary>
[TestClass]
public sealed class TorchCheckpointTests
{
    private static readonly Lazy<string> Real = new(WriteRealFiles);

    private string dir = "";

    [TestInitialize]
    public void Init()
    {
        dir = Path.Combine(Path.GetTempPath(), "vit-pt-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
    }

    [TestCleanup]
    public void Cleanup() => Directory.Delete(dir, recursive: true);

    [ClassCleanup]
    public static void DeleteRealFiles()
    {
        if (Real.IsValueCreated) Directory.Delete(Real.Value, recursive: true);
    }

    private static string WriteRealFiles()
    {
        var d = Path.Combine(Path.GetTempPath(), "vit-pt-real-" + Guid.NewGuid().ToString("N"));
        Python.RunScript(Python.Script("torch_checkpoints.py"), d);
        return d;
    }

    private static string RealFile(string name) => Path.Combine(Real.Value, name);

    private string PathOf(string name) => Path.Combine(dir, name);

    private static byte[] BytesOf(Tensor t)
    {
        var b = new byte[t.NumElements * t.DType.ElementSize()];
        t.CopyBytesTo(b);
        return b;
    }

    private static byte[] Floats(params float[] values) => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    /// <summary>Live tensor handles, once tensors that other tests left to the finalizer are gone (they would lower the count midway).</summary>
    private static long LiveCount()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        return Tensor.LiveCount;
    }

    /// <summary>Reads every tensor of <paramref name="path"/> and compares it, bit for bit, with the expected safetensors file.</summary>
    private static IReadOnlyList<TensorInfo> AssertMatches(string path, string expectedPath)
    {
        long live = LiveCount();
        List<TensorInfo> infos;
        using (var file = TorchCheckpoint.Open(path))
        using (var expected = Safetensors.Open(expectedPath))
        {
            infos = [.. file.Tensors];
            Assert.AreEqual(path, file.Path);
            Assert.IsEmpty(file.Metadata);
            CollectionAssert.AreEqual(expected.Tensors.Select(t => t.Name).ToList(), infos.Select(t => t.Name).ToList(), "the names, in the state dict's order");
            foreach (var want in expected.Tensors)
            {
                var info = infos.Single(t => t.Name == want.Name);
                Assert.AreEqual(want.DType, info.DType, want.Name);
                CollectionAssert.AreEqual(want.Shape.ToList(), info.Shape.ToList(), want.Name);
                using var ours = file.Read(want.Name);
                using var theirs = expected.Read(want.Name);
                Assert.AreEqual(want.DType, ours.DType, want.Name);
                CollectionAssert.AreEqual(theirs.Shape, ours.Shape, want.Name);
                CollectionAssert.AreEqual(BytesOf(theirs), BytesOf(ours), $"{want.Name}: bit for bit");
            }
            Assert.ThrowsExactly<KeyNotFoundException>(() => file.Read("no such tensor"));
        }
        Assert.AreEqual(live, Tensor.LiveCount, "reading leaves only the tensors the caller disposed");
        return infos;
    }

    private static IReadOnlyList<TensorInfo> AssertMatchesPyTorch(string name) => AssertMatches(RealFile(name), RealFile(name + ".expected.safetensors"));

    private static InvalidDataException AssertRefused(string path, params string[] fragments)
    {
        long live = LiveCount();
        var e = Assert.ThrowsExactly<InvalidDataException>(() => TorchCheckpoint.Open(path).Dispose());
        StringAssert.Contains(e.Message, $"'{path}'", "the message names the file");
        foreach (var f in fragments) StringAssert.Contains(e.Message, f);
        Assert.AreEqual(live, Tensor.LiveCount);
        return e;
    }

    private string Checkpoint(string name, byte[] pickle, params (string Key, byte[] Data)[] storages)
    {
        var path = PathOf(name);
        WriteCheckpoint(path, pickle, storages);
        return path;
    }

    // ------------------------------------------------------------------------------------------ real torch.save files

    [TestMethod]
    public void EveryStorageClassAndStridedViewMatchesPyTorch()
    {
        var infos = AssertMatchesPyTorch("tensors.pt");
        var shapes = infos.ToDictionary(t => t.Name, t => string.Join(",", t.Shape));
        Assert.AreEqual("", shapes["scalar"], "a 0-d tensor");
        Assert.AreEqual("0,3", shapes["empty"]);
        Assert.AreEqual("5,4", shapes["transposed"]);
        Assert.AreEqual("5,4", shapes["shared_b"]);
        CollectionAssert.AreEquivalent(
            new[] { DType.Float32, DType.Float64, DType.Float16, DType.BFloat16, DType.Int64, DType.Int32, DType.Int16, DType.Int8, DType.UInt8, DType.Bool },
            infos.Select(t => t.DType).Distinct().ToArray(), "every storage class that Vit reads");
    }

    [TestMethod]
    public void ParametersMatchPyTorch() => AssertMatchesPyTorch("pytorch_model.bin");

    [TestMethod]
    public void TorchvisionVisionTransformerMatchesPyTorch()
    {
        var names = AssertMatchesPyTorch("vit_b_16.pth").Select(t => t.Name).ToList();
        foreach (var n in new[] { "class_token", "conv_proj.weight", "encoder.pos_embedding", "encoder.layers.encoder_layer_1.self_attention.in_proj_weight", "heads.head.weight" })
            CollectionAssert.Contains(names, n);
    }

    [TestMethod]
    public void TrainingCheckpointIsReadThroughItsModelEntry()
    {
        var names = AssertMatchesPyTorch("wrapped.pt").Select(t => t.Name).ToList();
        CollectionAssert.AreEqual(new[] { "weight", "bias" }, names, "the optimizer's tensors and the epoch are not part of the state dict");
    }

    [TestMethod]
    public void Protocol4PickleMatchesPyTorch()
    {
        var names = AssertMatchesPyTorch("protocol4.pt").Select(t => t.Name).ToList();
        CollectionAssert.Contains(names, "tied");
    }

    [TestMethod]
    public void Zip64FieldsAndOtherAcceptedFormsAreRead()
    {
        // Sizes and offsets only in zip64 extra fields; a plain dict at the top; a storage saved from 'cuda:0'; the
        // optional seventh argument of _rebuild_tensor_v2 (None); a parameter; one tensor object under two names (BINGET).
        var b = new PickleBuilder().Proto().Op('}').Mark().Unicode("w");
        b.Global("torch._utils", "_rebuild_tensor_v2").Mark()
            .Mark().Unicode("storage").Global("torch", "DoubleStorage").Unicode("7").Unicode("cuda:0").Int(3).Op('t').Op('Q')
            .Int(1).IntTuple(2).IntTuple(1).Raw(0x88).OrderedDict().Op('N').Op('t').Op('R').Put(40);
        b.Unicode("p").Global("torch._utils", "_rebuild_parameter").Mark().Tensor("DoubleStorage", "7", 3, 0, [3], [1]).Raw(0x88).OrderedDict().Op('t').Op('R');
        b.Unicode("w_again").Get(40);
        var pickle = b.Op('u').Stop().ToArray();
        var path = PathOf("zip64.pt");
        var values = new double[] { 0.5, -1.25, 3 };
        WriteZip64(path, new ZipItem("zip64/data.pkl", pickle), new ZipItem("zip64/data/7", MemoryMarshal.AsBytes(values.AsSpan()).ToArray()),
            new ZipItem("zip64/version", "3\n"u8.ToArray()));
        using var file = TorchCheckpoint.Open(path);
        CollectionAssert.AreEqual(new[] { "w", "p", "w_again" }, file.Tensors.Select(t => t.Name).ToList());
        Assert.IsTrue(file.Tensors.All(t => t.DType == DType.Float64));
        using var w = file.Read("w");
        using var p = file.Read("p");
        using var again = file.Read("w_again");
        CollectionAssert.AreEqual(new[] { -1.25, 3 }, w.ToArray<double>());
        CollectionAssert.AreEqual(values, p.ToArray<double>());
        CollectionAssert.AreEqual(new[] { -1.25, 3 }, again.ToArray<double>());
    }

    [TestMethod]
    public void WrapperKeyThatHoldsADictOfTensorsIsChosen()
    {
        // {'state_dict': {'step': 5}, 'model': {'w': tensor}}: 'state_dict' comes first but holds no tensors.
        var b = new PickleBuilder().Proto().Op('}').Mark().Unicode("state_dict").Op('}').Unicode("step").Int(5).Op('s');
        var pickle = b.Unicode("model").Op('}').Unicode("w").FloatVector("0", 2).Op('s').Op('u').Stop().ToArray();
        using var file = TorchCheckpoint.Open(Checkpoint("choice.pt", pickle, ("0", Floats(1, 2))));
        CollectionAssert.AreEqual(new[] { "w" }, file.Tensors.Select(t => t.Name).ToList());
    }

    [TestMethod]
    public void DataParallelPrefixIsRemoved()
    {
        var names = AssertMatchesPyTorch("ddp.pt").Select(t => t.Name).ToList();
        CollectionAssert.AreEqual(new[] { "f32", "f64", "f16" }, names);
    }

    [TestMethod]
    public void DeflatedCopyOfARealFileIsRefusedForItsStoragesOnly()
    {
        // torch.save stores tensor data uncompressed; a recompressed copy would inflate a storage again for every view
        // of it, so its storages are refused, while a deflated pickle is read (once).
        var path = PathOf("deflated.pt");
        List<ZipItem> items;
        using (var source = ZipFile.OpenRead(RealFile("tensors.pt")))
            items = source.Entries.Select(e =>
            {
                using var s = e.Open();
                var data = new MemoryStream();
                s.CopyTo(data);
                return new ZipItem(e.FullName, data.ToArray(), Deflate: true);
            }).ToList();
        WriteZip(path, [.. items]);
        using (var check = ZipFile.OpenRead(path))
            Assert.IsTrue(check.Entries.Any(e => e.CompressedLength < e.Length), "the copy is really compressed");
        AssertRefused(path, "is compressed in the archive", "torch.save stores tensor data uncompressed");

        WriteZip(path, [.. items.Select(i => i.Name.EndsWith("data.pkl", StringComparison.Ordinal) ? i : i with { Deflate = false })]);
        AssertMatches(path, RealFile("tensors.pt.expected.safetensors"));
    }

    [TestMethod]
    public void LegacyFormatIsRefusedWithHowToResave()
    {
        AssertRefused(RealFile("legacy.pt"), "legacy format", "torch.save(obj, path)");

        // The same start, made by hand: PROTO 2, LONG1 of the magic number 0x1950a86a20f9469cfc6c, STOP.
        var path = PathOf("legacy-by-hand.pt");
        var magic = new PickleBuilder().Proto().Raw(0x8a, 10).Raw(Convert.FromHexString("6cfc9c46f9206aa85019")).Stop().ToArray();
        File.WriteAllBytes(path, magic);
        AssertRefused(path, "legacy format", "torch.save(obj, path)");
    }

    // ------------------------------------------------------------------------------------------ globals and opcodes

    /// <summary>
    /// Checks that a checkpoint of <paramref name="pickle"/> is refused naming <paramref name="global"/> and that its
    /// payload (which creates <paramref name="marker"/>) did not run, then that Python's own pickle does run it (so the
    /// refusal is what protects).
    /// </summary>
    private void AssertLiveButRefused(byte[] pickle, string global, string marker)
    {
        var path = Checkpoint("hostile.pt", pickle);
        AssertRefused(path, $"refuses the global '{global}'");
        Assert.IsFalse(File.Exists(marker), "nothing of the pickle ran");

        var raw = PathOf("hostile.pkl");
        File.WriteAllBytes(raw, pickle);
        Python.RunScript(Python.Script("unpickle.py"), raw);
        Assert.IsTrue(File.Exists(marker), "Python's pickle runs the same bytes: the payload is live");
    }

    [TestMethod]
    public void PosixSystemIsRefusedAndNeverRuns()
    {
        var marker = PathOf("pwned-posix");
        // posix.system('touch MARKER'), as pickle.dumps of os.system writes it under Linux.
        var pickle = new PickleBuilder().Proto().Global("posix", "system").Unicode($"touch '{marker}'").Raw(0x85).Op('R').Stop().ToArray();
        AssertLiveButRefused(pickle, "posix.system", marker);
    }

    [TestMethod]
    public void BuiltinsEvalIsRefusedAndNeverRuns()
    {
        var marker = PathOf("pwned-eval");
        var pickle = new PickleBuilder().Proto().Global("builtins", "eval").Unicode($"open(r'{marker}', 'w').close()").Raw(0x85).Op('R').Stop().ToArray();
        AssertLiveButRefused(pickle, "builtins.eval", marker);
    }

    [TestMethod]
    public void StackGlobalIsRefusedAndNeverRuns()
    {
        // Protocol 4 names the global through two strings on the stack (STACK_GLOBAL), inside a FRAME, with MEMOIZE.
        var marker = PathOf("pwned-stack");
        var body = new PickleBuilder().ShortUnicode("os").Raw(0x94).ShortUnicode("system").Raw(0x94).Raw(0x93).Raw(0x94)
            .ShortUnicode($"touch '{marker}'").Raw(0x94).Raw(0x85).Raw(0x94).Op('R').Raw(0x94).Stop().ToArray();
        var frame = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(frame, (ulong)body.Length);
        var pickle = new PickleBuilder().Proto(4).Raw(0x95).Raw(frame).Raw(body).ToArray();
        AssertLiveButRefused(pickle, "os.system", marker);
    }

    [TestMethod]
    [DataRow("subprocess", "Popen")]
    [DataRow("builtins", "exec")]
    [DataRow("builtins", "getattr")]
    [DataRow("_codecs", "encode")]
    [DataRow("argparse", "Namespace")]
    [DataRow("torch", "load")]
    [DataRow("torch._utils", "_rebuild_from_type_v2")]
    [DataRow("torch.nn.modules.linear", "Linear")]
    [DataRow("numpy.core.multiarray", "_reconstruct")]
    [DataRow("collections", "defaultdict")]
    [DataRow("mymodule", "Exploit")]
    public void GlobalsOutsideTheStateDictSetAreRefused(string module, string name)
    {
        // A __reduce__-style object as a state dict value, next to a good tensor: GLOBAL, EMPTY_TUPLE, REDUCE.
        var pickle = StateDict(("w", b => b.FloatVector("0", 2)), ("x", b => b.Global(module, name).Op(')').Op('R')));
        var path = Checkpoint("global.pt", pickle, ("0", Floats(1, 2)));
        AssertRefused(path, $"refuses the global '{module}.{name}'", "archive/data.pkl", "GLOBAL");
    }

    [TestMethod]
    public void ObjectInATrainingCheckpointIsRefused()
    {
        // {'model': state_dict, 'args': argparse.Namespace()} as protocol 2 writes an object: GLOBAL, EMPTY_TUPLE, NEWOBJ, BUILD.
        var b = new PickleBuilder().Proto().Op('}').Mark().Unicode("model").Op('}').Unicode("w").FloatVector("0", 2).Op('s');
        b.Unicode("args").Global("argparse", "Namespace").Op(')').Raw(0x81).Op('}').Unicode("lr").Int(1).Op('s').Op('b');
        var path = Checkpoint("args.pt", b.Op('u').Stop().ToArray(), ("0", Floats(1, 2)));
        AssertRefused(path, "refuses the global 'argparse.Namespace'");
    }

    [TestMethod]
    [DataRow(new byte[] { (byte)'i' }, "INST (0x69 'i') at byte 2")]
    [DataRow(new byte[] { (byte)'o' }, "OBJ (0x6f 'o') at byte 2")]
    [DataRow(new byte[] { 0x81 }, "NEWOBJ (0x81) at byte 2")]
    [DataRow(new byte[] { 0x82, 1 }, "EXT1 (0x82) at byte 2")]
    [DataRow(new byte[] { (byte)'S' }, "STRING (0x53 'S') at byte 2")]
    [DataRow(new byte[] { (byte)'V' }, "UNICODE (0x56 'V') at byte 2")]
    [DataRow(new byte[] { 0x8b, 0, 0, 0, 0 }, "LONG4 (0x8b) at byte 2")]
    [DataRow(new byte[] { 0xff }, "0xff (not a pickle opcode) at byte 2")]
    public void OtherOpcodesAreRefusedByNameAndOffset(byte[] op, string fragment)
    {
        var pickle = new PickleBuilder().Proto().Raw(op).Stop().ToArray();
        AssertRefused(Checkpoint("opcode.pt", pickle), fragment, "is not one that torch.save writes");
    }

    [TestMethod]
    public void AllowedCallablesOnlyWithTheirArguments()
    {
        var cases = new (string Name, Action<PickleBuilder> Value, string Fragment)[]
        {
            ("ordered dict with items", b => b.Global("collections", "OrderedDict").Mark().Unicode("a").Op('t').Op('R'), "collections.OrderedDict with 1 argument;"),
            ("storage class called", b => b.Global("torch", "FloatStorage").Op(')').Op('R'), "calls 'torch.FloatStorage'"),
            ("rebuild on a string", b => b.Global("torch._utils", "_rebuild_tensor_v2").Mark().Unicode("storage").Int(0).IntTuple(2).IntTuple(1).Raw(0x89).OrderedDict().Op('t').Op('R'),
                "_rebuild_tensor_v2 on a string instead of a storage"),
            ("negative size", b => b.Tensor("FloatStorage", "0", 2, 0, [-2], [1]), "size entry 0 as -2"),
            ("negative stride", b => b.Tensor("FloatStorage", "0", 2, 0, [2], [-1]), "stride entry 0 as -1"),
            ("sizes and strides", b => b.Tensor("FloatStorage", "0", 2, 0, [2], [1, 1]), "1 size but 2 strides"),
            ("negative offset", b => b.Tensor("FloatStorage", "0", 2, -1, [2], [1]), "storage_offset -1"),
            ("17 dimensions", b => b.Tensor("FloatStorage", "0", 2, 0, Enumerable.Repeat(1L, 17).ToArray(), Enumerable.Repeat(1L, 17).ToArray()), "17 dimensions"),
            ("parameter of a string", b => b.Global("torch._utils", "_rebuild_parameter").Mark().Unicode("x").Raw(0x88).OrderedDict().Op('t').Op('R'),
                "_rebuild_parameter on a string"),
            ("other persistent id", b => b.Mark().Unicode("module").Unicode("x").Op('t').Op('Q'), "persistent id that is a tuple of 2 items"),
            ("build on a dict", b => b.Op('}').Op('}').Op('b'), "sets the state of a dict"),
            ("call a string", b => b.Unicode("eval").Op(')').Op('R'), "calls a string, which is not a function"),
            ("tensor metadata", b => b.Global("torch._utils", "_rebuild_tensor_v2").Mark()
                .Mark().Unicode("storage").Global("torch", "FloatStorage").Unicode("0").Unicode("cpu").Int(2).Op('t').Op('Q')
                .Int(0).IntTuple(2).IntTuple(1).Raw(0x89).OrderedDict().Op('}').Unicode("neg").Raw(0x88).Op('s').Op('t').Op('R'), "tensor metadata (a dict of 1 entry"),
        };
        foreach (var (name, value, fragment) in cases)
        {
            var path = Checkpoint(name.Replace(' ', '-') + ".pt", StateDict(("x", value)), ("0", Floats(1, 2)));
            AssertRefused(path, fragment, "archive/data.pkl");
        }
    }

    [TestMethod]
    public void MalformedPicklesAreRefused()
    {
        var cases = new (string Name, byte[] Pickle, string Fragment)[]
        {
            ("no stop", new PickleBuilder().Proto().Op('}').ToArray(), "without a STOP opcode"),
            ("cut in an int", new PickleBuilder().Proto().Op('J').Raw(1, 2).ToArray(), "needs 4 more bytes, but the pickle ends after 2"),
            ("memo never stored", new PickleBuilder().Proto().Get(5).Stop().ToArray(), "memo entry 5, which was never stored"),
            ("appends without mark", new PickleBuilder().Proto().Op(']').Op('e').Stop().ToArray(), "needs a MARK"),
            ("pop of an empty stack", new PickleBuilder().Proto().Op('0').ToArray(), "needs a MARK"),
            ("below a mark", new PickleBuilder().Proto().Op(']').Mark().Int(1).Op('a').Stop().ToArray(), "finds the stack empty"),
            ("two values at stop", new PickleBuilder().Proto().Op('}').Op('}').Stop().ToArray(), "2 values"),
            ("bytes after stop", new PickleBuilder().Proto().Op('}').Stop().Op('N').ToArray(), "followed by 1 more byte"),
            ("odd setitems", new PickleBuilder().Proto().Op('}').Mark().Int(1).Op('u').Stop().ToArray(), "do not make (key, value) pairs"),
            ("long1 of 9 bytes", new PickleBuilder().Proto().Raw(0x8a, 9).Raw(new byte[9]).Stop().ToArray(), "integer of 9 bytes"),
            ("protocol 6", new PickleBuilder().Proto(6).Op('}').Stop().ToArray(), "pickle protocol 6"),
            ("bad utf-8", new PickleBuilder().Proto().Op('X').UInt32(2).Raw(0xc3, 0x28).Stop().ToArray(), "not valid UTF-8"),
            ("frame past the end", new PickleBuilder().Proto(4).Raw(0x95).Raw(BitConverter.GetBytes(1000L)).Op('}').Stop().ToArray(), "frame of 1000 bytes"),
            ("global without newline", new PickleBuilder().Proto().Op('c').Raw("collections"u8.ToArray()).ToArray(), "runs past the end of the pickle"),
        };
        foreach (var (name, pickle, fragment) in cases)
            AssertRefused(Checkpoint(name.Replace(' ', '-') + ".pt", pickle), fragment, "archive/data.pkl");
    }

    [TestMethod]
    [DataRow((byte)'X', 4, 0x8000_0000UL, "string of 2147483648 bytes")]       // BINUNICODE
    [DataRow((byte)'X', 4, 0xFFFF_FFFFUL, "string of 4294967295 bytes")]
    [DataRow((byte)0x8d, 8, 1UL << 62, "string of 4611686018427387904 bytes")]  // BINUNICODE8
    [DataRow((byte)'B', 4, 0x8000_0000UL, "bytes object of 2147483648 bytes")]  // BINBYTES
    public void DeclaredLengthsBeyondThePickleAreRefused(byte op, int lengthBytes, ulong length, string fragment)
    {
        var len = new byte[lengthBytes];
        if (lengthBytes == 4) BinaryPrimitives.WriteUInt32LittleEndian(len, (uint)length);
        else BinaryPrimitives.WriteUInt64LittleEndian(len, length);
        var pickle = new PickleBuilder().Proto().Raw(op).Raw(len).Raw("abc"u8.ToArray()).Stop().ToArray();
        long before = GC.GetAllocatedBytesForCurrentThread();
        AssertRefused(Checkpoint("length.pt", pickle), fragment, "only 4 bytes of the pickle remain");
        Assert.IsLessThan(64L << 20, GC.GetAllocatedBytesForCurrentThread() - before, "nothing was allocated for the declared length");
    }

    [TestMethod]
    public void MemoBombIsCheap()
    {
        // Shared references make a structure of 2^200000 leaves: a list that holds itself 1000 times, then 200000 levels
        // of tuples that each hold the level below twice. Anything that walked it would never finish.
        static PickleBuilder Bomb(PickleBuilder b)
        {
            const uint Levels = 200_000;
            b.Op(']').Put(1).Mark();
            for (int i = 0; i < 1000; i++) b.Get(1);
            b.Op('e').Op('0');                                                                     // memo 1 = L = [L] * 1000
            for (uint level = 2; level < Levels; level++) b.Get(level - 1).Op('2').Raw(0x86).Put(level).Op('0');  // memo n = (memo n-1,) * 2
            return b.Get(Levels - 1);
        }
        var inStateDict = Bomb(new PickleBuilder().Proto().OrderedDict().Put(0).Mark().Unicode("w").FloatVector("0", 2).Unicode("bomb")).Op('u').Stop().ToArray();
        var ignored = Bomb(new PickleBuilder().Proto().Op('}').Mark().Unicode("model").Op('}').Unicode("w").FloatVector("0", 2).Op('s').Unicode("optimizer")).Op('u').Stop().ToArray();
        Assert.IsGreaterThan(2_000_000, inStateDict.Length);

        var clock = Stopwatch.StartNew();
        long before = GC.GetAllocatedBytesForCurrentThread();
        AssertRefused(Checkpoint("bomb.pt", inStateDict, ("0", Floats(1, 2))), "entry 'bomb' of its state dict is a tuple of 2 items, not a tensor");
        using (var file = TorchCheckpoint.Open(Checkpoint("bomb-ignored.pt", ignored, ("0", Floats(1, 2)))))
        using (var w = file.Read("w"))
            CollectionAssert.AreEqual(new float[] { 1, 2 }, w.ToArray<float>(), "the bomb sits in a part of the checkpoint that is not read");
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.IsLessThan(5.0, clock.Elapsed.TotalSeconds, "linear work in the pickle's length");
        Assert.IsLessThan(400L << 20, allocated, $"memory linear in the pickle's length ({allocated >> 20} MiB for two pickles of {inStateDict.Length >> 20} MiB)");
    }

    // ------------------------------------------------------------------------------------------ tensors and storages

    [TestMethod]
    public void TensorSizeBeyond64BitsIsRefused()
    {
        long big = 1L << 40;
        var pickle = StateDict(("huge", b => b.Tensor("FloatStorage", "0", 4, 0, [big, big], [big, 1])));
        AssertRefused(Checkpoint("huge.pt", pickle, ("0", Floats(1, 2, 3, 4))), "tensor 'huge'", "(1099511627776, 1099511627776)", "64-bit");

        // An expanded view (stride 0) of one element: it reaches no further than element 0, but has 2^64 elements.
        var count = StateDict(("count", b => b.Tensor("FloatStorage", "0", 1, 0, [1L << 32, 1L << 32], [0, 0])));
        AssertRefused(Checkpoint("count.pt", count, ("0", Floats(1))), "tensor 'count'", "64-bit");

        // Another: its 2^62 elements fit 64 bits, their 2^64 bytes do not.
        var bytes = StateDict(("bytes", b => b.Tensor("FloatStorage", "0", 1, 0, [1L << 62], [0])));
        AssertRefused(Checkpoint("bytes.pt", bytes, ("0", Floats(1))), "tensor 'bytes'", "64-bit");

        // Two elements, but the second one's index, 1 + (2^63 - 1), does not fit 64 bits.
        var reach = StateDict(("reach", b => b.Tensor("FloatStorage", "0", 4, 1, [2], [long.MaxValue])));
        AssertRefused(Checkpoint("reach.pt", reach, ("0", Floats(1, 2, 3, 4))), "tensor 'reach'", "storage offset 1", "64-bit");
    }

    [TestMethod]
    public void TensorOutsideItsStorageIsRefused()
    {
        var offset = StateDict(("w", b => b.Tensor("FloatStorage", "0", 4, 100, [2], [1])));
        AssertRefused(Checkpoint("offset.pt", offset, ("0", Floats(1, 2, 3, 4))), "tensor 'w'", "reaches element 101 of storage '0', which holds 4 elements");

        var stride = StateDict(("w", b => b.Tensor("FloatStorage", "0", 4, 0, [2, 2], [3, 1])));
        AssertRefused(Checkpoint("stride.pt", stride, ("0", Floats(1, 2, 3, 4))), "tensor 'w'", "stride (3, 1)", "reaches element 4 of storage '0'");
    }

    [TestMethod]
    public void StorageLengthMustEqualItsDataEntry()
    {
        var pickle = StateDict(("w", b => b.FloatVector("0", 4)));
        AssertRefused(Checkpoint("short.pt", pickle, ("0", Floats(1, 2, 3))),
            "storage '0' is declared as 4 elements of torch.FloatStorage (16 bytes), but its data entry 'archive/data/0' holds 12 bytes");
        AssertRefused(Checkpoint("missing.pt", pickle), "has no data entry 'archive/data/0'");
    }

    [TestMethod]
    public void OneStorageMustKeepOneClass()
    {
        var pickle = StateDict(("a", b => b.FloatVector("0", 2)), ("b", b => b.Tensor("IntStorage", "0", 2, 0, [2], [1])));
        AssertRefused(Checkpoint("classes.pt", pickle, ("0", Floats(1, 2))), "storage '0' as a torch.IntStorage of 2 elements, but earlier as a torch.FloatStorage of 2");
    }

    [TestMethod]
    public void NonTensorValuesAreRefusedByKey()
    {
        var plain = StateDict(("w", b => b.FloatVector("0", 2)), ("epoch", b => b.Int(3)));
        AssertRefused(Checkpoint("epoch.pt", plain, ("0", Floats(1, 2))), "entry 'epoch' of its state dict is an int, not a tensor", "'model'");

        var b = new PickleBuilder().Proto().Op('}').Mark().Unicode("model").Op('}').Mark().Unicode("w").FloatVector("0", 2).Unicode("step").Int(5).Op('u');
        var wrapped = b.Unicode("epoch").Int(3).Op('u').Stop().ToArray();
        AssertRefused(Checkpoint("wrapped.pt", wrapped, ("0", Floats(1, 2))), "entry 'step' of the state dict under 'model' is an int, not a tensor");

        var list = new PickleBuilder().Proto().Op(']').Stop().ToArray();
        AssertRefused(Checkpoint("list.pt", list), "holds a list of 0 items, not a state dict");
    }

    [TestMethod]
    public void BoolStorageHoldingOtherBytesFailsOnRead()
    {
        var pickle = StateDict(("mask", b => b.Tensor("BoolStorage", "0", 3, 0, [3], [1])));
        var path = Checkpoint("bool.pt", pickle, ("0", [1, 2, 0]));
        using var file = TorchCheckpoint.Open(path);
        long live = LiveCount();
        var e = Assert.ThrowsExactly<InvalidDataException>(() => file.Read("mask"));
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "tensor 'mask' is bool but holds the byte 2");
        Assert.AreEqual(live, Tensor.LiveCount, "the tensor of a failed read is freed");
    }

    // ------------------------------------------------------------------------------------------ the archive

    [TestMethod]
    public void TruncatedFilesAreRefused()
    {
        var whole = File.ReadAllBytes(RealFile("tensors.pt"));
        foreach (int length in new[] { 4, 64, whole.Length / 3, whole.Length / 2, whole.Length - 100, whole.Length - 22, whole.Length - 21, whole.Length - 1 })
        {
            var path = PathOf($"cut-{length}.pt");
            File.WriteAllBytes(path, whole.AsSpan(0, length).ToArray());
            AssertRefused(path, "truncated");
        }
    }

    [TestMethod]
    public void CentralDirectoryClaimingMoreThanTheFileIsRefused()
    {
        // A storage of 2^18 floats whose entry the central directory says is 1 MiB, in a file of a few hundred bytes.
        var path = PathOf("claims.pt");
        var pickle = StateDict(("w", b => b.FloatVector("0", 1 << 18)));
        WriteZip(path, new ZipItem("archive/data.pkl", pickle), new ZipItem("archive/data/0", Floats(1, 2)));
        var bytes = File.ReadAllBytes(path);
        int at = CentralHeaderOf(bytes, "archive/data/0");
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at + 20), 1 << 20);  // compressed size
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at + 24), 1 << 20);  // uncompressed size
        File.WriteAllBytes(path, bytes);
        AssertRefused(path, "the file ended before the data of zip entry 'archive/data/0'", "truncated");
    }

    /// <summary>The offset of the central directory header of <paramref name="name"/> in the zip <paramref name="zip"/>.</summary>
    private static int CentralHeaderOf(byte[] zip, string name)
    {
        var n = Encoding.UTF8.GetBytes(name);
        for (int i = zip.Length - 46 - n.Length; i >= 0; i--)
            if (BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(i)) == 0x02014b50 && zip.AsSpan(i + 46, n.Length).SequenceEqual(n)
                && BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(i + 28)) == n.Length)
                return i;
        Assert.Fail($"no central directory header for '{name}'");
        return -1;
    }

    [TestMethod]
    public void PickleBeyondTheLimitIsRefused()
    {
        // data.pkl said to be 65 MiB (stored) by its central directory header: refused before anything is read.
        var path = Checkpoint("long.pt", new PickleBuilder().Proto().Op('}').Stop().ToArray());
        var bytes = File.ReadAllBytes(path);
        int at = CentralHeaderOf(bytes, "archive/data.pkl");
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at + 20), 65 << 20);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at + 24), 65 << 20);
        File.WriteAllBytes(path, bytes);
        long before = GC.GetAllocatedBytesForCurrentThread();
        AssertRefused(path, "its pickle archive/data.pkl is 68157440 bytes long, more than the 67108864 bytes accepted");
        Assert.IsLessThan(16L << 20, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [TestMethod]
    public void DamagedZipRecordsAreRefused()
    {
        // PyTorch writes the zip64 end record (56 bytes: ... count @32, directory length @40, directory offset @48).
        var whole = File.ReadAllBytes(RealFile("tensors.pt"));
        int end64 = whole.AsSpan().LastIndexOf("PK\u0006\u0006"u8);
        Assert.IsGreaterThan(0, end64, "PyTorch wrote a zip64 end record");
        int locator = whole.AsSpan().LastIndexOf("PK\u0006\u0007"u8);
        int header = CentralHeaderOf(whole, "tensors/data/0");
        var cases = new (string Name, int At, int Bytes, ulong Value, string Fragment)[]
        {
            ("directory length", end64 + 40, 8, 100 << 20, "central directory is said to be 104857600 bytes long, more than the 67108864 accepted"),
            ("directory offset", end64 + 48, 8, (ulong)whole.Length, "past the end records"),
            ("entry count", end64 + 32, 8, 1_000_000, "counts 1000000 entries"),
            ("compression method", header + 10, 2, 12, "zip entry 'tensors/data/0' uses compression method 12"),
            ("encryption", header + 8, 2, 1, "zip entry 'tensors/data/0' is encrypted"),
            ("stored sizes", header + 20, 4, 4, "is stored uncompressed, yet its sizes disagree"),
            ("local header", header + 42, 4, 0, "zip entry 'tensors/data/0' has a local header at byte 0 that names another file"),
            ("zip64 locator", locator + 8, 8, 1UL << 62, "the zip64 end record is said to be at byte 4611686018427387904"),
        };
        foreach (var (name, at, size, value, fragment) in cases)
        {
            var bytes = (byte[])whole.Clone();
            if (size == 8) BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(at), value);
            else if (size == 4) BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at), (uint)value);
            else BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(at), (ushort)value);
            var path = PathOf(name.Replace(' ', '-') + ".pt");
            File.WriteAllBytes(path, bytes);
            AssertRefused(path, fragment);
        }
    }

    [TestMethod]
    public void DeflateBombIsRefused()
    {
        var path = PathOf("bomb.pt");
        // A "pickle" of 1 MiB of zeros deflates to about 1 KB: refused from its sizes, before anything is inflated.
        WriteZip(path, new ZipItem("archive/data.pkl", new byte[1 << 20], Deflate: true), new ZipItem("archive/data/0", new byte[4]));
        AssertRefused(path, "zip entry 'archive/data.pkl' claims to inflate from", "to 1048576 bytes", "zip bomb");
    }

    [TestMethod]
    public void BigEndianDataIsRefused()
    {
        var path = PathOf("big.pt");
        var pickle = StateDict(("w", b => b.FloatVector("0", 1)));
        WriteZip(path, new ZipItem("archive/data.pkl", pickle), new ZipItem("archive/byteorder", "big"u8.ToArray()), new ZipItem("archive/data/0", [0x3f, 0x80, 0, 0]));
        AssertRefused(path, "archive/byteorder", "big-endian", "not support");

        WriteZip(path, new ZipItem("archive/data.pkl", pickle), new ZipItem("archive/byteorder", "little"u8.ToArray()), new ZipItem("archive/data/0", [0, 0, 0x80, 0x3f]));
        using var file = TorchCheckpoint.Open(path);
        using var w = file.Read("w");
        CollectionAssert.AreEqual(new float[] { 1 }, w.ToArray<float>(), "\"little\" is read");
    }

    [TestMethod]
    public void FilesThatAreNotTorchSaveZipsAreRefused()
    {
        var text = PathOf("notes.txt");
        File.WriteAllText(text, "hello, world");
        AssertRefused(text, "not a zip archive", "68656C6C");

        var empty = PathOf("empty.pt");
        File.WriteAllBytes(empty, []);
        AssertRefused(empty, "the file is empty");

        var bare = PathOf("bare.pkl");
        File.WriteAllBytes(bare, new PickleBuilder().Proto().Op('}').Stop().ToArray());
        AssertRefused(bare, "bare pickle");

        var other = PathOf("other.zip");
        WriteZip(other, new ZipItem("readme.txt", "hi"u8.ToArray()), new ZipItem("deep/folder/data.pkl", [0x80, 2, (byte)'}', (byte)'.']));
        AssertRefused(other, "zip archive without a <folder>/data.pkl entry", "'readme.txt'");

        var two = PathOf("two.zip");
        WriteZip(two, new ZipItem("a/data.pkl", [0x80, 2, (byte)'}', (byte)'.']), new ZipItem("b/data.pkl", [0x80, 2, (byte)'}', (byte)'.']));
        AssertRefused(two, "2 pickles ('a/data.pkl', 'b/data.pkl')");

        var twice = PathOf("twice.pt");
        WriteZip(twice, new ZipItem("archive/data.pkl", [0x80, 2, (byte)'}', (byte)'.']), new ZipItem("archive/data.pkl", [0x80, 2, (byte)']', (byte)'.']));
        AssertRefused(twice, "two entries named 'archive/data.pkl'");

        var script = PathOf("scripted.pt");
        WriteZip(script, new ZipItem("scripted/data.pkl", [0x80, 2, (byte)'}', (byte)'.']), new ZipItem("scripted/constants.pkl", [0x80, 2, (byte)')', (byte)'.']));
        AssertRefused(script, "TorchScript archive (torch.jit.save)");
    }
}
