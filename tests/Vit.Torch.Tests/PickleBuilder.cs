using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Vit.Torch.Tests;

/// <summary>
/// Writes pickle opcodes by hand (from CPython's pickletools documentation), for the hand-made and hostile torch.save
/// files of <see cref="TorchCheckpointTests"/>: what a file says is spelled out opcode by opcode, not produced by
/// the code under test or by torch.
/// </summary>
internal sealed class PickleBuilder
{
    private readonly List<byte> bytes = [];

    public byte[] ToArray() => [.. bytes];

    public int Length => bytes.Count;

    public PickleBuilder Op(char op) => Raw((byte)op);

    public PickleBuilder Raw(params byte[] raw)
    {
        bytes.AddRange(raw);
        return this;
    }

    public PickleBuilder Proto(int protocol = 2) => Raw(0x80, (byte)protocol);

    public PickleBuilder Stop() => Op('.');

    public PickleBuilder Mark() => Op('(');

    /// <summary>GLOBAL: <c>c module\nname\n</c>.</summary>
    public PickleBuilder Global(string module, string name) => Op('c').Raw(Encoding.UTF8.GetBytes($"{module}\n{name}\n"));

    /// <summary>BINUNICODE: a 4-byte length, then UTF-8.</summary>
    public PickleBuilder Unicode(string s)
    {
        var utf8 = Encoding.UTF8.GetBytes(s);
        return Op('X').UInt32((uint)utf8.Length).Raw(utf8);
    }

    /// <summary>SHORT_BINUNICODE (protocol 4): a 1-byte length, then UTF-8.</summary>
    public PickleBuilder ShortUnicode(string s)
    {
        var utf8 = Encoding.UTF8.GetBytes(s);
        return Raw(0x8c, (byte)utf8.Length).Raw(utf8);
    }

    /// <summary>An int as pickle protocol 2 writes it: BININT1, BININT2, BININT or LONG1.</summary>
    public PickleBuilder Int(long v)
    {
        if (v is >= 0 and < 256) return Op('K').Raw((byte)v);
        if (v is >= 0 and < 65536) return Op('M').Raw((byte)v, (byte)(v >> 8));
        if (v is >= int.MinValue and <= int.MaxValue) return Op('J').UInt32((uint)(int)v);
        var le = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(le, v);
        return Raw(0x8a, 8).Raw(le);
    }

    public PickleBuilder UInt32(uint v)
    {
        var le = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(le, v);
        return Raw(le);
    }

    public PickleBuilder Put(uint index) => index < 256 ? Op('q').Raw((byte)index) : Op('r').UInt32(index);

    public PickleBuilder Get(uint index) => index < 256 ? Op('h').Raw((byte)index) : Op('j').UInt32(index);

    /// <summary>A tuple of ints: MARK ints TUPLE.</summary>
    public PickleBuilder IntTuple(params long[] values)
    {
        Mark();
        foreach (var v in values) Int(v);
        return Op('t');
    }

    /// <summary>An empty OrderedDict, as torch.save writes it: GLOBAL collections.OrderedDict, EMPTY_TUPLE, REDUCE.</summary>
    public PickleBuilder OrderedDict() => Global("collections", "OrderedDict").Op(')').Op('R');

    /// <summary>
    /// A tensor as torch.save writes it: <c>_rebuild_tensor_v2(persistent_id(('storage', torch.&lt;cls&gt;, key, 'cpu',
    /// numel)), offset, size, stride, False, OrderedDict())</c>.
    /// </summary>
    public PickleBuilder Tensor(string storageClass, string key, long numel, long offset, long[] size, long[] stride, string location = "cpu")
    {
        Global("torch._utils", "_rebuild_tensor_v2").Mark();
        Mark().Unicode("storage").Global("torch", storageClass).Unicode(key).Unicode(location).Int(numel).Op('t').Op('Q');
        Int(offset).IntTuple(size).IntTuple(stride).Raw(0x89).OrderedDict();
        return Op('t').Op('R');
    }

    /// <summary>A contiguous float32 tensor of shape (n,) over storage <paramref name="key"/> of n elements.</summary>
    public PickleBuilder FloatVector(string key, long n) => Tensor("FloatStorage", key, n, 0, [n], [1]);

    /// <summary>A whole pickle of an OrderedDict state dict: each item writes its value.</summary>
    public static byte[] StateDict(params (string Name, Action<PickleBuilder> Value)[] items)
    {
        var b = new PickleBuilder().Proto().OrderedDict().Mark();
        foreach (var (name, value) in items)
        {
            b.Unicode(name);
            value(b);
        }
        return b.Op('u').Stop().ToArray();
    }

    /// <summary>One entry of a zip written by <see cref="WriteZip"/>.</summary>
    public readonly record struct ZipItem(string Name, byte[] Data, bool Deflate = false);

    /// <summary>Writes a zip with .NET's own ZipArchive (stored entries, or deflated where asked), independent of the reader under test.</summary>
    public static void WriteZip(string path, params ZipItem[] items)
    {
        using var fs = File.Create(path);
        using var zip = new ZipArchive(fs, ZipArchiveMode.Create);
        foreach (var item in items)
        {
            var entry = zip.CreateEntry(item.Name, item.Deflate ? CompressionLevel.SmallestSize : CompressionLevel.NoCompression);
            using var s = entry.Open();
            s.Write(item.Data);
        }
    }

    /// <summary>
    /// Writes a zip of stored entries by hand, in the form that writers use for entries beyond 4 GiB (APPNOTE 4.5.3):
    /// every size and offset is 0xFFFFFFFF in the headers and comes from a zip64 extra field, and the end records are
    /// the zip64 ones. CRCs are left 0 (the reader under test does not check them).
    /// </summary>
    public static void WriteZip64(string path, params ZipItem[] items)
    {
        const uint Escape = 0xFFFFFFFF;
        using var w = new BinaryWriter(File.Create(path));
        var offsets = new List<long>();
        foreach (var item in items)
        {
            offsets.Add(w.BaseStream.Position);
            var name = Encoding.UTF8.GetBytes(item.Name);
            w.Write(0x04034b50u); w.Write((ushort)45); w.Write((ushort)0); w.Write((ushort)0); w.Write(0u); w.Write(0u);
            w.Write(Escape); w.Write(Escape); w.Write((ushort)name.Length); w.Write((ushort)20); w.Write(name);
            w.Write((ushort)1); w.Write((ushort)16); w.Write((long)item.Data.Length); w.Write((long)item.Data.Length);
            w.Write(item.Data);
        }
        long directory = w.BaseStream.Position;
        for (int i = 0; i < items.Length; i++)
        {
            var name = Encoding.UTF8.GetBytes(items[i].Name);
            w.Write(0x02014b50u); w.Write((ushort)45); w.Write((ushort)45); w.Write((ushort)0); w.Write((ushort)0); w.Write(0u); w.Write(0u);
            w.Write(Escape); w.Write(Escape); w.Write((ushort)name.Length); w.Write((ushort)28); w.Write((ushort)0);
            w.Write((ushort)0); w.Write((ushort)0); w.Write(0u); w.Write(Escape); w.Write(name);
            w.Write((ushort)1); w.Write((ushort)24); w.Write((long)items[i].Data.Length); w.Write((long)items[i].Data.Length); w.Write(offsets[i]);
        }
        long end64 = w.BaseStream.Position;
        w.Write(0x06064b50u); w.Write(44L); w.Write((ushort)45); w.Write((ushort)45); w.Write(0u); w.Write(0u);
        w.Write((long)items.Length); w.Write((long)items.Length); w.Write(end64 - directory); w.Write(directory);
        w.Write(0x07064b50u); w.Write(0u); w.Write(end64); w.Write(1u);
        w.Write(0x06054b50u); w.Write((ushort)0); w.Write((ushort)0); w.Write(ushort.MaxValue); w.Write(ushort.MaxValue);
        w.Write(Escape); w.Write(Escape); w.Write((ushort)0);
    }

    /// <summary>A torch.save-like zip under <c>archive/</c>: the pickle, then <c>data/&lt;key&gt;</c> entries, then <c>version</c>.</summary>
    public static void WriteCheckpoint(string path, byte[] pickle, params (string Key, byte[] Data)[] storages) =>
        WriteZip(path, [new("archive/data.pkl", pickle), .. storages.Select(s => new ZipItem("archive/data/" + s.Key, s.Data)), new("archive/version", "3\n"u8.ToArray())]);
}
