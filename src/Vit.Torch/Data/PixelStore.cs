using Microsoft.Win32.SafeHandles;
using Vit.Torch.Imaging;

namespace Vit.Torch.Data;

/// <summary>
/// Decoded images of one size (HWC bytes), written once and read by every epoch: a data set read through a pipeline
/// (decoding, resizing) is decoded once, not once per epoch. Images are kept in memory up to a budget; beyond it they go
/// to a temporary file that is deleted when the store is disposed (or the process ends), so a data set need not fit in
/// memory. One thread adds; any number read, at the same time.
/// </summary>
public sealed class PixelStore : IDisposable
{
    private const int ChunkBytes = 64 << 20;

    private readonly List<byte[]> chunks = new();
    private readonly int perChunk;
    private readonly long memoryBudget;
    private int inMemory;
    private SafeFileHandle? file;
    private string? filePath;
    private volatile int count;

    /// <summary>A store of images of <paramref name="width"/> × <paramref name="height"/> × <paramref name="channels"/>
    /// bytes; <paramref name="memoryBudget"/> bytes of them stay in memory (default: a quarter of the memory available
    /// to the process), the rest go to a temporary file.</summary>
    public PixelStore(int width, int height, int channels, long? memoryBudget = null)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"image size {width}x{height} must be positive");
        if (channels is not (1 or 3 or 4)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1, 3 or 4");
        long bytes = (long)width * height * channels;
        if (bytes > int.MaxValue) throw new ArgumentException($"a {width}x{height}x{channels} image is too large to store");
        (Width, Height, Channels, ImageBytes) = (width, height, channels, (int)bytes);
        if (memoryBudget is < 0) throw new ArgumentOutOfRangeException(nameof(memoryBudget), memoryBudget, "the memory budget must not be negative");
        this.memoryBudget = memoryBudget ?? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 4;
        perChunk = Math.Max(1, ChunkBytes / ImageBytes);
    }

    /// <summary>Width of every image.</summary>
    public int Width { get; }

    /// <summary>Height of every image.</summary>
    public int Height { get; }

    /// <summary>Channels of every image.</summary>
    public int Channels { get; }

    /// <summary>Bytes of one image.</summary>
    public int ImageBytes { get; }

    /// <summary>Images stored.</summary>
    public int Count => count;

    /// <summary>Images kept in memory (the others are in the temporary file).</summary>
    public int CountInMemory => inMemory;

    /// <summary>Adds an image (HWC bytes, <see cref="ImageBytes"/> of them); returns its index. One thread at a time.</summary>
    public int Add(ReadOnlySpan<byte> hwc)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (hwc.Length != ImageBytes)
            throw new ArgumentException($"{hwc.Length} bytes where a {Width}x{Height}x{Channels} image has {ImageBytes}", nameof(hwc));
        int index = count;
        if (index == int.MaxValue) throw new InvalidOperationException("the store is full");
        if (file is null && (long)(inMemory + 1) * ImageBytes <= memoryBudget)
        {
            int chunk = inMemory / perChunk, slot = inMemory % perChunk;
            if (chunk == chunks.Count) chunks.Add(GC.AllocateUninitializedArray<byte>(perChunk * ImageBytes));
            hwc.CopyTo(chunks[chunk].AsSpan(slot * ImageBytes, ImageBytes));
            inMemory++;
        }
        else
        {
            if (file is null)
            {
                filePath = Path.Combine(Path.GetTempPath(), $"vit-pixels-{Environment.ProcessId}-{Guid.NewGuid():N}.bin");
                file = File.OpenHandle(filePath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.DeleteOnClose);
            }
            RandomAccess.Write(file, hwc, (long)(index - inMemory) * ImageBytes);
        }
        count = index + 1;  // published after the bytes: a reader that sees the index sees its image
        return index;
    }

    /// <summary>Copies image <paramref name="index"/> into <paramref name="destination"/>. Safe from any number of threads.</summary>
    public void Read(int index, Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if ((uint)index >= (uint)count) throw new ArgumentOutOfRangeException(nameof(index), index, $"the store holds {count} images");
        if (destination.Length != ImageBytes) throw new ArgumentException($"the destination has {destination.Length} bytes for {ImageBytes}", nameof(destination));
        if (index < inMemory)
        {
            chunks[index / perChunk].AsSpan(index % perChunk * ImageBytes, ImageBytes).CopyTo(destination);
            return;
        }
        long offset = (long)(index - inMemory) * ImageBytes;
        for (int done = 0; done < ImageBytes;)
        {
            int n = RandomAccess.Read(file!, destination[done..], offset + done);
            if (n == 0) throw new IOException($"the temporary image store {filePath} ended early (was it deleted?)");
            done += n;
        }
    }

    /// <summary>Image <paramref name="index"/> as an image the caller disposes.</summary>
    public Image Load(int index)
    {
        var pixels = GC.AllocateUninitializedArray<byte>(ImageBytes);
        Read(index, pixels);
        return Image.FromPixels(pixels, Width, Height, Channels);
    }

    private bool disposed;

    /// <summary>Frees the memory and deletes the temporary file.</summary>
    public void Dispose()
    {
        disposed = true;
        chunks.Clear();
        file?.Dispose();
    }
}

/// <summary>An image of a <see cref="PixelStore"/> as a training sample.</summary>
/// <param name="Store">The store.</param>
/// <param name="Index">The image's index in it.</param>
/// <param name="Name">Names the image in messages (e.g. "row 17").</param>
/// <param name="Label">Class index (0-based).</param>
public sealed record StoredImageSample(PixelStore Store, int Index, string Name, long Label) : IImageSample
{
    /// <inheritdoc />
    public Image Load(ImageDecodeOptions options) => Store.Load(Index);
}
