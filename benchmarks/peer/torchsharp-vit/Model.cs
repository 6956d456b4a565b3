// ViT-Ti/16 as a .NET developer writes it from TorchSharp's docs and examples: Module<Tensor, Tensor> subclasses whose
// fields RegisterComponents() registers by name, nn.Linear / nn.LayerNorm / nn.Conv2d, scaled_dot_product_attention.
// timm's layout (pre-norm blocks, fused qkv, class token, learned position embedding, LayerNorm eps 1e-6, exact GELU),
// the same model as benchmarks/peer/vit_model.py and our VisionTransformer.
//
// bfloat16 without autocast (TorchSharp has none): the parameters stay float32 (the optimizer's master weights), and
// Cast.Linear / PatchEmbedding cast, in each forward, the input, the weight and the bias of every nn.Linear (qkv, proj,
// fc1, fc2, head) and of the patch nn.Conv2d to bfloat16; their outputs are bfloat16. Nothing else is cast:
//  - attention (scaled_dot_product_attention) and GELU run in bfloat16 because their inputs come out of bf16 linears;
//  - the residual stream stays float32: torch.cat([class token fp32, patches bf16]) + position embedding (fp32)
//    promotes to float32, and so does x + (bf16 attention or MLP output);
//  - so every LayerNorm runs in float32, on float32 weights;
//  - the logits are cast back to float32 (VisionTransformer.forward), so the loss and softmax run in float32.
// The casts are autograd ops: gradients reach the float32 parameters in float32.
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TorchSharpVit;

/// <summary>The only place precision is applied: an nn.Linear run in <c>compute</c> precision.</summary>
internal static class Cast
{
    public static Tensor Linear(Linear layer, Tensor x, ScalarType compute) =>
        compute == ScalarType.Float32
            ? layer.call(x)
            : F.linear(x.to(compute), layer.weight.to(compute), layer.bias!.to(compute));
}

/// <summary>ViT eq. 1: 16x16 patches, each projected to D by one strided convolution.</summary>
internal sealed class PatchEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d proj;
    private readonly long patch;
    private readonly ScalarType compute;

    public PatchEmbedding(long channels, long dim, long patch, ScalarType compute) : base(nameof(PatchEmbedding))
    {
        proj = nn.Conv2d(channels, dim, kernel_size: patch, stride: patch);
        this.patch = patch;
        this.compute = compute;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)  // (B, C, H, W) -> (B, N, D)
    {
        var y = compute == ScalarType.Float32
            ? proj.call(x)
            : F.conv2d(x.to(compute), proj.weight.to(compute), proj.bias!.to(compute), strides: [patch, patch]);
        return y.flatten(2).transpose(1, 2);  // (B, D, H/P, W/P) -> (B, D, N) -> (B, N, D)
    }
}

/// <summary>Multi-head self-attention with a fused qkv projection and libtorch's scaled_dot_product_attention.</summary>
internal sealed class Attention : nn.Module<Tensor, Tensor>
{
    private readonly Linear qkv, proj;
    private readonly long heads;
    private readonly ScalarType compute;

    public Attention(long dim, long heads, ScalarType compute) : base(nameof(Attention))
    {
        qkv = nn.Linear(dim, 3 * dim);
        proj = nn.Linear(dim, dim);
        this.heads = heads;
        this.compute = compute;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        long b = x.shape[0], n = x.shape[1], d = x.shape[2], dh = d / heads;
        var qkvs = Cast.Linear(qkv, x, compute)              // (B, N, 3D)
            .reshape(b, n, 3, heads, dh).permute(2, 0, 3, 1, 4)  // (3, B, H, N, Dh)
            .unbind(0);                                        // 3 x (B, H, N, Dh)
        var o = F.scaled_dot_product_attention(qkvs[0], qkvs[1], qkvs[2]);  // softmax(q k^T / sqrt(Dh)) v: (B, H, N, Dh)
        return Cast.Linear(proj, o.transpose(1, 2).reshape(b, n, d), compute);  // (B, N, D)
    }
}

/// <summary>The block's MLP: D -> 4D -> D with exact GELU.</summary>
internal sealed class Mlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1, fc2;
    private readonly ScalarType compute;

    public Mlp(long dim, long hidden, ScalarType compute) : base(nameof(Mlp))
    {
        fc1 = nn.Linear(dim, hidden);
        fc2 = nn.Linear(hidden, dim);
        this.compute = compute;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => Cast.Linear(fc2, F.gelu(Cast.Linear(fc1, x, compute)), compute);
}

/// <summary>One pre-norm encoder block.</summary>
internal sealed class EncoderBlock : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm1, norm2;
    private readonly Attention attn;
    private readonly Mlp mlp;

    public EncoderBlock(long dim, long heads, long mlpDim, ScalarType compute) : base(nameof(EncoderBlock))
    {
        norm1 = nn.LayerNorm(dim, eps: 1e-6);
        attn = new Attention(dim, heads, compute);
        norm2 = nn.LayerNorm(dim, eps: 1e-6);
        mlp = new Mlp(dim, mlpDim, compute);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = x + attn.call(norm1.call(x));  // ViT eq. 2
        return x + mlp.call(norm2.call(x));  // ViT eq. 3
    }
}

/// <summary>ViT (Dosovitskiy et al. 2021): patches + class token + position embedding, encoder blocks, head on the class token.</summary>
internal sealed class VisionTransformer : nn.Module<Tensor, Tensor>
{
    private readonly PatchEmbedding patch_embed;
    private readonly Parameter cls_token, pos_embed;
    private readonly ModuleList<EncoderBlock> blocks;
    private readonly LayerNorm norm;
    private readonly Linear head;
    private readonly ScalarType compute;

    /// <summary>ViT-Ti/16 at 224 by default.</summary>
    public VisionTransformer(ScalarType compute, long image = 224, long channels = 3, long patch = 16, long dim = 192,
        long depth = 12, long heads = 3, long mlpDim = 768, long classes = 1000) : base(nameof(VisionTransformer))
    {
        long patches = (image / patch) * (image / patch);
        patch_embed = new PatchEmbedding(channels, dim, patch, compute);
        cls_token = nn.Parameter(zeros(1, 1, dim));
        pos_embed = nn.Parameter(randn(1, patches + 1, dim) * 0.02);
        blocks = nn.ModuleList(Enumerable.Range(0, (int)depth).Select(_ => new EncoderBlock(dim, heads, mlpDim, compute)).ToArray());
        norm = nn.LayerNorm(dim, eps: 1e-6);
        head = nn.Linear(dim, classes);
        this.compute = compute;
        RegisterComponents();
    }

    public override Tensor forward(Tensor images)  // (B, C, H, W) float32 -> (B, classes) float32 logits
    {
        var x = patch_embed.call(images);                                          // (B, N, D)
        var cls = cls_token.expand(x.shape[0], -1, -1);                            // (B, 1, D)
        x = cat([cls, x], 1) + pos_embed;                                           // (B, N + 1, D), ViT eq. 1
        foreach (var block in blocks) x = block.call(x);
        return Cast.Linear(head, norm.call(x)[.., 0], compute).to(ScalarType.Float32);  // ViT eq. 4, on the class token
    }
}
