using Vit.Torch.Model;

namespace Vit.Torch.Tests;

/// <summary>Models for tests that compare outputs.</summary>
internal static class TestModels
{
    /// <summary>
    /// Replaces timm's initialisation (tiny class token, zero biases, unit LayerNorms) by random values of order one,
    /// so that every parameter visibly shapes the output and a mistake anywhere shows.
    /// </summary>
    public static void Randomize(VisionTransformer model)
    {
        using var scope = TensorScope.Begin();
        foreach (var (name, p) in model.NamedParameters())
        {
            var shape = p.Shape;
            Tensor value;
            if (name.Contains("norm"))
                value = 1 + 0.3 * Tensor.Randn(shape);            // LayerNorm scale and shift around 1
            else if (shape.Length == 1 || name is "cls_token" or "pos_embed")
                value = 0.5 * Tensor.Randn(shape);
            else
                value = Tensor.Randn(shape) / Math.Sqrt(p.NumElements / shape[0]);  // unit-variance outputs
            p.CopyFrom(value);
        }
    }
}
