using Vit.Torch.Checkpoints;
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

    /// <summary>Final LayerNorm on every token (eq. 4), or null when the model normalises the pooled vector (<see cref="FcNorm"/>).</summary>
    public LayerNorm? Norm { get; }

    /// <summary>LayerNorm of the pooled vector (timm's <c>fc_norm</c>), or null when <see cref="Norm"/> is used.</summary>
    public LayerNorm? FcNorm { get; }

    /// <summary>Classification head D -> classes, or null for a headless backbone (<see cref="VitConfig.NumClasses"/> 0).</summary>
    public Linear? Head { get; private set; }

    /// <summary>True after <see cref="FreezeBackbone"/>: only the head trains, and the backbone stays in evaluation mode.</summary>
    public bool BackboneFrozen { get; private set; }

    /// <summary>Builds a freshly initialised model (timm's scheme: trunc-normal .02 for linear layers and position
    /// embeddings, N(0, 1e-6) for the class token); seed with <see cref="Torch.ManualSeed"/> first for a repeatable start.</summary>
    public VisionTransformer(VitConfig config) : this(config, initialize: true) { }

    private VisionTransformer(VitConfig config, bool initialize)
    {
        Config = config.Validate();
        PatchEmbed = RegisterModule("patch_embed", new PatchEmbedding(config, initialize));
        if (config.HasClassToken)
        {
            ClsToken = RegisterParameter("cls_token", Tensor.Empty([1, 1, config.Dim]));
            if (initialize) ClsToken.NormalInit(0, 1e-6);
        }
        PosEmbed = RegisterParameter("pos_embed", Tensor.Empty([1, config.NumTokens, config.Dim]));
        if (initialize) PosEmbed.TruncNormalInit(0, 0.02);
        var blocks = new List<EncoderBlock>();
        for (int i = 0; i < config.Depth; i++)
        {
            // Stochastic depth grows linearly with depth (as in DeiT and timm).
            double rate = config.Depth > 1 ? config.DropPath * i / (config.Depth - 1) : config.DropPath;
            blocks.Add(RegisterModule($"blocks.{i}", new EncoderBlock(config, rate, initialize)));
        }
        Blocks = blocks;
        if (config.FcNorm) FcNorm = RegisterModule("fc_norm", new LayerNorm(config.Dim, config.LayerNormEps));
        else Norm = RegisterModule("norm", new LayerNorm(config.Dim, config.LayerNormEps));
        if (config.NumClasses > 0) Head = RegisterModule("head", new Linear(config.Dim, config.NumClasses, bias: true, initialize));
    }

    /// <summary>
    /// Builds a model whose parameters are allocated but not initialised (torch.empty), for loading a checkpoint into:
    /// skips the random initialisation of weights that are overwritten anyway. Every parameter must be loaded before use.
    /// </summary>
    public static VisionTransformer ForWeights(VitConfig config) => new(config, initialize: false);

    /// <inheritdoc />
    protected internal override void DescribeInto(IDictionary<string, string> metadata) =>
        metadata[VitMetadata.Config] = Config.ToJson().ToJsonString();

    /// <summary>Replaces the head (or gives a headless model one) with a freshly initialised head for
    /// <paramref name="numClasses"/> classes (fine-tuning).</summary>
    public void ReplaceHead(int numClasses)
    {
        if (numClasses <= 0) throw new ArgumentException($"class count must be positive, got {numClasses}", nameof(numClasses));
        var head = new Linear(Config.Dim, numClasses);
        Head = Head is null ? RegisterModule("head", head) : ReplaceModule("head", head);
        if (BackboneFrozen) head.Train(Training);
        Config = Config with { NumClasses = numClasses };
    }

    /// <summary>
    /// Freezes everything but the head (linear probing): the backbone's parameters stop requiring gradients and the
    /// backbone stays in evaluation mode (no dropout or drop path) even while the model trains.
    /// </summary>
    public void FreezeBackbone()
    {
        foreach (var (name, p) in NamedParameters())
            p.RequiresGrad = name.StartsWith("head.", StringComparison.Ordinal);
        BackboneFrozen = true;
        Train(Training);
    }

    /// <inheritdoc />
    public override void Train(bool on = true)
    {
        base.Train(on);
        if (!BackboneFrozen) return;
        foreach (var (name, module) in Children)
            if (name != "head") module.Train(false);
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
        x = F.Dropout(x + PosEmbed, Config.Dropout, Training && !BackboneFrozen);  // + E_pos  eq. 1
        foreach (var block in Blocks)
        {
            x = block.Forward(x, attentionMaps is not null, out var map);  // eq. 2-3
            if (map is not null) attentionMaps!.Add(map);
        }
        if (Norm is not null) x = Norm.Forward(x);                //                  eq. 4
        if (Config.Pooling == VitPooling.ClassToken)
            x = x.Select(1, 0);                                   // (B, D): y = LN(z_L^0)
        else
            x = (ClsToken is null ? x : x.Slice(1, 1, x.Size(1))).Mean(1);  // (B, D): mean of the patch tokens
        return FcNorm is null ? x : FcNorm.Forward(x);
    }

    /// <summary>Class logits (B, classes) of images (B, C, H, W); the pooled features (B, D) when the model is headless.</summary>
    public Tensor Forward(Tensor images, List<Tensor>? attentionMaps = null)
    {
        var features = ForwardFeatures(images, attentionMaps);
        return Head is null ? features : Head.Forward(features);
    }
}
