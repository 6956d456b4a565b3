using Vit.Torch.Modules;

namespace Vit.Torch.Model;

/// <summary>The block's MLP: two layers with exact GELU between (ViT eq. 3). Names: <c>fc1</c>, <c>fc2</c>.</summary>
public sealed class Mlp : Module
{
    private readonly double dropout;

    /// <summary>D -> MLP size.</summary>
    public Linear Fc1 { get; }

    /// <summary>MLP size -> D.</summary>
    public Linear Fc2 { get; }

    /// <summary>Creates the MLP for the given config (uninitialised when <paramref name="initialize"/> is false).</summary>
    public Mlp(VitConfig config, bool initialize = true)
    {
        dropout = config.Dropout;
        Fc1 = RegisterModule("fc1", new Linear(config.Dim, config.MlpDim, bias: true, initialize));
        Fc2 = RegisterModule("fc2", new Linear(config.MlpDim, config.Dim, bias: true, initialize));
    }

    /// <summary>(B, N, D) -> (B, N, D).</summary>
    public Tensor Forward(Tensor x)
    {
        var h = F.Dropout(Fc1.ForwardGelu(x), dropout, Training);  // GELU(fc1(x)), (B, N, MLP)
        return F.Dropout(Fc2.Forward(h), dropout, Training);
    }
}

/// <summary>
/// Stochastic depth (Huang et al. 2016): in training, drops the whole residual branch of a sample with
/// probability p and scales the kept ones by 1/(1-p). Identity in evaluation.
/// </summary>
public static class DropPath
{
    /// <summary>Applies drop path to a residual branch (B, ...).</summary>
    public static Tensor Apply(Tensor branch, double p, bool training)
    {
        if (!training || p <= 0) return branch;
        var s = branch.Shape;
        var maskShape = new long[s.Length];
        maskShape[0] = s[0];
        for (int i = 1; i < s.Length; i++) maskShape[i] = 1;
        var keep = 1.0 - p;
        var mask = Tensor.Bernoulli(maskShape, keep, branch.DType, branch.Device);  // (B, 1, 1)
        return branch * mask / keep;
    }
}
