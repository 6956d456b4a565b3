using System.Text.Json.Nodes;
using Vit.Torch.Checkpoints;

namespace Vit.Torch.Imaging;

/// <summary>
/// How an image becomes model input: decoded to <see cref="Channels"/> channels, brought to
/// <see cref="ImageSize"/> × <see cref="ImageSize"/> (<see cref="Resize"/>), scaled by 1/255 and normalised per channel.
/// Checkpoints carry theirs (Hugging Face's <c>preprocessor_config.json</c>, timm's <c>pretrained_cfg</c>, our metadata).
/// </summary>
/// <param name="ImageSize">Side of the square model input.</param>
/// <param name="Channels">1 or 3.</param>
/// <param name="Normalization">Per-channel mean/std, applied after scaling pixels by 1/255.</param>
public sealed record VitPreprocessing(int ImageSize, int Channels, Normalization Normalization)
{
    /// <summary>How an image of another size is brought to the model's (Hugging Face: <see cref="ResizeMode.Stretch"/>;
    /// timm and torchvision: <see cref="ResizeMode.Crop"/>).</summary>
    public ResizeMode ResizeMode { get; init; } = ResizeMode.Crop;

    /// <summary>Resampling filter of that resize (Hugging Face ViT and torchvision: bilinear; timm: mostly bicubic).</summary>
    public Interpolation Interpolation { get; init; } = Interpolation.Bilinear;

    /// <summary>With <see cref="ResizeMode.Crop"/>: the share of the resized image kept by the centre crop (timm's
    /// <c>crop_pct</c>; torchvision's Resize(256) + CenterCrop(224) is 0.875). 1 crops only the longer side.</summary>
    public double CropFraction { get; init; } = 1;

    /// <summary>What training here uses unless told otherwise: ImageNet's mean/std for RGB (0.5/0.5 for grayscale, which
    /// ImageNet has no statistics for), images of another size scaled to cover and centre-cropped, bilinear.</summary>
    public static VitPreprocessing Default(int imageSize, int channels) =>
        new(imageSize, channels, channels == 1 ? Normalization.Half : Normalization.ImageNet);

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid value.</summary>
    public VitPreprocessing Validate()
    {
        if (ImageSize < 1) throw new ArgumentException($"preprocessing image size must be positive, got {ImageSize}");
        if (Channels is not (1 or 3)) throw new ArgumentException($"preprocessing channels must be 1 or 3, got {Channels}");
        ArgumentNullException.ThrowIfNull(Normalization);
        Normalization.ForChannels(Channels);
        if (!Enum.IsDefined(ResizeMode)) throw new ArgumentException($"unknown resize mode {ResizeMode}");
        if (!Enum.IsDefined(Interpolation)) throw new ArgumentException($"unknown interpolation {Interpolation}");
        if (!(CropFraction > 0 && CropFraction <= 1)) throw new ArgumentException($"crop fraction must be in (0, 1], got {CropFraction}");
        return this;
    }

    /// <summary>
    /// A new image of the model's size from a decoded one (see <see cref="Image.ResizeSquare"/>: an image already of
    /// that size is used as it is, so a pipeline's own resize step decides).
    /// </summary>
    public Image Resize(Image image)
    {
        ArgumentNullException.ThrowIfNull(image);
        return image.ResizeSquare(ImageSize, ResizeMode, Interpolation, CropFraction);
    }

    /// <summary>As JSON, as our model files and safetensors metadata store it.</summary>
    public JsonObject ToJson() => new()
    {
        ["image_size"] = ImageSize,
        ["channels"] = Channels,
        ["mean"] = new JsonArray(Normalization.Mean.Select(v => (JsonNode?)v).ToArray()),
        ["std"] = new JsonArray(Normalization.Std.Select(v => (JsonNode?)v).ToArray()),
        ["resize_mode"] = JsonFields.EnumName(ResizeMode),
        ["interpolation"] = JsonFields.EnumName(Interpolation),
        ["crop_fraction"] = CropFraction,
        ["layout"] = "planar CHW float32, RGB, (pixel / 255 - mean) / std",
    };

    /// <summary>Reads what <see cref="ToJson"/> wrote (older files without the resize fields read as bilinear crop), validated.</summary>
    /// <exception cref="InvalidDataException">A field is missing, mistyped or out of range; the message names <paramref name="source"/>.</exception>
    public static VitPreprocessing FromJson(JsonNode? node, string source)
    {
        var o = JsonFields.Object(node, source);
        try
        {
            return new VitPreprocessing(JsonFields.Int(o, "image_size", source), JsonFields.Int(o, "channels", source),
                new Normalization(JsonFields.Floats(o, "mean", source), JsonFields.Floats(o, "std", source)))
            {
                ResizeMode = JsonFields.Has(o, "resize_mode") ? JsonFields.Enum<ResizeMode>(o, "resize_mode", source) : ResizeMode.Crop,
                Interpolation = JsonFields.Has(o, "interpolation") ? JsonFields.Enum<Interpolation>(o, "interpolation", source) : Interpolation.Bilinear,
                CropFraction = JsonFields.OptDouble(o, "crop_fraction", source) ?? 1,
            }.Validate();
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{source}: {e.Message}", e);
        }
    }
}
