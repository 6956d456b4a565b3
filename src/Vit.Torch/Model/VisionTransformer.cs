using Vit.Torch.Modules;

namespace Vit.Torch.Model;

/// <summary>
/// The Vision Transformer of Dosovitskiy et al. (2020). Parameter names follow timm
/// (<c>patch_embed.proj.weight</c>, <c>cls_token</c>, <c>pos_embed</c>, <c>blocks.{i}.…</c>, <c>norm</c>, <c>head</c>),
/// so its safetensors files line up with timm's.
/// </summary>
public sealed class VisionTransformer : Module
{
    /// <summary>The (validated) configuration.</summary>
    public VitConfig Config { get; private set; }

    /// <summary>Patch embedding (eq. 1).</summary>
    public PatchEmbedding PatchEmbed { get; }

    /// <summary>Learned class token (1, 1, D), or null with mean pooling.</summary>
    public Tensor? ClsToken { get; }

    /// <summary>Learned position embeddings (1, tokens, D).</summary>
    public Tensor PosEmbed { get; }

    /// <summary>The encoder blocks.</summary>
    public IReadOnlyList<EncoderBlock> Blocks { get; }

    /// <summary>Final LayerNorm (eq. 4).</summary>
    public LayerNorm Norm { get; }

    /// <summary>Classification head D -> classes.</summary>
    public Linear Head { get; private set; }

    /// <summary>Builds a freshly initialised model (timm's scheme: trunc-normal .02 for linear layers and position
    /// embeddings, N(0, 1e-6) for the class token); seed with <see cref="Torch.ManualSeed"/> first for a repeatable start.</summary>
    public VisionTransformer(VitConfig config)
    {
        Config = config.Validate();
        PatchEmbed = RegisterModule("patch_embed", new PatchEmbedding(config));
        if (config.Pooling == VitPooling.ClassToken)
        {
            ClsToken = RegisterParameter("cls_token", Tensor.Empty([1, 1, config.Dim]));
            ClsToken.NormalInit(0, 1e-6);
        }
        PosEmbed = RegisterParameter("pos_embed", Tensor.Empty([1, config.NumTokens, config.Dim]));
        PosEmbed.TruncNormalInit(0, 0.02);
        var blocks = new List<EncoderBlock>();
        for (int i = 0; i < config.Depth; i++)
        {
            // Stochastic depth grows linearly with depth (as in DeiT and timm).
            double rate = config.Depth > 1 ? config.DropPath * i / (config.Depth - 1) : config.DropPath;
            blocks.Add(RegisterModule($"blocks.{i}", new EncoderBlock(config, rate)));
        }
        Blocks = blocks;
        Norm = RegisterModule("norm", new LayerNorm(config.Dim, config.LayerNormEps));
        Head = RegisterModule("head", new Linear(config.Dim, config.NumClasses));
    }

    /// <summary>Replaces the head with a freshly initialised one for <paramref name="numClasses"/> classes (fine-tuning).</summary>
    public void ReplaceHead(int numClasses)
    {
        if (numClasses <= 0) throw new ArgumentException($"class count must be positive, got {numClasses}", nameof(numClasses));
        Head = ReplaceModule("head", new Linear(Config.Dim, numClasses));
        Config = Config with { NumClasses = numClasses };
    }

    /// <summary>
    /// The pooled, normalised representation (B, D) of images (B, C, H, W). When <paramref name="attentionMaps"/>
    /// is non-null it receives each block's attention probabilities (B, H, T, T), detached.
    /// </summary>
    public Tensor ForwardFeatures(Tensor images, List<Tensor>? attentionMaps = null)
    {
        var x = PatchEmbed.Forward(images);                       // (B, N, D)       eq. 1
        long b = x.Size(0);
        if (ClsToken is not null)
        {
            var cls = ClsToken.Expand(b, -1, -1);                 // (B, 1, D)
            x = Tensor.Cat([cls, x], 1);                          // (B, N+1, D)
        }
        x = F.Dropout(x + PosEmbed, Config.Dropout, Training);    // + E_pos          eq. 1
        foreach (var block in Blocks)
        {
            x = block.Forward(x, attentionMaps is not null, out var map);  // eq. 2-3
            if (map is not null) attentionMaps!.Add(map);
        }
        x = Norm.Forward(x);                                      //                  eq. 4
        return Config.Pooling == VitPooling.ClassToken
            ? x.Select(1, 0)                                      // (B, D): y = LN(z_L^0)
            : x.Mean(1);                                          // (B, D)
    }

    /// <summary>Class logits (B, classes) of images (B, C, H, W).</summary>
    public Tensor Forward(Tensor images, List<Tensor>? attentionMaps = null) =>
        Head.Forward(ForwardFeatures(images, attentionMaps));
}
