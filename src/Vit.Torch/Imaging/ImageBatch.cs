using System.Runtime.InteropServices;
using static Vit.Torch.Native.ImagingNative;

namespace Vit.Torch.Imaging;

/// <summary>Turns decoded images into the planar float batches the model reads.</summary>
public static unsafe class ImageBatch
{
    /// <summary>
    /// Writes <paramref name="images"/> into <paramref name="destination"/>[firstIndex, firstIndex + count) as
    /// (v/255 − mean[c]) / std[c], planar CHW: the loop runs in libvit_imaging.so, straight into the tensor's memory.
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

        // Hold every image handle for the duration of the native call, so a concurrent Dispose cannot free one.
        var raw = new IntPtr[images.Count];
        var held = new bool[images.Count];
        try
        {
            for (int i = 0; i < raw.Length; i++)
            {
                images[i].Handle.DangerousAddRef(ref held[i]);
                raw[i] = images[i].Handle.DangerousGetHandle();
            }
            fixed (IntPtr* list = raw)
            fixed (float* mean = norm.Mean)
            fixed (float* std = norm.Std)
                Check(vit_image_batch_write(list, raw.Length, (int)channels, (int)height, (int)width, mean, std, dst,
                    (batch - firstIndex) * per));
        }
        finally
        {
            for (int i = 0; i < raw.Length; i++)
                if (held[i]) images[i].Handle.DangerousRelease();
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
        fixed (float* p = floats)
        fixed (float* mean = norm.Mean)
        fixed (float* std = norm.Std)
            return Image.Wrap(vit_image_from_normalized(p, c, h, w, mean, std, out var o), o);
    }
}
