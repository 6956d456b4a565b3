using Vit.Torch.Modules;

namespace Vit.Torch.Model;

/// <summary>
/// Splits the image into P×P patches and projects each linearly to D (ViT eq. 1, the E in x_p E), done as one
/// convolution with kernel = stride = P. Checkpoint names: <c>proj.weight</c> (D, C, P, P), <c>proj.bias</c> (D).
/// </summary>
public sealed class PatchEmbedding : Module
{
    private readonly VitConfig config;

    /// <summary>Convolution kernel (D, C, P, P).</summary>
    public Tensor Weight { get; }

    /// <summary>Bias (D).</summary>
    public Tensor Bias { get; }

    /// <summary>Creates the projection with PyTorch's default Conv2d initialisation (uniform ±1/√fan_in), or, with
    /// <paramref name="initialize"/> false, uninitialised for weights loaded next.</summary>
    public PatchEmbedding(VitConfig config, bool initialize = true)
    {
        this.config = config;
        var proj = RegisterModule("proj", new ParameterGroup());
        long fanIn = (long)config.Channels * config.PatchSize * config.PatchSize;
        double bound = 1.0 / Math.Sqrt(fanIn);
        Weight = proj.Add("weight", Tensor.Empty([config.Dim, config.Channels, config.PatchSize, config.PatchSize]));
        Bias = proj.Add("bias", Tensor.Empty([config.Dim]));
        if (!initialize) return;
        Weight.UniformInit(-bound, bound);
        Bias.UniformInit(-bound, bound);
    }

    /// <summary>(B, C, H, W) -> (B, N, D) with N = (H/P)·(W/P).</summary>
    public Tensor Forward(Tensor images)
    {
        var s = images.Shape;
        if (s.Length != 4 || s[1] != config.Channels || s[2] != config.ImageSize || s[3] != config.ImageSize)
            throw new ArgumentException(
                $"expected images of shape (batch, {config.Channels}, {config.ImageSize}, {config.ImageSize}), got ({string.Join(", ", s)})");
        long p = config.PatchSize;
        var grid = F.Conv2d(images, Weight, Bias, (p, p));  // (B, D, H/P, W/P)
        return grid.Flatten(2).Transpose(1, 2);              // (B, D, N) -> (B, N, D)
    }
}

/// <summary>A module that only holds named parameters (used where a checkpoint nests names, e.g. <c>proj.weight</c>).</summary>
public sealed class ParameterGroup : Module
{
    /// <summary>Registers a parameter under <paramref name="name"/>.</summary>
    public Tensor Add(string name, Tensor tensor) => RegisterParameter(name, tensor);
}
