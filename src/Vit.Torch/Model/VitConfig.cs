using System.Text.Json.Nodes;
using Vit.Torch.Checkpoints;

namespace Vit.Torch.Model;

/// <summary>How the encoder's output tokens become one vector for the head.</summary>
public enum VitPooling
{
    /// <summary>The class token's final state (ViT paper, eq. 4).</summary>
    ClassToken,
    /// <summary>The mean of the patch tokens (the class token, if any, left out). Without a class token this is "simple
    /// ViT" (Beyer et al. 2022); with one, timm's <c>global_pool='avg'</c> fine-tunes (MAE, BEiT).</summary>
    Mean,
}

/// <summary>
/// The shape of a Vision Transformer ("An Image is Worth 16x16 Words", Dosovitskiy et al., 2020).
/// Presets follow the paper's Table 1 (and DeiT's Tiny). <see cref="Validate"/> says what is wrong with a config.
/// </summary>
public sealed record VitConfig
{
    /// <summary>Side of the (square) input image in pixels.</summary>
    public int ImageSize { get; init; } = 224;

    /// <summary>Side of a (square) patch in pixels; the image size must be a multiple of it.</summary>
    public int PatchSize { get; init; } = 16;

    /// <summary>Input channels (3 for RGB, 1 for grayscale).</summary>
    public int Channels { get; init; } = 3;

    /// <summary>Hidden size D of every token.</summary>
    public int Dim { get; init; } = 768;

    /// <summary>Number of encoder blocks.</summary>
    public int Depth { get; init; } = 12;

    /// <summary>Attention heads; D must be divisible by it.</summary>
    public int Heads { get; init; } = 12;

    /// <summary>Hidden size of each block's MLP.</summary>
    public int MlpDim { get; init; } = 3072;

    /// <summary>Number of output classes of the head; 0 for a headless backbone whose forward returns the pooled
    /// features (timm's <c>num_classes=0</c>).</summary>
    public int NumClasses { get; init; } = 1000;

    /// <summary>Dropout after the position embedding and inside the MLP and attention projection.</summary>
    public double Dropout { get; init; }

    /// <summary>Dropout on the attention probabilities.</summary>
    public double AttentionDropout { get; init; }

    /// <summary>Stochastic-depth rate of the last block; block i uses DropPath * i / (Depth - 1).</summary>
    public double DropPath { get; init; }

    /// <summary>Class-token or mean pooling.</summary>
    public VitPooling Pooling { get; init; } = VitPooling.ClassToken;

    /// <summary>Whether a learned class token is prepended to the patches. Null: exactly when <see cref="Pooling"/> is
    /// <see cref="VitPooling.ClassToken"/>. Set true with mean pooling for timm's average-pool fine-tunes.</summary>
    public bool? ClassToken { get; init; }

    /// <summary>Where the final LayerNorm sits: false, on every token before pooling (<c>norm</c>, eq. 4); true, on the
    /// pooled vector (<c>fc_norm</c>, timm's average-pool variants).</summary>
    public bool FcNorm { get; init; }

    /// <summary>Whether the qkv projection has a bias (true in the paper and timm).</summary>
    public bool QkvBias { get; init; } = true;

    /// <summary>LayerNorm epsilon (1e-6 in the reference implementation and timm).</summary>
    public double LayerNormEps { get; init; } = 1e-6;

    /// <summary>Patches along one side.</summary>
    public int GridSize => ImageSize / PatchSize;

    /// <summary>Number of patch tokens N = (image / patch)^2.</summary>
    public int NumPatches => GridSize * GridSize;

    /// <summary>Whether the model has a class token (<see cref="ClassToken"/>, or its default).</summary>
    public bool HasClassToken => ClassToken ?? Pooling == VitPooling.ClassToken;

    /// <summary>Tokens entering the encoder (patches plus the class token when there is one).</summary>
    public int NumTokens => NumPatches + (HasClassToken ? 1 : 0);

    /// <summary>Per-head size D / heads.</summary>
    public int HeadDim => Dim / Heads;

    private static VitConfig Preset(int dim, int depth, int heads, int mlp, int patch) =>
        new() { Dim = dim, Depth = depth, Heads = heads, MlpDim = mlp, PatchSize = patch };

    /// <summary>ViT-Ti/16 (DeiT-Tiny): D 192, 12 blocks, 3 heads, MLP 768. 5.7M parameters at 1000 classes.</summary>
    public static VitConfig TinyPatch16 => Preset(192, 12, 3, 768, 16);

    /// <summary>ViT-Ti/32.</summary>
    public static VitConfig TinyPatch32 => Preset(192, 12, 3, 768, 32);

    /// <summary>ViT-S/16: D 384, 12 blocks, 6 heads, MLP 1536.</summary>
    public static VitConfig SmallPatch16 => Preset(384, 12, 6, 1536, 16);

    /// <summary>ViT-S/32.</summary>
    public static VitConfig SmallPatch32 => Preset(384, 12, 6, 1536, 32);

    /// <summary>ViT-B/16: D 768, 12 blocks, 12 heads, MLP 3072. 86,567,656 parameters at 1000 classes.</summary>
    public static VitConfig BasePatch16 => Preset(768, 12, 12, 3072, 16);

    /// <summary>ViT-B/32.</summary>
    public static VitConfig BasePatch32 => Preset(768, 12, 12, 3072, 32);

    /// <summary>ViT-L/16: D 1024, 24 blocks, 16 heads, MLP 4096.</summary>
    public static VitConfig LargePatch16 => Preset(1024, 24, 16, 4096, 16);

    /// <summary>ViT-L/32.</summary>
    public static VitConfig LargePatch32 => Preset(1024, 24, 16, 4096, 32);

    /// <summary>Looks a preset up by name: Ti/16, S/32, B/16, L/32, "tiny16", "base32" and the like.</summary>
    public static VitConfig FromName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var key = name.ToLowerInvariant().Replace("vit-", "").Replace("vit_", "").Replace("/", "").Replace("_", "").Replace("-", "").Replace("patch", "");
        return key switch
        {
            "ti16" or "tiny16" => TinyPatch16,
            "ti32" or "tiny32" => TinyPatch32,
            "s16" or "small16" => SmallPatch16,
            "s32" or "small32" => SmallPatch32,
            "b16" or "base16" => BasePatch16,
            "b32" or "base32" => BasePatch32,
            "l16" or "large16" => LargePatch16,
            "l32" or "large32" => LargePatch32,
            _ => throw new ArgumentException($"unknown ViT preset '{name}': use Ti/16, Ti/32, S/16, S/32, B/16, B/32, L/16 or L/32", nameof(name)),
        };
    }

    /// <summary>Largest hidden size accepted (ViT-22B has 6144): a larger one is a damaged or hostile file.</summary>
    public const int MaxDim = 16384;

    /// <summary>Deepest model accepted.</summary>
    public const int MaxDepth = 256;

    /// <summary>Largest image side accepted.</summary>
    public const int MaxImageSize = 8192;

    /// <summary>Most patches accepted (a 256 x 256 grid).</summary>
    public const int MaxPatches = 65536;

    /// <summary>Most classes accepted.</summary>
    public const int MaxClasses = 1 << 20;

    /// <summary>Most parameters accepted (4 billion, 16 GB in float32).</summary>
    public const long MaxParameters = 4_000_000_000;

    /// <summary>Throws an <see cref="ArgumentException"/> that names the first problem found, including sizes beyond the
    /// limits above (checked before anything is allocated for them).</summary>
    public VitConfig Validate()
    {
        static void Positive(int v, string what)
        {
            if (v <= 0) throw new ArgumentException($"{what} must be positive, got {v}");
        }
        static void Rate(double v, string what)
        {
            if (!(v >= 0 && v < 1)) throw new ArgumentException($"{what} must be in [0, 1), got {v}");
        }
        Positive(ImageSize, "image size");
        Positive(PatchSize, "patch size");
        Positive(Channels, "channel count");
        Positive(Dim, "hidden size (Dim)");
        Positive(Depth, "depth");
        Positive(Heads, "head count");
        Positive(MlpDim, "MLP size");
        if (NumClasses < 0) throw new ArgumentException($"class count must be 0 (headless) or more, got {NumClasses}");
        static void AtMost(long v, long max, string what)
        {
            if (v > max) throw new ArgumentException($"{what} {v} is larger than the limit {max}");
        }
        AtMost(ImageSize, MaxImageSize, "image size");
        AtMost(Channels, 4, "channel count");
        AtMost(Dim, MaxDim, "hidden size");
        AtMost(Depth, MaxDepth, "depth");
        AtMost(MlpDim, 8L * MaxDim, "MLP size");
        AtMost(NumClasses, MaxClasses, "class count");
        if (PatchSize > ImageSize)
            throw new ArgumentException($"patch size {PatchSize} is larger than image size {ImageSize}");
        if (ImageSize % PatchSize != 0)
            throw new ArgumentException($"image size {ImageSize} is not divisible by patch size {PatchSize}");
        if (Dim % Heads != 0)
            throw new ArgumentException($"hidden size {Dim} is not divisible by head count {Heads}");
        Rate(Dropout, "dropout");
        Rate(AttentionDropout, "attention dropout");
        Rate(DropPath, "drop path rate");
        if (!(LayerNormEps > 0)) throw new ArgumentException($"layer norm epsilon must be positive, got {LayerNormEps}");
        if (!Enum.IsDefined(Pooling)) throw new ArgumentException($"unknown pooling {Pooling}");
        if (Pooling == VitPooling.ClassToken && ClassToken == false)
            throw new ArgumentException("class-token pooling needs a class token (ClassToken is false)");
        AtMost((long)GridSize * GridSize, MaxPatches, "patch count");
        AtMost(new VitParameterCount(this).Count, MaxParameters, "parameter count");
        return this;
    }

    /// <summary>The config as JSON, as our model files and safetensors metadata store it (snake_case keys).</summary>
    public JsonObject ToJson() => new()
    {
        ["image_size"] = ImageSize, ["patch_size"] = PatchSize, ["channels"] = Channels, ["dim"] = Dim, ["depth"] = Depth,
        ["heads"] = Heads, ["mlp_dim"] = MlpDim, ["num_classes"] = NumClasses, ["dropout"] = Dropout,
        ["attention_dropout"] = AttentionDropout, ["drop_path"] = DropPath, ["pooling"] = JsonFields.EnumName(Pooling),
        ["class_token"] = HasClassToken, ["fc_norm"] = FcNorm, ["qkv_bias"] = QkvBias, ["layer_norm_eps"] = LayerNormEps,
    };

    /// <summary>
    /// Reads a config written by <see cref="ToJson"/> (files from before <c>class_token</c> and <c>fc_norm</c> existed
    /// read as they were written: a class token exactly with class-token pooling, the norm before pooling), validated.
    /// </summary>
    /// <exception cref="InvalidDataException">A field is missing, mistyped or out of range; the message names <paramref name="source"/>.</exception>
    public static VitConfig FromJson(JsonNode? node, string source)
    {
        var o = JsonFields.Object(node, source);
        var config = new VitConfig
        {
            ImageSize = JsonFields.Int(o, "image_size", source), PatchSize = JsonFields.Int(o, "patch_size", source),
            Channels = JsonFields.Int(o, "channels", source), Dim = JsonFields.Int(o, "dim", source), Depth = JsonFields.Int(o, "depth", source),
            Heads = JsonFields.Int(o, "heads", source), MlpDim = JsonFields.Int(o, "mlp_dim", source),
            NumClasses = JsonFields.Int(o, "num_classes", source), Dropout = JsonFields.Double(o, "dropout", source),
            AttentionDropout = JsonFields.Double(o, "attention_dropout", source), DropPath = JsonFields.Double(o, "drop_path", source),
            Pooling = JsonFields.Enum<VitPooling>(o, "pooling", source), ClassToken = JsonFields.OptBool(o, "class_token", source),
            FcNorm = JsonFields.OptBool(o, "fc_norm", source) ?? false, QkvBias = JsonFields.Bool(o, "qkv_bias", source),
            LayerNormEps = JsonFields.Double(o, "layer_norm_eps", source),
        };
        try
        {
            return config.Validate();
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{source}: {e.Message}", e);
        }
    }
}

/// <summary>The parameter count of a config, from the architecture's formula (no model is built).</summary>
public readonly record struct VitParameterCount(VitConfig Config)
{
    /// <summary>Number of parameters (checked arithmetic: an <see cref="OverflowException"/> rather than a wrong count).</summary>
    public long Count
    {
        get
        {
            checked
            {
                long d = Config.Dim, m = Config.MlpDim, p = Config.PatchSize, grid = Config.ImageSize / Math.Max(1, Config.PatchSize);
                long patch = Config.Channels * p * p * d + d;
                long tokens = (Config.HasClassToken ? d : 0) + (grid * grid + (Config.HasClassToken ? 1 : 0)) * d;
                long block = 4 * d + 3 * d * d + (Config.QkvBias ? 3 * d : 0) + d * d + d + d * m + m + m * d + d;
                return patch + tokens + Config.Depth * block + 2 * d + d * Config.NumClasses + Config.NumClasses;
            }
        }
    }

    /// <summary>Bytes of the parameters in float32.</summary>
    public long Bytes => Count * 4;
}
