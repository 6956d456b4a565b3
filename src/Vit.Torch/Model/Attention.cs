using Vit.Torch.Modules;

namespace Vit.Torch.Model;

/// <summary>
/// Multi-head self-attention (ViT eq. 5-8; Vaswani et al. 2017): softmax(Q Kᵀ / √Dh) V per head, heads
/// concatenated and projected. Checkpoint names: <c>qkv</c> (3D, D) and <c>proj</c> (D, D).
/// </summary>
public sealed class Attention : Module
{
    private readonly int heads;
    private readonly double scale;
    private readonly double attentionDropout;
    private readonly double projDropout;

    /// <summary>Fused query/key/value projection D -> 3D.</summary>
    public Linear Qkv { get; }

    /// <summary>Output projection D -> D.</summary>
    public Linear Proj { get; }

    /// <summary>Creates the layer for the given config (uninitialised when <paramref name="initialize"/> is false).</summary>
    public Attention(VitConfig config, bool initialize = true)
    {
        heads = config.Heads;
        scale = 1.0 / Math.Sqrt(config.HeadDim);
        attentionDropout = config.AttentionDropout;
        projDropout = config.Dropout;
        Qkv = RegisterModule("qkv", new Linear(config.Dim, 3L * config.Dim, config.QkvBias, initialize));
        Proj = RegisterModule("proj", new Linear(config.Dim, config.Dim, bias: true, initialize));
    }

    /// <summary>
    /// (B, N, D) -> (B, N, D). When <paramref name="attentionMap"/> is requested it receives the attention
    /// probabilities (B, H, N, N) of this call, detached from autograd.
    /// </summary>
    public Tensor Forward(Tensor x, bool returnAttention, out Tensor? attentionMap)
    {
        // softmax(q kᵀ / √Dh) v per head, heads concatenated: one fused node (see F.SelfAttention; FusedAttentionTests
        // compares it with the chain of plain tensor ops it replaces).
        var o = F.SelfAttention(Qkv.Forward(x), heads, scale, attentionDropout, Training, out attentionMap, returnAttention);  // (B, N, D)
        return F.Dropout(Proj.Forward(o), projDropout, Training);
    }

    /// <summary>(B, N, D) -> (B, N, D).</summary>
    public Tensor Forward(Tensor x) => Forward(x, false, out _);
}
