namespace Vit.Torch.Imaging;

/// <summary>Pictures of what the model sees, written as PNG files (as the seed notebooks do with matplotlib).</summary>
public static class Visualize
{
    /// <summary>
    /// Saves a normalised batch (B, C, H, W) as one PNG grid of <paramref name="columns"/> columns, each image
    /// de-normalised with <paramref name="normalization"/>, separated by <paramref name="padding"/> black pixels.
    /// </summary>
    public static void SaveBatchGrid(Tensor batch, Normalization normalization, string pngPath, int columns = 8, int padding = 2)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(normalization);
        ArgumentNullException.ThrowIfNull(pngPath);
        if (columns < 1) throw new ArgumentOutOfRangeException(nameof(columns), columns, "columns must be >= 1");
        if (padding < 0) throw new ArgumentOutOfRangeException(nameof(padding), padding, "padding must be >= 0");
        var shape = batch.Shape;
        if (shape.Length != 4 || shape[0] < 1)
            throw new ArgumentException($"expected a non-empty batch (B, C, H, W); got shape [{string.Join(", ", shape)}]", nameof(batch));
        int b = (int)shape[0], c = (int)shape[1], h = (int)shape[2], w = (int)shape[3];
        int cols = Math.Min(columns, b), rows = (b + cols - 1) / cols;
        int gridW = cols * w + (cols + 1) * padding, gridH = rows * h + (rows + 1) * padding;
        var grid = new byte[(long)gridW * gridH * c];
        for (int i = 0; i < b; i++)
        {
            using var image = ImageBatch.ToImage(batch, i, normalization);
            var pixels = image.ToBytes();
            int left = padding + i % cols * (w + padding), top = padding + i / cols * (h + padding);
            for (int y = 0; y < h; y++)
                pixels.AsSpan(y * w * c, w * c).CopyTo(grid.AsSpan(((top + y) * gridW + left) * c, w * c));
        }
        using var result = Image.FromPixels(grid, gridW, gridH, c);
        File.WriteAllBytes(pngPath, result.EncodePng());
    }

    /// <summary>
    /// Saves <paramref name="image"/> with the ViT patch grid drawn over it: a line every <paramref name="patchSize"/>
    /// pixels and around the border. Small images are first enlarged by an integer factor (nearest neighbour,
    /// so pixels stay sharp) until the longer side is at least <paramref name="minSide"/>, so the lines do not
    /// hide the content.
    /// </summary>
    public static void SavePatchGrid(Image image, int patchSize, string pngPath, int minSide = 256)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(pngPath);
        if (patchSize < 1) throw new ArgumentOutOfRangeException(nameof(patchSize), patchSize, "patch size must be >= 1");
        int scale = Math.Max(1, (int)Math.Ceiling((double)minSide / Math.Max(image.Width, image.Height)));
        using var rgb = image.ToChannels(3);
        using var big = scale == 1 ? rgb.Clone() : rgb.Resize(image.Width * scale, image.Height * scale, ResizeMode.Stretch, Interpolation.Nearest);
        var px = big.ToBytes();
        int w = big.Width, h = big.Height, step = patchSize * scale;
        void Set(int x, int y)
        {
            // yellow: visible on photos and on gray images
            int at = (y * w + x) * 3;
            px[at] = 255;
            px[at + 1] = 220;
            px[at + 2] = 0;
        }
        for (int x = 0; x <= w; x += step)
            for (int y = 0; y < h; y++) Set(Math.Min(x, w - 1), y);
        for (int y = 0; y <= h; y += step)
            for (int x = 0; x < w; x++) Set(x, Math.Min(y, h - 1));
        // The right and bottom borders, also when the size is not a multiple of the patch size.
        for (int y = 0; y < h; y++) Set(w - 1, y);
        for (int x = 0; x < w; x++) Set(x, h - 1);
        using var result = Image.FromPixels(px, w, h, 3);
        File.WriteAllBytes(pngPath, result.EncodePng());
    }
}
