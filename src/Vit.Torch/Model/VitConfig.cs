namespace Vit.Torch.Model;

/// <summary>How the encoder's output tokens become one vector for the head.</summary>
public enum VitPooling
{
    /// <summary>The class token's final state (ViT paper, eq. 4).</summary>
    ClassToken,
    /// <summary>The mean of all patch tokens; the model then has no class token (as in "simple ViT", Beyer et al. 2022).</summary>
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

    /// <summary>Number of output classes of the head.</summary>
    public int NumClasses { get; init; } = 1000;

    /// <summary>Dropout after the position embedding and inside the MLP and attention projection.</summary>
    public double Dropout { get; init; }

    /// <summary>Dropout on the attention probabilities.</summary>
    public double AttentionDropout { get; init; }

    /// <summary>Stochastic-depth rate of the last block; block i uses DropPath * i / (Depth - 1).</summary>
    public double DropPath { get; init; }

    /// <summary>Class-token or mean pooling.</summary>
    public VitPooling Pooling { get; init; } = VitPooling.ClassToken;

    /// <summary>Whether the qkv projection has a bias (true in the paper and timm).</summary>
    public bool QkvBias { get; init; } = true;

    /// <summary>LayerNorm epsilon (1e-6 in the reference implementation and timm).</summary>
    public double LayerNormEps { get; init; } = 1e-6;

    /// <summary>Patches along one side.</summary>
    public int GridSize => ImageSize / PatchSize;

    /// <summary>Number of patch tokens N = (image / patch)^2.</summary>
    public int NumPatches => GridSize * GridSize;

    /// <summary>Tokens entering the encoder (patches plus the class token when used).</summary>
    public int NumTokens => NumPatches + (Pooling == VitPooling.ClassToken ? 1 : 0);

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

    /// <summary>Throws an <see cref="ArgumentException"/> that names the first problem found.</summary>
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
        Positive(NumClasses, "class count");
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
        return this;
    }
}

/// <summary>The parameter count of a config, from the architecture's formula (no model is built).</summary>
public readonly record struct VitParameterCount(VitConfig Config)
{
    /// <summary>Number of parameters.</summary>
    public long Count
    {
        get
        {
            long d = Config.Dim, m = Config.MlpDim, p = Config.PatchSize;
            long patch = Config.Channels * p * p * d + d;
            long tokens = (Config.Pooling == VitPooling.ClassToken ? d : 0) + (long)Config.NumTokens * d;
            long block = 4 * d + 3 * d * d + (Config.QkvBias ? 3 * d : 0) + d * d + d + d * m + m + m * d + d;
            return patch + tokens + Config.Depth * block + 2 * d + d * Config.NumClasses + Config.NumClasses;
        }
    }

    /// <summary>Bytes of the parameters in float32.</summary>
    public long Bytes => Count * 4;
}
