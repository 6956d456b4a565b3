namespace Vit.Torch.Imaging;

/// <summary>
/// An image could not be decoded: the file is missing or unreadable, empty, truncated, not an image in a
/// supported format, or larger than the pixel limit. <see cref="Path"/> names the file and
/// <see cref="Reason"/> says what is wrong; a loader can log both and skip the file.
/// </summary>
public sealed class ImageDecodeException : Exception
{
    /// <summary>Creates the exception for <paramref name="path"/> (null for unnamed bytes).</summary>
    public ImageDecodeException(string? path, string reason)
        : base($"Cannot decode image {(path is null ? "(bytes in memory)" : $"'{path}'")}: {reason}")
    {
        Path = path;
        Reason = reason;
    }

    /// <summary>The file (or source name) that failed; null for unnamed bytes.</summary>
    public string? Path { get; }

    /// <summary>What is wrong, e.g. "the file is empty (0 bytes)" or "truncated PNG: ...".</summary>
    public string Reason { get; }
}
