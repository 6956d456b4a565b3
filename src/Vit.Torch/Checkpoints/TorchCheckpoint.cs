using System.Runtime.InteropServices;
using System.Text;

namespace Vit.Torch.Checkpoints;

/// <summary>
/// Reads the state dicts in files written by PyTorch's <c>torch.save</c> (the zip format of PyTorch 1.6 and later):
/// torchvision <c>.pth</c> weights, Hugging Face <c>pytorch_model.bin</c> files, training checkpoints that hold a
/// state dict. No pickle code is ever run: a restricted reader accepts only what <c>torch.save</c> writes for a state
/// dict (an OrderedDict or dict of tensors and parameters over typed storages) and refuses anything else, naming it.
/// </summary>
/// <remarks>
/// <para>
/// The format: a zip archive of stored entries under one folder (<c>archive/</c>, or the file's stem):
/// <c>data.pkl</c>, a pickle in which every tensor is <c>torch._utils._rebuild_tensor_v2(storage, storage_offset,
/// size, stride, ...)</c> and every storage a persistent id <c>('storage', torch.FloatStorage, key, location,
/// numel)</c>; <c>data/&lt;key&gt;</c>, each storage's raw little-endian bytes; <c>version</c>; and in recent
/// versions <c>byteorder</c>.
/// </para>
/// <para>
/// Everything the file declares is untrusted and checked before anything is allocated for it: zip sizes and offsets
/// against the file's length; the pickle's length (at most 64 MiB) and every length inside it against the bytes that
/// remain; each tensor's size and stride (at most 16 non-negative dimensions, element counts in checked 64-bit
/// arithmetic) against its storage; each storage's length against its data entry. Data entries must be stored, or
/// deflated by at most 64:1 (more is a zip bomb).
/// </para>
/// </remarks>
public static unsafe class TorchCheckpoint
{
    /// <summary>The longest <c>data.pkl</c> read (a state dict's pickle is about 200 bytes per tensor).</summary>
    internal const int MaxPickleLength = 64 << 20;

    /// <summary>The keys under which a training checkpoint keeps its state dict, in the order they are looked for.</summary>
    internal static readonly string[] WrapperKeys = ["state_dict", "model", "model_state_dict"];

    /// <summary>The prefix that <c>torch.nn.parallel.DistributedDataParallel</c> adds to every name.</summary>
    private const string DataParallelPrefix = "module.";

    // The first bytes of a file written by torch.save before PyTorch 1.6: a protocol-2 pickle of the magic number
    // 0x1950a86a20f9469cfc6c (PROTO 2, LONG1 of 10 bytes).
    private static ReadOnlySpan<byte> LegacyMagic => [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

    /// <summary>
    /// Opens a torch.save file, parses and validates its pickle and index; reads no tensor data yet. The returned file
    /// lists the state dict's tensors in the pickle's order and reads them one at a time (<see cref="ITensorFile.Read"/>)
    /// into new contiguous CPU tensors of the stored type; its <see cref="ITensorFile.Metadata"/> is empty. Dispose it
    /// to close the file.
    /// </summary>
    /// <remarks>
    /// <para>
    /// The state dict is the file's top-level dict when all its values are tensors. A training checkpoint such as
    /// <c>{'model': state_dict, 'epoch': 3, 'optimizer': ...}</c>, a top-level dict whose values are not all tensors,
    /// is read through the dict of tensors it holds under <c>state_dict</c>, <c>model</c> or <c>model_state_dict</c>
    /// (the first of these keys that holds one), and the rest of it is ignored; it must still hold only what the
    /// restricted reader accepts (an <c>argparse.Namespace</c> of arguments, say, is refused). When every name starts
    /// with <c>module.</c> (weights saved from a <c>DistributedDataParallel</c> wrapper), that prefix is removed.
    /// </para>
    /// <para>
    /// Tensors may be strided views (a transposed weight, several tensors sharing one storage at different offsets):
    /// each is read as the tensor PyTorch would rebuild, made contiguous. An expanded view (a stride of 0) is read in
    /// full, so it can need more memory than its storage holds: check <see cref="TensorInfo.ByteLength"/> (or the shape,
    /// against the model's) before reading.
    /// </para>
    /// </remarks>
    /// <exception cref="InvalidDataException">
    /// The file is not one this reader accepts; the message names the file and the problem: not a zip archive; the
    /// legacy format of PyTorch before 1.6; a zip without <c>data.pkl</c>, or a TorchScript archive; truncated;
    /// big-endian data; a pickle that asks for a global other than those a state dict needs (such as
    /// <c>posix.system</c>), or uses another opcode; a state dict value that is not a tensor; a tensor outside its
    /// storage; a storage whose declared length disagrees with its data.
    /// </exception>
    public static ITensorFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("torch.save files hold little-endian data; this machine is big-endian");
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        ZipReader? zip = null;
        try
        {
            CheckIsZip(handle, path);
            zip = ZipReader.Open(handle, problem => Bad(path, problem));
            return new TorchCheckpointFile(path, zip);
        }
        catch
        {
            zip?.Dispose();
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Reads the torch.save archive already open in <paramref name="zip"/>, which the returned file then owns.</summary>
    internal static ITensorFile Open(ZipReader zip, string path)
    {
        try
        {
            return new TorchCheckpointFile(path, zip);
        }
        catch
        {
            zip.Dispose();
            throw;
        }
    }

    internal static InvalidDataException Bad(string path, string problem) =>
        new($"'{path}' cannot be read as a torch.save checkpoint: {problem}");

    private static void CheckIsZip(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string path)
    {
        Span<byte> head = stackalloc byte[16];
        int n = 0;
        while (n < head.Length && RandomAccess.Read(handle, head[n..], n) is var got and > 0) n += got;
        head = head[..n];
        if (ZipReader.LooksLikeZip(head)) return;
        if (head.StartsWith(LegacyMagic))
            throw Bad(path, "it is in the legacy format of torch.save before PyTorch 1.6 (a sequence of pickles), which this reader does not read; "
                + "load it with PyTorch and save it again with a recent PyTorch, torch.save(obj, path), which writes the zip format");
        if (n > 0 && head[0] == 0x80)
            throw Bad(path, "it is a bare pickle, not the zip archive that torch.save writes; if PyTorch made it, load it and save it again with torch.save(obj, path)");
        throw Bad(path, n == 0
            ? "the file is empty"
            : $"it is not a zip archive (it starts with the bytes {Convert.ToHexString(head[..Math.Min(n, 4)])}), so torch.save of PyTorch 1.6 or later did not write it");
    }

    /// <summary>One tensor of the index: the pickle's view of a storage, with the storage's data entry.</summary>
    private sealed record Indexed(TensorInfo Info, PickleTensor Tensor, ZipEntry Entry, long DataOffset, long LastElement, bool RowMajor);

    private sealed class TorchCheckpointFile : ITensorFile
    {
        private static readonly IReadOnlyDictionary<string, string> NoMetadata = new Dictionary<string, string>();

        private readonly ZipReader zip;
        private readonly Dictionary<string, Indexed> byName = new(StringComparer.Ordinal);

        public TorchCheckpointFile(string path, ZipReader zip)
        {
            Path = path;
            this.zip = zip;
            var pickleEntry = FindPickle();
            string prefix = pickleEntry.Name[..^"data.pkl".Length];  // "archive/"
            CheckByteOrder(prefix);
            var root = PickleReader.Read(ReadWhole(pickleEntry, MaxPickleLength, "pickle"), pickleEntry.Name, Fail);
            Tensors = Index(SelectStateDict(root), prefix);
        }

        public string Path { get; }

        public IReadOnlyList<TensorInfo> Tensors { get; }

        public IReadOnlyDictionary<string, string> Metadata => NoMetadata;

        private InvalidDataException Fail(string problem) => Bad(Path, problem);

        // ------------------------------------------------------------------------------------------ the archive

        private ZipEntry FindPickle()
        {
            // torch.save writes <prefix>/data.pkl, with a prefix of one folder.
            const string Pickle = "/data.pkl";
            var pickles = zip.Entries.Where(e => e.Name.EndsWith(Pickle, StringComparison.Ordinal) && e.Name.IndexOf('/') == e.Name.Length - Pickle.Length && e.Name.Length > Pickle.Length).ToList();
            if (pickles.Count == 0)
                throw Fail($"it is a zip archive without a <folder>/data.pkl entry, so torch.save did not write it (it holds {Entries(zip.Entries.Take(5))}{(zip.Entries.Count > 5 ? ", ..." : "")})");
            if (pickles.Count > 1)
                throw Fail($"it holds {pickles.Count} pickles ({Entries(pickles)}), where torch.save writes one <folder>/data.pkl");
            var pickle = pickles[0];
            string prefix = pickle.Name[..^"data.pkl".Length];
            if (zip.Find(prefix + "constants.pkl") is not null)
                throw Fail("it is a TorchScript archive (torch.jit.save), not a torch.save state dict; "
                    + "load it with PyTorch and save the weights with torch.save(model.state_dict(), path)");
            return pickle;
        }

        private static string Entries(IEnumerable<ZipEntry> entries)
        {
            var names = entries.Select(e => $"'{e.Name}'").ToList();
            return names.Count == 0 ? "no entries" : string.Join(", ", names);
        }

        // torch.save writes "little" or "big" since PyTorch 2.1; older files have no byteorder entry and are little-endian.
        private void CheckByteOrder(string prefix)
        {
            var entry = zip.Find(prefix + "byteorder");
            if (entry is null) return;
            var text = Encoding.ASCII.GetString(ReadWhole(entry, 16, "byte order"));
            if (text == "big")
                throw Fail($"its {entry.Name} says that its tensor data is big-endian, which this reader does not support "
                    + "(save it again on a little-endian machine: x86-64 and ARM64 are both little-endian)");
            if (text != "little")
                throw Fail($"its {entry.Name} holds '{text}' where \"little\" or \"big\" belongs");
        }

        private byte[] ReadWhole(ZipEntry entry, int maxLength, string what)
        {
            if (entry.Length > maxLength)
                throw Fail($"its {what} {entry.Name} is {entry.Length} bytes long, more than the {maxLength} bytes accepted");
            long dataOffset = zip.Locate(entry);
            var bytes = new byte[entry.Length];
            fixed (byte* p = bytes) zip.Read(entry, dataOffset, 0, bytes.Length, p);
            return bytes;
        }

        // ------------------------------------------------------------------------------------------ the pickle's value

        /// <summary>The state dict (the top-level dict, or the one a training checkpoint wraps) and where it was found.</summary>
        private (PickleDict Dict, string Where) SelectStateDict(object? root)
        {
            if (root is not PickleDict top)
                throw Fail($"its pickle holds {PickleReader.Describe(root)}, not a state dict (a dict of tensors)");
            if (AllTensors(top)) return (top, "its state dict");
            // The first wrapper key that holds a dict of tensors; failing that, the first that holds a dict, so that the
            // error names what in it is not a tensor.
            foreach (bool strict in new[] { true, false })
                foreach (var key in WrapperKeys)
                    foreach (var (k, v) in top.Items)
                        if (k is string s && s == key && v is PickleDict inner && (!strict || AllTensors(inner)))
                            return (inner, $"the state dict under '{key}'");
            var first = top.Items.First(kv => kv.Value is not PickleTensor);
            throw Fail($"entry {Key(first.Key)} of its state dict is {PickleReader.Describe(first.Value)}, not a tensor "
                + $"(and it holds no dict under {string.Join(", ", WrapperKeys.Select(k => $"'{k}'"))}, where a training checkpoint keeps its weights)");
        }

        private static bool AllTensors(PickleDict dict) => dict.Items.All(kv => kv.Value is PickleTensor);

        private static string Key(object? key) => key is string s ? $"'{s}'" : $"with key {PickleReader.Describe(key)}";

        private List<TensorInfo> Index((PickleDict Dict, string Where) stateDict, string prefix)
        {
            var (dict, where) = stateDict;
            var named = new List<(string Name, PickleTensor Tensor)>(dict.Items.Count);
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (key, value) in dict.Items)
            {
                if (key is not string name || name.Length == 0)
                    throw Fail($"{where} has a key that is {(key is string ? "empty" : PickleReader.Describe(key))}, where a tensor's name belongs");
                if (value is not PickleTensor tensor)
                    throw Fail($"entry '{name}' of {where} is {PickleReader.Describe(value)}, not a tensor");
                if (!names.Add(name)) throw Fail($"entry '{name}' appears twice in {where}");
                named.Add((name, tensor));
            }
            if (named.Count > 0 && named.All(t => t.Name.StartsWith(DataParallelPrefix, StringComparison.Ordinal) && t.Name.Length > DataParallelPrefix.Length))
                for (int i = 0; i < named.Count; i++) named[i] = (named[i].Name[DataParallelPrefix.Length..], named[i].Tensor);

            var storages = new Dictionary<string, (ZipEntry Entry, long DataOffset)>(StringComparer.Ordinal);
            var infos = new List<TensorInfo>(named.Count);
            foreach (var (name, tensor) in named)
            {
                var (numel, last) = CheckExtent(name, tensor);
                var storage = tensor.Storage;
                if (!storages.TryGetValue(storage.Key, out var data))
                {
                    data = LocateStorage(name, storage, prefix);
                    storages.Add(storage.Key, data);
                }
                var info = new TensorInfo(name, storage.DType, tensor.Shape);
                byName.Add(name, new Indexed(info, tensor, data.Entry, data.DataOffset, last, numel == 0 || IsRowMajor(tensor.Shape, tensor.Stride)));
                infos.Add(info);
            }
            DataLength = CheckDisjoint(storages.Values);
            return infos;
        }

        /// <summary>
        /// The bytes of tensor data the archive holds, each counted once: views and names may share a storage, so the
        /// tensors' sizes say nothing about it; and no two storages may share bytes of the file (a hostile central
        /// directory could point every entry at the same data).
        /// </summary>
        private long CheckDisjoint(IEnumerable<(ZipEntry Entry, long DataOffset)> storages)
        {
            long total = 0, end = 0;
            ZipEntry? previous = null;
            foreach (var (entry, offset) in storages.Where(s => s.Entry.Length > 0).OrderBy(s => s.DataOffset))
            {
                if (offset < end)
                    throw Fail($"zip entries '{previous!.Name}' and '{entry.Name}' share bytes of the file; each storage has its own data");
                end = offset + entry.Length;  // within the file: Locate checked it
                total += entry.Length;
                previous = entry;
            }
            return total;
        }

        public long DataLength { get; private set; }

        /// <summary>Checks that the tensor's elements lie in its storage; returns its element count and the storage index of its last element.</summary>
        private (long NumElements, long Last) CheckExtent(string name, PickleTensor t)
        {
            var shape = t.Shape;
            string view = $"tensor '{name}' (size {Safetensors.FormatShape(shape)}, stride {Safetensors.FormatShape(t.Stride)}, storage offset {t.StorageOffset})";
            if (shape.Contains(0)) return (0, -1);  // no element: nothing to bound (as PyTorch, which accepts any offset then)
            long numel = 1, last = t.StorageOffset;
            try
            {
                for (int i = 0; i < shape.Length; i++)
                {
                    numel = checked(numel * shape[i]);
                    last = checked(last + (shape[i] - 1) * t.Stride[i]);
                }
                _ = checked(numel * t.Storage.DType.ElementSize());
            }
            catch (OverflowException)
            {
                throw Fail($"{view} has more elements, or reaches further, than 64-bit arithmetic can count");
            }
            if (last >= t.Storage.NumElements)
                throw Fail($"{view} reaches element {last} of storage '{t.Storage.Key}', which holds {t.Storage.NumElements} elements");
            return (numel, last);
        }

        private (ZipEntry Entry, long DataOffset) LocateStorage(string tensorName, PickleStorage storage, string prefix)
        {
            string entryName = prefix + "data/" + storage.Key;
            var entry = zip.Find(entryName)
                ?? throw Fail($"storage '{storage.Key}' of tensor '{tensorName}' has no data entry '{entryName}' in the archive");
            long bytes;
            try
            {
                bytes = checked(storage.NumElements * storage.DType.ElementSize());
            }
            catch (OverflowException)
            {
                throw Fail($"storage '{storage.Key}' declares {storage.NumElements} elements of {storage.ClassName}, more bytes than 64 bits count");
            }
            long dataOffset = zip.Locate(entry);
            // torch.save stores tensor data uncompressed. A compressed storage would be inflated again for every view of
            // it (a few bytes of pickle each), so it is refused rather than read.
            if (entry.Method != 0)
                throw Fail($"storage '{storage.Key}' is compressed in the archive ({entryName}); torch.save stores tensor data uncompressed, "
                    + "so the file was repacked: load it with PyTorch and save it again with torch.save(obj, path)");
            if (entry.Length != bytes)
                throw Fail($"storage '{storage.Key}' is declared as {storage.NumElements} elements of {storage.ClassName} ({bytes} bytes), "
                    + $"but its data entry '{entryName}' holds {entry.Length} bytes");
            return (entry, dataOffset);
        }

        /// <summary>True when the strides are those of a contiguous row-major tensor (dimensions of size 1 may have any stride).</summary>
        private static bool IsRowMajor(long[] shape, long[] stride)
        {
            long expected = 1;
            for (int i = shape.Length - 1; i >= 0; i--)
            {
                if (shape[i] != 1 && stride[i] != expected) return false;
                expected *= shape[i];  // cannot overflow: called only once the element count was checked
            }
            return true;
        }

        // ------------------------------------------------------------------------------------------ reading

        public Tensor Read(string name)
        {
            if (!byName.TryGetValue(name, out var x)) throw new KeyNotFoundException($"'{Path}' has no tensor '{name}'");
            var t = x.Tensor;
            var dtype = x.Info.DType;
            int size = dtype.ElementSize();
            long numel = x.Info.NumElements;
            var result = Tensor.Empty(t.Shape, dtype);
            try
            {
                if (numel == 0) return result;
                var destination = (byte*)result.DataPointer();
                long start = t.StorageOffset * size;
                if (x.RowMajor)
                {
                    zip.Read(x.Entry, x.DataOffset, start, numel * size, destination);
                }
                else
                {
                    // A strided view: read the span of storage it covers, then gather its elements in row-major order.
                    long spanBytes = (x.LastElement - t.StorageOffset + 1) * size;
                    var span = (byte*)NativeMemory.Alloc((nuint)spanBytes);
                    try
                    {
                        zip.Read(x.Entry, x.DataOffset, start, spanBytes, span);
                        Gather(span, destination, t.Shape, t.Stride, numel, size);
                    }
                    finally
                    {
                        NativeMemory.Free(span);
                    }
                }
                if (dtype == DType.Bool) CheckBooleans(name, destination, numel);
                return result;
            }
            catch
            {
                result.Dispose();
                throw;
            }
        }

        private void CheckBooleans(string name, byte* p, long count)
        {
            for (long done = 0; done < count;)
            {
                int n = (int)Math.Min(1 << 30, count - done);
                var span = new ReadOnlySpan<byte>(p + done, n);
                if (span.IndexOfAnyExcept((byte)0, (byte)1) is var bad and >= 0)
                    throw Fail($"tensor '{name}' is bool but holds the byte {span[bad]} (only 0 and 1 are booleans)");
                done += n;
            }
        }

        /// <summary>
        /// Copies the elements of the strided view (<paramref name="shape"/>, <paramref name="stride"/> in elements, from
        /// <paramref name="source"/>) to <paramref name="destination"/> in row-major order, with an odometer over the
        /// indices rather than recursion.
        /// </summary>
        private static void Gather(byte* source, byte* destination, long[] shape, long[] stride, long numel, int size)
        {
            int dims = shape.Length;
            var index = stackalloc long[dims];
            long at = 0;  // element offset in source of the current index
            for (long i = 0; i < numel; i++)
            {
                switch (size)
                {
                    case 1: destination[i] = source[at]; break;
                    case 2: ((short*)destination)[i] = ((short*)source)[at]; break;
                    case 4: ((int*)destination)[i] = ((int*)source)[at]; break;
                    default: ((long*)destination)[i] = ((long*)source)[at]; break;
                }
                for (int d = dims - 1; d >= 0; d--)
                {
                    at += stride[d];
                    if (++index[d] < shape[d]) break;
                    at -= stride[d] * shape[d];
                    index[d] = 0;
                }
            }
        }

        public void Dispose() => zip.Dispose();
    }
}
