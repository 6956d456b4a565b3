using System.Buffers.Binary;
using System.Text;

namespace Vit.Torch.Checkpoints;

/// <summary>
/// A restricted unpickler for the pickle that <c>torch.save</c> writes for a state dict (Python's pickle protocol 2,
/// as documented in CPython's <c>pickletools</c>; the few opcodes of protocols 3 to 5 that such a pickle can hold are
/// read too). It is a stack machine over plain values (<see cref="PickleTuple"/>, <see cref="PickleDict"/>, ...):
/// nothing is imported, instantiated or called. A global resolves only if it is one of
/// <see cref="AllowedGlobals"/>, REDUCE only applies those to the arguments <c>torch.save</c> gives them, and
/// BINPERSID only makes storage references. Any other global or opcode is an error naming it and its offset.
/// </summary>
/// <remarks>
/// Bounds: every length in the pickle is checked against the bytes that remain before anything is allocated for it.
/// Every opcode pushes at most one value or memo entry, and TUPLE, LIST, DICT, APPENDS and SETITEMS move values that
/// earlier opcodes pushed, so the stack, the memo and the work done are all linear in the pickle's length. Values
/// that share children (a "memo bomb" of tuples holding the previous tuple twice) cost one reference per opcode, and
/// no code here walks a container, so they cost no more.
/// </remarks>
internal sealed class PickleReader
{
    /// <summary>The most dimensions a tensor may have (PyTorch allows more, but no model weight has them).</summary>
    public const int MaxDims = 16;

    /// <summary>The highest pickle protocol accepted (its opcodes beyond protocol 2 are still refused unless listed).</summary>
    public const int MaxProtocol = 5;

    /// <summary>Every global that a <c>torch.save</c> state dict needs, and the only ones the reader resolves.</summary>
    public static readonly IReadOnlyDictionary<string, PickleGlobal> AllowedGlobals = new[]
    {
        new PickleGlobal("collections.OrderedDict", PickleGlobalKind.OrderedDict),
        new PickleGlobal("torch._utils._rebuild_tensor_v2", PickleGlobalKind.RebuildTensorV2),
        new PickleGlobal("torch._utils._rebuild_parameter", PickleGlobalKind.RebuildParameter),
        new PickleGlobal("torch.FloatStorage", PickleGlobalKind.StorageClass, DType.Float32),
        new PickleGlobal("torch.DoubleStorage", PickleGlobalKind.StorageClass, DType.Float64),
        new PickleGlobal("torch.HalfStorage", PickleGlobalKind.StorageClass, DType.Float16),
        new PickleGlobal("torch.BFloat16Storage", PickleGlobalKind.StorageClass, DType.BFloat16),
        new PickleGlobal("torch.LongStorage", PickleGlobalKind.StorageClass, DType.Int64),
        new PickleGlobal("torch.IntStorage", PickleGlobalKind.StorageClass, DType.Int32),
        new PickleGlobal("torch.ShortStorage", PickleGlobalKind.StorageClass, DType.Int16),
        new PickleGlobal("torch.CharStorage", PickleGlobalKind.StorageClass, DType.Int8),
        new PickleGlobal("torch.ByteStorage", PickleGlobalKind.StorageClass, DType.UInt8),
        new PickleGlobal("torch.BoolStorage", PickleGlobalKind.StorageClass, DType.Bool),
    }.ToDictionary(g => g.Name, StringComparer.Ordinal);

    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    private readonly byte[] data;
    private readonly string entryName;
    private readonly Func<string, InvalidDataException> bad;
    private readonly List<object?> stack = [];
    private readonly List<int> marks = [];  // stack heights at each open MARK
    private readonly Dictionary<uint, object?> memo = [];
    private readonly Dictionary<string, PickleStorage> storages = new(StringComparer.Ordinal);
    private int pos;
    private int opAt;    // offset of the opcode being run, for messages
    private byte op;

    private PickleReader(byte[] data, string entryName, Func<string, InvalidDataException> bad)
    {
        this.data = data;
        this.entryName = entryName;
        this.bad = bad;
    }

    /// <summary>
    /// Runs the pickle <paramref name="data"/> (the zip entry <paramref name="entryName"/>, named in messages) and returns
    /// the value it builds. <paramref name="bad"/> makes the exception for a problem (it adds the file's name).
    /// </summary>
    public static object? Read(byte[] data, string entryName, Func<string, InvalidDataException> bad) =>
        new PickleReader(data, entryName, bad).Run();

    /// <summary>A short description of a value for messages ("an int", "a tuple of 3 items"); it never looks inside containers.</summary>
    public static string Describe(object? value) => value switch
    {
        null => "None",
        bool => "a bool",
        long => "an int",
        double => "a float",
        string => "a string",
        byte[] b => $"bytes ({Count(b.Length, "byte")})",
        PickleTuple t => $"a tuple of {Count(t.Items.Length, "item")}",
        PickleList l => $"a list of {Count(l.Items.Count, "item")}",
        PickleDict { IsOrderedDict: true } d => $"an OrderedDict of {Count(d.Items.Count, "entry", "entries")}",
        PickleDict d => $"a dict of {Count(d.Items.Count, "entry", "entries")}",
        PickleGlobal g => $"the global '{g.Name}'",
        PickleStorage s => $"a {s.ClassName}",
        PickleTensor => "a tensor",
        _ => value.GetType().Name,
    };

    /// <summary>"1 item", "2 items".</summary>
    internal static string Count(long n, string one, string? many = null) => n == 1 ? $"1 {one}" : $"{n} {many ?? one + "s"}";

    private object? Run()
    {
        while (pos < data.Length)
        {
            opAt = pos;
            op = data[pos++];
            switch (op)
            {
                case 0x80:  // PROTO
                    int protocol = ReadByte();
                    if (protocol > MaxProtocol) throw Fail($"declares pickle protocol {protocol}; at most {MaxProtocol} is read");
                    break;
                case 0x95:  // FRAME: a hint for buffering (the opcodes that follow are read as usual); it must still fit
                    ulong frame = ReadLength(8);
                    if (frame > (ulong)(data.Length - pos)) throw Fail($"declares a frame of {frame} bytes, but only {data.Length - pos} bytes of the pickle remain");
                    break;
                case (byte)'.':  // STOP
                    if (marks.Count != 0 || stack.Count != 1)
                        throw Fail($"ends with {Count(stack.Count, "value")} and {Count(marks.Count, "open MARK")} on the stack instead of one value");
                    if (pos != data.Length) throw Fail($"is followed by {Count(data.Length - pos, "more byte")}");
                    return stack[0];

                // ---------------------------------------------------------------------------------- stack and memo
                case (byte)'(':  // MARK
                    marks.Add(stack.Count);
                    break;
                case (byte)'0':  // POP (of a value, or of a MARK with nothing above it)
                    if (stack.Count > Floor) stack.RemoveAt(stack.Count - 1);
                    else PopMark();
                    break;
                case (byte)'1':  // POP_MARK
                    PopMark();
                    break;
                case (byte)'2':  // DUP
                    Push(Peek());
                    break;
                case (byte)'q':  // BINPUT
                    memo[ReadByte()] = Peek();
                    break;
                case (byte)'r':  // LONG_BINPUT
                    memo[ReadUInt32()] = Peek();
                    break;
                case 0x94:  // MEMOIZE
                    memo[(uint)memo.Count] = Peek();
                    break;
                case (byte)'h':  // BINGET
                    Push(Get(ReadByte()));
                    break;
                case (byte)'j':  // LONG_BINGET
                    Push(Get(ReadUInt32()));
                    break;

                // ---------------------------------------------------------------------------------- scalars
                case (byte)'N':  // NONE
                    Push(null);
                    break;
                case 0x88:  // NEWTRUE
                    Push(true);
                    break;
                case 0x89:  // NEWFALSE
                    Push(false);
                    break;
                case (byte)'J':  // BININT: signed 32-bit
                    Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4)));
                    break;
                case (byte)'K':  // BININT1: unsigned 8-bit
                    Push((long)ReadByte());
                    break;
                case (byte)'M':  // BININT2: unsigned 16-bit
                    Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2)));
                    break;
                case 0x8a:  // LONG1: n bytes of little-endian two's complement
                    Push(ReadLong1());
                    break;
                case (byte)'G':  // BINFLOAT: big-endian double
                    Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8)));
                    break;
                case (byte)'X':  // BINUNICODE
                    Push(Utf8(Need(ReadLength(4), "string")));
                    break;
                case 0x8c:  // SHORT_BINUNICODE
                    Push(Utf8(Need(ReadByte(), "string")));
                    break;
                case 0x8d:  // BINUNICODE8
                    Push(Utf8(Need(ReadLength(8), "string")));
                    break;
                case (byte)'C':  // SHORT_BINBYTES
                    Push(Need(ReadByte(), "bytes object").ToArray());
                    break;
                case (byte)'B':  // BINBYTES
                    Push(Need(ReadLength(4), "bytes object").ToArray());
                    break;

                // ---------------------------------------------------------------------------------- containers
                case (byte)')':  // EMPTY_TUPLE
                    Push(PickleTuple.Empty);
                    break;
                case (byte)'t':  // TUPLE
                    Push(new PickleTuple([.. PopMark()]));
                    break;
                case 0x85:  // TUPLE1
                    Push(new PickleTuple(PopN(1)));
                    break;
                case 0x86:  // TUPLE2
                    Push(new PickleTuple(PopN(2)));
                    break;
                case 0x87:  // TUPLE3
                    Push(new PickleTuple(PopN(3)));
                    break;
                case (byte)']':  // EMPTY_LIST
                    Push(new PickleList([]));
                    break;
                case (byte)'l':  // LIST
                    Push(new PickleList(PopMark()));
                    break;
                case (byte)'a':  // APPEND
                {
                    var value = Pop();
                    Target<PickleList>("append to").Items.Add(value);
                    break;
                }
                case (byte)'e':  // APPENDS
                {
                    var items = PopMark();
                    Target<PickleList>("append to").Items.AddRange(items);
                    break;
                }
                case (byte)'}':  // EMPTY_DICT
                    Push(new PickleDict(isOrderedDict: false));
                    break;
                case (byte)'d':  // DICT
                {
                    var dict = new PickleDict(isOrderedDict: false);
                    AddPairs(dict, PopMark());
                    Push(dict);
                    break;
                }
                case (byte)'s':  // SETITEM
                {
                    var value = Pop();
                    var key = Pop();
                    Target<PickleDict>("set an item of").Items.Add(new(key, value));
                    break;
                }
                case (byte)'u':  // SETITEMS
                {
                    var items = PopMark();
                    AddPairs(Target<PickleDict>("set items of"), items);
                    break;
                }

                // ---------------------------------------------------------------------------------- objects
                case (byte)'c':  // GLOBAL: "module\nname\n"
                {
                    var module = ReadLine();
                    var name = ReadLine();
                    Push(Resolve(module, name));
                    break;
                }
                case 0x93:  // STACK_GLOBAL
                {
                    var name = Pop();
                    var module = Pop();
                    if (module is not string m || name is not string n)
                        throw Fail($"takes {Describe(module)} and {Describe(name)} where a module name and a name (strings) belong");
                    Push(Resolve(m, n));
                    break;
                }
                case (byte)'R':  // REDUCE
                {
                    var args = Pop();
                    var callable = Pop();
                    Push(Reduce(callable, args));
                    break;
                }
                case (byte)'b':  // BUILD: torch.save sets the state dict's _metadata; it is not needed and is dropped
                {
                    var state = Pop();
                    if (Peek() is not PickleDict { IsOrderedDict: true })
                        throw Fail($"sets the state of {Describe(Peek())} to {Describe(state)}; a state dict only sets the state of its OrderedDict");
                    break;
                }
                case (byte)'Q':  // BINPERSID
                    Push(PersistentLoad(Pop()));
                    break;

                default:
                    throw Fail("is not one that torch.save writes for a state dict, so this reader does not run it");
            }
        }
        throw bad($"its pickle {entryName} ended after {data.Length} bytes without a STOP opcode (truncated?)");
    }

    // ------------------------------------------------------------------------------------------------ reading bytes

    private InvalidDataException Fail(string problem) =>
        bad($"in its pickle {entryName}, opcode {OpName(op)} at byte {opAt} {problem}");

    private ReadOnlySpan<byte> Take(int n)
    {
        if (n > data.Length - pos) throw Fail($"needs {n} more bytes, but the pickle ends after {data.Length - pos} (truncated?)");
        var span = data.AsSpan(pos, n);
        pos += n;
        return span;
    }

    private byte ReadByte() => Take(1)[0];

    private uint ReadUInt32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

    /// <summary>Reads an unsigned length of 4 or 8 bytes; it is still unchecked against what remains (see <see cref="Need"/>).</summary>
    private ulong ReadLength(int bytes) =>
        bytes == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(Take(4)) : BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

    /// <summary>The next <paramref name="length"/> bytes, after checking that the pickle holds them (the length is untrusted).</summary>
    private ReadOnlySpan<byte> Need(ulong length, string what)
    {
        if (length > (ulong)(data.Length - pos))
            throw Fail($"declares a {what} of {length} bytes, but only {data.Length - pos} bytes of the pickle remain");
        return Take((int)length);
    }

    private string Utf8(ReadOnlySpan<byte> bytes)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Fail("holds a string that is not valid UTF-8");
        }
    }

    private long ReadLong1()
    {
        int n = ReadByte();
        if (n > 8) throw Fail($"holds an integer of {n} bytes; at most 8 (64 bits) are read");
        var bytes = Take(n);
        if (n == 0) return 0;
        long v = (sbyte)bytes[n - 1];  // the sign comes from the most significant byte
        for (int i = n - 2; i >= 0; i--) v = (v << 8) | bytes[i];
        return v;
    }

    private string ReadLine()
    {
        int end = Array.IndexOf(data, (byte)'\n', pos);
        if (end < 0) throw Fail("holds a name that runs past the end of the pickle");
        var line = Utf8(data.AsSpan(pos, end - pos));
        pos = end + 1;
        return line;
    }

    // ------------------------------------------------------------------------------------------------ the stack

    /// <summary>The lowest stack index that ops may reach: values under the innermost MARK belong to the enclosing scope.</summary>
    private int Floor => marks.Count > 0 ? marks[^1] : 0;

    private void Push(object? value) => stack.Add(value);

    private object? Peek() => stack.Count > Floor ? stack[^1] : throw Fail("finds the stack empty");

    private object? Pop()
    {
        var v = Peek();
        stack.RemoveAt(stack.Count - 1);
        return v;
    }

    private object?[] PopN(int n)
    {
        if (stack.Count - Floor < n) throw Fail($"needs {Count(n, "value")}, but the stack holds {stack.Count - Floor}");
        var items = stack.GetRange(stack.Count - n, n).ToArray();
        stack.RemoveRange(stack.Count - n, n);
        return items;
    }

    /// <summary>Removes and returns the values above the innermost MARK, and the MARK.</summary>
    private List<object?> PopMark()
    {
        if (marks.Count == 0) throw Fail("needs a MARK, but none is open");
        int at = marks[^1];
        marks.RemoveAt(marks.Count - 1);
        var items = stack.GetRange(at, stack.Count - at);
        stack.RemoveRange(at, stack.Count - at);
        return items;
    }

    private T Target<T>(string action) where T : class =>
        Peek() as T ?? throw Fail($"tries to {action} {Describe(Peek())}");

    private object? Get(uint index) =>
        memo.TryGetValue(index, out var v) ? v : throw Fail($"reads memo entry {index}, which was never stored");

    private void AddPairs(PickleDict dict, List<object?> items)
    {
        if (items.Count % 2 != 0) throw Fail($"has {Count(items.Count, "value")}, which do not make (key, value) pairs");
        for (int i = 0; i < items.Count; i += 2) dict.Items.Add(new(items[i], items[i + 1]));
    }

    // ------------------------------------------------------------------------------------------------ objects

    private PickleGlobal Resolve(string module, string name)
    {
        var qualified = module + "." + name;
        if (AllowedGlobals.TryGetValue(qualified, out var g)) return g;
        string hint = module == "torch" && name.EndsWith("Storage", StringComparison.Ordinal)
            ? $" ({qualified} is a storage of an element type that Vit does not support; supported: {string.Join(", ", AllowedGlobals.Values.Where(v => v.Kind == PickleGlobalKind.StorageClass).Select(v => v.Name))})"
            : " (if the file holds a whole model or other Python objects, re-save only the weights: torch.save(model.state_dict(), path))";
        throw Fail($"asks for '{qualified}', and the reader refuses the global '{qualified}': a state dict needs only "
            + "collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and torch's storage classes, "
            + "and nothing else is ever imported or called" + hint);
    }

    private object Reduce(object? callable, object? argsValue)
    {
        if (callable is not PickleGlobal g) throw Fail($"calls {Describe(callable)}, which is not a function");
        if (argsValue is not PickleTuple argsTuple) throw Fail($"calls '{g.Name}' with {Describe(argsValue)} instead of a tuple of arguments");
        var args = argsTuple.Items;
        switch (g.Kind)
        {
            case PickleGlobalKind.OrderedDict:
                // torch.save pickles an OrderedDict as OrderedDict() followed by SETITEMS.
                if (args.Length != 0) throw Fail($"calls collections.OrderedDict with {Count(args.Length, "argument")}; torch.save calls it with none");
                return new PickleDict(isOrderedDict: true);

            case PickleGlobalKind.RebuildTensorV2:
                return RebuildTensor(args);

            case PickleGlobalKind.RebuildParameter:
                // _rebuild_parameter(data, requires_grad, backward_hooks): an nn.Parameter around a tensor.
                if (args.Length != 3) throw Fail($"calls torch._utils._rebuild_parameter with {Count(args.Length, "argument")} instead of (data, requires_grad, backward_hooks)");
                if (args[0] is not PickleTensor tensor) throw Fail($"calls torch._utils._rebuild_parameter on {Describe(args[0])} instead of a tensor");
                if (args[1] is not bool) throw Fail($"calls torch._utils._rebuild_parameter with requires_grad {Describe(args[1])} instead of a bool");
                if (args[2] is not PickleDict) throw Fail($"calls torch._utils._rebuild_parameter with backward_hooks {Describe(args[2])} instead of an OrderedDict");
                return tensor;

            default:
                throw Fail($"calls '{g.Name}', which torch.save only names in storage references, never calls");
        }
    }

    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    private PickleTensor RebuildTensor(object?[] args)
    {
        const string F = "torch._utils._rebuild_tensor_v2";
        if (args.Length is not (6 or 7))
            throw Fail($"calls {F} with {Count(args.Length, "argument")} instead of (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])");
        if (args[0] is not PickleStorage storage) throw Fail($"calls {F} on {Describe(args[0])} instead of a storage");
        if (args[1] is not long offset || offset < 0) throw Fail($"calls {F} with storage_offset {Show(args[1])} instead of a non-negative int");
        var shape = Ints(args[2], "size");
        var stride = Ints(args[3], "stride");
        if (shape.Length != stride.Length) throw Fail($"calls {F} with {Count(shape.Length, "size")} but {Count(stride.Length, "stride")}");
        if (args[4] is not bool) throw Fail($"calls {F} with requires_grad {Describe(args[4])} instead of a bool");
        // Hooks are functions, which could only be named through refused globals; an empty OrderedDict is all that remains.
        if (args[5] is not PickleDict) throw Fail($"calls {F} with backward_hooks {Describe(args[5])} instead of an OrderedDict");
        if (args.Length == 7 && args[6] is not (null or PickleDict { Items.Count: 0 }))
            throw Fail($"calls {F} with tensor metadata ({Describe(args[6])}; e.g. a negation bit), which this reader does not apply");
        return new PickleTensor(storage, offset, shape, stride);
    }

    private long[] Ints(object? value, string what)
    {
        if (value is not PickleTuple t) throw Fail($"gives the tensor's {what} as {Describe(value)} instead of a tuple of ints");
        if (t.Items.Length > MaxDims) throw Fail($"gives a tensor of {Count(t.Items.Length, "dimension")}; at most {MaxDims} are read");
        var result = new long[t.Items.Length];
        for (int i = 0; i < result.Length; i++)
        {
            if (t.Items[i] is not long v || v < 0) throw Fail($"gives the tensor's {what} entry {i} as {Show(t.Items[i])}; it must be a non-negative int");
            result[i] = v;
        }
        return result;
    }

    private static string Show(object? value) => value is long v ? v.ToString(System.Globalization.CultureInfo.InvariantCulture) : Describe(value);

    /// <summary>A persistent id, which torch.save writes for each storage: <c>('storage', storage class, key, location, numel)</c>.</summary>
    private PickleStorage PersistentLoad(object? pid)
    {
        const string Form = "('storage', storage class, key, location, numel)";
        if (pid is not PickleTuple { Items: ["storage", PickleGlobal g, string key, string, long numel] })
            throw Fail($"loads a persistent id that is {Describe(pid)}; torch.save writes {Form}");
        if (g.Kind != PickleGlobalKind.StorageClass) throw Fail($"loads a storage whose class is '{g.Name}', not a storage class");
        if (numel < 0) throw Fail($"loads storage '{key}' with {numel} elements");
        // The location ('cpu', 'cuda:0') is where the storage lived when saved; everything is read to the CPU.
        var storage = new PickleStorage(key, g.Name, g.StorageDType, numel);
        if (!storages.TryGetValue(key, out var seen))
            storages.Add(key, storage);
        else if (seen != storage)
            throw Fail($"loads storage '{key}' as a {g.Name} of {Count(numel, "element")}, but earlier as a {seen.ClassName} of {seen.NumElements}");
        return seen ?? storage;
    }

    // ------------------------------------------------------------------------------------------------ names of opcodes

    private static string OpName(byte op)
    {
        var name = op switch
        {
            0x80 => "PROTO", 0x95 => "FRAME", (byte)'.' => "STOP", (byte)'(' => "MARK", (byte)'0' => "POP", (byte)'1' => "POP_MARK",
            (byte)'2' => "DUP", (byte)'N' => "NONE", 0x88 => "NEWTRUE", 0x89 => "NEWFALSE", (byte)'J' => "BININT", (byte)'K' => "BININT1",
            (byte)'M' => "BININT2", 0x8a => "LONG1", (byte)'G' => "BINFLOAT", (byte)'X' => "BINUNICODE", 0x8c => "SHORT_BINUNICODE",
            0x8d => "BINUNICODE8", (byte)'C' => "SHORT_BINBYTES", (byte)'B' => "BINBYTES", (byte)')' => "EMPTY_TUPLE", (byte)'t' => "TUPLE",
            0x85 => "TUPLE1", 0x86 => "TUPLE2", 0x87 => "TUPLE3", (byte)']' => "EMPTY_LIST", (byte)'a' => "APPEND", (byte)'e' => "APPENDS",
            (byte)'l' => "LIST", (byte)'}' => "EMPTY_DICT", (byte)'d' => "DICT", (byte)'s' => "SETITEM", (byte)'u' => "SETITEMS",
            (byte)'c' => "GLOBAL", 0x93 => "STACK_GLOBAL", (byte)'R' => "REDUCE", (byte)'b' => "BUILD", (byte)'Q' => "BINPERSID",
            (byte)'q' => "BINPUT", (byte)'r' => "LONG_BINPUT", 0x94 => "MEMOIZE", (byte)'h' => "BINGET", (byte)'j' => "LONG_BINGET",
            // Opcodes that the reader refuses, named so that the message says what the file tried.
            (byte)'I' => "INT", (byte)'L' => "LONG", (byte)'F' => "FLOAT", (byte)'S' => "STRING", (byte)'T' => "BINSTRING",
            (byte)'U' => "SHORT_BINSTRING", (byte)'V' => "UNICODE", (byte)'P' => "PERSID", (byte)'p' => "PUT", (byte)'g' => "GET",
            (byte)'i' => "INST", (byte)'o' => "OBJ", 0x81 => "NEWOBJ", 0x82 => "EXT1", 0x83 => "EXT2", 0x84 => "EXT4", 0x8b => "LONG4",
            0x8e => "BINBYTES8", 0x8f => "EMPTY_SET", 0x90 => "ADDITEMS", 0x91 => "FROZENSET", 0x92 => "NEWOBJ_EX",
            0x96 => "BYTEARRAY8", 0x97 => "NEXT_BUFFER", 0x98 => "READONLY_BUFFER",
            _ => null,
        };
        string code = op is >= 0x20 and < 0x7f ? $"0x{op:x2} '{(char)op}'" : $"0x{op:x2}";
        return name is null ? $"{code} (not a pickle opcode)" : $"{name} ({code})";
    }
}
