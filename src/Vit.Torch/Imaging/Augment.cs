namespace Vit.Torch.Imaging;

/// <summary>The operations RandAugment chooses from (Cubuk et al., 2019, as in timm and torchvision).</summary>
public enum RandAugmentOp
{
    /// <summary>No change.</summary>
    Identity,

    /// <summary>Stretch each channel to the full range.</summary>
    AutoContrast,

    /// <summary>Histogram equalisation.</summary>
    Equalize,

    /// <summary>Rotate by up to 30° (at magnitude 10), either direction.</summary>
    Rotate,

    /// <summary>Invert samples above a threshold that falls from 256 to 0 as the magnitude rises.</summary>
    Solarize,

    /// <summary>Keep from 8 down to 4 bits per sample as the magnitude rises.</summary>
    Posterize,

    /// <summary>Contrast factor 1 ± 0.9 (at magnitude 10).</summary>
    Contrast,

    /// <summary>Brightness factor 1 ± 0.9 (at magnitude 10).</summary>
    Brightness,

    /// <summary>Sharpness factor 1 ± 0.9 (at magnitude 10).</summary>
    Sharpness,

    /// <summary>Horizontal shear up to ±0.3 (at magnitude 10).</summary>
    ShearX,

    /// <summary>Vertical shear up to ±0.3 (at magnitude 10).</summary>
    ShearY,

    /// <summary>Horizontal translation up to ±45% of the width (at magnitude 10).</summary>
    TranslateX,

    /// <summary>Vertical translation up to ±45% of the height (at magnitude 10).</summary>
    TranslateY,
}

/// <summary>
/// Random training augmentations. Every method draws all its randomness from the <see cref="Random"/> passed
/// in, so a sample augmented with a generator seeded per sample gives the same result on any worker thread,
/// in any order. Image methods return a new image (the input is neither changed nor disposed).
/// </summary>
public static class Augment
{
    /// <summary>The largest RandAugment magnitude (timm's scale: magnitude 10 is the strongest setting).</summary>
    public const double MaxMagnitude = 10;

    // ------------------------------------------------------------------ crops and geometry

    /// <summary>
    /// torchvision's RandomResizedCrop: a random region covering <paramref name="minScale"/>..<paramref name="maxScale"/>
    /// of the area with aspect ratio (w/h) in <paramref name="minRatio"/>..<paramref name="maxRatio"/> (log-uniform),
    /// resized to <paramref name="width"/> × <paramref name="height"/>.
    /// </summary>
    public static Image RandomResizedCrop(Image image, Random rng, int width, int height, double minScale = 0.08, double maxScale = 1.0,
        double minRatio = 3.0 / 4, double maxRatio = 4.0 / 3, Interpolation interpolation = Interpolation.Bilinear)
    {
        ArgumentNullException.ThrowIfNull(image);
        var (x, y, w, h) = RandomResizedCropBox(image.Width, image.Height, rng, minScale, maxScale, minRatio, maxRatio);
        return image.CropResize(x, y, w, h, width, height, interpolation);
    }

    /// <summary>The region <see cref="RandomResizedCrop"/> picks (torchvision's get_params: 10 tries, then a centre crop).</summary>
    public static (int X, int Y, int Width, int Height) RandomResizedCropBox(int imageWidth, int imageHeight, Random rng,
        double minScale = 0.08, double maxScale = 1.0, double minRatio = 3.0 / 4, double maxRatio = 4.0 / 3)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if (!(minScale > 0 && minScale <= maxScale && maxScale <= 1))
            throw new ArgumentException($"scale range [{minScale}, {maxScale}] must satisfy 0 < min <= max <= 1");
        if (!(minRatio > 0 && minRatio <= maxRatio)) throw new ArgumentException($"ratio range [{minRatio}, {maxRatio}] must satisfy 0 < min <= max");
        double area = (double)imageWidth * imageHeight;
        double logMin = Math.Log(minRatio), logMax = Math.Log(maxRatio);
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double target = area * Uniform(rng, minScale, maxScale);
            double aspect = Math.Exp(Uniform(rng, logMin, logMax));
            int w = (int)Math.Round(Math.Sqrt(target * aspect));
            int h = (int)Math.Round(Math.Sqrt(target / aspect));
            if (w > 0 && h > 0 && w <= imageWidth && h <= imageHeight)
                return (rng.Next(imageWidth - w + 1), rng.Next(imageHeight - h + 1), w, h);
        }
        // Fallback: the whole image, cropped to the nearest allowed aspect ratio, centred.
        double ratio = (double)imageWidth / imageHeight;
        int cw = imageWidth, ch = imageHeight;
        if (ratio < minRatio) ch = Math.Max(1, (int)Math.Round(cw / minRatio));
        else if (ratio > maxRatio) cw = Math.Max(1, (int)Math.Round(ch * maxRatio));
        return ((imageWidth - cw) / 2, (imageHeight - ch) / 2, cw, ch);
    }

    /// <summary>Mirrors left-right with probability <paramref name="p"/>.</summary>
    public static Image RandomHorizontalFlip(Image image, Random rng, double p = 0.5)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(rng);
        return rng.NextDouble() < p ? image.FlipHorizontal() : image.Clone();
    }

    /// <summary>
    /// A small random rotation (uniform in ±<paramref name="maxDegrees"/>) about the centre followed by a random
    /// translation of up to ±<paramref name="maxTranslate"/> of the width and height (torchvision's RandomAffine).
    /// </summary>
    public static Image RandomAffine(Image image, Random rng, double maxDegrees = 10, double maxTranslate = 0.1,
        Interpolation interpolation = Interpolation.Bilinear, byte fill = 0)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(rng);
        if (maxDegrees < 0 || maxTranslate is < 0 or > 1) throw new ArgumentException("maxDegrees must be >= 0 and maxTranslate in [0, 1]");
        double angle = Uniform(rng, -maxDegrees, maxDegrees);
        double tx = Math.Round(Uniform(rng, -maxTranslate, maxTranslate) * image.Width);
        double ty = Math.Round(Uniform(rng, -maxTranslate, maxTranslate) * image.Height);
        double a = angle * Math.PI / 180, cos = Math.Cos(a), sin = Math.Sin(a);
        double cx = (image.Width - 1) / 2.0, cy = (image.Height - 1) / 2.0;
        // dst = R (src - c) + c + t, R counter-clockwise on screen (see Image.Rotate)
        return image.Affine([cos, sin, cx - cos * cx - sin * cy + tx, -sin, cos, cy + sin * cx - cos * cy + ty],
            image.Width, image.Height, interpolation, fill);
    }

    // ------------------------------------------------------------------ colour

    /// <summary>
    /// torchvision's ColorJitter without hue: brightness, contrast and saturation factors drawn uniformly from
    /// [max(0, 1 − s), 1 + s] for each strength s (0 = off), applied in a random order.
    /// </summary>
    public static Image ColorJitter(Image image, Random rng, double brightness = 0.4, double contrast = 0.4, double saturation = 0.4)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(rng);
        if (brightness < 0 || contrast < 0 || saturation < 0) throw new ArgumentException("jitter strengths must be >= 0");
        int[] order = [0, 1, 2];
        rng.Shuffle(order);
        var factors = new double[3];
        double[] strength = [brightness, contrast, saturation];
        for (int i = 0; i < 3; i++)
            factors[i] = strength[i] > 0 ? Uniform(rng, Math.Max(0, 1 - strength[i]), 1 + strength[i]) : 1;
        var current = image.Clone();
        foreach (var k in order)
        {
            if (strength[k] == 0) continue;
            var next = k switch
            {
                0 => current.AdjustBrightness(factors[k]),
                1 => current.AdjustContrast(factors[k]),
                _ => current.AdjustSaturation(factors[k]),
            };
            current.Dispose();
            current = next;
        }
        return current;
    }

    // ------------------------------------------------------------------ RandAugment

    /// <summary>Every operation RandAugment chooses from.</summary>
    public static IReadOnlyList<RandAugmentOp> RandAugmentOps { get; } = Enum.GetValues<RandAugmentOp>();

    /// <summary>
    /// RandAugment (Cubuk et al., 2019): <paramref name="ops"/> operations drawn uniformly (with replacement)
    /// from <see cref="RandAugmentOps"/>, each at <paramref name="magnitude"/> (0-10), perturbed per operation by
    /// Gaussian noise of std <paramref name="magnitudeStd"/> (timm's "mstd"), with a random sign for the signed
    /// operations. Geometric operations fill uncovered pixels with <paramref name="fill"/>.
    /// </summary>
    public static Image RandAugment(Image image, Random rng, int ops = 2, double magnitude = 9, double magnitudeStd = 0,
        byte fill = 128, Interpolation interpolation = Interpolation.Bilinear)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(rng);
        if (ops < 0) throw new ArgumentOutOfRangeException(nameof(ops), ops, "the number of operations must be >= 0");
        if (magnitude is < 0 or > MaxMagnitude) throw new ArgumentOutOfRangeException(nameof(magnitude), magnitude, "magnitude must be in [0, 10]");
        var current = image.Clone();
        for (int i = 0; i < ops; i++)
        {
            var op = RandAugmentOps[rng.Next(RandAugmentOps.Count)];
            double m = magnitudeStd > 0 ? Math.Clamp(magnitude + magnitudeStd * Normal(rng), 0, MaxMagnitude) : magnitude;
            bool negate = rng.NextDouble() < 0.5;
            var next = ApplyRandAugmentOp(current, op, m, negate, fill, interpolation);
            current.Dispose();
            current = next;
        }
        return current;
    }

    /// <summary>One RandAugment operation at magnitude <paramref name="magnitude"/> (0-10); <paramref name="negate"/> flips the sign of signed ones.</summary>
    public static Image ApplyRandAugmentOp(Image image, RandAugmentOp op, double magnitude, bool negate = false, byte fill = 128,
        Interpolation interpolation = Interpolation.Bilinear)
    {
        ArgumentNullException.ThrowIfNull(image);
        double level = Math.Clamp(magnitude, 0, MaxMagnitude) / MaxMagnitude;  // 0..1
        double sign = negate ? -1 : 1;
        return op switch
        {
            RandAugmentOp.Identity => image.Clone(),
            RandAugmentOp.AutoContrast => image.AutoContrast(),
            RandAugmentOp.Equalize => image.Equalize(),
            RandAugmentOp.Rotate => image.Rotate(sign * 30 * level, interpolation, fill),
            RandAugmentOp.Solarize => image.Solarize(256 - (int)(level * 256)),
            RandAugmentOp.Posterize => image.Posterize(8 - (int)(level * 4)),
            RandAugmentOp.Contrast => image.AdjustContrast(1 + sign * 0.9 * level),
            RandAugmentOp.Brightness => image.AdjustBrightness(1 + sign * 0.9 * level),
            RandAugmentOp.Sharpness => image.AdjustSharpness(1 + sign * 0.9 * level),
            RandAugmentOp.ShearX => image.Shear(sign * 0.3 * level, 0, interpolation, fill),
            RandAugmentOp.ShearY => image.Shear(0, sign * 0.3 * level, interpolation, fill),
            RandAugmentOp.TranslateX => image.Translate(Math.Round(sign * 0.45 * level * image.Width), 0, interpolation, fill),
            RandAugmentOp.TranslateY => image.Translate(0, Math.Round(sign * 0.45 * level * image.Height), interpolation, fill),
            _ => throw new ArgumentOutOfRangeException(nameof(op), op, "unknown RandAugment operation"),
        };
    }

    // ------------------------------------------------------------------ random erasing

    /// <summary>
    /// Random erasing (Zhong et al., 2020) on an image: with probability <paramref name="p"/>, a rectangle covering
    /// <paramref name="minArea"/>..<paramref name="maxArea"/> of the image with aspect ratio in
    /// <paramref name="minRatio"/>..<paramref name="maxRatio"/> is filled with random noise, or with
    /// <paramref name="value"/> when <paramref name="noise"/> is false.
    /// </summary>
    public static Image RandomErasing(Image image, Random rng, double p = 0.25, double minArea = 0.02, double maxArea = 1.0 / 3,
        double minRatio = 0.3, double maxRatio = 3.3, bool noise = true, byte value = 0)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(rng);
        if (rng.NextDouble() >= p) return image.Clone();
        if (ErasingBox(image.Width, image.Height, rng, minArea, maxArea, minRatio, maxRatio) is not { } box) return image.Clone();
        return noise
            ? image.EraseWithNoise(box.X, box.Y, box.Width, box.Height, (ulong)rng.NextInt64())
            : image.Erase(box.X, box.Y, box.Width, box.Height, value);
    }

    /// <summary>
    /// Random erasing on a normalised float32 CPU batch (B, C, H, W), in place, each sample independently: the
    /// rectangle gets standard-normal noise (timm's "pixel" mode; in normalised units that is the data's own
    /// spread) or <paramref name="value"/> (0 = the mean colour) in every channel.
    /// </summary>
    public static unsafe void RandomErasing(Tensor batch, Random rng, double p = 0.25, double minArea = 0.02, double maxArea = 1.0 / 3,
        double minRatio = 0.3, double maxRatio = 3.3, bool noise = true, float value = 0)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(rng);
        var (b, c, h, w) = CheckBatch(batch, nameof(batch));
        using var lease = batch.LeaseData();  // the batch stays alive while its memory is written
        var data = (float*)lease.Pointer;
        for (int i = 0; i < b; i++)
        {
            if (rng.NextDouble() >= p) continue;
            if (ErasingBox(w, h, rng, minArea, maxArea, minRatio, maxRatio) is not { } box) continue;
            for (int ch = 0; ch < c; ch++)
                for (int y = box.Y; y < box.Y + box.Height; y++)
                {
                    var row = new Span<float>(data + (((long)i * c + ch) * h + y) * w + box.X, box.Width);
                    if (!noise)
                    {
                        row.Fill(value);
                        continue;
                    }
                    for (int x = 0; x < row.Length; x++) row[x] = (float)Normal(rng);
                }
        }
    }

    // torchvision's RandomErasing.get_params: 10 tries at a box strictly smaller than the image, else none.
    private static (int X, int Y, int Width, int Height)? ErasingBox(int width, int height, Random rng, double minArea, double maxArea,
        double minRatio, double maxRatio)
    {
        if (!(minArea > 0 && minArea <= maxArea && maxArea <= 1)) throw new ArgumentException($"area range [{minArea}, {maxArea}] must satisfy 0 < min <= max <= 1");
        if (!(minRatio > 0 && minRatio <= maxRatio)) throw new ArgumentException($"ratio range [{minRatio}, {maxRatio}] must satisfy 0 < min <= max");
        double area = (double)width * height;
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double target = area * Uniform(rng, minArea, maxArea);
            double aspect = Math.Exp(Uniform(rng, Math.Log(minRatio), Math.Log(maxRatio)));
            int h = (int)Math.Round(Math.Sqrt(target * aspect));
            int w = (int)Math.Round(Math.Sqrt(target / aspect));
            if (w < 1 || h < 1 || w >= width || h >= height) continue;
            return (rng.Next(width - w + 1), rng.Next(height - h + 1), w, h);
        }
        return null;
    }

    // ------------------------------------------------------------------ mixup and cutmix

    /// <summary>
    /// Mixup (Zhang et al., 2018) on a float32 CPU batch, in place: with λ ~ Beta(α, α), image i becomes
    /// λ·x_i + (1 − λ)·x_(B−1−i) (the batch paired with its reverse, as timm). Returns the matching soft targets
    /// (B, <paramref name="numClasses"/>) float32, each row summing to 1, for <see cref="F.CrossEntropy"/>.
    /// </summary>
    public static Tensor Mixup(Tensor images, Tensor labels, int numClasses, Random rng, double alpha = 0.8, double labelSmoothing = 0)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if (!(alpha > 0)) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "alpha must be positive");
        var y = CheckLabels(images, labels, numClasses);
        double lambda = Beta(rng, alpha, alpha);
        using (var paired = Reversed(images))
        {
            images.MulInPlace(lambda);
            images.AddInPlace(paired, 1 - lambda);
        }
        return MixedTargets(y, numClasses, lambda, labelSmoothing);
    }

    /// <summary>
    /// CutMix (Yun et al., 2019) on a float32 CPU batch, in place: with λ ~ Beta(α, α), a box of area (1 − λ) of the
    /// image at a uniform random centre (clipped at the borders) is pasted from the paired image x_(B−1−i); the
    /// targets use the box's actual area. Returns soft targets (B, <paramref name="numClasses"/>), rows summing to 1.
    /// </summary>
    public static Tensor CutMix(Tensor images, Tensor labels, int numClasses, Random rng, double alpha = 1.0, double labelSmoothing = 0)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if (!(alpha > 0)) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "alpha must be positive");
        var y = CheckLabels(images, labels, numClasses);
        var (_, _, h, w) = CheckBatch(images, nameof(images));
        double lambda = Beta(rng, alpha, alpha);
        var (x0, y0, x1, y1) = CutMixBox(w, h, lambda, rng);
        int area = (x1 - x0) * (y1 - y0);
        if (area > 0)
        {
            using var paired = Reversed(images);
            using var srcRows = paired.Slice(2, y0, y1);
            using var src = srcRows.Slice(3, x0, x1);
            using var dstRows = images.Slice(2, y0, y1);
            using var dst = dstRows.Slice(3, x0, x1);
            dst.CopyFrom(src);
        }
        return MixedTargets(y, numClasses, 1 - (double)area / ((double)w * h), labelSmoothing);
    }

    /// <summary>The CutMix box [x0, x1) × [y0, y1) for λ: sides √(1 − λ) of the image's, centre uniform, clipped (as timm's rand_bbox).</summary>
    public static (int X0, int Y0, int X1, int Y1) CutMixBox(int width, int height, double lambda, Random rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        double ratio = Math.Sqrt(1 - Math.Clamp(lambda, 0, 1));
        int cw = (int)(width * ratio), ch = (int)(height * ratio);
        int cx = rng.Next(width), cy = rng.Next(height);
        return (Math.Clamp(cx - cw / 2, 0, width), Math.Clamp(cy - ch / 2, 0, height),
                Math.Clamp(cx + cw / 2, 0, width), Math.Clamp(cy + ch / 2, 0, height));
    }

    /// <summary>
    /// One-hot targets (B, <paramref name="numClasses"/>) float32 with label smoothing: 1 − s + s/K on the label,
    /// s/K elsewhere. What <see cref="BatchMixing"/> returns for a batch it leaves unmixed.
    /// </summary>
    public static Tensor SoftTargets(Tensor labels, int numClasses, double labelSmoothing = 0)
    {
        ArgumentNullException.ThrowIfNull(labels);
        var y = CheckLabelValues(labels, numClasses, -1);
        return MixedTargets(y, numClasses, 1, labelSmoothing);
    }

    private static Tensor Reversed(Tensor images)
    {
        long b = images.Size(0);
        using var order = Tensor.Arange(b - 1, -1, -1);
        return images.IndexSelect(0, order);
    }

    private static Tensor MixedTargets(long[] y, int numClasses, double lambda, double labelSmoothing)
    {
        if (labelSmoothing is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(labelSmoothing), labelSmoothing, "label smoothing must be in [0, 1)");
        int b = y.Length;
        double off = labelSmoothing / numClasses, on = 1 - labelSmoothing + off;
        var t = new float[b * numClasses];
        for (int i = 0; i < b; i++)
        {
            var row = t.AsSpan(i * numClasses, numClasses);
            var d = new double[numClasses];
            Array.Fill(d, off);
            d[y[i]] += lambda * (on - off);
            d[y[b - 1 - i]] += (1 - lambda) * (on - off);
            for (int k = 0; k < numClasses; k++) row[k] = (float)d[k];
        }
        return Tensor.FromArray(t, b, numClasses);
    }

    private static long[] CheckLabels(Tensor images, Tensor labels, int numClasses)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        var (b, _, _, _) = CheckBatch(images, nameof(images));
        return CheckLabelValues(labels, numClasses, b);
    }

    private static long[] CheckLabelValues(Tensor labels, int numClasses, int expectedCount)
    {
        if (numClasses < 2) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "a classifier has at least two classes");
        if (labels.Dim != 1 || labels.DType != DType.Int64)
            throw new ArgumentException($"labels must be int64 class indices (B); got {labels}", nameof(labels));
        var y = labels.ToArray<long>();
        if (expectedCount >= 0 && y.Length != expectedCount)
            throw new ArgumentException($"{y.Length} labels for a batch of {expectedCount} images", nameof(labels));
        foreach (var v in y)
            if (v < 0 || v >= numClasses) throw new ArgumentException($"label {v} is outside 0..{numClasses - 1}", nameof(labels));
        return y;
    }

    private static (int B, int C, int H, int W) CheckBatch(Tensor batch, string name)
    {
        var s = batch.Shape;
        if (s.Length != 4) throw new ArgumentException($"expected an image batch (B, C, H, W); got shape [{string.Join(", ", s)}]", name);
        if (batch.DType != DType.Float32 || batch.Device.Type != DeviceType.Cpu)
            throw new ArgumentException($"expected a float32 CPU batch; got {batch}", name);
        return ((int)s[0], (int)s[1], (int)s[2], (int)s[3]);
    }

    // ------------------------------------------------------------------ random numbers from a System.Random

    private static double Uniform(Random rng, double lo, double hi) => lo + (hi - lo) * rng.NextDouble();

    // Box-Muller; one of the pair is discarded so that each call consumes a fixed amount of the stream.
    internal static double Normal(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble();  // (0, 1]
        double u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    // Marsaglia & Tsang (2000); for shape < 1, Gamma(a) = Gamma(a + 1) · U^(1/a).
    internal static double Gamma(Random rng, double shape)
    {
        if (shape < 1) return Gamma(rng, shape + 1) * Math.Pow(1.0 - rng.NextDouble(), 1 / shape);
        double d = shape - 1.0 / 3, c = 1 / Math.Sqrt(9 * d);
        for (;;)
        {
            double x, v;
            do
            {
                x = Normal(rng);
                v = 1 + c * x;
            } while (v <= 0);
            v = v * v * v;
            double u = 1.0 - rng.NextDouble();
            if (Math.Log(u) < 0.5 * x * x + d - d * v + d * Math.Log(v)) return d * v;
        }
    }

    /// <summary>A Beta(a, b) sample as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).</summary>
    internal static double Beta(Random rng, double a, double b)
    {
        double x = Gamma(rng, a), y = Gamma(rng, b);
        return x + y > 0 ? x / (x + y) : 0.5;
    }
}
