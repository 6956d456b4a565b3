using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Vit.Torch.Checkpoints;

/// <summary>One file of a zip archive, as the central directory describes it.</summary>
/// <param name="Name">The entry's name, e.g. <c>archive/data/0</c>.</param>
/// <param name="Flags">The general-purpose bit flags.</param>
/// <param name="Method">The compression method (0 stored, 8 deflate).</param>
/// <param name="CompressedLength">Bytes of the (compressed) data in the file.</param>
/// <param name="Length">Bytes of the data once uncompressed.</param>
/// <param name="LocalHeaderOffset">Where the entry's local header starts.</param>
/// <param name="Crc32">The CRC-32 of the uncompressed data, as the central directory records it.</param>
internal sealed record ZipEntry(string Name, int Flags, int Method, long CompressedLength, long Length, long LocalHeaderOffset, uint Crc32 = 0);

/// <summary>
/// A reader of zip archives (PKWARE APPNOTE 6.3: end-of-central-directory record, its zip64 form, central directory
/// headers with zip64 extra fields, local headers) for the few stored or deflated entries that a checkpoint holds.
/// Every size and offset that the archive declares is untrusted: it is checked against the file's length before it
/// is used or anything is allocated for it, and a read that runs out of file fails with "the file ended ...".
/// </summary>
internal sealed class ZipReader : IDisposable
{
    /// <summary>Largest central directory read (a checkpoint's is a few kilobytes: ~60 bytes per storage).</summary>
    public const int MaxCentralDirectoryLength = 64 << 20;

    /// <summary>
    /// Largest ratio of uncompressed to compressed length accepted for a deflated entry. Deflate cannot do better than
    /// about 1032:1, and tensors compress by less than 2:1, so a higher ratio is a zip bomb, not a checkpoint.
    /// </summary>
    public const int MaxDeflateRatio = 64;

    private const uint LocalHeaderSignature = 0x04034b50;
    private const uint CentralHeaderSignature = 0x02014b50;
    private const uint EndSignature = 0x06054b50;
    private const uint Zip64EndSignature = 0x06064b50;
    private const uint Zip64LocatorSignature = 0x07064b50;
    private const int EndLength = 22, Zip64EndLength = 56, Zip64LocatorLength = 20, CentralHeaderLength = 46, LocalHeaderLength = 30;

    private readonly SafeFileHandle file;
    private readonly Func<string, InvalidDataException> bad;
    private readonly Dictionary<string, ZipEntry> byName;

    private ZipReader(SafeFileHandle file, long length, Func<string, InvalidDataException> bad, List<ZipEntry> entries)
    {
        this.file = file;
        this.bad = bad;
        FileLength = length;
        Entries = entries;
        byName = new Dictionary<string, ZipEntry>(StringComparer.Ordinal);
        foreach (var e in entries)
            if (!byName.TryAdd(e.Name, e)) throw bad($"the zip archive holds two entries named '{e.Name}'");
    }

    /// <summary>The length of the file in bytes.</summary>
    public long FileLength { get; }

    /// <summary>The entries in central-directory order.</summary>
    public IReadOnlyList<ZipEntry> Entries { get; }

    /// <summary>True when <paramref name="head"/> (the file's first bytes) starts like a zip archive.</summary>
    public static bool LooksLikeZip(ReadOnlySpan<byte> head) =>
        head.Length >= 4 && BinaryPrimitives.ReadUInt32LittleEndian(head) is LocalHeaderSignature or EndSignature;

    /// <summary>The entry named <paramref name="name"/>, or null.</summary>
    public ZipEntry? Find(string name) => byName.GetValueOrDefault(name);

    /// <summary>
    /// Reads the central directory of the archive open in <paramref name="file"/>, which the reader then owns.
    /// <paramref name="bad"/> makes the exception for a problem (it adds the file's name).
    /// </summary>
    public static ZipReader Open(SafeFileHandle file, Func<string, InvalidDataException> bad)
    {
        long length = RandomAccess.GetLength(file);
        var (directoryOffset, directoryLength, count) = ReadEnd(file, length, bad);
        var directory = new byte[directoryLength];
        ReadAt(file, directoryOffset, directory, length, "the zip central directory", bad);

        var entries = new List<ZipEntry>();
        int p = 0;
        while (p < directory.Length)
        {
            if (directory.Length - p < CentralHeaderLength || BinaryPrimitives.ReadUInt32LittleEndian(directory.AsSpan(p)) != CentralHeaderSignature)
                throw bad($"the zip central directory is damaged at byte {directoryOffset + p} (no central file header there)");
            var h = directory.AsSpan(p);
            int flags = BinaryPrimitives.ReadUInt16LittleEndian(h[8..]);
            int method = BinaryPrimitives.ReadUInt16LittleEndian(h[10..]);
            uint crc = BinaryPrimitives.ReadUInt32LittleEndian(h[16..]);
            long compressed = BinaryPrimitives.ReadUInt32LittleEndian(h[20..]);
            long uncompressed = BinaryPrimitives.ReadUInt32LittleEndian(h[24..]);
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(h[28..]);
            int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(h[30..]);
            int commentLength = BinaryPrimitives.ReadUInt16LittleEndian(h[32..]);
            int disk = BinaryPrimitives.ReadUInt16LittleEndian(h[34..]);
            long localOffset = BinaryPrimitives.ReadUInt32LittleEndian(h[42..]);
            int total = CentralHeaderLength + nameLength + extraLength + commentLength;
            if (total > h.Length)
                throw bad($"the zip central directory is damaged at byte {directoryOffset + p} (a file header runs past the directory's end)");
            string name = DecodeName(h.Slice(CentralHeaderLength, nameLength), directoryOffset + p, bad);
            var extra = h.Slice(CentralHeaderLength + nameLength, extraLength);
            ApplyZip64Extra(extra, ref uncompressed, ref compressed, ref localOffset, name, bad);
            if (disk != 0 && disk != 0xFFFF) throw bad($"zip entry '{name}' lies on disk {disk} of a multi-disk archive");
            entries.Add(new ZipEntry(name, flags, method, compressed, uncompressed, localOffset, crc));
            p += total;
        }
        if (entries.Count != count)
            throw bad($"the zip central directory holds {entries.Count} entries, but its end record says {count}");
        return new ZipReader(file, length, bad, entries);
    }

    /// <summary>
    /// Checks that <paramref name="entry"/>'s data can be read (stored, or deflated at a plausible ratio; not
    /// encrypted; within the file) and returns the file offset where the data starts.
    /// </summary>
    public long Locate(ZipEntry entry)
    {
        if ((entry.Flags & 1) != 0) throw bad($"zip entry '{entry.Name}' is encrypted");
        switch (entry.Method)
        {
            case 0:
                if (entry.CompressedLength != entry.Length)
                    throw bad($"zip entry '{entry.Name}' is stored uncompressed, yet its sizes disagree ({entry.CompressedLength} bytes in the file, {entry.Length} uncompressed)");
                break;
            case 8:
                // entry.CompressedLength < 2^63 / 64 here, so the product cannot overflow.
                if (entry.CompressedLength > long.MaxValue / MaxDeflateRatio) break;
                if (entry.Length > entry.CompressedLength * MaxDeflateRatio)
                    throw bad($"zip entry '{entry.Name}' claims to inflate from {entry.CompressedLength} to {entry.Length} bytes, more than {MaxDeflateRatio} times (a zip bomb, not tensor data)");
                break;
            default:
                throw bad($"zip entry '{entry.Name}' uses compression method {entry.Method}; only stored (0) and deflate (8) entries are read");
        }

        Span<byte> local = stackalloc byte[LocalHeaderLength];
        ReadAt(file, entry.LocalHeaderOffset, local, FileLength, $"the local header of zip entry '{entry.Name}'", bad);
        if (BinaryPrimitives.ReadUInt32LittleEndian(local) != LocalHeaderSignature)
            throw bad($"zip entry '{entry.Name}' has no local header at byte {entry.LocalHeaderOffset}, where the central directory puts it");
        int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(local[26..]);
        int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(local[28..]);
        var nameBytes = new byte[nameLength];
        ReadAt(file, entry.LocalHeaderOffset + LocalHeaderLength, nameBytes, FileLength, $"the local header of zip entry '{entry.Name}'", bad);
        if (!nameBytes.AsSpan().SequenceEqual(Encoding.UTF8.GetBytes(entry.Name)))
            throw bad($"zip entry '{entry.Name}' has a local header at byte {entry.LocalHeaderOffset} that names another file");

        long dataOffset = entry.LocalHeaderOffset + LocalHeaderLength + nameLength + extraLength;
        if (dataOffset > FileLength || entry.CompressedLength > FileLength - dataOffset)
            throw bad($"the file ended before the data of zip entry '{entry.Name}': {entry.CompressedLength} bytes from byte {dataOffset} run past its end at {FileLength} (truncated file?)");
        return dataOffset;
    }

    /// <summary>
    /// Reads <paramref name="count"/> bytes of <paramref name="entry"/>'s uncompressed data from <paramref name="start"/>
    /// into <paramref name="destination"/> (which has room for them). <paramref name="dataOffset"/> is what
    /// <see cref="Locate"/> returned.
    /// </summary>
    public unsafe void Read(ZipEntry entry, long dataOffset, long start, long count, byte* destination)
    {
        if (start < 0 || count < 0 || start > entry.Length - count)
            throw new ArgumentOutOfRangeException(nameof(count), $"bytes [{start}, {start} + {count}) are not within the {entry.Length} bytes of '{entry.Name}'");
        if (entry.Method == 0)
        {
            for (long done = 0; done < count;)
            {
                int n = (int)Math.Min(1 << 30, count - done);
                ReadAt(file, dataOffset + start + done, new Span<byte>(destination + done, n), FileLength, $"zip entry '{entry.Name}'", bad);
                done += n;
            }
            return;
        }

        // Deflated: inflate from the start, skipping to the range wanted.
        using var window = new WindowStream(file, dataOffset, entry.CompressedLength);
        using var inflate = new DeflateStream(window, CompressionMode.Decompress);
        var skip = new byte[(int)Math.Min(1 << 16, Math.Max(1, start))];
        for (long skipped = 0; skipped < start;)
            skipped += Inflate(inflate, skip.AsSpan(0, (int)Math.Min(skip.Length, start - skipped)), entry, skipped);
        for (long done = 0; done < count;)
            done += Inflate(inflate, new Span<byte>(destination + done, (int)Math.Min(1 << 30, count - done)), entry, start + done);
    }

    /// <summary>
    /// A stream of <paramref name="entry"/>'s uncompressed data (checked by <see cref="Locate"/> first): seekable when the
    /// entry is stored, read front to back when it is deflated. It reads through this reader, which must outlive it.
    /// </summary>
    public Stream OpenRead(ZipEntry entry)
    {
        long dataOffset = Locate(entry);
        var window = new WindowStream(file, dataOffset, entry.CompressedLength);
        return entry.Method == 0 ? window : new DeflateStream(window, CompressionMode.Decompress);
    }

    /// <summary>Inflates at least one byte into <paramref name="buffer"/>; <paramref name="position"/> is where in the entry it is.</summary>
    private int Inflate(DeflateStream inflate, Span<byte> buffer, ZipEntry entry, long position, bool allowEnd = false)
    {
        int n;
        try
        {
            n = inflate.Read(buffer);
        }
        catch (InvalidDataException e)
        {
            throw bad($"the deflated data of zip entry '{entry.Name}' is corrupt after {position} bytes ({e.Message})");
        }
        if (n == 0 && !allowEnd) throw bad($"the deflated data of zip entry '{entry.Name}' ended after {position} of its declared {entry.Length} bytes");
        return n;
    }

    /// <summary>
    /// Reads all of <paramref name="entry"/>'s data and checks it against the CRC-32 the archive recorded: a copy damaged
    /// on disk or on the way (a flipped bit, a torn write) is refused here instead of loading as different numbers.
    /// </summary>
    /// <exception cref="InvalidDataException">The data does not match its CRC-32: the message says the file is corrupted.</exception>
    public void Verify(ZipEntry entry)
    {
        var crc = new System.IO.Hashing.Crc32();
        var buffer = new byte[(int)Math.Clamp(entry.Length, 4096, 1 << 20)];
        long total = 0;
        using (var s = OpenRead(entry))
        {
            int n;
            while ((n = entry.Method == 0 ? s.Read(buffer) : Inflate((DeflateStream)s, buffer, entry, total, allowEnd: true)) > 0)
            {
                crc.Append(buffer.AsSpan(0, n));
                total += n;
            }
        }
        uint actual = crc.GetCurrentHashAsUInt32();
        if (total != entry.Length || actual != entry.Crc32)
            throw bad($"the file is corrupted: zip entry '{entry.Name}' has CRC-32 {actual:x8} over {total} bytes, but the archive " +
                      $"records {entry.Crc32:x8} over {entry.Length} (a damaged copy; copy or download it again)");
    }

    /// <summary>Closes the file.</summary>
    public void Dispose() => file.Dispose();

    // ------------------------------------------------------------------------------------------------ parsing

    /// <summary>Finds the end-of-central-directory record (and its zip64 form) and returns where the directory is.</summary>
    private static (long Offset, int Length, long Count) ReadEnd(SafeFileHandle file, long length, Func<string, InvalidDataException> bad)
    {
        // The record is the last thing in the file, followed only by its comment (at most 65535 bytes).
        int tailLength = (int)Math.Min(length, EndLength + ushort.MaxValue);
        var tail = new byte[tailLength];
        ReadAt(file, length - tailLength, tail, length, "the end of the zip archive", bad);
        int at = -1;
        for (int i = tailLength - EndLength; i >= 0; i--)
            if (BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(i)) == EndSignature
                && i + EndLength + BinaryPrimitives.ReadUInt16LittleEndian(tail.AsSpan(i + 20)) == tailLength)
            {
                at = i;
                break;
            }
        if (at < 0)
            throw bad("the file ended without a zip end-of-central-directory record: it was truncated, or it is not a zip archive");
        long endOffset = length - tailLength + at;
        var end = tail.AsSpan(at);
        int disk = BinaryPrimitives.ReadUInt16LittleEndian(end[4..]);
        int directoryDisk = BinaryPrimitives.ReadUInt16LittleEndian(end[6..]);
        long count = BinaryPrimitives.ReadUInt16LittleEndian(end[10..]);
        long directoryLength = BinaryPrimitives.ReadUInt32LittleEndian(end[12..]);
        long directoryOffset = BinaryPrimitives.ReadUInt32LittleEndian(end[16..]);
        long directoryLimit = endOffset;  // the directory ends where the end records start

        // PyTorch (miniz) always writes the zip64 records; other writers only when a field overflows.
        if (endOffset >= Zip64LocatorLength)
        {
            Span<byte> locator = stackalloc byte[Zip64LocatorLength];
            ReadAt(file, endOffset - Zip64LocatorLength, locator, length, "the zip64 end locator", bad);
            if (BinaryPrimitives.ReadUInt32LittleEndian(locator) == Zip64LocatorSignature)
            {
                ulong end64 = BinaryPrimitives.ReadUInt64LittleEndian(locator[8..]);
                long locatorOffset = endOffset - Zip64LocatorLength;
                if (locatorOffset < Zip64EndLength || end64 > (ulong)(locatorOffset - Zip64EndLength))
                    throw bad($"the zip64 end record is said to be at byte {end64}, past where it can be (truncated or damaged archive)");
                Span<byte> rec = stackalloc byte[Zip64EndLength];
                ReadAt(file, (long)end64, rec, length, "the zip64 end record", bad);
                if (BinaryPrimitives.ReadUInt32LittleEndian(rec) != Zip64EndSignature)
                    throw bad($"the zip64 end record is missing at byte {end64}, where its locator puts it");
                disk = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(rec[16..]), int.MaxValue);
                directoryDisk = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(rec[20..]), int.MaxValue);
                count = ToLong(BinaryPrimitives.ReadUInt64LittleEndian(rec[32..]));
                directoryLength = ToLong(BinaryPrimitives.ReadUInt64LittleEndian(rec[40..]));
                directoryOffset = ToLong(BinaryPrimitives.ReadUInt64LittleEndian(rec[48..]));
                directoryLimit = (long)end64;
            }
        }
        if (disk != 0 || directoryDisk != 0) throw bad("the zip archive spans several disks");
        if (directoryLength > MaxCentralDirectoryLength)
            throw bad($"the zip central directory is said to be {directoryLength} bytes long, more than the {MaxCentralDirectoryLength} accepted");
        if (directoryOffset > directoryLimit || directoryLength > directoryLimit - directoryOffset)
            throw bad($"the zip central directory is said to span {directoryLength} bytes from byte {directoryOffset}, past the end records at byte {directoryLimit} (truncated or damaged archive)");
        if (count > directoryLength / CentralHeaderLength)
            throw bad($"the zip end record counts {count} entries, more than its {directoryLength}-byte central directory can hold");
        return (directoryOffset, (int)directoryLength, count);
    }

    private static long ToLong(ulong v) => v > long.MaxValue ? long.MaxValue : (long)v;

    /// <summary>Applies the zip64 extended-information field: each 32-bit field that is 0xFFFFFFFF is there as 64 bits.</summary>
    private static void ApplyZip64Extra(ReadOnlySpan<byte> extra, ref long uncompressed, ref long compressed, ref long localOffset, string name,
        Func<string, InvalidDataException> bad)
    {
        const long Escape = 0xFFFFFFFF;
        while (extra.Length >= 4)
        {
            int id = BinaryPrimitives.ReadUInt16LittleEndian(extra);
            int size = BinaryPrimitives.ReadUInt16LittleEndian(extra[2..]);
            if (size > extra.Length - 4) throw bad($"zip entry '{name}' has an extra field that runs past its header");
            var field = extra.Slice(4, size);
            if (id == 1)
            {
                int q = 0;
                if (uncompressed == Escape) uncompressed = Read64(field, ref q, name, bad);
                if (compressed == Escape) compressed = Read64(field, ref q, name, bad);
                if (localOffset == Escape) localOffset = Read64(field, ref q, name, bad);
            }
            extra = extra[(4 + size)..];
        }
    }

    private static long Read64(ReadOnlySpan<byte> field, ref int q, string name, Func<string, InvalidDataException> bad)
    {
        if (field.Length - q < 8) throw bad($"zip entry '{name}' has a zip64 field too short for the sizes it must hold");
        ulong v = BinaryPrimitives.ReadUInt64LittleEndian(field[q..]);
        q += 8;
        if (v > long.MaxValue) throw bad($"zip entry '{name}' declares a size or offset of {v}, beyond any file");
        return (long)v;
    }

    private static string DecodeName(ReadOnlySpan<byte> bytes, long at, Func<string, InvalidDataException> bad)
    {
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw bad($"the zip entry name at byte {at} is not valid UTF-8");
        }
    }

    /// <summary>Fills <paramref name="destination"/> from <paramref name="offset"/>, or fails naming <paramref name="what"/> if the file ends first.</summary>
    private static void ReadAt(SafeFileHandle file, long offset, Span<byte> destination, long length, string what, Func<string, InvalidDataException> bad)
    {
        for (int done = 0; done < destination.Length;)
        {
            int n = offset + done < length ? RandomAccess.Read(file, destination[done..], offset + done) : 0;
            if (n == 0)
                throw bad($"the file ended at byte {offset + done} while reading {what} ({destination.Length} bytes from byte {offset}; truncated file?)");
            done += n;
        }
    }

    /// <summary>A read-only, seekable view of bytes [start, start + length) of a file: a stored entry, or the input of
    /// an inflater.</summary>
    private sealed class WindowStream(SafeFileHandle file, long start, long length) : Stream
    {
        private long position;

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => length;

        public override long Position
        {
            get => position;
            set => position = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "a position cannot be negative");
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int n = (int)Math.Min(buffer.Length, length - position);
            if (n <= 0) return 0;
            n = RandomAccess.Read(file, buffer[..n], start + position);
            position += n;
            return n;
        }

        public override long Seek(long offset, SeekOrigin origin) => Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => position + offset,
            _ => length + offset,
        };

        public override void Flush() { }
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
