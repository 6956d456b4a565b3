using System.Buffers.Binary;
using System.IO.Compression;

namespace Vit.Torch.Data;

/// <summary>
/// Reads IDX files (the MNIST / Fashion-MNIST format: a magic number naming the element type and rank, the
/// dimension sizes as big-endian int32, then the data), plain or gzip-compressed.
/// </summary>
public static class Idx
{
    /// <summary>Largest element count accepted, so a damaged header cannot ask for a huge allocation.</summary>
    public const long MaxElements = 1L << 31;

    /// <summary>Reads an unsigned-byte IDX file; returns its dimension sizes and data.</summary>
    public static (int[] Shape, byte[] Data) ReadBytes(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"IDX file not found: {path}", path);
        using var file = File.OpenRead(path);
        using Stream s = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
        Span<byte> head = stackalloc byte[4];
        ReadExactly(s, head, path, "magic number");
        if (head[0] != 0 || head[1] != 0)
            throw new InvalidDataException($"{path} is not an IDX file (bad magic number)");
        if (head[2] != 0x08)
            throw new InvalidDataException($"{path} holds IDX element type 0x{head[2]:x2}; only unsigned bytes (0x08) are supported");
        int rank = head[3];
        if (rank < 1 || rank > 4) throw new InvalidDataException($"{path} has IDX rank {rank}; expected 1 to 4");
        var shape = new int[rank];
        long count = 1;
        for (int i = 0; i < rank; i++)
        {
            ReadExactly(s, head, path, $"size of dimension {i}");
            shape[i] = BinaryPrimitives.ReadInt32BigEndian(head);
            if (shape[i] < 0) throw new InvalidDataException($"{path}: negative size {shape[i]} for dimension {i}");
            count *= shape[i];
            if (count > MaxElements) throw new InvalidDataException($"{path}: {count} elements is more than the {MaxElements} allowed");
        }
        var data = new byte[count];
        ReadExactly(s, data, path, "data");
        return (shape, data);
    }

    private static void ReadExactly(Stream s, Span<byte> buffer, string path, string what)
    {
        try
        {
            s.ReadExactly(buffer);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException($"{path} is truncated: it ends inside the {what}");
        }
    }
}
