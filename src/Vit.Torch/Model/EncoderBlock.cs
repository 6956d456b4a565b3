using Vit.Torch.Modules;

namespace Vit.Torch.Model;

/// <summary>
/// One pre-norm Transformer encoder block (ViT eq. 2-3):
/// x = x + MSA(LN(x)); x = x + MLP(LN(x)). Names: <c>norm1</c>, <c>attn</c>, <c>norm2</c>, <c>mlp</c>.
/// </summary>
public sealed class EncoderBlock : Module
{
    private readonly double dropPath;

    /// <summary>LayerNorm before attention.</summary>
    public LayerNorm Norm1 { get; }

    /// <summary>Multi-head self-attention.</summary>
    public Attention Attn { get; }

    /// <summary>LayerNorm before the MLP.</summary>
    public LayerNorm Norm2 { get; }

    /// <summary>The MLP.</summary>
    public Mlp Mlp { get; }

    /// <summary>Creates the block; <paramref name="dropPath"/> is this block's stochastic-depth rate (uninitialised
    /// when <paramref name="initialize"/> is false).</summary>
    public EncoderBlock(VitConfig config, double dropPath, bool initialize = true)
    {
        this.dropPath = dropPath;
        Norm1 = RegisterModule("norm1", new LayerNorm(config.Dim, config.LayerNormEps));
        Attn = RegisterModule("attn", new Attention(config, initialize));
        Norm2 = RegisterModule("norm2", new LayerNorm(config.Dim, config.LayerNormEps));
        Mlp = RegisterModule("mlp", new Mlp(config, initialize));
    }

    /// <summary>(B, N, D) -> (B, N, D); optionally returns this block's attention map (B, H, N, N).</summary>
    public Tensor Forward(Tensor x, bool returnAttention, out Tensor? attentionMap)
    {
        x = x + DropPath.Apply(Attn.Forward(Norm1.Forward(x), returnAttention, out attentionMap), dropPath, Training);  // eq. 2
        x = x + DropPath.Apply(Mlp.Forward(Norm2.Forward(x)), dropPath, Training);                                    // eq. 3
        return x;
    }

    /// <summary>(B, N, D) -> (B, N, D).</summary>
    public Tensor Forward(Tensor x) => Forward(x, false, out _);
}
