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
        // softmax(q kᵀ / √Dh) v per head, heads concatenated: one fused node (see F.SelfAttention), the same
        // mathematics as ComposedAttention below.
        var o = F.SelfAttention(Qkv.Forward(x), heads, scale, attentionDropout, Training, out attentionMap, returnAttention);  // (B, N, D)
        return F.Dropout(Proj.Forward(o), projDropout, Training);
    }

    /// <summary>The attention of <see cref="Forward(Tensor, bool, out Tensor?)"/> written as the chain of tensor ops it
    /// fuses (for tests that compare the two).</summary>
    internal Tensor ComposedAttention(Tensor x)
    {
        var s = x.Shape;
        long b = s[0], n = s[1], d = s[2], dh = d / heads;
        var qkv = Qkv.Forward(x)                       // (B, N, 3D)
            .Reshape(b, n, 3, heads, dh)               // (B, N, 3, H, Dh)
            .Permute(2, 0, 3, 1, 4);                   // (3, B, H, N, Dh)
        var q = qkv.Select(0, 0);                      // (B, H, N, Dh)
        var k = qkv.Select(0, 1);
        var v = qkv.Select(0, 2);
        var logits = (q * scale).MatMul(k.Transpose(-2, -1));  // (B, H, N, N)
        var attn = F.Dropout(F.Softmax(logits, -1), attentionDropout, Training);
        var o = attn.MatMul(v)                         // (B, H, N, Dh)
            .Transpose(1, 2)                           // (B, N, H, Dh)
            .Reshape(b, n, d);                         // (B, N, D): heads concatenated
        return F.Dropout(Proj.Forward(o), projDropout, Training);
    }

    /// <summary>(B, N, D) -> (B, N, D).</summary>
    public Tensor Forward(Tensor x) => Forward(x, false, out _);
}
