// Usage: using var maps = AttentionRollout.Compute(model, batch);               // (B, grid, grid), float32
//        AttentionRollout.WriteOverlays("runs/photos/attention.svg", images, maps, predicted, truth);
// Attention rollout (Abnar & Zuidema 2020) of a ViT, and an SVG grid of the maps blended over the images.
using System.Globalization;
using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.Torch.Reports;

/// <summary>
/// Attention rollout (Abnar &amp; Zuidema, "Quantifying Attention Flow in Transformers", 2020): how much each patch
/// of the input reaches the token the classifier reads, through every block, counting the residual connection.
/// Per block l the heads are averaged, the identity added for the residual and the rows renormalised,
/// Â_l = norm(mean_h A_l,h + I); the blocks multiply, R = Â_L ··· Â_1; the map is the row of R of the token the
/// head reads, over the patch tokens.
/// </summary>
public static class AttentionRollout
{
    /// <summary>
    /// The rollout of <paramref name="model"/> on <paramref name="images"/> (B, C, S, S), normalised as the model
    /// expects: a float32 (B, grid, grid) tensor on the images' device, patch (r, c) at [b, r, c] (row-major, as the
    /// patch embedding flattens them), that the caller disposes.
    /// </summary>
    /// <remarks>
    /// <para>The map is the class token's row of R. A model without a class token (mean pooling) reads every patch
    /// token alike, so its map is the mean of the patch tokens' rows; so is that of a model with a class token and
    /// mean pooling. The columns of a class token (a learned constant, not a part of the image) are left out.</para>
    /// <para>With <paramref name="normalize"/> (the default) each map is divided by its sum, so it sums to 1 over the
    /// patches and maps of different images compare; the class token's share of its own row (R[0, 0]) is what
    /// this removes. Without it the values are R's entries as they are.</para>
    /// <para>The model runs in evaluation mode without gradients (its mode is restored afterwards). The product over
    /// the blocks is taken in float64 (T × T per image, cheap next to the forward pass) and returned as float32.</para>
    /// </remarks>
    /// <exception cref="ArgumentException">The images are not a (B, C, S, S) batch of the model's channels and size.</exception>
    public static Tensor Compute(VisionTransformer model, Tensor images, bool normalize = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        var c = model.Config;
        var s = images.Shape;
        if (s.Length != 4 || s[0] < 1 || s[1] != c.Channels || s[2] != c.ImageSize || s[3] != c.ImageSize)
            throw new ArgumentException(
                $"attention rollout needs images of shape (B >= 1, {c.Channels}, {c.ImageSize}, {c.ImageSize}) for this model; got ({string.Join(", ", s)})",
                nameof(images));

        using var scope = TensorScope.Begin();
        var maps = new List<Tensor>();
        bool wasTraining = model.Training;
        try
        {
            model.Eval();
            using (Torch.NoGrad()) model.Forward(images, maps);
        }
        finally
        {
            model.Train(wasTraining);
        }
        return scope.MoveToOuter(FromAttentionMaps(maps, c, normalize));
    }

    /// <summary>
    /// The rollout from attention maps already at hand: one (B, H, T, T) map per block, first block first, as
    /// <see cref="VisionTransformer.Forward"/> fills its <c>attentionMaps</c> list, for a model of config
    /// <paramref name="config"/> (T = <see cref="VitConfig.NumTokens"/>). Same result and conventions as
    /// <see cref="Compute"/>.
    /// </summary>
    /// <exception cref="ArgumentException">No maps, a map that is not (B, H, T, T) for this config, or maps that disagree in B.</exception>
    public static Tensor FromAttentionMaps(IReadOnlyList<Tensor> attentionMaps, VitConfig config, bool normalize = true)
    {
        ArgumentNullException.ThrowIfNull(attentionMaps);
        ArgumentNullException.ThrowIfNull(config);
        if (attentionMaps.Count == 0) throw new ArgumentException("no attention maps: the rollout needs one per block", nameof(attentionMaps));
        long tokens = config.NumTokens, grid = config.GridSize;
        int prefix = config.HasClassToken ? 1 : 0;
        long batch = -1;
        for (int i = 0; i < attentionMaps.Count; i++)
        {
            var m = attentionMaps[i] ?? throw new ArgumentException($"attention map {i} is null", nameof(attentionMaps));
            var s = m.Shape;
            if (s.Length != 4 || s[0] < 1 || s[1] < 1 || s[2] != tokens || s[3] != tokens)
                throw new ArgumentException(
                    $"attention map {i} has shape ({string.Join(", ", s)}); expected (B, heads, {tokens}, {tokens}) for {tokens} tokens", nameof(attentionMaps));
            if (batch >= 0 && s[0] != batch)
                throw new ArgumentException($"attention map {i} holds {s[0]} images, map 0 holds {batch}", nameof(attentionMaps));
            batch = s[0];
        }

        using var scope = TensorScope.Begin();
        var device = attentionMaps[0].Device;
        var eye = Identity(tokens, device);                           // (T, T)
        Tensor? rollout = null;                                       // (B, T, T)
        foreach (var map in attentionMaps)
        {
            var a = map.To(DType.Float64, device).Mean(1) + eye;      // (B, H, T, T) -> (B, T, T): heads averaged, + I (residual)
            a = a / a.Sum(-1, keepDim: true);                         // rows sum to 1 again
            rollout = rollout is null ? a : a.MatMul(rollout);        // R_l = Â_l R_(l-1)
        }
        // The rows of the tokens the head reads: the class token's, or the mean of the patch tokens'.
        var rows = config.Pooling == VitPooling.ClassToken
            ? rollout!.Select(1, 0)                                   // (B, T)
            : rollout!.Slice(1, prefix, tokens).Mean(1);              // (B, T)
        var patches = rows.Slice(1, prefix, tokens);                  // (B, N)
        if (normalize)
            patches = patches / patches.Sum(-1, keepDim: true).Clamp(1e-300, double.PositiveInfinity);  // a zero map stays zero
        return scope.MoveToOuter(patches.To(DType.Float32, device).Reshape(batch, grid, grid));
    }

    private static Tensor Identity(long n, Device device)
    {
        var values = new double[n * n];
        for (long i = 0; i < n; i++) values[i * n + i] = 1;
        using var cpu = Tensor.FromArray(values, n, n);
        return cpu.To(DType.Float64, device);
    }

    // ------------------------------------------------------------------------------------------- overlays

    /// <summary>Colour of a caption whose prediction is right.</summary>
    internal const string RightColor = "#1a7f37";

    /// <summary>Colour of a caption whose prediction is wrong.</summary>
    internal const string WrongColor = "#cf222e";

    /// <summary>
    /// Writes an SVG grid of <paramref name="images"/> with their rollout maps (<paramref name="rollout"/>,
    /// (B, gridH, gridW), e.g. from <see cref="Compute"/>) upsampled bilinearly to the image, colour-mapped (each map stretched
    /// to its own range: dark blue = the least attended patch of that image, red = the most; an exactly uniform map is
    /// all dark blue) and blended over it, each with
    /// the caption "predicted / true" in green when they are equal and in red when not. The images should be what the
    /// model saw (after resizing and cropping), since the map covers the whole image.
    /// </summary>
    /// <remarks>
    /// The rasters are made through <see cref="Image"/> (resize, blend) and encoded as PNG by SkiaSharp, each
    /// embedded in the SVG as a data URI; the captions are SVG text. Small images are enlarged by the largest whole
    /// factor that keeps their longer side within <paramref name="tileSize"/> (nearest neighbour, so pixels stay
    /// sharp), larger ones reduced to it (area averaging).
    /// </remarks>
    /// <param name="path">The SVG file to write (atomically).</param>
    /// <param name="images">The images, 1, 3 or 4 channels (shown as RGB).</param>
    /// <param name="rollout">(B, gridH, gridW) non-negative finite maps, B = the number of images.</param>
    /// <param name="predicted">The predicted label of each image.</param>
    /// <param name="truth">The true label of each image.</param>
    /// <param name="columns">Images per row of the grid.</param>
    /// <param name="tileSize">Displayed size of the images' longer side, in pixels (32-1024).</param>
    /// <param name="opacity">Weight of the heat map in the blend (0: the image alone, 1: the map alone).</param>
    /// <exception cref="ArgumentException">No images, a null image or label, counts that disagree, a rollout that is
    /// not (B, gridH, gridW) or holds negative or non-finite values, or an option out of range.</exception>
    public static void WriteOverlays(string path, IReadOnlyList<Image> images, Tensor rollout, IReadOnlyList<string> predicted,
        IReadOnlyList<string> truth, int columns = 4, int tileSize = 160, double opacity = 0.5)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(rollout);
        ArgumentNullException.ThrowIfNull(predicted);
        ArgumentNullException.ThrowIfNull(truth);
        if (columns < 1) throw new ArgumentOutOfRangeException(nameof(columns), columns, "columns must be >= 1");
        if (tileSize is < 32 or > 1024) throw new ArgumentOutOfRangeException(nameof(tileSize), tileSize, "tile size must be in [32, 1024] pixels");
        if (!(opacity >= 0 && opacity <= 1)) throw new ArgumentOutOfRangeException(nameof(opacity), opacity, "opacity must be in [0, 1]");
        int b = images.Count;
        if (b == 0) throw new ArgumentException("no images to draw", nameof(images));
        for (int i = 0; i < b; i++)
            if (images[i] is null) throw new ArgumentException($"image {i} is null", nameof(images));
        if (predicted.Count != b) throw new ArgumentException($"{predicted.Count} predicted labels for {b} images", nameof(predicted));
        if (truth.Count != b) throw new ArgumentException($"{truth.Count} true labels for {b} images", nameof(truth));
        for (int i = 0; i < b; i++)
        {
            if (predicted[i] is null) throw new ArgumentException($"predicted label {i} is null", nameof(predicted));
            if (truth[i] is null) throw new ArgumentException($"true label {i} is null", nameof(truth));
        }
        var s = rollout.Shape;
        if (s.Length != 3 || s[0] != b || s[1] < 1 || s[2] < 1)
            throw new ArgumentException($"the rollout must be (B, gridH, gridW) with B = {b} images; got ({string.Join(", ", s)})", nameof(rollout));
        int gh = (int)s[1], gw = (int)s[2];
        float[] values;
        using (var cpu = rollout.To(DType.Float32, Device.Cpu)) values = cpu.ToArray<float>();
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i]) || values[i] < 0)
            {
                int img = i / (gh * gw), at = i % (gh * gw);
                throw new ArgumentException(
                    $"rollout value [{img}, {at / gw}, {at % gw}] is {values[i].ToString(CultureInfo.InvariantCulture)}: the maps must be finite and >= 0", nameof(rollout));
            }

        // Tiles first (the slow part, and where encoding could fail), then the document.
        var tiles = new (byte[] Png, int Width, int Height)[b];
        for (int i = 0; i < b; i++)
            tiles[i] = Overlay(images[i], values.AsSpan(i * gh * gw, gh * gw), gh, gw, tileSize, opacity);
        AtomicFile.Write(path, stream => RenderGrid(stream, tiles, predicted, truth, Math.Min(columns, b), tileSize));
    }

    /// <summary>One image with its map blended over it, as PNG bytes and the size of the picture.</summary>
    private static (byte[] Png, int Width, int Height) Overlay(Image image, ReadOnlySpan<float> map, int gh, int gw, int tileSize, double opacity)
    {
        // The map as an 8-bit image stretched to its own range: 0 at the least-attended patch, 255 at the most. Maps of
        // a barely trained model are nearly uniform; scaled by the maximum alone they would show one flat colour. A
        // map without any range (exactly uniform) is drawn at 0, the coldest colour.
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        foreach (var v in map)
        {
            min = Math.Min(min, v);
            max = Math.Max(max, v);
        }
        var levels = new byte[gh * gw];
        for (int i = 0; i < levels.Length; i++)
            levels[i] = max > min ? (byte)Math.Round((map[i] - min) / (max - min) * 255) : (byte)0;

        int longer = Math.Max(image.Width, image.Height);
        using var rgb = image.ToChannels(3);
        using var shown = longer < tileSize
            ? rgb.Resize(image.Width * (tileSize / longer), image.Height * (tileSize / longer), ResizeMode.Stretch, Interpolation.Nearest)
            : longer > tileSize
                ? rgb.Resize(Math.Max(1, (int)Math.Round((double)image.Width * tileSize / longer)),
                    Math.Max(1, (int)Math.Round((double)image.Height * tileSize / longer)), ResizeMode.Stretch, Interpolation.Area)
                : rgb.Clone();
        int w = shown.Width, h = shown.Height;

        using var coarse = Image.FromPixels(levels, gw, gh, 1);
        using var fine = coarse.Resize(w, h, ResizeMode.Stretch, Interpolation.Bilinear);  // the patch grid over the whole image
        var lut = ColorRamp.Heat.Table();
        var fineLevels = fine.ToBytes();
        var heat = new byte[w * h * 3];
        for (int p = 0; p < fineLevels.Length; p++)
        {
            int at = fineLevels[p] * 3;
            heat[3 * p] = lut[at];
            heat[3 * p + 1] = lut[at + 1];
            heat[3 * p + 2] = lut[at + 2];
        }
        using var heatImage = Image.FromPixels(heat, w, h, 3);
        using var blended = shown.Blend(heatImage, opacity);
        return (blended.EncodePng(), w, h);
    }

    private static void RenderGrid(Stream stream, (byte[] Png, int Width, int Height)[] tiles, IReadOnlyList<string> predicted,
        IReadOnlyList<string> truth, int columns, int tileSize)
    {
        var inv = CultureInfo.InvariantCulture;
        int b = tiles.Length, rows = (b + columns - 1) / columns;
        double cellW = Math.Max(tileSize, tiles.Max(t => t.Width)), cellH = Math.Max(tileSize, tiles.Max(t => t.Height));
        const double Gap = 12, CaptionHeight = 22, HeaderHeight = 58, Font = 12;
        double width = Math.Max(columns * (cellW + Gap) + Gap, 420), height = HeaderHeight + rows * (cellH + CaptionHeight + Gap) + Gap;
        int right = Enumerable.Range(0, b).Count(i => predicted[i] == truth[i]);

        using var svg = Svg.Begin(stream, width, height, $"Attention rollout over {b} images");
        svg.Text(Gap, 26, "Attention rollout", 17, weight: "bold");
        svg.Text(Gap, 46, $"{right} of {b} right · caption: predicted / true · colour: attention rollout to the classifier, per image from least (blue) to most (red)",
            11, fill: "#555555", cssClass: "subtitle");
        int maxChars = Math.Max(6, (int)(cellW / (Font * 0.6)));
        for (int i = 0; i < b; i++)
        {
            var (png, w, h) = tiles[i];
            double x = Gap + i % columns * (cellW + Gap), y = HeaderHeight + i / columns * (cellH + CaptionHeight + Gap);
            bool ok = predicted[i] == truth[i];
            svg.Start("g", ("class", "tile"), ("data-index", i.ToString(inv)), ("data-correct", ok ? "true" : "false"));
            svg.Png(x + (cellW - w) / 2, y + (cellH - h) / 2, w, h, png);
            string caption = $"{(ok ? "✓" : "✗")} {predicted[i]} / {truth[i]}";
            svg.Text(x + cellW / 2, y + cellH + 16, Svg.Truncate(caption, maxChars), Font, anchor: "middle", fill: ok ? RightColor : WrongColor,
                cssClass: "caption", title: $"predicted {predicted[i]}, true {truth[i]}");
            svg.End();
        }
    }
}
