namespace Vit.Torch.Modules;

/// <summary>y = x Wᵀ + b. Weight (out, in) and bias (out), named <c>weight</c> and <c>bias</c>.</summary>
public sealed class Linear : Module
{
    /// <summary>Weight (out, in).</summary>
    public Tensor Weight { get; }

    /// <summary>Bias (out), or null.</summary>
    public Tensor? Bias { get; }

    /// <summary>Creates the layer with timm's ViT initialisation: weight ~ trunc_normal(std .02), bias 0; with
    /// <paramref name="initialize"/> false the values are left as allocated (for weights loaded next).</summary>
    public Linear(long inFeatures, long outFeatures, bool bias = true, bool initialize = true)
    {
        Weight = RegisterParameter("weight", Tensor.Empty([outFeatures, inFeatures]));
        if (initialize) Weight.TruncNormalInit(0, 0.02);
        if (bias) Bias = RegisterParameter("bias", initialize ? Tensor.Zeros([outFeatures]) : Tensor.Empty([outFeatures]));
    }

    /// <summary>(..., in) -> (..., out).</summary>
    public Tensor Forward(Tensor x) => F.Linear(x, Weight, Bias);

    /// <summary>GELU(layer(x)), (..., in) -> (..., out); fused when scoring in bfloat16 (see <see cref="F.LinearGelu"/>).</summary>
    public Tensor ForwardGelu(Tensor x) => F.LinearGelu(x, Weight, Bias);
}

/// <summary>Layer normalisation over the last dimension with learned scale (<c>weight</c>) and shift (<c>bias</c>).</summary>
public sealed class LayerNorm : Module
{
    private readonly long dim;
    private readonly double eps;

    /// <summary>Scale (dim), initialised to 1.</summary>
    public Tensor Weight { get; }

    /// <summary>Shift (dim), initialised to 0.</summary>
    public Tensor Bias { get; }

    /// <summary>Creates the layer; eps 1e-6 as in the ViT reference implementation and timm.</summary>
    public LayerNorm(long dim, double eps = 1e-6)
    {
        this.dim = dim;
        this.eps = eps;
        Weight = RegisterParameter("weight", Tensor.Ones([dim]));
        Bias = RegisterParameter("bias", Tensor.Zeros([dim]));
    }

    /// <summary>(..., dim) -> (..., dim).</summary>
    public Tensor Forward(Tensor x) => F.LayerNorm(x, [dim], Weight, Bias, eps);
}
