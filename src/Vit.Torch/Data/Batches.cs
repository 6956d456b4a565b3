namespace Vit.Torch.Data;

/// <summary>A batch: images (B, C, H, W) float32 and labels (B) int64. Disposing frees both.</summary>
public sealed class Batch : IDisposable
{
    /// <summary>Creates a batch that owns both tensors.</summary>
    public Batch(Tensor images, Tensor labels)
    {
        Images = images;
        Labels = labels;
    }

    /// <summary>Images (B, C, H, W).</summary>
    public Tensor Images { get; }

    /// <summary>Class indices (B).</summary>
    public Tensor Labels { get; }

    /// <summary>Number of samples.</summary>
    public int Count => (int)Labels.Size(0);

    /// <summary>The batch's position in its epoch (0-based), or -1 when the source does not say: a source may leave out
    /// a batch (every image unreadable), and a trainer that counts batches must not lose its place.</summary>
    public int Index { get; init; } = -1;

    /// <summary>The size of the whole batch this one is a shard of (<see cref="ImageLoaderOptions.Shard"/>), before any
    /// image was left out as unreadable; without sharding, 0 (read it as <see cref="Count"/>).</summary>
    public int GlobalCount { get; init; }

    /// <summary>Frees both tensors.</summary>
    public void Dispose()
    {
        Images.Dispose();
        Labels.Dispose();
    }
}

/// <summary>Something that yields the batches of one epoch (training: shuffled; evaluation: in order).</summary>
public interface IBatchSource
{
    /// <summary>Number of samples in one epoch.</summary>
    int Count { get; }

    /// <summary>Number of classes.</summary>
    int NumClasses { get; }

    /// <summary>Number of batches in one epoch (the last may be partial).</summary>
    int BatchesPerEpoch { get; }

    /// <summary>The batches of epoch <paramref name="epoch"/> (0-based); the consumer disposes each batch.</summary>
    IEnumerable<Batch> Batches(int epoch);

    /// <summary>
    /// The batches of epoch <paramref name="epoch"/> from batch <paramref name="firstBatch"/> on (a run resumed midway
    /// through an epoch); <paramref name="cancellationToken"/> stops the wait for the next batch with an
    /// <see cref="OperationCanceledException"/>. The default builds and frees the batches before
    /// <paramref name="firstBatch"/>, so that a source whose randomness runs from batch to batch stays in step.
    /// </summary>
    IEnumerable<Batch> Batches(int epoch, int firstBatch, CancellationToken cancellationToken)
    {
        int index = 0;
        foreach (var batch in Batches(epoch))
        {
            if (index++ < firstBatch)
            {
                batch.Dispose();
                continue;
            }
            if (cancellationToken.IsCancellationRequested)
            {
                batch.Dispose();
                cancellationToken.ThrowIfCancellationRequested();
            }
            yield return batch;
        }
    }

    /// <summary>What identifies the data and its batching (samples, labels, order, augmentation), field by field: a
    /// checkpoint refuses to resume on other data and names the fields that differ. The default says only the counts.</summary>
    IReadOnlyDictionary<string, string> Fingerprint => new Dictionary<string, string>
    {
        ["samples"] = Count.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["classes"] = NumClasses.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["batches per epoch"] = BatchesPerEpoch.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}

/// <summary>A shard's slice of a global batch: shard i of n takes [From(size, i, n), From(size, i + 1, n)), sizes
/// differing by at most one.</summary>
internal static class ShardSlice
{
    public static int From(int size, int shard, int shards) => (int)((long)size * shard / shards);

    /// <summary>Adds the shard, when there is one, to a source's fingerprint.</summary>
    public static Dictionary<string, string> WithShard(this Dictionary<string, string> d, (int Index, int Count)? shard)
    {
        if (shard is var (i, n)) d["shard"] = $"{i} of {n}";
        return d;
    }
}

/// <summary>SHA-256 fingerprints of what a batch source reads, for <see cref="IBatchSource.Fingerprint"/>.</summary>
internal static class DataFingerprint
{
    /// <summary>Hex SHA-256 of the given parts, each length-prefixed (so that parts cannot run into each other).</summary>
    public static string Of(IEnumerable<string> parts) => Of(parts, []);

    /// <summary>As <see cref="Of(IEnumerable{string})"/>, with <paramref name="data"/>'s bytes after the parts.</summary>
    public static string Of(IEnumerable<string> parts, ReadOnlySpan<float> data)
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var part in parts)
        {
            var bytes = System.Text.Encoding.UTF8.GetBytes(part);
            sha.AppendData(BitConverter.GetBytes(bytes.Length));
            sha.AppendData(bytes);
        }
        sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data));
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}

/// <summary>
/// Batches an <see cref="InMemoryDataset"/>: optionally shuffled per epoch with a seeded permutation (the same seed
/// and epoch give the same order), with optional light augmentation (random translation and horizontal flip),
/// written straight into the batch tensor's memory.
/// </summary>
public sealed class InMemoryBatchSource : IBatchSource
{
    private readonly InMemoryDataset data;

    /// <summary>Creates the source.</summary>
    /// <param name="data">The images.</param>
    /// <param name="batchSize">Samples per batch; the last batch of an epoch may be smaller.</param>
    /// <param name="shuffle">Reshuffle every epoch (training) or keep the order (evaluation).</param>
    /// <param name="seed">Seed of the shuffling and augmentation.</param>
    /// <param name="maxShift">Random translation of up to this many pixels in x and y (0 = off).</param>
    /// <param name="horizontalFlip">Flip half of the images left-right.</param>
    /// <param name="padValue">Value of pixels shifted in from outside the image (the normalised background).</param>
    public InMemoryBatchSource(InMemoryDataset data, int batchSize, bool shuffle, int seed = 0, int maxShift = 0,
        bool horizontalFlip = false, float padValue = 0)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be positive");
        if (maxShift < 0) throw new ArgumentOutOfRangeException(nameof(maxShift), maxShift, "shift must be >= 0");
        this.data = data;
        BatchSize = batchSize;
        Shuffle = shuffle;
        Seed = seed;
        MaxShift = maxShift;
        HorizontalFlip = horizontalFlip;
        PadValue = padValue;
    }

    /// <summary>Samples per batch.</summary>
    public int BatchSize { get; }

    /// <summary>Whether each epoch is shuffled.</summary>
    public bool Shuffle { get; }

    /// <summary>Seed of shuffling and augmentation.</summary>
    public int Seed { get; }

    /// <summary>Maximum random translation in pixels.</summary>
    public int MaxShift { get; }

    /// <summary>Whether images are randomly flipped.</summary>
    public bool HorizontalFlip { get; }

    /// <summary>Fill value for pixels shifted in.</summary>
    public float PadValue { get; }

    /// <summary>
    /// Data-parallel training: this process is shard <c>Index</c> of <c>Count</c>, as <see cref="ImageLoaderOptions.Shard"/>:
    /// every shard has the same order and the same global batches and builds its contiguous slice of each (with the
    /// augmentation one process would give it); an empty slice is left out. Null: the whole batches.
    /// </summary>
    public (int Index, int Count)? Shard
    {
        get => shard;
        init => shard = value is var (i, n) && (n < 1 || i < 0 || i >= n)
            ? throw new ArgumentException($"shard {i} of {n} is not a shard (the index must be in 0..count-1)", nameof(Shard))
            : value;
    }

    private readonly (int Index, int Count)? shard;

    /// <inheritdoc />
    public int Count => data.Count;

    /// <inheritdoc />
    public int NumClasses => data.NumClasses;

    /// <inheritdoc />
    public int BatchesPerEpoch => (data.Count + BatchSize - 1) / BatchSize;

    /// <summary>The sample order of an epoch.</summary>
    public int[] Order(int epoch) => EpochOrder(data.Count, Shuffle, Seed, epoch);

    /// <inheritdoc />
    public IReadOnlyDictionary<string, string> Fingerprint => new Dictionary<string, string>
    {
        ["images"] = $"{data.Count} x {data.ImageShape}, {DataFingerprint.Of([string.Join(",", Enumerable.Range(0, data.Count).Select(i => data.Label(i)))], data.Pixels)}",
        ["classes"] = data.NumClasses.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["batch size"] = BatchSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["shuffle"] = $"{Shuffle}, seed {Seed}",
        ["augmentation"] = $"shift {MaxShift}, flip {HorizontalFlip}, pad {PadValue}",
    }.WithShard(Shard);

    /// <summary>
    /// The sample order of an epoch: 0..count-1, shuffled by a generator seeded with (seed, epoch) when
    /// <paramref name="shuffle"/>; shared by every batch source so that equal seeds give equal orders.
    /// </summary>
    public static int[] EpochOrder(int count, bool shuffle, int seed, int epoch)
    {
        var order = Enumerable.Range(0, count).ToArray();
        if (shuffle) new Random(StableSeed.Combine(seed, epoch, -1)).Shuffle(order);  // -1: not a sample index (ImageBatchLoader seeds samples with their index)
        return order;
    }

    /// <inheritdoc />
    public IEnumerable<Batch> Batches(int epoch)
    {
        var order = Order(epoch);
        var rng = new Random(StableSeed.Combine(Seed, epoch, 0x5eed));
        var (c, h, w) = data.ImageShape;
        bool augment = MaxShift > 0 || HorizontalFlip;
        for (int start = 0; start < order.Length; start += BatchSize)
        {
            int whole = Math.Min(BatchSize, order.Length - start), from = 0, n = whole;
            if (Shard is var (i0, shards))
                (from, n) = (ShardSlice.From(whole, i0, shards), ShardSlice.From(whole, i0 + 1, shards) - ShardSlice.From(whole, i0, shards));
            if (n == 0)
            {
                for (int i = 0; i < whole; i++) if (augment) Draw(rng);  // the other shards' draws, to stay in step
                continue;
            }
            var images = Tensor.Empty([n, c, h, w]).DetachFromScope();
            var labels = new long[n];
            unsafe
            {
                using var lease = images.LeaseData();
                var dst = new Span<float>((void*)lease.Pointer, n * data.ImageSize);
                for (int j = 0; j < whole; j++)
                {
                    int i = j - from;
                    if (i < 0 || i >= n)
                    {
                        if (augment) Draw(rng);
                        continue;
                    }
                    int idx = order[start + j];
                    labels[i] = data.Label(idx);
                    var target = dst.Slice(i * data.ImageSize, data.ImageSize);
                    if (!augment)
                        data.Image(idx).CopyTo(target);
                    else
                        Augment(data.Image(idx), target, c, h, w, Draw(rng));
                }
            }
            yield return new Batch(images, Tensor.FromArray(labels, n).DetachFromScope())
            {
                Index = start / BatchSize, GlobalCount = Shard is null ? 0 : whole,
            };
        }
    }

    /// <summary>One sample's random shift and flip (the generator runs through every sample of the epoch).</summary>
    private (int Dx, int Dy, bool Flip) Draw(Random rng)
    {
        int dx = MaxShift > 0 ? rng.Next(-MaxShift, MaxShift + 1) : 0;
        int dy = MaxShift > 0 ? rng.Next(-MaxShift, MaxShift + 1) : 0;
        bool flip = HorizontalFlip && rng.Next(2) == 1;
        return (dx, dy, flip);
    }

    private void Augment(ReadOnlySpan<float> src, Span<float> dst, int c, int h, int w, (int Dx, int Dy, bool Flip) draw)
    {
        var (dx, dy, flip) = draw;
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
            {
                int sy = y - dy;
                for (int x = 0; x < w; x++)
                {
                    int sx = (flip ? w - 1 - x : x) - dx;
                    dst[(ch * h + y) * w + x] = sy >= 0 && sy < h && sx >= 0 && sx < w ? src[(ch * h + sy) * w + sx] : PadValue;
                }
            }
    }
}
