namespace Vit.Torch.Imaging;

/// <summary>
/// Per-channel normalisation of pixels scaled to [0, 1]: x = (v/255 − Mean[c]) / Std[c]. One value applies to
/// every channel; otherwise there is one value per channel.
/// </summary>
public sealed record Normalization(float[] Mean, float[] Std)
{
    /// <summary>The ImageNet statistics torchvision and timm models are trained with (RGB).</summary>
    public static Normalization ImageNet { get; } = new([0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f]);

    /// <summary>Mean 0.5, std 0.5 for every channel (maps [0, 1] to [−1, 1]; Hugging Face's ViT default).</summary>
    public static Normalization Half { get; } = new([0.5f], [0.5f]);

    /// <summary>Per-channel means.</summary>
    public float[] Mean { get; init; } = CheckValues(Mean, nameof(Mean), positive: false);

    /// <summary>Per-channel standard deviations (positive).</summary>
    public float[] Std { get; init; } = CheckStd(Mean, Std);

    /// <summary>
    /// The per-channel mean and (population) standard deviation of v/255 over every pixel of
    /// <paramref name="images"/>, which must all have the same channel count.
    /// </summary>
    public static Normalization FromData(IEnumerable<Image> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        double[]? sum = null, sq = null;
        double pixels = 0;
        int index = 0;
        foreach (var image in images)
        {
            var (s, q) = image.ChannelSums();
            sum ??= new double[s.Length];
            sq ??= new double[s.Length];
            if (s.Length != sum.Length)
                throw new ArgumentException($"image {index} has {s.Length} channel(s), the images before it {sum.Length}", nameof(images));
            for (int c = 0; c < s.Length; c++)
            {
                sum[c] += s[c];
                sq[c] += q[c];
            }
            pixels += (double)image.Width * image.Height;
            index++;
        }
        if (sum is null || sq is null) throw new ArgumentException("no images to compute statistics from", nameof(images));
        var mean = new float[sum.Length];
        var std = new float[sum.Length];
        for (int c = 0; c < sum.Length; c++)
        {
            double m = sum[c] / pixels;
            double variance = Math.Max(0, sq[c] / pixels - m * m);
            mean[c] = (float)m;
            // A constant channel has no spread; 1 keeps the values finite rather than dividing by zero.
            std[c] = variance > 0 ? (float)Math.Sqrt(variance) : 1f;
        }
        return new Normalization(mean, std);
    }

    /// <summary>This normalisation with one value per channel for <paramref name="channels"/> channels (a single value is repeated).</summary>
    public Normalization ForChannels(int channels)
    {
        if (Mean.Length == channels) return this;
        if (Mean.Length == 1 && channels > 0)
            return new Normalization(Enumerable.Repeat(Mean[0], channels).ToArray(), Enumerable.Repeat(Std[0], channels).ToArray());
        throw new ArgumentException($"this normalisation has {Mean.Length} values per statistic and cannot serve {channels}-channel images " +
                                    (Mean.Length == 3 && channels == 1 ? "(convert the images with ToChannels(3), or use Normalization.FromData)" : ""));
    }

    /// <summary>Equal when the means and standard deviations are equal element by element.</summary>
    public bool Equals(Normalization? other) =>
        other is not null && Mean.AsSpan().SequenceEqual(other.Mean) && Std.AsSpan().SequenceEqual(other.Std);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var v in Mean) h.Add(v);
        foreach (var v in Std) h.Add(v);
        return h.ToHashCode();
    }

    /// <inheritdoc />
    public override string ToString() => $"Normalization(mean [{string.Join(", ", Mean)}], std [{string.Join(", ", Std)}])";

    private static float[] CheckValues(float[] values, string name, bool positive)
    {
        ArgumentNullException.ThrowIfNull(values, name);
        if (values.Length is < 1 or > 4) throw new ArgumentException($"{name} needs 1 to 4 values, got {values.Length}", name);
        foreach (var v in values)
            if (!float.IsFinite(v) || (positive && v <= 0))
                throw new ArgumentException($"{name} values must be finite{(positive ? " and positive" : "")}, got {v}", name);
        return (float[])values.Clone();
    }

    private static float[] CheckStd(float[] mean, float[] std)
    {
        var s = CheckValues(std, nameof(Std), positive: true);
        if (mean is not null && mean.Length != s.Length)
            throw new ArgumentException($"{mean.Length} mean values but {s.Length} std values", nameof(Std));
        return s;
    }
}
