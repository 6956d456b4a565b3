namespace Vit.Torch.Imaging;

/// <summary>Options of <see cref="Image.Decode(string, ImageDecodeOptions?)"/>.</summary>
public sealed record ImageDecodeOptions
{
    /// <summary>The defaults: 50-megapixel limit, channels as stored, EXIF orientation applied.</summary>
    public static ImageDecodeOptions Default { get; } = new();

    /// <summary>
    /// Largest width × height accepted, read from the header before decoding, so a small file that claims a
    /// huge size (a decompression bomb) is refused without allocating. Default <see cref="Image.DefaultMaxPixels"/>.
    /// </summary>
    public long MaxPixels { get; init; } = Image.DefaultMaxPixels;

    /// <summary>Convert to 1 (gray) or 3 (RGB) channels while decoding; null keeps what the file stores (1, 3 or 4).</summary>
    public int? Channels { get; init; }

    /// <summary>Rotate/flip the image as its EXIF orientation tag says (as viewers and PIL's exif_transpose do). Default true.</summary>
    public bool ApplyExifOrientation { get; init; } = true;

    internal void Validate()
    {
        if (MaxPixels <= 0) throw new ArgumentOutOfRangeException(nameof(MaxPixels), MaxPixels, "the pixel limit must be positive");
        if (Channels is not (null or 1 or 3)) throw new ArgumentOutOfRangeException(nameof(Channels), Channels, "channels must be null (as stored), 1 or 3");
    }
}
