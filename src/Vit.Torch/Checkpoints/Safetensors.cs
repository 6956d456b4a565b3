using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace Vit.Torch.Checkpoints;

/// <summary>One tensor's description in a safetensors header.</summary>
/// <param name="Name">The tensor's name, e.g. <c>blocks.0.attn.qkv.weight</c>.</param>
/// <param name="DType">Element type.</param>
/// <param name="Shape">Sizes of the dimensions (empty for a 0-d tensor).</param>
/// <param name="Begin">Offset of the first byte, relative to the start of the data buffer.</param>
/// <param name="End">Offset one past the last byte, relative to the start of the data buffer.</param>
public sealed record SafetensorsEntry(string Name, DType DType, IReadOnlyList<long> Shape, long Begin, long End)
{
    /// <summary>Number of bytes of data (End - Begin).</summary>
    public long ByteLength => End - Begin;
}

/// <summary>The validated header of a safetensors file: its metadata and where each tensor lies.</summary>
public sealed class SafetensorsHeader
{
    internal SafetensorsHeader(IReadOnlyDictionary<string, string> metadata, IReadOnlyList<SafetensorsEntry> entries, long dataStart, long dataLength)
    {
        Metadata = metadata;
        Entries = entries;
        DataStart = dataStart;
        DataLength = dataLength;
    }

    /// <summary>The <c>__metadata__</c> map (empty when the file has none).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>The tensors, in the order the header lists them.</summary>
    public IReadOnlyList<SafetensorsEntry> Entries { get; }

    /// <summary>Absolute file offset of the data buffer (8 + header length).</summary>
    public long DataStart { get; }

    /// <summary>Length of the data buffer in bytes.</summary>
    public long DataLength { get; }
}

/// <summary>
/// Reads and writes the safetensors format (huggingface/safetensors): an 8-byte little-endian header length N,
/// N bytes of UTF-8 JSON (<c>{"__metadata__": {..}, name: {"dtype", "shape", "data_offsets": [begin, end]}}</c>),
/// then the tensors' raw little-endian bytes, packed without holes. Nothing in a file can run code, and every
/// length read from a file is checked against the file's size before anything is allocated for it.
/// </summary>
public static unsafe class Safetensors
{
    /// <summary>Longest header accepted (the reference implementation's limit): a larger one is not a checkpoint.</summary>
    public const long MaxHeaderLength = 100L * 1024 * 1024;

    private const string MetadataKey = "__metadata__";

    // Reads and writes go through spans over tensor memory in pieces of at most this many bytes.
    private const int Chunk = 1 << 30;

    private static readonly (string Code, DType DType)[] DTypeCodes =
    [
        ("F32", DType.Float32), ("F64", DType.Float64), ("F16", DType.Float16), ("BF16", DType.BFloat16),
        ("I64", DType.Int64), ("I32", DType.Int32), ("I16", DType.Int16), ("I8", DType.Int8),
        ("U8", DType.UInt8), ("BOOL", DType.Bool),
    ];

    /// <summary>The safetensors code of an element type (<c>F32</c>, <c>BF16</c>, <c>BOOL</c>, ...).</summary>
    public static string DTypeCode(DType dtype)
    {
        foreach (var (code, t) in DTypeCodes)
            if (t == dtype) return code;
        throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "no safetensors code for this element type");
    }

    private static bool TryParseDType(string code, out DType dtype)
    {
        foreach (var (c, t) in DTypeCodes)
            if (c == code)
            {
                dtype = t;
                return true;
            }
        dtype = default;
        return false;
    }

    // ------------------------------------------------------------------------------------------------ writing

    /// <summary>
    /// Writes <paramref name="tensors"/> (any device, layout or element type; they are not modified) to
    /// <paramref name="path"/>, in the given order. The file is written under a temporary name in the same folder,
    /// flushed to disk and then renamed over the target, so a crash or an exception midway leaves any previous
    /// file at <paramref name="path"/> untouched.
    /// </summary>
    /// <exception cref="ArgumentException">A name is empty, reserved (<c>__metadata__</c>) or used twice, or a tensor is null.</exception>
    public static void Save(string path, IEnumerable<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        SaveObserved(path, tensors, metadata, beforeTensorData: null);

    /// <summary>As <see cref="Save"/>, calling <paramref name="beforeTensorData"/> with each tensor's name just before its
    /// bytes are written (a test fails a save midway there and checks that the previous file survives).</summary>
    internal static void SaveObserved(string path, IEnumerable<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata,
        Action<string>? beforeTensorData)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var (items, entries, header) = Prepare(tensors, metadata);
        // Unbuffered: tensor bytes go from tensor memory straight to the file.
        AtomicFile.Write(path, fs => WriteTo(fs, items, entries, header, beforeTensorData), bufferSize: 0);
    }

    /// <summary>Writes <paramref name="tensors"/> as a safetensors file to <paramref name="stream"/> (e.g. an entry of a
    /// zip), checked first as <see cref="Save"/> checks them.</summary>
    public static void Write(Stream stream, IEnumerable<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanWrite) throw new ArgumentException("the stream is not writable", nameof(stream));
        var (items, entries, header) = Prepare(tensors, metadata);
        WriteTo(stream, items, entries, header, beforeTensorData: null);
    }

    // Everything that can be checked is checked before a byte is written.
    private static (List<(string Name, Tensor Tensor)> Items, List<SafetensorsEntry> Entries, byte[] Header) Prepare(
        IEnumerable<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors stores little-endian data; this machine is big-endian");
        var items = new List<(string Name, Tensor Tensor)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, tensor) in tensors)
        {
            if (string.IsNullOrEmpty(name)) throw new ArgumentException("a tensor name is empty; every tensor needs a name", nameof(tensors));
            if (name == MetadataKey) throw new ArgumentException($"'{MetadataKey}' is reserved for the metadata and cannot name a tensor", nameof(tensors));
            if (tensor is null) throw new ArgumentException($"tensor '{name}' is null", nameof(tensors));
            if (!seen.Add(name)) throw new ArgumentException($"duplicate tensor name '{name}'", nameof(tensors));
            items.Add((name, tensor));
        }
        if (metadata is not null)
            foreach (var (k, v) in metadata)
                if (k is null || v is null) throw new ArgumentException("metadata keys and values must not be null", nameof(metadata));

        var entries = new List<SafetensorsEntry>(items.Count);
        long offset = 0;
        var crc = new System.IO.Hashing.Crc32();
        foreach (var (name, tensor) in items)
        {
            var dtype = tensor.DType;
            var shape = tensor.Shape;
            long bytes = checked(tensor.NumElements * dtype.ElementSize());
            entries.Add(new SafetensorsEntry(name, dtype, shape, offset, offset + bytes));
            offset += bytes;
            WithBytes(tensor, bytes, span => crc.Append(span));
        }
        // The data's CRC-32 in the metadata: a reader of ours refuses a copy whose bytes changed (other readers ignore it).
        var withCrc = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>(), StringComparer.Ordinal)
        {
            [CrcKey] = crc.GetCurrentHashAsUInt32().ToString("x8", System.Globalization.CultureInfo.InvariantCulture),
        };
        return (items, entries, EncodeHeader(entries, withCrc));
    }

    /// <summary>The metadata key of the data section's CRC-32 (8 hex digits), written by <see cref="Save"/> and checked on reading.</summary>
    public const string CrcKey = "vit.crc32";

    private static void WriteTo(Stream fs, List<(string Name, Tensor Tensor)> items, List<SafetensorsEntry> entries, byte[] header,
        Action<string>? beforeTensorData)
    {
        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
        fs.Write(prefix);
        fs.Write(header);
        for (int i = 0; i < items.Count; i++)
        {
            beforeTensorData?.Invoke(items[i].Name);
            WriteData(fs, items[i].Tensor, entries[i].ByteLength);
        }
    }

    private static byte[] EncodeHeader(List<SafetensorsEntry> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            if (metadata is not null)
            {
                w.WriteStartObject(MetadataKey);
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            foreach (var e in entries)
            {
                w.WriteStartObject(e.Name);
                w.WriteString("dtype", DTypeCode(e.DType));
                w.WriteStartArray("shape");
                foreach (var d in e.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(e.Begin);
                w.WriteNumberValue(e.End);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        // Pad with spaces (valid JSON whitespace) so that the data buffer starts 8-byte aligned.
        int padded = (buffer.WrittenCount + 7) / 8 * 8;
        var header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return header;
    }

    private static void WriteData(Stream fs, Tensor tensor, long expectedBytes) => WithBytes(tensor, expectedBytes, span => fs.Write(span));

    /// <summary>Hands <paramref name="tensor"/>'s bytes to <paramref name="use"/> in chunks, straight from tensor memory: a
    /// CPU, contiguous view (a copy only when the tensor is elsewhere or strided).</summary>
    private static void WithBytes(Tensor tensor, long expectedBytes, ReadOnlySpanAction use)
    {
        if (expectedBytes == 0) return;
        Tensor? onCpu = tensor.Device.Type == DeviceType.Cpu ? null : tensor.To(Device.Cpu);
        using var contiguous = (onCpu ?? tensor).Contiguous();
        try
        {
            using var lease = contiguous.LeaseData();
            var p = (byte*)lease.Pointer;
            for (long done = 0; done < expectedBytes;)
            {
                int n = (int)Math.Min(Chunk, expectedBytes - done);
                use(new ReadOnlySpan<byte>(p + done, n));
                done += n;
            }
        }
        finally
        {
            onCpu?.Dispose();
        }
    }

    private delegate void ReadOnlySpanAction(ReadOnlySpan<byte> bytes);

    // ------------------------------------------------------------------------------------------------ reading

    /// <summary>Reads and validates the header of <paramref name="path"/> without loading any tensor data.</summary>
    /// <exception cref="InvalidDataException">The file is not a valid safetensors file; the message names the file and the problem.</exception>
    public static SafetensorsHeader ReadHeader(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
        return ReadHeader(fs, fs.Length, path);
    }

    /// <summary>
    /// Loads every tensor of <paramref name="path"/> into new CPU tensors, keyed by name in header order. The caller
    /// owns the returned tensors (dispose them, or load inside a <see cref="TensorScope"/>).
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not a valid safetensors file; the message names the file and the problem.</exception>
    public static Dictionary<string, Tensor> Load(string path)
    {
        using var file = Open(path);
        var result = new Dictionary<string, Tensor>(file.Tensors.Count, StringComparer.Ordinal);
        try
        {
            foreach (var e in file.Tensors) result.Add(e.Name, file.Read(e.Name));
            return result;
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens <paramref name="path"/> and validates its header, without reading tensor data: the returned file lists
    /// the tensors and reads them one at a time (<see cref="ITensorFile.Read"/>). Dispose it to close the file.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not a valid safetensors file; the message names the file and the problem.</exception>
    public static ITensorFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors stores little-endian data; this machine is big-endian");
        // No FileStream buffer: the data is read straight into tensor memory.
        var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess);
        return Open(fs, fs.Length, path);
    }

    /// <summary>
    /// Reads a safetensors file from <paramref name="stream"/> (e.g. an entry of a zip) of <paramref name="length"/>
    /// bytes, named <paramref name="source"/> in errors; the returned file owns the stream. A stream that cannot seek
    /// is read front to back: its tensors must then be read in data order.
    /// </summary>
    /// <exception cref="InvalidDataException">The data is not a valid safetensors file; the message names the source and the problem.</exception>
    public static ITensorFile Open(Stream stream, long length, string source)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentException.ThrowIfNullOrEmpty(source);
        try
        {
            var header = ReadHeader(stream, length, source);
            if (header.Metadata.TryGetValue(CrcKey, out var recorded) && stream.CanSeek) VerifyData(stream, header, recorded, source);
            return new SafetensorsFile(source, stream, header);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>Reads the whole data section once and compares its CRC-32 with the one the file records.</summary>
    private static void VerifyData(Stream stream, SafetensorsHeader header, string recorded, string source)
    {
        var crc = new System.IO.Hashing.Crc32();
        var buffer = new byte[(int)Math.Clamp(header.DataLength, 4096, 1 << 20)];
        stream.Position = header.DataStart;
        for (long left = header.DataLength; left > 0;)
        {
            int n = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            if (n == 0) throw Bad(source, $"the file ended {left} bytes before the end of its tensor data (was it truncated?)");
            crc.Append(buffer.AsSpan(0, n));
            left -= n;
        }
        var actual = crc.GetCurrentHashAsUInt32().ToString("x8", System.Globalization.CultureInfo.InvariantCulture);
        if (!string.Equals(actual, recorded.Trim(), StringComparison.OrdinalIgnoreCase))
            throw Bad(source, $"the file is corrupted: its tensor data has CRC-32 {actual}, but the file records {recorded} " +
                              "(a damaged copy or an interrupted write; copy it again, or resume from an earlier checkpoint)");
    }

    private sealed class SafetensorsFile(string path, Stream fs, SafetensorsHeader header) : ITensorFile
    {
        private readonly Dictionary<string, SafetensorsEntry> byName = header.Entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
        private long position = header.DataStart;  // of a stream that cannot seek

        public string Path => path;

        public IReadOnlyList<TensorInfo> Tensors { get; } = header.Entries.Select(e => new TensorInfo(e.Name, e.DType, e.Shape)).ToList();

        public IReadOnlyDictionary<string, string> Metadata => header.Metadata;

        public long DataLength => header.DataLength;  // the tensors tile the data buffer exactly (CheckPacking)

        public Tensor Read(string name)
        {
            if (!byName.TryGetValue(name, out var e)) throw new KeyNotFoundException($"'{path}' has no tensor '{name}'");
            var t = Tensor.Empty([.. e.Shape], e.DType);
            try
            {
                if (e.ByteLength == 0) return t;
                MoveTo(header.DataStart + e.Begin, e.Name);
                var p = (byte*)t.DataPointer();
                for (long done = 0; done < e.ByteLength;)
                {
                    int n = (int)Math.Min(Chunk, e.ByteLength - done);
                    var span = new Span<byte>(p + done, n);
                    try
                    {
                        fs.ReadExactly(span);
                    }
                    catch (EndOfStreamException)
                    {
                        throw Bad(path, $"the file ended while reading tensor '{e.Name}' (was it truncated while being read?)");
                    }
                    if (e.DType == DType.Bool && span.IndexOfAnyExcept((byte)0, (byte)1) is var bad and >= 0)
                        throw Bad(path, $"tensor '{e.Name}' is BOOL but holds the byte {span[bad]} (only 0 and 1 are booleans)");
                    done += n;
                }
                position = header.DataStart + e.End;
                return t;
            }
            catch
            {
                t.Dispose();
                throw;
            }
        }

        private void MoveTo(long offset, string name)
        {
            if (fs.CanSeek)
            {
                fs.Position = offset;
                return;
            }
            if (offset < position)
                throw Bad(path, $"tensor '{name}' lies before data already read; this stream is read front to back, so its tensors must be read in data order");
            var skip = new byte[Math.Min(1 << 16, Math.Max(1, offset - position))];
            while (position < offset)
            {
                int n = fs.Read(skip, 0, (int)Math.Min(skip.Length, offset - position));
                if (n == 0) throw Bad(path, $"the data ended before tensor '{name}' (truncated?)");
                position += n;
            }
        }

        public void Dispose() => fs.Dispose();
    }

    private static InvalidDataException Bad(string path, string problem) =>
        new($"'{path}' is not a valid safetensors file: {problem}");

    private static SafetensorsHeader ReadHeader(Stream fs, long fileLength, string path)
    {
        if (fileLength < 8)
            throw Bad(path, $"the file is {fileLength} bytes long, shorter than the 8-byte header length that starts every safetensors file");
        Span<byte> prefix = stackalloc byte[8];
        try
        {
            fs.ReadExactly(prefix);
        }
        catch (EndOfStreamException)
        {
            throw Bad(path, "the data ended inside the 8-byte header length (truncated?)");
        }
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        // Checked before anything is allocated: the length is untrusted.
        if (n > (ulong)(fileLength - 8))
            throw Bad(path, $"the header length {n} is larger than the {fileLength - 8} bytes that follow it (truncated file, or not a safetensors file)");
        if (n > MaxHeaderLength)
            throw Bad(path, $"the header length {n} exceeds the limit of {MaxHeaderLength} bytes");
        var bytes = new byte[n];
        try
        {
            fs.ReadExactly(bytes);
        }
        catch (EndOfStreamException)
        {
            throw Bad(path, "the data ended inside the header (truncated?)");
        }
        long dataStart = 8 + (long)n;
        long dataLength = fileLength - dataStart;

        if (!Utf8.IsValid(bytes)) throw Bad(path, "the header is not valid UTF-8");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw Bad(path, $"the header is not valid JSON ({e.Message})");
        }
        using (doc)
        {
            var root = doc.RootElement;
            try
            {
                JsonFields.CheckStrings(root);
            }
            catch (InvalidOperationException e)
            {
                // An escape that is no character (a lone surrogate, \ud800): found here, not in whichever field reads it.
                throw Bad(path, $"the header holds a string that is not valid text ({e.Message})");
            }
            if (root.ValueKind != JsonValueKind.Object)
                throw Bad(path, $"the header is a JSON {root.ValueKind.ToString().ToLowerInvariant()}, not an object");

            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var entries = new List<SafetensorsEntry>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var prop in root.EnumerateObject())
            {
                if (!names.Add(prop.Name)) throw Bad(path, $"the header lists '{prop.Name}' twice");
                if (prop.Name == MetadataKey)
                    ReadMetadata(path, prop.Value, metadata);
                else
                    entries.Add(ReadEntry(path, prop.Name, prop.Value, dataLength));
            }
            CheckPacking(path, entries, dataLength);
            return new SafetensorsHeader(metadata, entries, dataStart, dataLength);
        }
    }

    private static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw Bad(path, $"'{MetadataKey}' is a JSON {value.ValueKind.ToString().ToLowerInvariant()}, not an object of strings");
        foreach (var m in value.EnumerateObject())
        {
            if (m.Value.ValueKind != JsonValueKind.String)
                throw Bad(path, $"metadata '{m.Name}' is a JSON {m.Value.ValueKind.ToString().ToLowerInvariant()}, not a string");
            if (!metadata.TryAdd(m.Name, m.Value.GetString()!)) throw Bad(path, $"metadata '{m.Name}' appears twice");
        }
    }

    private static SafetensorsEntry ReadEntry(string path, string name, JsonElement value, long dataLength)
    {
        if (name.Length == 0) throw Bad(path, "a tensor has an empty name");
        if (value.ValueKind != JsonValueKind.Object)
            throw Bad(path, $"tensor '{name}' is described by a JSON {value.ValueKind.ToString().ToLowerInvariant()}, not an object");

        if (!value.TryGetProperty("dtype", out var dtypeEl) || dtypeEl.ValueKind != JsonValueKind.String)
            throw Bad(path, $"tensor '{name}' has no \"dtype\" string");
        var code = dtypeEl.GetString()!;
        if (!TryParseDType(code, out var dtype))
            throw Bad(path, $"tensor '{name}' has dtype '{code}', which is unknown or not supported (supported: {string.Join(", ", DTypeCodes.Select(c => c.Code))})");

        if (!value.TryGetProperty("shape", out var shapeEl) || shapeEl.ValueKind != JsonValueKind.Array)
            throw Bad(path, $"tensor '{name}' has no \"shape\" array");
        var shape = new long[shapeEl.GetArrayLength()];
        int i = 0;
        foreach (var d in shapeEl.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var size) || size < 0)
                throw Bad(path, $"tensor '{name}' has shape entry {i} = {d.GetRawText()}; shape entries must be non-negative integers");
            shape[i++] = size;
        }

        if (!value.TryGetProperty("data_offsets", out var offEl) || offEl.ValueKind != JsonValueKind.Array || offEl.GetArrayLength() != 2)
            throw Bad(path, $"tensor '{name}' has no \"data_offsets\" array of two integers");
        long begin = ReadOffset(path, name, offEl[0]);
        long end = ReadOffset(path, name, offEl[1]);
        if (begin > end)
            throw Bad(path, $"tensor '{name}' has data_offsets [{begin}, {end}]: begin is after end");
        long need = 0;
        try
        {
            if (!shape.Contains(0))
            {
                need = dtype.ElementSize();
                foreach (var d in shape) need = checked(need * d);
            }
        }
        catch (OverflowException)
        {
            throw Bad(path, $"tensor '{name}' has shape {FormatShape(shape)} whose byte size overflows 64 bits");
        }
        if (need != end - begin)
            throw Bad(path, $"tensor '{name}' of dtype {code} and shape {FormatShape(shape)} needs {need} bytes, but its data_offsets [{begin}, {end}] span {end - begin}");
        if (end > dataLength)
            throw Bad(path, $"tensor '{name}' has data_offsets [{begin}, {end}] beyond the end of the data buffer ({dataLength} bytes; truncated file?)");
        return new SafetensorsEntry(name, dtype, shape, begin, end);
    }

    private static long ReadOffset(string path, string name, JsonElement el)
    {
        if (el.ValueKind != JsonValueKind.Number || !el.TryGetInt64(out var v) || v < 0)
            throw Bad(path, $"tensor '{name}' has data offset {el.GetRawText()}; offsets must be non-negative integers");
        return v;
    }

    // The format requires the tensors to tile the data buffer exactly: no overlaps, no unused bytes.
    private static void CheckPacking(string path, List<SafetensorsEntry> entries, long dataLength)
    {
        // Empty tensors occupy no bytes, so they can neither overlap nor fill a hole.
        var sorted = entries.Where(e => e.ByteLength > 0).OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
        long covered = 0;
        SafetensorsEntry? previous = null;
        foreach (var e in sorted)
        {
            if (e.Begin < covered)
                throw Bad(path, $"tensors '{previous!.Name}' [{previous.Begin}, {previous.End}] and '{e.Name}' [{e.Begin}, {e.End}] overlap");
            if (e.Begin > covered)
                throw Bad(path, $"bytes [{covered}, {e.Begin}) of the data buffer belong to no tensor (the format forbids holes)");
            covered = e.End;
            previous = e;
        }
        if (covered < dataLength)
            throw Bad(path, $"bytes [{covered}, {dataLength}) at the end of the data buffer belong to no tensor (the format forbids holes)");
    }

    internal static string FormatShape(IReadOnlyList<long> shape) => "(" + string.Join(", ", shape) + ")";
}
