namespace Vit.Torch.Checkpoints;

/// <summary>How a checkpoint names a ViT's tensors.</summary>
public enum CheckpointLayout
{
    /// <summary>timm's names, which are ours: <c>patch_embed.proj.weight</c>, <c>blocks.0.attn.qkv.weight</c>, <c>head.weight</c>.</summary>
    Timm,

    /// <summary>Hugging Face transformers' <c>ViTModel</c> / <c>ViTForImageClassification</c>:
    /// <c>vit.embeddings.patch_embeddings.projection.weight</c>, <c>vit.encoder.layer.0.attention.attention.query.weight</c>, <c>classifier.weight</c>.</summary>
    HuggingFace,

    /// <summary>torchvision's <c>VisionTransformer</c>: <c>conv_proj.weight</c>,
    /// <c>encoder.layers.encoder_layer_0.self_attention.in_proj_weight</c>, <c>heads.head.weight</c>.</summary>
    Torchvision,
}

/// <summary>
/// The one place that knows how each layout names a ViT's tensors: for each of our (timm) names, the checkpoint's
/// names, several of which are concatenated along dimension 0 (Hugging Face keeps query, key and value apart; we
/// fuse them into <c>qkv</c>). Used to read checkpoints, and usable in reverse to write them.
/// </summary>
public sealed class VitNameMap
{
    // Within a block: our suffix prefix -> theirs (a list means concatenation along dim 0).
    private static readonly (string Ours, string[] Theirs)[] HfBlock =
    [
        ("norm1.", ["layernorm_before."]),
        ("attn.qkv.", ["attention.attention.query.", "attention.attention.key.", "attention.attention.value."]),
        ("attn.proj.", ["attention.output.dense."]),
        ("norm2.", ["layernorm_after."]),
        ("mlp.fc1.", ["intermediate.dense."]),
        ("mlp.fc2.", ["output.dense."]),
    ];

    private static readonly (string Ours, string[] Theirs)[] TvBlock =
    [
        ("norm1.", ["ln_1."]),
        ("attn.qkv.weight", ["self_attention.in_proj_weight"]),
        ("attn.qkv.bias", ["self_attention.in_proj_bias"]),
        ("attn.proj.", ["self_attention.out_proj."]),
        ("norm2.", ["ln_2."]),
    ];

    private readonly string hfPrefix;
    private readonly (string Fc1, string Fc2) tvMlp;

    private VitNameMap(CheckpointLayout layout, string hfPrefix = "", (string, string)? tvMlp = null)
    {
        Layout = layout;
        this.hfPrefix = hfPrefix;
        this.tvMlp = tvMlp ?? ("mlp.0.", "mlp.3.");
    }

    /// <summary>The layout.</summary>
    public CheckpointLayout Layout { get; }

    /// <summary>Our names are timm's.</summary>
    public static VitNameMap Timm { get; } = new(CheckpointLayout.Timm);

    /// <summary>Hugging Face's <c>ViTForImageClassification</c> (prefix <c>vit.</c>; <paramref name="classifier"/> false:
    /// <c>ViTModel</c>, no prefix).</summary>
    public static VitNameMap HuggingFace(bool classifier = true) => new(CheckpointLayout.HuggingFace, classifier ? "vit." : "");

    /// <summary>torchvision's <c>VisionTransformer</c> (0.13 and later name the MLP's layers <c>mlp.0</c>, <c>mlp.3</c>;
    /// <paramref name="legacyMlpNames"/>: <c>mlp.linear_1</c>, <c>mlp.linear_2</c>).</summary>
    public static VitNameMap Torchvision(bool legacyMlpNames = false) =>
        new(CheckpointLayout.Torchvision, tvMlp: legacyMlpNames ? ("mlp.linear_1.", "mlp.linear_2.") : ("mlp.0.", "mlp.3."));

    /// <summary>
    /// The checkpoint's names for one of our parameter names, in the order they are concatenated along dimension 0;
    /// empty when this layout has no such tensor (e.g. <c>fc_norm</c> in Hugging Face's ViT).
    /// </summary>
    public IReadOnlyList<string> Theirs(string ours)
    {
        ArgumentException.ThrowIfNullOrEmpty(ours);
        if (Layout == CheckpointLayout.Timm) return [ours];
        if (ours.StartsWith("blocks.", StringComparison.Ordinal))
        {
            int dot = ours.IndexOf('.', 7);
            if (dot < 0) return [];
            var index = ours[7..dot];
            var rest = ours[(dot + 1)..];
            if (Layout == CheckpointLayout.HuggingFace)
                return Replace(rest, HfBlock, $"{hfPrefix}encoder.layer.{index}.");
            var block = $"encoder.layers.encoder_layer_{index}.";
            if (rest.StartsWith("mlp.fc1.", StringComparison.Ordinal)) return [block + tvMlp.Fc1 + rest[8..]];
            if (rest.StartsWith("mlp.fc2.", StringComparison.Ordinal)) return [block + tvMlp.Fc2 + rest[8..]];
            return Replace(rest, TvBlock, block);
        }
        (string Ours, string[] Theirs)[] top = Layout == CheckpointLayout.HuggingFace
            ?
            [
                ("cls_token", [hfPrefix + "embeddings.cls_token"]),
                ("pos_embed", [hfPrefix + "embeddings.position_embeddings"]),
                ("patch_embed.proj.", [hfPrefix + "embeddings.patch_embeddings.projection."]),
                ("norm.", [hfPrefix + "layernorm."]),
                ("head.", ["classifier."]),
            ]
            :
            [
                ("cls_token", ["class_token"]),
                ("pos_embed", ["encoder.pos_embedding"]),
                ("patch_embed.proj.", ["conv_proj."]),
                ("norm.", ["encoder.ln."]),
                ("head.", ["heads.head."]),
            ];
        return Replace(ours, top, "");
    }

    private static IReadOnlyList<string> Replace(string ours, (string Ours, string[] Theirs)[] rules, string prefix)
    {
        foreach (var (o, t) in rules)
        {
            if (ours == o) return t.Select(x => prefix + x).ToArray();
            if (o.EndsWith('.') && ours.StartsWith(o, StringComparison.Ordinal))
                return t.Select(x => prefix + x + ours[o.Length..]).ToArray();
        }
        return [];
    }

    /// <summary>Whether a checkpoint tensor of this layout is known and not part of a classifier (Hugging Face's
    /// <c>ViTModel</c> pooler, which <c>ViTForImageClassification</c> does not use, and its masked-image-modelling
    /// mask token): such tensors are left out; any other tensor the model does not take is an error.</summary>
    public bool IsUnused(string theirs) =>
        Layout == CheckpointLayout.HuggingFace
        && (theirs == hfPrefix + "embeddings.mask_token" || theirs.StartsWith(hfPrefix + "pooler.", StringComparison.Ordinal));

    /// <summary>
    /// Works out the layout from the tensor names, after refusing the ViT variants this library does not implement
    /// (register or distillation tokens, LayerScale, ...) with a <see cref="NotSupportedException"/> naming the feature.
    /// </summary>
    /// <exception cref="InvalidDataException">The names are not those of a ViT in any layout we read.</exception>
    public static VitNameMap Detect(IReadOnlyCollection<string> names, string source)
    {
        bool Has(string n) => names.Contains(n);
        bool Any(Func<string, bool> f) => names.Any(f);
        static NotSupportedException Unsupported(string source, string feature) =>
            new($"{source} is a ViT variant with {feature}, which Vit for .NET does not implement");

        if (Has("patch_embed.proj.weight") || Has("pos_embed") || Any(n => n.StartsWith("blocks.0.", StringComparison.Ordinal)))
        {
            if (Any(n => n == "reg_token")) throw Unsupported(source, "register tokens (reg_token)");
            if (Any(n => n == "dist_token" || n.StartsWith("head_dist.", StringComparison.Ordinal)))
                throw Unsupported(source, "a distillation token (DeiT's dist_token and head_dist)");
            if (Any(n => n.Contains(".ls1.") || n.Contains(".ls2."))) throw Unsupported(source, "LayerScale (blocks.N.ls1/ls2, as in DeiT III)");
            if (Any(n => n.Contains(".attn.q_norm.") || n.Contains(".attn.k_norm."))) throw Unsupported(source, "QK normalisation (attn.q_norm/k_norm)");
            if (Any(n => n.StartsWith("norm_pre.", StringComparison.Ordinal))) throw Unsupported(source, "a LayerNorm before the encoder (norm_pre, as in CLIP)");
            if (Any(n => n.StartsWith("attn_pool.", StringComparison.Ordinal))) throw Unsupported(source, "attention pooling (attn_pool, a MAP head)");
            if (Any(n => n.Contains(".mlp.fc1_g.") || n.Contains(".mlp.fc1_x."))) throw Unsupported(source, "a gated (SwiGLU) MLP");
            if (Any(n => n.Contains(".attn.norm.") || n.Contains(".mlp.norm."))) throw Unsupported(source, "norms inside attention or the MLP (scale_attn_norm/scale_mlp_norm)");
            if (Any(n => n.StartsWith("patch_embed.backbone.", StringComparison.Ordinal))) throw Unsupported(source, "a hybrid CNN stem (patch_embed.backbone)");
            if (Any(n => n.Contains(".attn.q_bias") || n.Contains("relative_position"))) throw Unsupported(source, "BEiT-style q/v biases or a relative position bias");
            if (!Has("pos_embed")) throw Unsupported(source, "no learned absolute position embedding (pos_embed; RoPE or relative positions)");
            return Timm;
        }
        if (Has("encoder.pos_embedding") || Any(n => n.StartsWith("conv_proj.", StringComparison.Ordinal)))
        {
            if (Any(n => n.StartsWith("heads.pre_logits.", StringComparison.Ordinal))) throw Unsupported(source, "a pre-logits layer (torchvision's representation_size)");
            if (Any(n => n.StartsWith("conv_proj.", StringComparison.Ordinal) && n is not ("conv_proj.weight" or "conv_proj.bias")))
                throw Unsupported(source, "a convolutional stem (torchvision's conv_stem_configs)");
            return Torchvision(legacyMlpNames: Has("encoder.layers.encoder_layer_0.mlp.linear_1.weight"));
        }
        if (Any(n => n.StartsWith("deit.", StringComparison.Ordinal) || n.EndsWith("embeddings.distillation_token", StringComparison.Ordinal)))
            throw Unsupported(source, "a distillation token (Hugging Face DeiT)");
        if (Has("vit.embeddings.patch_embeddings.projection.weight")) return HuggingFace(classifier: true);
        if (Has("embeddings.patch_embeddings.projection.weight")) return HuggingFace(classifier: false);
        throw new InvalidDataException(
            $"{source} is not a ViT checkpoint in a layout Vit for .NET reads (timm: patch_embed.proj.weight; Hugging Face: " +
            $"vit.embeddings.patch_embeddings.projection.weight; torchvision: conv_proj.weight); its first tensors are: " +
            string.Join(", ", names.Take(8)) + (names.Count == 0 ? "(none)" : ""));
    }
}
