using System.Collections.Concurrent;
using Vit.Torch.Imaging;

namespace Vit.Torch.Data;

/// <summary>What the loader does with an image it cannot use (unreadable, truncated, empty, not an image, too large).</summary>
public enum BadImagePolicy
{
    /// <summary>Leave it out, warn with the file and the reason, and count it (the default).</summary>
    Skip,
    /// <summary>Stop with an <see cref="ImageDecodeException"/> naming the file and the reason.</summary>
    Throw,
}

/// <summary>Options of an <see cref="ImageBatchLoader"/>. Every field has a default.</summary>
public sealed record ImageLoaderOptions
{
    /// <summary>Images per batch; the last batch of an epoch may be smaller.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Reshuffle every epoch (training) or keep the order (evaluation, scoring).</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>Seed of shuffling and augmentation: the same seed and epoch give the same batches, whatever the worker count.</summary>
    public int Seed { get; init; }

    /// <summary>Decode/augment threads (default: all cores but one, at least one).</summary>
    public int Workers { get; init; } = Math.Max(1, Environment.ProcessorCount - 1);

    /// <summary>Batches prepared ahead of the consumer (bounds memory).</summary>
    public int Prefetch { get; init; } = 4;

    /// <summary>Channels of the model input (1 or 3).</summary>
    public int Channels { get; init; } = 3;

    /// <summary>Side of the (square) model input.</summary>
    public int ImageSize { get; init; } = 224;

    /// <summary>How images are brought to <see cref="ImageSize"/> (evaluation and, with no augmentation, training).</summary>
    public ResizeMode ResizeMode { get; init; } = ResizeMode.Crop;

    /// <summary>Resampling filter.</summary>
    public Interpolation Interpolation { get; init; } = Interpolation.Bilinear;

    /// <summary>With <see cref="ResizeMode.Crop"/>: the share kept by the centre crop (see <see cref="Image.ResizeSquare"/>).</summary>
    public double CropFraction { get; init; } = 1;

    /// <summary>Per-channel mean/std of the normalisation.</summary>
    public Normalization Normalization { get; init; } = Normalization.ImageNet;

    /// <summary>Per-image augmentation (training); given the decoded image and a per-sample seeded generator, returns a new image of the model's size. Null: deterministic resize only.</summary>
    public Func<Image, Random, Image>? Augment { get; init; }

    /// <summary>What to do with a bad image.</summary>
    public BadImagePolicy OnBadImage { get; init; } = BadImagePolicy.Skip;

    /// <summary>Largest image accepted, in pixels (decompression-bomb guard).</summary>
    public long MaxPixels { get; init; } = Image.DefaultMaxPixels;

    /// <summary>
    /// Data-parallel training: this process is shard <c>Index</c> of <c>Count</c>. Every process sees the same epoch
    /// order and the same global batches (of <see cref="BatchSize"/>); each builds only its own contiguous slice of each
    /// batch (sizes differ by at most one), so over the shards every sample appears once per epoch, with the
    /// augmentation it would have had in one process. <see cref="Batch.GlobalCount"/> gives the whole batch's size.
    /// A slice left empty (a batch smaller than the shard count) or wholly unreadable is left out, as a batch is.
    /// </summary>
    public (int Index, int Count)? Shard { get; init; }

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public ImageLoaderOptions Validate()
    {
        if (BatchSize < 1) throw new ArgumentException($"batch size must be at least 1, got {BatchSize}");
        if (Workers < 1) throw new ArgumentException($"worker count must be at least 1, got {Workers}");
        if (Prefetch < 1) throw new ArgumentException($"prefetch must be at least 1 batch, got {Prefetch}");
        if (Channels is not (1 or 3)) throw new ArgumentException($"channels must be 1 or 3, got {Channels}");
        if (ImageSize < 1) throw new ArgumentException($"image size must be positive, got {ImageSize}");
        if (Normalization.Mean.Length != Channels && Normalization.Mean.Length != 1)
            throw new ArgumentException($"normalization has {Normalization.Mean.Length} means for {Channels} channels");
        if (MaxPixels < 1) throw new ArgumentException($"pixel limit must be positive, got {MaxPixels}");
        if (!(CropFraction > 0 && CropFraction <= 1)) throw new ArgumentException($"crop fraction must be in (0, 1], got {CropFraction}");
        if (Shard is ({ } index, { } count) && (count < 1 || index < 0 || index >= count))
            throw new ArgumentException($"shard {index} of {count} is not a shard (the index must be in 0..count-1)");
        return this;
    }
}

/// <summary>
/// Decodes, augments and batches images on background workers while the model trains. Workers fill batch
/// tensors directly (planar CHW float32, normalised); at most <see cref="ImageLoaderOptions.Prefetch"/> batches
/// wait ahead of the consumer, so memory does not grow with the dataset. Batches arrive in a deterministic order;
/// each sample's augmentation uses a generator seeded by (seed, epoch, sample), so results do not depend on
/// which worker ran it. Abandoning the enumeration (a break, an exception, cancellation) stops the workers and
/// frees the batches in flight.
/// </summary>
public sealed class ImageBatchLoader : IBatchSource
{
    private readonly ImageDataset data;
    private readonly ConcurrentQueue<string> warnings = new();
    private int skipped;

    /// <summary>Creates the loader.</summary>
    public ImageBatchLoader(ImageDataset data, ImageLoaderOptions? options = null)
    {
        this.data = data ?? throw new ArgumentNullException(nameof(data));
        Options = (options ?? new ImageLoaderOptions()).Validate();
    }

    /// <summary>The options in use.</summary>
    public ImageLoaderOptions Options { get; }

    /// <inheritdoc />
    public int Count => data.Count;

    /// <inheritdoc />
    public int NumClasses => data.NumClasses;

    /// <inheritdoc />
    public int BatchesPerEpoch => (data.Count + Options.BatchSize - 1) / Options.BatchSize;

    /// <summary>Images skipped so far (with <see cref="BadImagePolicy.Skip"/>).</summary>
    public int SkippedCount => skipped;

    /// <summary>One line per skipped image: the file and the reason.</summary>
    public IReadOnlyCollection<string> Warnings => warnings;

    /// <summary>Called with each warning as it happens (default: standard error).</summary>
    public Action<string> OnWarning { get; init; } = w => Console.Error.WriteLine(w);

    /// <summary>The sample order of an epoch.</summary>
    public int[] Order(int epoch) => InMemoryBatchSource.EpochOrder(data.Count, Options.Shuffle, Options.Seed, epoch);

    /// <inheritdoc />
    public IEnumerable<Batch> Batches(int epoch) => Batches(epoch, 0, CancellationToken.None);

    /// <summary>The batches of an epoch; <paramref name="cancellationToken"/> stops the workers.</summary>
    public IEnumerable<Batch> Batches(int epoch, CancellationToken cancellationToken) => Batches(epoch, 0, cancellationToken);

    /// <summary>The samples in order (names, labels, and for files their size and time of change), and every option that
    /// shapes a training batch, field by field. Not the bad-image policy (switching to Skip after a bad image is how a run
    /// recovers) nor the worker count (batches do not depend on it).</summary>
    public IReadOnlyDictionary<string, string> Fingerprint => new Dictionary<string, string>
    {
        ["images"] = $"{data.Count}, {DataFingerprint.Of(data.Samples.Select(Describe))}",
        ["classes"] = string.Join("|", data.ClassNames),
        ["batch size"] = Options.BatchSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["shuffle"] = $"{Options.Shuffle}, seed {Options.Seed}",
        ["input"] = $"{Options.Channels} channels, {Options.ImageSize}px, {Options.ResizeMode} {Options.Interpolation} {Options.CropFraction}, {Options.Normalization}",
        ["augmentation"] = Options.Augment is null ? "none" : "on",
        ["pixel limit"] = Options.MaxPixels.ToString(System.Globalization.CultureInfo.InvariantCulture),
    }.WithShard(Options.Shard);  // the shard only when there is one: unsharded checkpoints keep their fingerprint

    private static string Describe(IImageSample s) => s is FileImageSample f && File.Exists(f.Path)
        ? $"{s.Name}\t{s.Label}\t{new FileInfo(f.Path).Length}\t{File.GetLastWriteTimeUtc(f.Path).Ticks}"
        : $"{s.Name}\t{s.Label}";

    /// <summary>
    /// The batches of an epoch from batch <paramref name="firstBatch"/> on (the samples of the batches before it are not
    /// decoded: each sample's augmentation is seeded by itself); <paramref name="cancellationToken"/> stops the workers
    /// and the wait for the next batch.
    /// </summary>
    public IEnumerable<Batch> Batches(int epoch, int firstBatch, CancellationToken cancellationToken)
    {
        var order = Order(epoch);
        int batches = (order.Length + Options.BatchSize - 1) / Options.BatchSize;
        if (firstBatch < 0 || firstBatch > batches) throw new ArgumentOutOfRangeException(nameof(firstBatch), firstBatch, $"epoch {epoch} has {batches} batches");
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var ready = new Batch?[batches];
        var failures = new Exception?[batches];
        var done = new SemaphoreSlim[batches];
        for (int i = 0; i < batches; i++) done[i] = new SemaphoreSlim(0, 1);
        using var slots = new SemaphoreSlim(Options.Prefetch, Options.Prefetch);  // batches prepared but not yet consumed
        int next = firstBatch - 1;
        var workers = Enumerable.Range(0, Math.Min(Options.Workers, batches - firstBatch)).Select(_ => Task.Run(() =>
        {
            while (!cts.IsCancellationRequested)
            {
                try
                {
                    slots.Wait(cts.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                int b = Interlocked.Increment(ref next);
                if (b >= batches)
                {
                    slots.Release();
                    return;
                }
                try
                {
                    ready[b] = Build(order, b, epoch, cts.Token);
                }
                catch (Exception e)
                {
                    failures[b] = e;
                }
                done[b].Release();
            }
        })).ToArray();
        int consumed = firstBatch;
        try
        {
            for (; consumed < batches; consumed++)
            {
                done[consumed].Wait(cts.Token);
                if (failures[consumed] is { } error)
                {
                    if (error is OperationCanceledException) cancellationToken.ThrowIfCancellationRequested();
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(error).Throw();
                }
                var batch = ready[consumed];
                ready[consumed] = null;
                slots.Release();
                if (batch is not null) yield return batch;  // null: every image of the batch was skipped
            }
        }
        finally
        {
            cts.Cancel();
            try
            {
                Task.WaitAll(workers);
            }
            catch (AggregateException)
            {
                // Workers report their errors through failures[]; nothing else to surface here.
            }
            for (int i = 0; i < batches; i++)
            {
                ready[i]?.Dispose();
                done[i].Dispose();
            }
        }
    }

    private Batch? Build(int[] order, int b, int epoch, CancellationToken token)
    {
        int start = b * Options.BatchSize, n = Math.Min(Options.BatchSize, order.Length - start), global = n;
        if (Options.Shard is var (shard, shards))
        {
            // This shard's contiguous slice of the global batch.
            int from = ShardSlice.From(global, shard, shards), to = ShardSlice.From(global, shard + 1, shards);
            (start, n) = (start + from, to - from);
        }
        var images = new List<Image>(n);
        var labels = new List<long>(n);
        var decode = new ImageDecodeOptions { MaxPixels = Options.MaxPixels };
        try
        {
            for (int i = 0; i < n; i++)
            {
                token.ThrowIfCancellationRequested();
                int index = order[start + i];
                var sample = data.Samples[index];
                Image? ready = null;
                try
                {
                    using var decoded = sample.Load(decode);
                    using var channels = decoded.ToChannels(Options.Channels);
                    ready = Options.Augment is { } augment
                        ? augment(channels, new Random(StableSeed.Combine(Options.Seed, epoch, index)))
                        : channels.ResizeSquare(Options.ImageSize, Options.ResizeMode, Options.Interpolation, Options.CropFraction);
                    if (ready.Width != Options.ImageSize || ready.Height != Options.ImageSize)
                        throw new InvalidOperationException($"the augmentation returned a {ready.Width}x{ready.Height} image; the model needs {Options.ImageSize}x{Options.ImageSize}");
                }
                catch (ImageDecodeException e) when (Options.OnBadImage == BadImagePolicy.Skip)
                {
                    ready?.Dispose();
                    Interlocked.Increment(ref skipped);
                    var w = $"skipped {e.Path ?? sample.Name}: {e.Reason}";
                    warnings.Enqueue(w);
                    OnWarning(w);
                    continue;
                }
                catch
                {
                    ready?.Dispose();  // e.g. an augmentation that returned the wrong size
                    throw;
                }
                images.Add(ready);
                labels.Add(sample.Label);
            }
            if (images.Count == 0) return null;
            var tensor = Tensor.Empty([images.Count, Options.Channels, Options.ImageSize, Options.ImageSize]);
            try
            {
                ImageBatch.WriteNormalized(images, Options.Normalization, tensor);  // throws for an image of the wrong channel count
                return new Batch(tensor, Tensor.FromArray(labels.ToArray(), labels.Count)) { Index = b, GlobalCount = global };
            }
            catch
            {
                tensor.Dispose();
                throw;
            }
        }
        finally
        {
            foreach (var im in images) im.Dispose();
        }
    }
}
