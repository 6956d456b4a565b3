namespace Vit.Torch.Imaging;

/// <summary>How <see cref="Image.Resize"/> reaches a target size whose aspect ratio differs from the image's (as ML.NET's ResizeImages).</summary>
public enum ResizeMode
{
    /// <summary>Scale width and height independently; the aspect ratio is not kept.</summary>
    Stretch = 0,

    /// <summary>Letterbox: scale to fit inside, centre, fill the borders with a pad value.</summary>
    Pad = 1,

    /// <summary>Scale the shorter side to fit, then keep the centre (torchvision's Resize + CenterCrop).</summary>
    Crop = 2,
}

/// <summary>How pixel values are interpolated when an image is resized or warped.</summary>
public enum Interpolation
{
    /// <summary>Nearest neighbour (the same pixels PIL picks).</summary>
    Nearest = 0,

    /// <summary>Bilinear.</summary>
    Bilinear = 1,

    /// <summary>Bicubic.</summary>
    Bicubic = 2,

    /// <summary>Pixel-area averaging: the best choice for shrinking (as bilinear when warping).</summary>
    Area = 3,
}
