
namespace Vit.Torch.Imaging;

/// <summary>Turns decoded images into the planar float batches the model reads.</summary>
public static unsafe class ImageBatch
{
    /// <summary>
    /// Writes <paramref name="images"/> into <paramref name="destination"/>[firstIndex, firstIndex + count) as
    /// (v/255 − mean[c]) / std[c], planar CHW, straight into the tensor's memory (one table of the 256 values per channel).
    /// <paramref name="destination"/> must be a contiguous float32 CPU tensor (B, C, H, W) and every image
    /// W × H with C channels.
    /// </summary>
    public static void WriteNormalized(IReadOnlyList<Image> images, Normalization normalization, Tensor destination, int firstIndex = 0)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(normalization);
        ArgumentNullException.ThrowIfNull(destination);
        var shape = destination.Shape;
        if (shape.Length != 4)
            throw new ArgumentException($"the destination must be (B, C, H, W); it has shape [{string.Join(", ", shape)}]", nameof(destination));
        if (destination.DType != DType.Float32)
            throw new ArgumentException($"the destination must be float32; it is {destination.DType}", nameof(destination));
        if (destination.Device.Type != DeviceType.Cpu)
            throw new ArgumentException($"the destination must be on the CPU; it is on {destination.Device}", nameof(destination));
        long batch = shape[0], channels = shape[1], height = shape[2], width = shape[3];
        if (firstIndex < 0 || firstIndex + (long)images.Count > batch)
            throw new ArgumentException($"{images.Count} image(s) from index {firstIndex} do not fit a batch of {batch}", nameof(firstIndex));
        var norm = normalization.ForChannels((int)channels);
        for (int i = 0; i < images.Count; i++)
        {
            var image = images[i] ?? throw new ArgumentException($"image {i} is null", nameof(images));
            if (image.Width != width || image.Height != height || image.Channels != channels)
                throw new ArgumentException(
                    $"image {i} is {image.Width}x{image.Height} with {image.Channels} channel(s), but the batch holds {width}x{height} " +
                    $"with {channels}; resize it (Resize) and convert it (ToChannels) first", nameof(images));
        }
        if (images.Count == 0) return;

        // The destination is held too (a lease): a concurrent Dispose of it takes effect after the write.
        Tensor.DataLease data;
        try
        {
            data = destination.LeaseData();
        }
        catch (TorchException e)
        {
            throw new ArgumentException($"the destination must be a contiguous CPU tensor ({e.Message})", nameof(destination));
        }
        using var _ = data;
        long per = channels * height * width;
        var dst = (float*)data.Pointer + firstIndex * per;

        // One table per channel: the 256 possible inputs, each normalised once (in double, then rounded to float).
        int c = (int)channels;
        var table = new float[c * 256];
        for (int k = 0; k < c; k++)
        {
            if (!(norm.Std[k] > 0) || !float.IsFinite(norm.Std[k]) || !float.IsFinite(norm.Mean[k]))
                throw new ArgumentException($"std must be positive and mean/std finite (channel {k})", nameof(normalization));
            for (int v = 0; v < 256; v++) table[k * 256 + v] = (float)((v / 255.0 - norm.Mean[k]) / norm.Std[k]);
        }
        int plane = (int)(height * width);
        for (int i = 0; i < images.Count; i++)
        {
            var src = images[i].Pixels;  // held by this reference: a concurrent Dispose does not free it
            var dstImage = new Span<float>(dst + i * per, (int)per);
            if (c == 3)
            {
                var r = dstImage[..plane];
                var g = dstImage.Slice(plane, plane);
                var b = dstImage.Slice(2 * plane, plane);
                var tr = table.AsSpan(0, 256);
                var tg = table.AsSpan(256, 256);
                var tb = table.AsSpan(512, 256);
                for (int p = 0, q = 0; p < plane; p++, q += 3)
                {
                    r[p] = tr[src[q]];
                    g[p] = tg[src[q + 1]];
                    b[p] = tb[src[q + 2]];
                }
            }
            else
            {
                for (int p = 0; p < plane; p++)
                    for (int k = 0; k < c; k++) dstImage[k * plane + p] = table[k * 256 + src[p * c + k]];
            }
        }
    }

    /// <summary>A new float32 tensor (B, C, H, W) holding <paramref name="images"/> normalised (see <see cref="WriteNormalized"/>).</summary>
    public static Tensor ToTensor(IReadOnlyList<Image> images, Normalization normalization)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) throw new ArgumentException("no images", nameof(images));
        var first = images[0];
        var t = Tensor.Empty([images.Count, first.Channels, first.Height, first.Width]);
        try
        {
            WriteNormalized(images, normalization, t);
            return t;
        }
        catch
        {
            t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The inverse of the normalisation, for looking at a batch: sample <paramref name="index"/> of a float32
    /// (B, C, H, W) tensor as an image, v = round((x·std + mean)·255) clamped to 0..255.
    /// </summary>
    public static Image ToImage(Tensor batch, int index, Normalization normalization)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(normalization);
        var shape = batch.Shape;
        if (shape.Length != 4) throw new ArgumentException($"expected a (B, C, H, W) batch, got shape [{string.Join(", ", shape)}]", nameof(batch));
        if (index < 0 || index >= shape[0]) throw new ArgumentOutOfRangeException(nameof(index), index, $"the batch holds {shape[0]} images");
        int c = (int)shape[1], h = (int)shape[2], w = (int)shape[3];
        if (c is not (1 or 3 or 4)) throw new ArgumentException($"cannot show {c}-channel images", nameof(batch));
        var norm = normalization.ForChannels(c);
        using var sample = batch.Select(0, index);
        using var cpu = sample.To(DType.Float32, Device.Cpu);
        var floats = cpu.ToArray<float>();
        Image.CheckTargetSize(w, h, "image size");
        int plane = h * w;
        var px = new byte[plane * c];
        for (int k = 0; k < c; k++)
        {
            double s = norm.Std[k] * 255.0, b = norm.Mean[k] * 255.0;
            for (int p = 0; p < plane; p++)
            {
                double v = floats[k * plane + p] * s + b;
                px[p * c + k] = double.IsNaN(v) ? (byte)0 : (byte)Math.Clamp(Math.Round(v, MidpointRounding.AwayFromZero), 0, 255);
            }
        }
        return new Image(px, w, h, c);
    }
}
