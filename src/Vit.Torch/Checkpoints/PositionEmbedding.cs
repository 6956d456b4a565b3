using Vit.Torch.Imaging;

namespace Vit.Torch.Checkpoints;

/// <summary>Position embeddings of a checkpoint brought to another patch grid (fine-tuning at another image size).</summary>
public static class PositionEmbedding
{
    /// <summary>
    /// Resamples learned position embeddings (1, prefix + g², D) to (1, prefix + n², D) as timm does when a
    /// checkpoint meets another image size (<c>resample_abs_pos_embed</c> with its defaults): the prefix (class token)
    /// positions are kept, the g × g grid is resized to n × n bicubically with align_corners false and antialias on,
    /// in float32. PyTorch's antialiased bicubic uses PIL's kernel (a = -0.5) whether the grid shrinks or grows, so
    /// growing differs from plain bicubic too. Returns a new float32 tensor; <paramref name="posEmbed"/> is not changed.
    /// </summary>
    public static Tensor Resample(Tensor posEmbed, int prefixTokens, int newGrid)
    {
        ArgumentNullException.ThrowIfNull(posEmbed);
        var s = posEmbed.Shape;
        if (s.Length != 3 || s[0] != 1)
            throw new ArgumentException($"position embeddings must be (1, tokens, D), got {Safetensors.FormatShape(s)}", nameof(posEmbed));
        if (prefixTokens < 0 || prefixTokens > s[1]) throw new ArgumentOutOfRangeException(nameof(prefixTokens), prefixTokens, "prefix tokens must be in [0, tokens]");
        if (newGrid < 1) throw new ArgumentOutOfRangeException(nameof(newGrid), newGrid, "the new grid must be at least 1");
        long patches = s[1] - prefixTokens, d = s[2];
        long old = (long)Math.Round(Math.Sqrt(patches));
        if (old * old != patches)
            throw new ArgumentException($"{patches} patch positions do not form a square grid", nameof(posEmbed));
        using var scope = TensorScope.Begin();
        var x = posEmbed.To(DType.Float32);
        var grid = x.Slice(1, prefixTokens, s[1])                       // (1, g², D)
            .Reshape(1, old, old, d).Permute(0, 3, 1, 2);              // (1, D, g, g)
        var resized = F.Interpolate(grid, newGrid, newGrid, Interpolation.Bicubic, antialias: true)  // (1, D, n, n)
            .Permute(0, 2, 3, 1).Reshape(1, (long)newGrid * newGrid, d);                                      // (1, n², D)
        var result = prefixTokens > 0 ? Tensor.Cat([x.Slice(1, 0, prefixTokens), resized], 1) : resized.Contiguous();
        return scope.MoveToOuter(result);
    }
}
