using System.Globalization;
using System.Xml.Linq;
using Vit.Torch.Imaging;
using Vit.Torch.Model;
using Vit.Torch.Native;
using Vit.Torch.Reports;
using Vit.Torch.Training;

namespace Vit.Torch.Tests;

/// <summary>
/// Attention rollout and its overlays read back: rollout is compared with a direct computation in double loops;
/// overlay rasters are decoded from the SVG and their pixels checked. (The charts: <see cref="ChartsTests"/>.)
/// </summary>
[TestClass]
public sealed class ReportsTests
{
    private static readonly XNamespace S = "http://www.w3.org/2000/svg";
    private static readonly XNamespace Xlink = "http://www.w3.org/1999/xlink";
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private string dir = "";

    [TestInitialize]
    public void Init() => dir = Directory.CreateTempSubdirectory("vit-reports-").FullName;

    [TestCleanup]
    public void Cleanup() => Directory.Delete(dir, recursive: true);

    private string File(string name) => Path.Combine(dir, name);

    private static XDocument Load(string path) => XDocument.Load(path);  // throws on XML that is not well-formed

    /// <summary>The text an element shows: its own text nodes, without the tooltip of a <c>title</c> child.</summary>
    private static string Shown(XElement e) => string.Concat(e.Nodes().OfType<XText>().Select(n => n.Value));

    private static double Attr(XElement e, string name) => double.Parse(e.Attribute(name)!.Value, Inv);

    private static IEnumerable<XElement> WithClass(XContainer root, string element, string cssClass) =>
        root.Descendants(S + element).Where(e => (string?)e.Attribute("class") == cssClass);

    // ============================================================================== attention rollout

    private static VitConfig TinyConfig(VitPooling pooling = VitPooling.ClassToken, bool? classToken = null, int heads = 2, int depth = 3) => new()
    {
        ImageSize = 8, PatchSize = 2, Channels = 1, Dim = 8, Depth = depth, Heads = heads, MlpDim = 16, NumClasses = 3,
        Pooling = pooling, ClassToken = classToken,
    };

    private static VisionTransformer RandomModel(VitConfig config, ulong seed = 11)
    {
        Torch.ManualSeed(seed);
        var model = new VisionTransformer(config);
        TestModels.Randomize(model);
        return model;
    }

    private static Tensor RandomImages(int b, ulong seed = 5)
    {
        Torch.ManualSeed(seed);
        return Tensor.Randn([b, 1, 8, 8]);
    }

    /// <summary>Each block's attention (B, H, T, T) as double[b][l][h, i, j], from the model in evaluation mode.</summary>
    private static double[][][,,] AttentionOf(VisionTransformer model, Tensor images)
    {
        using var scope = TensorScope.Begin();
        model.Eval();
        var maps = new List<Tensor>();
        using (Torch.NoGrad()) model.Forward(images, maps);
        int b = (int)images.Size(0), h = model.Config.Heads, t = model.Config.NumTokens;
        var result = new double[b][][,,];
        for (int n = 0; n < b; n++)
        {
            result[n] = new double[maps.Count][,,];
            for (int l = 0; l < maps.Count; l++)
            {
                var v = maps[l].Select(0, n).Contiguous().ToArray<float>();
                var a = new double[h, t, t];
                for (int hh = 0; hh < h; hh++)
                    for (int i = 0; i < t; i++)
                        for (int j = 0; j < t; j++)
                            a[hh, i, j] = v[(hh * t + i) * t + j];
                result[n][l] = a;
            }
        }
        return result;
    }

    /// <summary>
    /// Attention rollout written from Abnar &amp; Zuidema (2020) eq. for "attention rollout" with double loops:
    /// Â = rownorm(mean_h A + I), R = Â_L ··· Â_1, then the read-out row over the patch columns.
    /// </summary>
    private static double[][] DirectRollout(double[][,,] blocks, int heads, int tokens, int prefix, bool classRow, bool normalize)
    {
        var r = new double[tokens, tokens];
        for (int i = 0; i < tokens; i++) r[i, i] = 1;
        foreach (var a in blocks)
        {
            var hat = new double[tokens, tokens];
            for (int i = 0; i < tokens; i++)
            {
                double sum = 0;
                for (int j = 0; j < tokens; j++)
                {
                    double m = 0;
                    for (int h = 0; h < heads; h++) m += a[h, i, j];
                    hat[i, j] = m / heads + (i == j ? 1 : 0);
                    sum += hat[i, j];
                }
                for (int j = 0; j < tokens; j++) hat[i, j] /= sum;
            }
            var next = new double[tokens, tokens];
            for (int i = 0; i < tokens; i++)
                for (int j = 0; j < tokens; j++)
                {
                    double s = 0;
                    for (int k = 0; k < tokens; k++) s += hat[i, k] * r[k, j];
                    next[i, j] = s;
                }
            r = next;
        }
        int n = tokens - prefix;
        var row = new double[n];
        for (int j = 0; j < n; j++)
        {
            if (classRow) row[j] = r[0, prefix + j];
            else
            {
                for (int i = prefix; i < tokens; i++) row[j] += r[i, prefix + j];
                row[j] /= n;
            }
        }
        if (normalize)
        {
            double total = row.Sum();
            for (int j = 0; j < n; j++) row[j] /= total;
        }
        return [row];
    }

    public static IEnumerable<object[]> Poolings =>
    [
        [VitPooling.ClassToken, null!],
        [VitPooling.Mean, false],
        [VitPooling.Mean, true],
    ];

    [TestMethod]
    [DynamicData(nameof(Poolings))]
    public void Rollout_EqualsADirectComputation(VitPooling pooling, bool? classToken)
    {
        var config = TinyConfig(pooling, classToken);
        using var model = RandomModel(config);
        using var images = RandomImages(3);
        var attention = AttentionOf(model, images);
        int prefix = config.HasClassToken ? 1 : 0, g = config.GridSize;
        foreach (bool normalize in new[] { true, false })
        {
            using var rollout = AttentionRollout.Compute(model, images, normalize);
            CollectionAssert.AreEqual(new long[] { 3, g, g }, rollout.Shape);
            Assert.AreEqual(DType.Float32, rollout.DType);
            var got = rollout.ToArray<float>();
            for (int b = 0; b < 3; b++)
            {
                var want = DirectRollout(attention[b], config.Heads, config.NumTokens, prefix, pooling == VitPooling.ClassToken, normalize)[0];
                for (int p = 0; p < g * g; p++)
                    Assert.AreEqual(want[p], got[b * g * g + p], 1e-5, $"image {b}, patch ({p / g}, {p % g}), normalize {normalize}");
                // Not a trivial map: a random model attends unevenly.
                Assert.IsGreaterThan(1.2 * want.Min(), want.Max());
            }
        }
    }

    [TestMethod]
    public void Rollout_SumsToOneOverThePatches()
    {
        using var cls = RandomModel(TinyConfig());
        using var mean = RandomModel(TinyConfig(VitPooling.Mean));
        using var images = RandomImages(4);
        double[] Sums(VisionTransformer m, bool normalize)
        {
            using var r = AttentionRollout.Compute(m, images, normalize);
            using var s = r.Sum([1, 2]).To(DType.Float64);
            return s.ToArray<double>();
        }
        foreach (var s in Sums(cls, true)) Assert.AreEqual(1, s, 1e-5);
        foreach (var s in Sums(mean, true)) Assert.AreEqual(1, s, 1e-5);
        // Unnormalised, a mean-pooled model's map is a mean of rows of a row-stochastic matrix: it sums to 1 as it is.
        foreach (var s in Sums(mean, false)) Assert.AreEqual(1, s, 1e-5);
        // The class token keeps a share of its own row, so its map over the patches sums to less than 1.
        foreach (var s in Sums(cls, false)) Assert.IsTrue(s > 0.05 && s < 0.999, $"sum {s}");
    }

    [TestMethod]
    public void Rollout_UniformAttention_GivesTheClosedForm()
    {
        // Zero queries: every logit is 0, so every attention row is uniform, A = J/T. Then Â = (J/T + I)/2 and,
        // J/T being idempotent, Â^L = 2^-L I + (1 - 2^-L) J/T: each patch gets (1 - 2^-L)/T of the class token's row.
        const int depth = 3;
        var config = TinyConfig(depth: depth);
        using var model = RandomModel(config);
        long d = config.Dim;
        foreach (var block in model.Blocks)
        {
            using var scope = TensorScope.Begin();
            var w = block.Attn.Qkv.Weight;
            using (Torch.NoGrad())
            {
                w.Slice(0, 0, d).Fill(0);
                block.Attn.Qkv.Bias!.Slice(0, 0, d).Fill(0);
            }
        }
        using var images = RandomImages(2);
        int t = config.NumTokens, n = config.NumPatches;
        foreach (var blocks in AttentionOf(model, images))
            foreach (var a in blocks)
                foreach (var v in a) Assert.AreEqual(1.0 / t, v, 1e-6, "precondition: uniform attention");
        using var raw = AttentionRollout.Compute(model, images, normalize: false);
        foreach (var v in raw.ToArray<float>()) Assert.AreEqual((1 - Math.Pow(0.5, depth)) / t, v, 1e-6);
        using var normalized = AttentionRollout.Compute(model, images);
        foreach (var v in normalized.ToArray<float>()) Assert.AreEqual(1.0 / n, v, 1e-6);
    }

    /// <summary>
    /// Makes every block attend each token to itself alone: one head, q = s·LN(x), k = LN(x) with a unit LayerNorm,
    /// so q_i·k_j = s·y_i·y_j, which is largest at j = i (|y_i|² = D, and y_i·y_j &lt; D for distinct tokens);
    /// s = 1e4 turns the softmax into a one-hot row.
    /// </summary>
    private static void ForceIdentityAttention(VisionTransformer model)
    {
        long d = model.Config.Dim;
        using var scope = TensorScope.Begin();
        var eye = new float[d * d];
        for (int i = 0; i < d; i++) eye[i * d + i] = 1;
        using var identity = Tensor.FromArray(eye, d, d);
        using (Torch.NoGrad())
            foreach (var block in model.Blocks)
            {
                block.Norm1.Weight!.Fill(1);
                block.Norm1.Bias!.Fill(0);
                var w = block.Attn.Qkv.Weight;
                w.Slice(0, 0, d).CopyFrom(identity * 1e4);
                w.Slice(0, d, 2 * d).CopyFrom(identity);
                block.Attn.Qkv.Bias!.Slice(0, 0, 2 * d).Fill(0);
            }
    }

    [TestMethod]
    public void Rollout_IdentityAttention_GivesTheExpectedMaps()
    {
        using var images = RandomImages(2);
        // Mean pooling: R = I, so the mean of the patch rows is uniform, 1/N on every patch.
        var meanConfig = TinyConfig(VitPooling.Mean, heads: 1);
        using var mean = RandomModel(meanConfig);
        ForceIdentityAttention(mean);
        foreach (var blocks in AttentionOf(mean, images))
            foreach (var a in blocks)
                for (int i = 0; i < meanConfig.NumTokens; i++) Assert.AreEqual(1, a[0, i, i], 1e-6, "precondition: identity attention");
        foreach (bool normalize in new[] { true, false })
        {
            using var r = AttentionRollout.Compute(mean, images, normalize);
            foreach (var v in r.ToArray<float>()) Assert.AreEqual(1.0 / meanConfig.NumPatches, v, 1e-6);
        }
        // Class token: it only ever attends to itself, so no patch reaches it: the raw map is 0 and stays finite normalised.
        using var cls = RandomModel(TinyConfig(heads: 1));
        ForceIdentityAttention(cls);
        using var raw = AttentionRollout.Compute(cls, images, normalize: false);
        foreach (var v in raw.ToArray<float>()) Assert.AreEqual(0, v, 1e-6);
        using var normalized = AttentionRollout.Compute(cls, images);
        Assert.IsTrue(normalized.ToArray<float>().All(float.IsFinite));
    }

    [TestMethod]
    public void Rollout_RunsInEvaluationMode_RestoresTheMode_AndLeaksNothing()
    {
        var config = TinyConfig() with { Dropout = 0.5, AttentionDropout = 0.5, DropPath = 0.5 };
        using var model = RandomModel(config);
        using var images = RandomImages(2);
        model.Train();
        using (var first = AttentionRollout.Compute(model, images))
        {
            Assert.IsTrue(model.Training, "the caller's training mode comes back");
            using var second = AttentionRollout.Compute(model, images);
            CollectionAssert.AreEqual(first.ToArray<float>(), second.ToArray<float>(), "no dropout: the same map twice");
            var direct = DirectRollout(AttentionOf(model, images)[0], config.Heads, config.NumTokens, 1, classRow: true, normalize: true)[0];
            var got = first.ToArray<float>();
            for (int p = 0; p < direct.Length; p++) Assert.AreEqual(direct[p], got[p], 1e-5);
        }
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long live = Tensor.LiveCount;
        for (int i = 0; i < 3; i++) AttentionRollout.Compute(model, images).Dispose();
        Assert.AreEqual(live, Tensor.LiveCount, "every intermediate freed");
    }

    [TestMethod]
    public void Rollout_BadInput_IsRefusedWithTheProblem()
    {
        var config = TinyConfig();
        using var model = RandomModel(config);
        using var rgb = Tensor.Randn([2, 3, 8, 8]);
        var e = Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.Compute(model, rgb));
        StringAssert.Contains(e.Message, "(B >= 1, 1, 8, 8)");
        StringAssert.Contains(e.Message, "got (2, 3, 8, 8)");
        using var flat = Tensor.Randn([1, 8, 8]);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.Compute(model, flat)).Message, "got (1, 8, 8)");
        using var big = Tensor.Randn([1, 1, 16, 16]);
        Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.Compute(model, big));
        Assert.ThrowsExactly<ArgumentNullException>(() => AttentionRollout.Compute(null!, big));

        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.FromAttentionMaps([], config)).Message, "no attention maps");
        using var wrongTokens = Tensor.Ones([1, 2, 16, 16]);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.FromAttentionMaps([wrongTokens], config)).Message,
            "attention map 0 has shape (1, 2, 16, 16); expected (B, heads, 17, 17)");
        using var one = Tensor.Ones([1, 2, 17, 17]);
        using var two = Tensor.Ones([2, 2, 17, 17]);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.FromAttentionMaps([one, two], config)).Message,
            "attention map 1 holds 2 images, map 0 holds 1");
    }

    // ============================================================================== overlays

    private static Image Gray(int w, int h, byte value) => Image.Filled(w, h, 1, value);

    private static List<(XElement Tile, Image Picture)> Tiles(XDocument doc) =>
        WithClass(doc, "g", "tile").Select(t =>
        {
            var href = t.Element(S + "image")!.Attribute(Xlink + "href")!.Value;
            const string prefix = "data:image/png;base64,";
            StringAssert.StartsWith(href, prefix);
            return (t, Image.Decode(Convert.FromBase64String(href[prefix.Length..])));
        }).ToList();

    [TestMethod]
    public void Overlays_DecodeAtTheExpectedSize_WithColouredCaptions()
    {
        var images = new[] { Gray(32, 32, 100), Gray(32, 32, 150), Gray(32, 32, 200) };
        using var rollout = Tensor.Rand([3, 4, 4]);
        var path = File("overlay.svg");
        AttentionRollout.WriteOverlays(path, images, rollout, ["cat", "dog", "cat"], ["cat", "cat", "cat"], columns: 2, tileSize: 160);
        foreach (var im in images) im.Dispose();
        var doc = Load(path);
        var tiles = Tiles(doc);
        Assert.HasCount(3, tiles);
        foreach (var (tile, picture) in tiles)
            using (picture)
            {
                Assert.AreEqual(160, picture.Width, "32 px enlarged 5 times");
                Assert.AreEqual(160, picture.Height);
                Assert.AreEqual(3, picture.Channels);
                var img = tile.Element(S + "image")!;
                Assert.AreEqual(160, Attr(img, "width"));
                Assert.AreEqual(160, Attr(img, "height"));
            }
        var captions = WithClass(doc, "text", "caption").ToList();
        Assert.AreEqual("✓ cat / cat", Shown(captions[0]));
        Assert.AreEqual("✗ dog / cat", Shown(captions[1]));
        Assert.AreEqual(AttentionRollout.RightColor, captions[0].Attribute("fill")!.Value);
        Assert.AreEqual(AttentionRollout.WrongColor, captions[1].Attribute("fill")!.Value);
        Assert.AreEqual(AttentionRollout.RightColor, captions[2].Attribute("fill")!.Value);
        // Two columns: the third image starts the second row.
        var xs = tiles.Select(t => Attr(t.Tile.Element(S + "image")!, "x")).ToArray();
        var ys = tiles.Select(t => Attr(t.Tile.Element(S + "image")!, "y")).ToArray();
        Assert.AreEqual(xs[0], xs[2]);
        Assert.IsGreaterThan(xs[0], xs[1]);
        Assert.IsGreaterThan(ys[0], ys[2]);
        StringAssert.Contains(Shown(WithClass(doc, "text", "subtitle").Single()), "2 of 3 right");
    }

    [TestMethod]
    public void Overlays_PutTheHeatWhereTheAttentionIs()
    {
        // A gray image and a map whose only attention is on the top-right patch of a 4x4 grid.
        using var image = Gray(64, 64, 128);
        var map = new float[16];
        map[3] = 1;
        using var rollout = Tensor.FromArray(map, 1, 4, 4);
        var path = File("overlay.svg");
        AttentionRollout.WriteOverlays(path, [image], rollout, ["a"], ["b"], tileSize: 128, opacity: 0.5);
        var (_, picture) = Tiles(Load(path)).Single();
        using (picture)
        {
            Assert.AreEqual(128, picture.Width);
            var px = picture.ToBytes();
            (byte R, byte G, byte B) At(int x, int y) => (px[(y * 128 + x) * 3], px[(y * 128 + x) * 3 + 1], px[(y * 128 + x) * 3 + 2]);
            static void Near((byte R, byte G, byte B) want, (byte R, byte G, byte B) got, string where)
            {
                Assert.AreEqual((double)want.R, got.R, 2, where);
                Assert.AreEqual((double)want.G, got.G, 2, where);
                Assert.AreEqual((double)want.B, got.B, 2, where);
            }
            static (byte, byte, byte) Blend((byte R, byte G, byte B) c) =>
                ((byte)Math.Round(0.5 * 128 + 0.5 * c.R), (byte)Math.Round(0.5 * 128 + 0.5 * c.G), (byte)Math.Round(0.5 * 128 + 0.5 * c.B));
            // Patch (0, 3) covers x 96..127, y 0..31 of the 128-px tile; towards the corner (away from the bilinear ramp
            // to its neighbours) it has the hottest colour.
            Near(Blend(ColorRamp.Heat.At(1)), At(120, 8), "inside the attended patch");
            Near(Blend(ColorRamp.Heat.At(0)), At(16, 112), "a far patch");
            Near(Blend(ColorRamp.Heat.At(0)), At(16, 16), "the top-left patch");
        }
    }

    [TestMethod]
    public void Overlays_LargeAndNonSquareImages_FitTheTile()
    {
        using var wide = Image.FromPixels(ImageFixtures.RandomBytes(400 * 200 * 3, 1), 400, 200, 3);
        using var small = Gray(20, 20, 10);
        using var rollout = Tensor.Rand([2, 7, 7]);
        var path = File("overlay.svg");
        AttentionRollout.WriteOverlays(path, [wide, small], rollout, ["x", "y"], ["x", "y"], tileSize: 100);
        var tiles = Tiles(Load(path));
        Assert.AreEqual((100, 50), (tiles[0].Picture.Width, tiles[0].Picture.Height), "the longer side reduced to the tile");
        Assert.AreEqual((100, 100), (tiles[1].Picture.Width, tiles[1].Picture.Height), "20 px enlarged 5 times");
        foreach (var t in tiles) t.Picture.Dispose();
    }

    [TestMethod]
    public void Overlays_BadInput_IsRefusedWithTheProblem()
    {
        using var a = Gray(16, 16, 0);
        using var b = Gray(16, 16, 0);
        using var two = Tensor.Rand([2, 4, 4]);
        var path = File("overlay.svg");
        Image[] images = [a, b];
        string[] labels = ["x", "y"];
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.WriteOverlays(path, images, two, ["x"], labels)).Message,
            "1 predicted labels for 2 images");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.WriteOverlays(path, images, two, labels, ["x", "y", "z"])).Message,
            "3 true labels for 2 images");
        using var three = Tensor.Rand([3, 4, 4]);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.WriteOverlays(path, images, three, labels, labels)).Message,
            "(B, gridH, gridW) with B = 2 images; got (3, 4, 4)");
        using var flat = Tensor.Rand([2, 16]);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.WriteOverlays(path, images, flat, labels, labels)).Message,
            "got (2, 16)");
        var bad = new float[32];
        bad[21] = float.NaN;
        using var nan = Tensor.FromArray(bad, 2, 4, 4);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.WriteOverlays(path, images, nan, labels, labels)).Message,
            "rollout value [1, 1, 1] is NaN");
        bad[21] = -1;
        using var negative = Tensor.FromArray(bad, 2, 4, 4);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.WriteOverlays(path, images, negative, labels, labels)).Message,
            "is -1");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.WriteOverlays(path, [], two, [], [])).Message, "no images");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => AttentionRollout.WriteOverlays(path, images, two, ["x", null!], labels)).Message,
            "predicted label 1 is null");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => AttentionRollout.WriteOverlays(path, images, two, labels, labels, tileSize: 8));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => AttentionRollout.WriteOverlays(path, images, two, labels, labels, opacity: 1.5));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => AttentionRollout.WriteOverlays(path, images, two, labels, labels, columns: 0));
        Assert.IsFalse(System.IO.File.Exists(path));
    }

    // ============================================================================== Image.Blend (the shim's addWeighted)

    [TestMethod]
    public void Blend_IsTheWeightedSumOfTheSamples()
    {
        var pa = ImageFixtures.RandomBytes(5 * 4 * 3, 2);
        var pb = ImageFixtures.RandomBytes(5 * 4 * 3, 3);
        using var a = Image.FromPixels(pa, 5, 4, 3);
        using var b = Image.FromPixels(pb, 5, 4, 3);
        using var c = a.Blend(b, 0.25);
        var pc = c.ToBytes();
        for (int i = 0; i < pc.Length; i++) Assert.AreEqual(0.75 * pa[i] + 0.25 * pb[i], pc[i], 0.5 + 1e-9, $"sample {i}");
        using var none = a.Blend(b, 0);
        CollectionAssert.AreEqual(pa, none.ToBytes());
        using var all = a.Blend(b, 1);
        CollectionAssert.AreEqual(pb, all.ToBytes());
        CollectionAssert.AreEqual(pa, a.ToBytes(), "the inputs are unchanged");
    }

    [TestMethod]
    public void Blend_MismatchedImages_AreRefused()
    {
        using var a = Image.Filled(4, 4, 3, 0);
        using var b = Image.Filled(4, 5, 3, 0);
        using var g = Image.Filled(4, 4, 1, 0);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => a.Blend(b, 0.5)).Message, "size and channels must match");
        Assert.ThrowsExactly<ArgumentException>(() => a.Blend(g, 0.5));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => a.Blend(a, double.NaN));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => a.Blend(a, -0.1));
        long live = Image.LiveCount;
        Assert.ThrowsExactly<ArgumentException>(() => a.Blend(b, 0.5));
        Assert.AreEqual(live, Image.LiveCount);
    }
}
