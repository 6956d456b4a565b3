using Vit.Torch.Imaging;
using static Vit.Torch.Tests.ImageFixtures;

namespace Vit.Torch.Tests;

/// <summary>Deterministic image ops against hand-computed values; random augmentations are reproducible under a seed.</summary>
[TestClass]
public sealed class AugmentTests
{
    private static Image Photo() => Pattern(40, 30, 3, (x, y, c) => (x * 7 + y * 11 + c * 60 + x * y) % 256);

    // Every random augmentation, as (name, run).
    private static IEnumerable<(string Name, Func<Image, Random, Image> Run)> RandomOps() =>
    [
        ("random resized crop", (i, r) => Augment.RandomResizedCrop(i, r, 16, 16)),
        ("horizontal flip", (i, r) => Augment.RandomHorizontalFlip(i, r)),
        ("affine", (i, r) => Augment.RandomAffine(i, r, 15, 0.2)),
        ("colour jitter", (i, r) => Augment.ColorJitter(i, r)),
        ("RandAugment", (i, r) => Augment.RandAugment(i, r, 2, 9, 0.5)),
        ("random erasing", (i, r) => Augment.RandomErasing(i, r, p: 0.7)),
        ("pipeline light", (i, r) => AugmentationPipeline.Training(AugmentPreset.Light, 24, 24).Apply(i, r)),
        ("pipeline standard", (i, r) => AugmentationPipeline.Training(AugmentPreset.Standard, 24, 24).Apply(i, r)),
    ];

    [TestMethod]
    public void EveryAugmentation_IsDeterministicUnderASeed_AndVariesAcrossSeeds()
    {
        using var img = Photo();
        var before = img.ToBytes();
        foreach (var (name, run) in RandomOps())
        {
            var outputs = new HashSet<string>();
            for (int seed = 0; seed < 8; seed++)
            {
                using var a = run(img, new Random(seed));
                using var b = run(img, new Random(seed));
                CollectionAssert.AreEqual(a.ToBytes(), b.ToBytes(), $"{name}: seed {seed} gives the same image twice");
                outputs.Add(Convert.ToBase64String(a.ToBytes()) + a.Width);
            }
            Assert.IsGreaterThan(1, outputs.Count, $"{name}: different seeds give different images");
        }
        CollectionAssert.AreEqual(before, img.ToBytes(), "the input image is never changed");
    }

    [TestMethod]
    public void Pipeline_PerSampleSeeds_GiveTheSameResultOnAnyThreadInAnyOrder()
    {
        using var img = Photo();
        var pipeline = AugmentationPipeline.Training(AugmentPreset.Standard, 20, 20);
        byte[] Run(int sample)
        {
            using var o = pipeline.Apply(img, new Random(HashCode.Combine(7, sample)));
            return o.ToBytes();
        }
        var sequential = Enumerable.Range(0, 12).Select(Run).ToArray();
        var parallel = new byte[12][];
        Parallel.For(0, 12, new ParallelOptions { MaxDegreeOfParallelism = 2 }, i => parallel[11 - i] = Run(11 - i));
        for (int i = 0; i < 12; i++) CollectionAssert.AreEqual(sequential[i], parallel[i], $"sample {i}");
    }

    // ------------------------------------------------------------------ geometry

    [TestMethod]
    public void FlipTwice_IsIdentity()
    {
        using var img = Photo();
        using (var h1 = img.FlipHorizontal())
        using (var h2 = h1.FlipHorizontal())
            CollectionAssert.AreEqual(img.ToBytes(), h2.ToBytes());
        using (var v1 = img.FlipVertical())
        using (var v2 = v1.FlipVertical())
            CollectionAssert.AreEqual(img.ToBytes(), v2.ToBytes());

        using var f = img.FlipHorizontal();
        var a = img.ToBytes();
        var b = f.ToBytes();
        for (int c = 0; c < 3; c++) Assert.AreEqual(a[(5 * 40 + 0) * 3 + c], b[(5 * 40 + 39) * 3 + c], "column 0 goes to column 39");
    }

    [TestMethod]
    public void Rotate_QuarterTurns_MoveEveryPixelWhereExpected()
    {
        const int n = 7;
        using var img = Pattern(n, n, 1, (x, y, _) => 1 + x + n * y);
        var src = img.ToBytes();
        // Counter-clockwise by 90° about the centre: (x, y) -> (y, n-1-x).
        using var r90 = img.Rotate(90, Interpolation.Nearest);
        var d = r90.ToBytes();
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) Assert.AreEqual(src[y * n + x], d[(n - 1 - x) * n + y], $"({x}, {y})");
        using var r180 = img.Rotate(180, Interpolation.Nearest);
        using var both = img.FlipHorizontal();
        using var both2 = both.FlipVertical();
        CollectionAssert.AreEqual(both2.ToBytes(), r180.ToBytes(), "180° = flip both ways");
    }

    [TestMethod]
    public void Translate_And_Shear_KnownPixels()
    {
        using var img = Pattern(6, 5, 1, (x, y, _) => 10 + x + 6 * y);
        using var t = img.Translate(2, 1, Interpolation.Nearest, fill: 0);
        var s = img.ToBytes();
        var d = t.ToBytes();
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 6; x++)
                Assert.AreEqual(x >= 2 && y >= 1 ? s[(y - 1) * 6 + x - 2] : 0, d[y * 6 + x], $"({x}, {y})");

        // Shear x by 1 about the centre row cy = 2: row y moves right by y - 2.
        using var sh = img.Shear(1, 0, Interpolation.Nearest, fill: 0);
        var e = sh.ToBytes();
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 6; x++)
            {
                int sx = x - (y - 2);
                Assert.AreEqual(sx is >= 0 and < 6 ? s[y * 6 + sx] : 0, e[y * 6 + x], $"({x}, {y})");
            }
    }

    [TestMethod]
    public void RandomResizedCropBox_StaysInsideWithTheRequestedScaleAndRatio()
    {
        var rng = new Random(3);
        int fallback = 0;
        for (int i = 0; i < 2000; i++)
        {
            var (x, y, w, h) = Augment.RandomResizedCropBox(64, 48, rng, 0.2, 0.9, 0.5, 2.0);
            Assert.IsTrue(x >= 0 && y >= 0 && w >= 1 && h >= 1 && x + w <= 64 && y + h <= 48, $"({x}, {y}, {w}, {h}) inside 64x48");
            if (w == 64 && h == 48) { fallback++; continue; }
            double scale = (double)w * h / (64 * 48), ratio = (double)w / h;
            // Rounding w and h to integers moves the area and ratio slightly.
            Assert.IsTrue(scale > 0.2 * 0.8 && scale < 0.9 * 1.2, $"scale {scale}");
            Assert.IsTrue(ratio > 0.5 * 0.8 && ratio < 2.0 * 1.25, $"ratio {ratio}");
        }
        Assert.IsLessThan(20, fallback, "the centre-crop fallback is rare at these settings");
    }

    // ------------------------------------------------------------------ colour ops against hand computation

    [TestMethod]
    public void ColourOps_KnownValues()
    {
        var ramp = Enumerable.Range(0, 256).Select(v => (byte)v).ToArray();
        using var all = Image.FromPixels(ramp, 256, 1, 1);
        using (var s = all.Solarize(128))
            CollectionAssert.AreEqual(ramp.Select(v => (byte)(v >= 128 ? 255 - v : v)).ToArray(), s.ToBytes(), "solarize");
        using (var p = all.Posterize(2))
            CollectionAssert.AreEqual(ramp.Select(v => (byte)(v & 0xC0)).ToArray(), p.ToBytes(), "posterize");
        using (var inv = all.Invert())
            CollectionAssert.AreEqual(ramp.Select(v => (byte)(255 - v)).ToArray(), inv.ToBytes(), "invert");

        using var flat = Image.Filled(4, 4, 3, 200);
        using (var b = flat.AdjustBrightness(0.5)) Assert.IsTrue(b.ToBytes().All(v => v == 100), "brightness 0.5");
        using (var b = flat.AdjustBrightness(2)) Assert.IsTrue(b.ToBytes().All(v => v == 255), "brightness saturates");

        using var two = Pattern(4, 2, 1, (_, y, _) => y == 0 ? 40 : 60);  // mean 50
        using (var c = two.AdjustContrast(0)) Assert.IsTrue(c.ToBytes().All(v => v == 50), "contrast 0: the mean gray");
        using (var c = two.AdjustContrast(2))
            CollectionAssert.AreEqual(new byte[] { 30, 30, 30, 30, 70, 70, 70, 70 }, c.ToBytes(), "contrast 2 doubles the distance to the mean");

        using var colour = Pattern(3, 1, 3, (x, _, c) => (x * 80 + c * 50) % 256);
        using (var g = colour.AdjustSaturation(0))
        {
            var rgb = colour.ToBytes();
            var px = g.ToBytes();
            for (int i = 0; i < 3; i++)
            {
                double luma = 0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2];
                for (int c = 0; c < 3; c++) Assert.AreEqual(luma, px[3 * i + c], 1.0, $"saturation 0: pixel {i} is gray");
            }
        }
        using (var gray = Image.Filled(3, 3, 1, 77))
        using (var same = gray.AdjustSaturation(3))
            Assert.IsTrue(same.ToBytes().All(v => v == 77), "saturation does not touch gray images");

        using var band = Pattern(4, 1, 1, (x, _, _) => 50 + 33 * x);  // 50, 83, 116, 149
        using (var ac = band.AutoContrast())
        {
            var got = ac.ToBytes();
            for (int x = 0; x < 4; x++) Assert.AreEqual((50 + 33 * x - 50) * 255.0 / 99, got[x], 0.51, $"autocontrast {x}");
        }
        using (var halves = Pattern(4, 4, 1, (x, _, _) => x < 2 ? 10 : 20))
        using (var eq = halves.Equalize())
            CollectionAssert.AreEquivalent(new byte[] { 0, 255 }, eq.ToBytes().Distinct().ToArray(), "equalize spreads two levels to the extremes");

        using var rgba = Pattern(2, 2, 4, (x, y, c) => c == 3 ? 10 + x + 2 * y : 200);
        using (var dark = rgba.AdjustBrightness(0))
        {
            var px = dark.ToBytes();
            for (int i = 0; i < 4; i++)
            {
                Assert.AreEqual(0, px[4 * i] + px[4 * i + 1] + px[4 * i + 2]);
                Assert.AreEqual(10 + i, px[4 * i + 3], "alpha is kept");
            }
        }
    }

    [TestMethod]
    public void Sharpness_BlendsWithPilsSmoothFilter()
    {
        // One bright pixel in the middle of a 5x5 black image. PIL's SMOOTH kernel is [1 1 1; 1 5 1; 1 1 1] / 13.
        using var dot = Pattern(5, 5, 1, (x, y, _) => x == 2 && y == 2 ? 130 : 0);
        using var blurred = dot.AdjustSharpness(0);
        var px = blurred.ToBytes();
        Assert.AreEqual(50, px[2 * 5 + 2], "centre: 130 * 5 / 13");
        Assert.AreEqual(10, px[1 * 5 + 1], "neighbour: 130 / 13");
        Assert.AreEqual(0, px[0], "border pixels are left as they are");
        using var same = dot.AdjustSharpness(1);
        CollectionAssert.AreEqual(dot.ToBytes(), same.ToBytes());
    }

    // ------------------------------------------------------------------ RandAugment

    [TestMethod]
    public void RandAugmentOps_AtKnownMagnitudes()
    {
        using var img = Photo();
        foreach (var op in Augment.RandAugmentOps)
        {
            using var o = Augment.ApplyRandAugmentOp(img, op, 5);
            Assert.AreEqual((40, 30, 3), (o.Width, o.Height, o.Channels), op.ToString());
        }
        Assert.HasCount(13, Augment.RandAugmentOps);
        using (var id = Augment.ApplyRandAugmentOp(img, RandAugmentOp.Identity, 10))
            CollectionAssert.AreEqual(img.ToBytes(), id.ToBytes());
        using (var sol = Augment.ApplyRandAugmentOp(img, RandAugmentOp.Solarize, 10))
        using (var inv = img.Invert())
            CollectionAssert.AreEqual(inv.ToBytes(), sol.ToBytes(), "solarize at full magnitude inverts everything");
        using (var sol0 = Augment.ApplyRandAugmentOp(img, RandAugmentOp.Solarize, 0))
            CollectionAssert.AreEqual(img.ToBytes(), sol0.ToBytes(), "solarize at magnitude 0 changes nothing");
        using (var post = Augment.ApplyRandAugmentOp(img, RandAugmentOp.Posterize, 10))
            CollectionAssert.AreEqual(img.ToBytes().Select(v => (byte)(v & 0xF0)).ToArray(), post.ToBytes(), "4 bits at magnitude 10");
        using (var rot = Augment.ApplyRandAugmentOp(img, RandAugmentOp.Rotate, 10, negate: true, fill: 0))
        using (var expected = img.Rotate(-30, Interpolation.Bilinear, 0))
            CollectionAssert.AreEqual(expected.ToBytes(), rot.ToBytes(), "rotate: 30° at magnitude 10, sign flipped");
        using (var tx = Augment.ApplyRandAugmentOp(img, RandAugmentOp.TranslateX, 10, fill: 0))
        using (var expected = img.Translate(18, 0, Interpolation.Bilinear, 0))
            CollectionAssert.AreEqual(expected.ToBytes(), tx.ToBytes(), "translate: 45% of 40 pixels = 18");
    }

    // ------------------------------------------------------------------ random erasing

    [TestMethod]
    public void RandomErasing_OnImage_FillsOneRectangle()
    {
        using var img = Image.Filled(40, 30, 3, 200);
        using var e = Augment.RandomErasing(img, new Random(5), p: 1, noise: false, value: 7);
        var px = e.ToBytes();
        var erased = Enumerable.Range(0, 40 * 30).Where(i => px[3 * i] == 7).ToArray();
        Assert.IsNotEmpty(erased);
        int x0 = erased.Min(i => i % 40), x1 = erased.Max(i => i % 40), y0 = erased.Min(i => i / 40), y1 = erased.Max(i => i / 40);
        Assert.HasCount((x1 - x0 + 1) * (y1 - y0 + 1), erased, "the erased pixels form a filled rectangle");
        double fraction = erased.Length / (40.0 * 30);
        Assert.IsTrue(fraction is > 0.015 and < 0.4, $"area fraction {fraction}");
        using var none = Augment.RandomErasing(img, new Random(5), p: 0);
        CollectionAssert.AreEqual(img.ToBytes(), none.ToBytes());
    }

    [TestMethod]
    public void RandomErasing_OnBatch_InPlaceAndReproducible()
    {
        float[] Run(int seed, bool noise)
        {
            using var batch = Tensor.Full([3, 2, 16, 16], 9);
            Augment.RandomErasing(batch, new Random(seed), p: 1, noise: noise, value: -1);
            return batch.ToArray<float>();
        }
        var a = Run(1, noise: false);
        CollectionAssert.AreEqual(a, Run(1, noise: false));
        for (int i = 0; i < 3; i++)
        {
            var sample = a.AsSpan(i * 512, 512).ToArray();
            int erased = sample.Count(v => v == -1);
            Assert.IsGreaterThan(0, erased, $"sample {i} has an erased box");
            Assert.AreEqual(sample.Take(256).Count(v => v == -1), sample.Skip(256).Count(v => v == -1), "every channel is erased at the same place");
        }
        var n = Run(2, noise: true);
        CollectionAssert.AreEqual(n, Run(2, noise: true));
        Assert.IsGreaterThan(10, n.Where(v => v != 9).Distinct().Count(), "noise fills with varied values");
    }

    // ------------------------------------------------------------------ mixup and cutmix

    // Sample i is the constant i + 1; labels 0..B-1.
    private static (Tensor Images, Tensor Labels) ConstantBatch(int b, int h = 8, int w = 8)
    {
        var data = new float[b * 3 * h * w];
        for (int i = 0; i < b; i++) Array.Fill(data, i + 1f, i * 3 * h * w, 3 * h * w);
        return (Tensor.FromArray(data, b, 3, h, w), Tensor.FromArray(Enumerable.Range(0, b).Select(i => (long)i).ToArray(), b));
    }

    [TestMethod]
    public void Mixup_MixesWithTheReversedBatch_TargetsSumToOne()
    {
        const int b = 4, k = 6;
        var (images, labels) = ConstantBatch(b);
        using var _i = images;
        using var _l = labels;
        using var targets = Augment.Mixup(images, labels, k, new Random(11));
        var t = targets.ToArray<float>();
        CollectionAssert.AreEqual(new long[] { b, k }, targets.Shape);
        double lambda = t[0 * k + 0];  // sample 0, its own label
        Assert.IsTrue(lambda is > 0 and < 1, $"lambda {lambda}");
        var x = images.ToArray<float>();
        for (int i = 0; i < b; i++)
        {
            Assert.AreEqual(1.0, t.AsSpan(i * k, k).ToArray().Sum(), 1e-6, $"row {i} sums to 1");
            Assert.AreEqual(lambda, t[i * k + i], 1e-6, $"row {i}: lambda on its own label");
            Assert.AreEqual(1 - lambda, t[i * k + (b - 1 - i)], 1e-6, $"row {i}: 1 - lambda on its pair's label");
            double expected = lambda * (i + 1) + (1 - lambda) * (b - i);
            Assert.AreEqual(expected, x[i * 192], 1e-5, $"image {i} = lambda x_i + (1 - lambda) x_(B-1-i)");
        }

        var (images2, labels2) = ConstantBatch(b);
        using var _i2 = images2;
        using var _l2 = labels2;
        using var smoothed = Augment.Mixup(images2, labels2, k, new Random(11), labelSmoothing: 0.1);
        var s = smoothed.ToArray<float>();
        for (int i = 0; i < b; i++) Assert.AreEqual(1.0, s.AsSpan(i * k, k).ToArray().Sum(), 1e-6, $"smoothed row {i} sums to 1");
        Assert.AreEqual(0.1 / k, s[0 * k + 4], 1e-6, "a label nobody has gets the smoothing mass");
    }

    [TestMethod]
    public void CutMix_PastesABoxFromThePair_TargetsFollowTheBoxArea()
    {
        const int b = 5, k = 5, h = 16, w = 16;
        for (int seed = 0; seed < 5; seed++)
        {
            var (images, labels) = ConstantBatch(b, h, w);
            using var _i = images;
            using var _l = labels;
            using var targets = Augment.CutMix(images, labels, k, new Random(seed));
            var t = targets.ToArray<float>();
            var x = images.ToArray<float>();
            for (int i = 0; i < b; i++)
            {
                var plane = x.AsSpan(i * 3 * h * w, h * w).ToArray();  // channel 0
                int pasted = plane.Count(v => v == b - i);
                int own = plane.Count(v => v == i + 1);
                if (i != b - 1 - i) Assert.AreEqual(h * w, pasted + own, $"seed {seed} image {i}: only its own and its pair's pixels");
                Assert.AreEqual(1.0, t.AsSpan(i * k, k).ToArray().Sum(), 1e-6, $"row {i} sums to 1");
                if (i != b - 1 - i)
                    Assert.AreEqual((double)pasted / (h * w), t[i * k + (b - 1 - i)], 1e-6, $"seed {seed} image {i}: pair weight = pasted area");
            }
        }
    }

    [TestMethod]
    public void BatchMixing_Off_GivesSmoothedOneHot_AndLeavesImagesAlone()
    {
        var (images, labels) = ConstantBatch(3);
        using var _i = images;
        using var _l = labels;
        var before = images.ToArray<float>();
        var mixing = new BatchMixing { Probability = 0, LabelSmoothing = 0.1 };
        using var t = mixing.Apply(images, labels, 5, new Random(1));
        CollectionAssert.AreEqual(before, images.ToArray<float>());
        var v = t.ToArray<float>();
        for (int i = 0; i < 3; i++)
            for (int c = 0; c < 5; c++)
                Assert.AreEqual(c == i ? 0.92f : 0.02f, v[i * 5 + c], 1e-6f);

        var on = new BatchMixing();
        using var mixed = on.Apply(images, labels, 5, new Random(2));
        var m = mixed.ToArray<float>();
        for (int i = 0; i < 3; i++) Assert.AreEqual(1.0, m.AsSpan(i * 5, 5).ToArray().Sum(), 1e-6);
    }

    [TestMethod]
    public void Mixing_BadLabels_AreRefused()
    {
        var (images, labels) = ConstantBatch(2);
        using var _i = images;
        using var _l = labels;
        using var wrong = Tensor.FromArray(new long[] { 0, 7 }, 2);
        var e = Assert.ThrowsExactly<ArgumentException>(() => Augment.Mixup(images, wrong, 5, new Random(0)));
        Assert.Contains("label 7 is outside 0..4", e.Message);
        using var three = Tensor.FromArray(new long[] { 0, 1, 2 }, 3);
        e = Assert.ThrowsExactly<ArgumentException>(() => Augment.CutMix(images, three, 5, new Random(0)));
        Assert.Contains("3 labels for a batch of 2", e.Message);
    }

    // ------------------------------------------------------------------ pipelines

    [TestMethod]
    public void Pipelines_AlwaysGiveTheTargetShape_FromAnyInput()
    {
        using var gray = Pattern(50, 40, 1, (x, y, _) => x + y);
        using var rgba = Pattern(30, 60, 4, (x, y, c) => x * c + y);
        long live = Image.LiveCount;
        foreach (var preset in Enum.GetValues<AugmentPreset>())
            foreach (var channels in new[] { 1, 3 })
            {
                var p = AugmentationPipeline.Training(preset, 24, 20, channels);
                foreach (var input in new[] { gray, rgba })
                    for (int seed = 0; seed < 3; seed++)
                    {
                        using var o = p.Apply(input, new Random(seed));
                        Assert.AreEqual((24, 20, channels), (o.Width, o.Height, o.Channels), $"{preset}, {channels} channel(s), from {input}");
                    }
            }
        Assert.AreEqual(live, Image.LiveCount, "intermediate images are freed");
    }

    [TestMethod]
    public void EvaluationPipeline_IsDeterministic_AndCropsTheCentre()
    {
        using var img = Pattern(64, 32, 3, (x, y, c) => (x * 3 + y * 5 + c) % 256);
        var eval = AugmentationPipeline.Evaluation(16, 16, cropFraction: 0.5, interpolation: Interpolation.Nearest);
        Assert.IsTrue(eval.IsDeterministic);
        using var a = eval.Apply(img, new Random(1));
        using var b = eval.Apply(img, new Random(2));
        CollectionAssert.AreEqual(a.ToBytes(), b.ToBytes());
        // Scale so that 16 is half the shorter side: 64x32 stays 64x32, then the centre 16x16 (offset 24, 8).
        using var expected = img.Crop(24, 8, 16, 16);
        CollectionAssert.AreEqual(expected.ToBytes(), a.ToBytes());
        Assert.IsFalse(AugmentationPipeline.Training(AugmentPreset.Standard, 16, 16).IsDeterministic);
        Assert.Contains("RandAugment n 2 m 9 std 0.5", AugmentationPipeline.Training(AugmentPreset.Standard, 16, 16).StepNames);
    }
}
