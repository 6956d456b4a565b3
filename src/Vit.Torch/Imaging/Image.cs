using System.Runtime.CompilerServices;
using Vit.Torch.Native;
using static Vit.Torch.Native.ImagingNative;

namespace Vit.Torch.Imaging;

/// <summary>
/// A decoded image in native memory: height × width × channels bytes (HWC), 1 (gray), 3 (RGB) or 4 (RGBA)
/// channels, as decoded by OpenCV in libvit_imaging.so. Images are immutable: every operation returns a new image that
/// the caller owns and disposes, so one image can be read from several threads at once.
/// </summary>
public sealed unsafe partial class Image : IDisposable
{
    /// <summary>The default pixel limit of <see cref="ImageDecodeOptions.MaxPixels"/>: 50 megapixels.</summary>
    public const long DefaultMaxPixels = 50_000_000;

    private readonly ImageHandle handle;

    static Image()
    {
        EnsureLoaded();
        // Loaders decode and augment several images in parallel, one per worker; OpenCV's own thread pool
        // inside each resize would only compete with them and with libtorch for the same cores. VIT_OPENCV_THREADS=n
        // sets n instead, VIT_OPENCV_THREADS=keep leaves OpenCV's setting alone.
        var env = Environment.GetEnvironmentVariable("VIT_OPENCV_THREADS");
        OpenCvThreads = env == "keep" ? null : int.TryParse(env, out var n) && n > 0 ? n : 1;
        if (OpenCvThreads is { } threads) Check(vit_image_set_threads(threads));
    }

    /// <summary>OpenCV's thread count as this library set it on first use of images (null: left alone).</summary>
    internal static int? OpenCvThreads { get; private set; }

    private Image(IntPtr raw)
    {
        handle = new ImageHandle(raw);
        Check(vit_image_info(handle, out var w, out var h, out var c));
        Width = w;
        Height = h;
        Channels = c;
    }

    /// <summary>Wraps a fresh native handle after checking the call's status.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Image Wrap(int status, IntPtr raw)
    {
        Check(status);
        return new Image(raw);
    }

    internal ImageHandle Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(handle.IsClosed, this);
            return handle;
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

    /// <summary>True once <see cref="Dispose"/> has released the native image.</summary>
    public bool IsDisposed => handle.IsClosed;

    /// <summary>Releases the native image now (idempotent).</summary>
    public void Dispose() => handle.Dispose();

    /// <summary>Number of native images alive in this process (for leak tests).</summary>
    public static long LiveCount
    {
        get
        {
            EnsureLoaded();
            return vit_image_live_count();
        }
    }

    /// <summary>
    /// Threads of OpenCV's internal pool used inside one resize or warp. 1 by default, because loaders
    /// parallelise over images instead; 0 restores OpenCV's default. Process-wide.
    /// </summary>
    public static void SetOpenCvThreads(int threads)
    {
        RuntimeHelpers.RunClassConstructor(typeof(Image).TypeHandle);
        Check(vit_image_set_threads(threads));
    }

    /// <inheritdoc />
    public override string ToString() => IsDisposed ? "Image(disposed)" : $"Image({Width}x{Height}, {Channels} channel(s))";

    // ------------------------------------------------------------------ decoding and creation

    /// <summary>
    /// Decodes a JPEG, PNG, BMP or WebP file. Gray, RGB and RGBA are kept as stored unless
    /// <see cref="ImageDecodeOptions.Channels"/> asks for 1 or 3; 16-bit samples become 8-bit; a JPEG's EXIF
    /// orientation is applied. Throws <see cref="ImageDecodeException"/> naming the file and the reason when the
    /// file is missing, unreadable, empty, truncated, not an image, or larger than the pixel limit (checked from
    /// the header, before any pixel memory is allocated).
    /// </summary>
    public static Image Decode(string path, ImageDecodeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        var o = options ?? ImageDecodeOptions.Default;
        o.Validate();
        RuntimeHelpers.RunClassConstructor(typeof(Image).TypeHandle);
        if (vit_image_decode_file(path, o.MaxPixels, o.Channels ?? 0, o.NativeFlags, out var raw) != 0)
            throw new ImageDecodeException(path, LastErrorText());
        return new Image(raw);
    }

    /// <summary>
    /// Decodes an encoded image held in memory, as <see cref="Decode(string, ImageDecodeOptions?)"/>.
    /// <paramref name="sourceName"/> (e.g. an archive entry) names the data in error messages.
    /// </summary>
    public static Image Decode(ReadOnlySpan<byte> bytes, ImageDecodeOptions? options = null, string? sourceName = null)
    {
        var o = options ?? ImageDecodeOptions.Default;
        o.Validate();
        RuntimeHelpers.RunClassConstructor(typeof(Image).TypeHandle);
        int status;
        IntPtr raw;
        fixed (byte* p = bytes) status = vit_image_decode_bytes(p, bytes.Length, o.MaxPixels, o.Channels ?? 0, o.NativeFlags, out raw);
        if (status != 0) throw new ImageDecodeException(sourceName, LastErrorText());
        return new Image(raw);
    }

    /// <summary>An image holding a copy of <paramref name="hwc"/>: rows top to bottom, RGB(A) interleaved.</summary>
    public static Image FromPixels(ReadOnlySpan<byte> hwc, int width, int height, int channels)
    {
        if (channels is not (1 or 3 or 4)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1, 3 or 4");
        if (width <= 0 || height <= 0) throw new ArgumentException($"image size {width}x{height} must be positive");
        if ((long)width * height * channels != hwc.Length)
            throw new ArgumentException($"{hwc.Length} bytes do not make a {width}x{height} image with {channels} channel(s) ({(long)width * height * channels} bytes)", nameof(hwc));
        RuntimeHelpers.RunClassConstructor(typeof(Image).TypeHandle);
        fixed (byte* p = hwc) return Wrap(vit_image_from_pixels(p, hwc.Length, width, height, channels, out var o), o);
    }

    /// <summary>An image whose every sample is <paramref name="value"/>.</summary>
    public static Image Filled(int width, int height, int channels, byte value)
    {
        if (channels is not (1 or 3 or 4)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1, 3 or 4");
        RuntimeHelpers.RunClassConstructor(typeof(Image).TypeHandle);
        return Wrap(vit_image_new(width, height, channels, value, out var o), o);
    }

    /// <summary>A new handle to the same pixels (cheap: images are immutable, so the memory is shared).</summary>
    public Image Clone() => Wrap(vit_image_flip(Handle, 0, 0, out var o), o);

    // ------------------------------------------------------------------ pixels

    /// <summary>A copy of the pixels, HWC: rows top to bottom, channels interleaved.</summary>
    public byte[] ToBytes()
    {
        var bytes = new byte[ByteCount];
        CopyTo(bytes);
        return bytes;
    }

    /// <summary>Copies the HWC pixels into <paramref name="destination"/>, which must hold exactly <see cref="ByteCount"/> bytes.</summary>
    public void CopyTo(Span<byte> destination)
    {
        if (destination.Length != ByteCount)
            throw new ArgumentException($"destination has {destination.Length} bytes, the image {ByteCount}", nameof(destination));
        fixed (byte* p = destination) Check(vit_image_copy_to(Handle, p, destination.Length));
    }

    /// <summary>
    /// Per-channel sums of v/255 and of (v/255)² over all pixels, for dataset statistics
    /// (<see cref="Normalization.FromData"/>).
    /// </summary>
    internal (double[] Sum, double[] SumSquares) ChannelSums()
    {
        var sum = new double[Channels];
        var sq = new double[Channels];
        fixed (double* s = sum)
        fixed (double* q = sq)
            Check(vit_image_channel_sums(Handle, s, q, Channels));
        return (sum, sq);
    }

    // ------------------------------------------------------------------ encoding

    /// <summary>PNG bytes (lossless; alpha kept).</summary>
    public byte[] EncodePng() => Encode(0, 0);

    /// <summary>JPEG bytes at <paramref name="quality"/> (1-100). An alpha channel is dropped.</summary>
    public byte[] EncodeJpeg(int quality = 95)
    {
        if (quality is < 1 or > 100) throw new ArgumentOutOfRangeException(nameof(quality), quality, "JPEG quality must be in [1, 100]");
        return Encode(1, quality);
    }

    /// <summary>BMP bytes (uncompressed). An alpha channel is dropped.</summary>
    public byte[] EncodeBmp() => Encode(2, 0);

    /// <summary>WebP bytes: lossy at <paramref name="quality"/> (1-100), or lossless.</summary>
    public byte[] EncodeWebP(int quality = 90, bool lossless = false)
    {
        if (quality is < 1 or > 100) throw new ArgumentOutOfRangeException(nameof(quality), quality, "WebP quality must be in [1, 100]");
        return Encode(3, lossless ? 101 : quality);  // OpenCV: quality above 100 selects lossless
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

    private byte[] Encode(int format, int quality)
    {
        Check(vit_image_encode(Handle, format, quality, out var blob));
        try
        {
            Check(vit_blob_data(blob, out var data, out var size));
            return new ReadOnlySpan<byte>((void*)data, checked((int)size)).ToArray();
        }
        finally
        {
            vit_blob_free(blob);
        }
    }

    // ------------------------------------------------------------------ channels and size

    /// <summary>
    /// Converts to 1 channel (luma 0.299 R + 0.587 G + 0.114 B; alpha dropped) or 3 (gray replicated; alpha
    /// dropped). Returns a new handle to the same pixels when the count already matches.
    /// </summary>
    public Image ToChannels(int channels)
    {
        if (channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1 or 3");
        return Wrap(vit_image_to_channels(Handle, channels, out var o), o);
    }

    /// <summary>
    /// Resizes to <paramref name="width"/> × <paramref name="height"/>: <see cref="ResizeMode.Stretch"/> ignores
    /// the aspect ratio; <see cref="ResizeMode.Pad"/> fits the whole image inside, centred, and fills the borders
    /// with <paramref name="padValue"/>; <see cref="ResizeMode.Crop"/> scales the shorter side to fit and keeps the
    /// centre.
    /// </summary>
    public Image Resize(int width, int height, ResizeMode mode = ResizeMode.Stretch,
        Interpolation interpolation = Interpolation.Bilinear, byte padValue = 0)
    {
        CheckTargetSize(width, height);
        if (!Enum.IsDefined(mode)) throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown resize mode");
        return Wrap(vit_image_resize(Handle, width, height, (int)mode, CheckInterp(interpolation), padValue, out var o), o);
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

    /// <summary>The region (x, y, width, height), inside the image, resized to <paramref name="outWidth"/> × <paramref name="outHeight"/>.</summary>
    public Image CropResize(int x, int y, int width, int height, int outWidth, int outHeight,
        Interpolation interpolation = Interpolation.Bilinear)
    {
        if (width <= 0 || height <= 0 || x < 0 || y < 0 || x > Width - width || y > Height - height)
            throw new ArgumentException($"crop (x {x}, y {y}, {width}x{height}) is not inside the {Width}x{Height} image");
        CheckTargetSize(outWidth, outHeight);
        return Wrap(vit_image_crop_resize(Handle, x, y, width, height, outWidth, outHeight, CheckInterp(interpolation), out var o), o);
    }

    internal static void CheckTargetSize(int width, int height)
    {
        const int max = 1 << 16;
        if (width is <= 0 or > max || height is <= 0 or > max)
            throw new ArgumentException($"target size {width}x{height} is invalid: width and height must be in [1, {max}]");
    }

    internal static int CheckInterp(Interpolation interpolation) =>
        Enum.IsDefined(interpolation) ? (int)interpolation
        : throw new ArgumentOutOfRangeException(nameof(interpolation), interpolation, "unknown interpolation");
}
