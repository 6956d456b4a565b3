using System.Runtime.CompilerServices;
using SkiaSharp;

namespace Vit.Torch.Imaging;

/// <summary>
/// A decoded image: height × width × channels bytes (HWC, rows top to bottom), 1 (gray), 3 (RGB) or 4 (RGBA)
/// channels, in managed memory. Decoding, encoding and every resampling (resize, crop-resize, affine warps) go
/// through SkiaSharp, the copy Microsoft.ML.ImageAnalytics brings, so its nearest-neighbour resize gives the pixels
/// of ML.NET's own <c>ResizeImages</c>; the pixel operations are C#. Images are immutable: every operation returns a
/// new image that the caller owns and disposes, so one image can be read from several threads at once.
/// </summary>
public sealed partial class Image : IDisposable
{
    /// <summary>The default pixel limit of <see cref="ImageDecodeOptions.MaxPixels"/>: 50 megapixels.</summary>
    public const long DefaultMaxPixels = 50_000_000;

    // Largest side an operation may create, and largest buffer: keeps every index in int arithmetic.
    private const int MaxSide = 1 << 16;
    private const long MaxBytes = int.MaxValue;

    private static long live;
    private byte[]? pixels;

    /// <summary>Wraps <paramref name="hwc"/> (taken over, not copied: nobody else may write to it).</summary>
    internal Image(byte[] hwc, int width, int height, int channels)
    {
        if ((long)width * height * channels != hwc.Length) throw new ArgumentException("internal: pixel buffer does not match the size");
        pixels = hwc;
        Width = width;
        Height = height;
        Channels = channels;
        Interlocked.Increment(ref live);
    }

    /// <summary>The pixels (HWC); throws <see cref="ObjectDisposedException"/> once disposed. Never written to.</summary>
    internal byte[] Pixels
    {
        get
        {
            var p = Volatile.Read(ref pixels);
            ObjectDisposedException.ThrowIf(p is null, this);
            return p;
        }
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>Channels: 1 (gray), 3 (RGB) or 4 (RGBA).</summary>
    public int Channels { get; }

    /// <summary>Number of bytes of the pixels: Width × Height × Channels.</summary>
    public int ByteCount => Width * Height * Channels;

    /// <summary>True once <see cref="Dispose"/> has released the pixels.</summary>
    public bool IsDisposed => Volatile.Read(ref pixels) is null;

    /// <summary>Releases the pixels now (idempotent). An operation already running on this image finishes.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref pixels, null) is not null) Interlocked.Decrement(ref live);
    }

    /// <summary>Number of images created and not yet disposed in this process (for leak tests).</summary>
    public static long LiveCount => Interlocked.Read(ref live);

    /// <inheritdoc />
    public override string ToString() => IsDisposed ? "Image(disposed)" : $"Image({Width}x{Height}, {Channels} channel(s))";

    // ------------------------------------------------------------------ decoding and creation

    /// <summary>
    /// Decodes a JPEG, PNG, BMP or WebP file. Gray, RGB and RGBA are kept as stored unless
    /// <see cref="ImageDecodeOptions.Channels"/> asks for 1 or 3 (gray with alpha becomes RGBA); 16-bit samples keep
    /// their high byte (as PIL reads them); an EXIF orientation is applied. Throws <see cref="ImageDecodeException"/> naming the file and the reason
    /// when the file is missing, unreadable, empty, truncated, not an image, or larger than the pixel limit (checked
    /// from the header, before any pixel memory is allocated).
    /// </summary>
    public static Image Decode(string path, ImageDecodeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        var o = options ?? ImageDecodeOptions.Default;
        o.Validate();
        try
        {
            return ImageCodec.Decode(ImageCodec.ReadFile(path), o);
        }
        catch (ImageProbeException e)
        {
            throw new ImageDecodeException(path, e.Message);
        }
    }

    /// <summary>
    /// Decodes an encoded image held in memory, as <see cref="Decode(string, ImageDecodeOptions?)"/>.
    /// <paramref name="sourceName"/> (e.g. an archive entry) names the data in error messages.
    /// </summary>
    public static Image Decode(ReadOnlySpan<byte> bytes, ImageDecodeOptions? options = null, string? sourceName = null)
    {
        var o = options ?? ImageDecodeOptions.Default;
        o.Validate();
        try
        {
            return ImageCodec.Decode(bytes, o);
        }
        catch (ImageProbeException e)
        {
            throw new ImageDecodeException(sourceName, e.Message);
        }
    }

    /// <summary>An image holding a copy of <paramref name="hwc"/>: rows top to bottom, RGB(A) interleaved.</summary>
    public static Image FromPixels(ReadOnlySpan<byte> hwc, int width, int height, int channels)
    {
        CheckChannels(channels);
        CheckTargetSize(width, height, "image size");
        if ((long)width * height * channels != hwc.Length)
            throw new ArgumentException($"{hwc.Length} bytes do not make a {width}x{height} image with {channels} channel(s) ({(long)width * height * channels} bytes)", nameof(hwc));
        return new Image(hwc.ToArray(), width, height, channels);
    }

    /// <summary>An image whose every sample is <paramref name="value"/>.</summary>
    public static Image Filled(int width, int height, int channels, byte value)
    {
        CheckChannels(channels);
        var px = Allocate(width, height, channels, "image size");
        if (value != 0) px.AsSpan().Fill(value);
        return new Image(px, width, height, channels);
    }

    /// <summary>A new image of the same pixels (cheap: images are immutable, so the memory is shared).</summary>
    public Image Clone() => new(Pixels, Width, Height, Channels);

    /// <summary>A zeroed pixel buffer for a new image, refusing sizes outside [1, 65536] per side or above 2 GiB.</summary>
    internal static byte[] Allocate(int width, int height, int channels, string what = "target size")
    {
        if (width is <= 0 or > MaxSide || height is <= 0 or > MaxSide)
            throw new ArgumentException($"{what} {width}x{height} is invalid: width and height must be in [1, {MaxSide}]");
        long n = (long)width * height * channels;
        if (n > MaxBytes) throw new ArgumentException($"{what} {width}x{height} with {channels} channel(s) is too large to hold in one buffer (2 GiB)");
        return new byte[n];
    }

    private static void CheckChannels(int channels)
    {
        if (channels is not (1 or 3 or 4)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1, 3 or 4");
    }

    // ------------------------------------------------------------------ pixels

    /// <summary>A copy of the pixels, HWC: rows top to bottom, channels interleaved.</summary>
    public byte[] ToBytes() => (byte[])Pixels.Clone();

    /// <summary>Copies the HWC pixels into <paramref name="destination"/>, which must hold exactly <see cref="ByteCount"/> bytes.</summary>
    public void CopyTo(Span<byte> destination)
    {
        var px = Pixels;
        if (destination.Length != px.Length)
            throw new ArgumentException($"destination has {destination.Length} bytes, the image {px.Length}", nameof(destination));
        px.CopyTo(destination);
    }

    /// <summary>
    /// Per-channel sums of v/255 and of (v/255)² over all pixels, for dataset statistics
    /// (<see cref="Normalization.FromData"/>). Accumulated exactly in integers, then scaled once.
    /// </summary>
    internal (double[] Sum, double[] SumSquares) ChannelSums()
    {
        var px = Pixels;
        int c = Channels;
        var s = new ulong[c];
        var s2 = new ulong[c];
        for (int i = 0; i < px.Length; i += c)
            for (int k = 0; k < c; k++)
            {
                ulong v = px[i + k];
                s[k] += v;
                s2[k] += v * v;
            }
        return (s.Select(v => v / 255.0).ToArray(), s2.Select(v => v / (255.0 * 255.0)).ToArray());
    }

    // ------------------------------------------------------------------ encoding

    /// <summary>PNG bytes (lossless; alpha kept).</summary>
    public byte[] EncodePng() => ImageCodec.Encode(this, SKEncodedImageFormat.Png, 100);

    /// <summary>JPEG bytes at <paramref name="quality"/> (1-100). An alpha channel is dropped.</summary>
    public byte[] EncodeJpeg(int quality = 95)
    {
        if (quality is < 1 or > 100) throw new ArgumentOutOfRangeException(nameof(quality), quality, "JPEG quality must be in [1, 100]");
        return ImageCodec.Encode(this, SKEncodedImageFormat.Jpeg, quality);
    }

    /// <summary>BMP bytes (uncompressed, 24 bits per pixel). An alpha channel is dropped; gray is stored as RGB.</summary>
    public byte[] EncodeBmp() => ImageCodec.EncodeBmp(this);

    /// <summary>WebP bytes: lossy at <paramref name="quality"/> (1-100), or lossless.</summary>
    public byte[] EncodeWebP(int quality = 90, bool lossless = false)
    {
        if (quality is < 1 or > 100) throw new ArgumentOutOfRangeException(nameof(quality), quality, "WebP quality must be in [1, 100]");
        return ImageCodec.Encode(this, SKEncodedImageFormat.Webp, quality, lossless);
    }

    /// <summary>
    /// Writes the image to <paramref name="path"/> in the format its extension names (.png, .jpg/.jpeg, .bmp,
    /// .webp); <paramref name="quality"/> applies to JPEG and WebP.
    /// </summary>
    public void Save(string path, int quality = 95)
    {
        ArgumentNullException.ThrowIfNull(path);
        var bytes = Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".png" => EncodePng(),
            ".jpg" or ".jpeg" => EncodeJpeg(quality),
            ".bmp" => EncodeBmp(),
            ".webp" => EncodeWebP(quality),
            var ext => throw new ArgumentException($"cannot tell the image format from the extension '{ext}' of {path} (use .png, .jpg, .bmp or .webp)", nameof(path)),
        };
        File.WriteAllBytes(path, bytes);
    }

    // ------------------------------------------------------------------ channels and size

    /// <summary>
    /// Converts to 1 channel (luma 0.299 R + 0.587 G + 0.114 B; alpha dropped) or 3 (gray replicated; alpha
    /// dropped). Returns a new image of the same pixels when the count already matches.
    /// </summary>
    public Image ToChannels(int channels)
    {
        if (channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1 or 3");
        var src = Pixels;
        if (channels == Channels) return Clone();
        int n = Width * Height, c = Channels;
        var dst = Allocate(Width, Height, channels, "image size");
        if (channels == 1)
            for (int i = 0; i < n; i++) dst[i] = Luma(src[i * c], src[i * c + 1], src[i * c + 2]);
        else if (c == 1)
            for (int i = 0; i < n; i++) dst[3 * i] = dst[3 * i + 1] = dst[3 * i + 2] = src[i];
        else
            SkiaPixels.FromRgba(src, dst, n, 3, 3);
        return new Image(dst, Width, Height, channels);
    }

    /// <summary>ITU-R BT.601 luma in 14-bit fixed point, rounded: 0.299 R + 0.587 G + 0.114 B (PIL's and OpenCV's "L").</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static byte Luma(int r, int g, int b) => (byte)((r * 4899 + g * 9617 + b * 1868 + 8192) >> 14);

    /// <summary>
    /// Resizes to <paramref name="width"/> × <paramref name="height"/>: <see cref="ResizeMode.Stretch"/> ignores
    /// the aspect ratio; <see cref="ResizeMode.Pad"/> fits the whole image inside, centred, and fills the borders
    /// with <paramref name="padValue"/>; <see cref="ResizeMode.Crop"/> scales the shorter side to fit and keeps the
    /// centre. The modes are ML.NET's <c>ResizeImages</c> Fill, IsoPad and IsoCrop.
    /// </summary>
    public Image Resize(int width, int height, ResizeMode mode = ResizeMode.Stretch,
        Interpolation interpolation = Interpolation.Bilinear, byte padValue = 0)
    {
        CheckTargetSize(width, height);
        if (!Enum.IsDefined(mode)) throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown resize mode");
        CheckInterp(interpolation);
        int w0 = Width, h0 = Height;
        switch (mode)
        {
            case ResizeMode.Stretch:
                return w0 == width && h0 == height ? Clone() : SkiaPixels.Draw(this, width, height, 0, new SKRect(0, 0, w0, h0), new SKRect(0, 0, width, height), interpolation);
            default:
            {
                // ML.NET's own geometry (MLImage's ResizeWithPadding and ResizeWithCrop, centred), in float as there:
                // the scale that fits (Pad) or covers (Crop), the scaled size and the offset truncated to whole pixels.
                float widthAspect = (float)width / w0, heightAspect = (float)height / h0;
                bool pad = mode == ResizeMode.Pad, heightTighter = heightAspect < widthAspect;
                float aspect = pad == heightTighter ? heightAspect : widthAspect;
                int x = 0, y = 0;
                if (heightTighter == pad) x = (int)((width - w0 * aspect) / 2);
                else y = (int)((height - h0 * aspect) / 2);
                int sw = Math.Max(1, (int)(w0 * aspect)), sh = Math.Max(1, (int)(h0 * aspect));
                return SkiaPixels.Draw(this, width, height, pad ? padValue : (byte)0, new SKRect(0, 0, w0, h0), new SKRect(x, y, x + sw, y + sh), interpolation);
            }
        }
    }

    /// <summary>Scales so that the shorter side becomes <paramref name="size"/>, keeping the aspect ratio.</summary>
    public Image ResizeShorterSide(int size, Interpolation interpolation = Interpolation.Bilinear)
    {
        if (size <= 0) throw new ArgumentOutOfRangeException(nameof(size), size, "size must be positive");
        var (w, h) = Width <= Height
            ? (size, Math.Max(1, (int)Math.Round((double)Height * size / Width)))
            : (Math.Max(1, (int)Math.Round((double)Width * size / Height)), size);
        return Resize(w, h, ResizeMode.Stretch, interpolation);
    }

    /// <summary>
    /// Brings the image to <paramref name="size"/> × <paramref name="size"/> as evaluation transforms do. An image
    /// already of that size comes back as a copy (so a pipeline's own resize step decides). Otherwise, with
    /// <see cref="ResizeMode.Crop"/> and <paramref name="cropFraction"/> below 1, the shorter side is scaled to
    /// floor(size / cropFraction) and the centre kept (timm's <c>crop_pct</c>, torchvision's Resize + CenterCrop);
    /// else <see cref="Resize"/> with <paramref name="mode"/>.
    /// </summary>
    public Image ResizeSquare(int size, ResizeMode mode, Interpolation interpolation, double cropFraction = 1)
    {
        if (!(cropFraction > 0 && cropFraction <= 1))
            throw new ArgumentOutOfRangeException(nameof(cropFraction), cropFraction, "crop fraction must be in (0, 1]");
        if (Width == size && Height == size) return Clone();
        if (mode != ResizeMode.Crop || cropFraction == 1) return Resize(size, size, mode, interpolation);
        CheckTargetSize(size, size);
        using var scaled = ResizeShorterSide((int)Math.Floor(size / cropFraction), interpolation);
        return scaled.CenterCrop(size, size);
    }

    /// <summary>The region at (<paramref name="x"/>, <paramref name="y"/>) of the given size, which must lie inside the image.</summary>
    public Image Crop(int x, int y, int width, int height) => CropResize(x, y, width, height, width, height);

    /// <summary>The centred <paramref name="width"/> × <paramref name="height"/> region (offsets rounded down).</summary>
    public Image CenterCrop(int width, int height)
    {
        if (width > Width || height > Height)
            throw new ArgumentException($"cannot centre-crop {width}x{height} from a {Width}x{Height} image");
        return Crop((Width - width) / 2, (Height - height) / 2, width, height);
    }

    /// <summary>
    /// The region (x, y, width, height), inside the image, resized to <paramref name="outWidth"/> ×
    /// <paramref name="outHeight"/>; samples are taken from inside the region only.
    /// </summary>
    public Image CropResize(int x, int y, int width, int height, int outWidth, int outHeight,
        Interpolation interpolation = Interpolation.Bilinear)
    {
        if (width <= 0 || height <= 0 || x < 0 || y < 0 || x > Width - width || y > Height - height)
            throw new ArgumentException($"crop (x {x}, y {y}, {width}x{height}) is not inside the {Width}x{Height} image");
        CheckTargetSize(outWidth, outHeight);
        CheckInterp(interpolation);
        if (outWidth == width && outHeight == height) return CopyRegion(x, y, width, height);
        using var region = CopyRegion(x, y, width, height);
        return SkiaPixels.Draw(region, outWidth, outHeight, 0, new SKRect(0, 0, width, height), new SKRect(0, 0, outWidth, outHeight), interpolation);
    }

    private Image CopyRegion(int x, int y, int width, int height)
    {
        var src = Pixels;
        if (x == 0 && y == 0 && width == Width && height == Height) return Clone();
        int c = Channels, row = width * c;
        var dst = new byte[row * height];
        for (int r = 0; r < height; r++)
            Buffer.BlockCopy(src, ((y + r) * Width + x) * c, dst, r * row, row);
        return new Image(dst, width, height, c);
    }

    internal static void CheckTargetSize(int width, int height, string what = "target size")
    {
        if (width is <= 0 or > MaxSide || height is <= 0 or > MaxSide)
            throw new ArgumentException($"{what} {width}x{height} is invalid: width and height must be in [1, {MaxSide}]");
    }

    internal static void CheckInterp(Interpolation interpolation)
    {
        if (!Enum.IsDefined(interpolation)) throw new ArgumentOutOfRangeException(nameof(interpolation), interpolation, "unknown interpolation");
    }
}
