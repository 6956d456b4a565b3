using System.Diagnostics;
using OpenCvSharp;
using SkiaSharp;

// The loader's hot path with each library, one thread: decode a 224x224 JPEG, random-resized-crop to 224 (bilinear),
// flip, rotate 12 degrees (bilinear, fill 0), brightness x1.3, normalise to planar float. Then decoding alone.
// Each library does the work its own way (Skia: flip, rotation and brightness in one draw), as a port would.
int n = int.Parse(args.Length > 0 ? args[0] : "400");
var rng = new Random(1);
var jpegs = new List<byte[]>();
for (int i = 0; i < 16; i++)
{
    var px = new byte[224 * 224 * 3];
    for (int y = 0; y < 224; y++) for (int x = 0; x < 224; x++) for (int c = 0; c < 3; c++)
        px[(y * 224 + x) * 3 + c] = (byte)Math.Clamp((x + y * c + i * 10) % 256 + rng.Next(-20, 20), 0, 255);
    using var m = Mat.FromPixelData(224, 224, MatType.CV_8UC3, px);
    jpegs.Add(m.ImEncode(".jpg", new ImageEncodingParam(ImwriteFlags.JpegQuality, 90)));
}
var dst = new float[3 * 224 * 224];
Cv2.SetNumThreads(1);

unsafe double Ocv()
{
    var sw = Stopwatch.StartNew();
    var r = new Random(2);
    for (int k = 0; k < n; k++)
    {
        using var m = Cv2.ImDecode(jpegs[k % 16], ImreadModes.Color);
        using var rgb = new Mat(); Cv2.CvtColor(m, rgb, ColorConversionCodes.BGR2RGB);
        int cw = r.Next(100, 224), ch = r.Next(100, 224), cx = r.Next(0, 224 - cw), cy = r.Next(0, 224 - ch);
        using var roi = new Mat(rgb, new Rect(cx, cy, cw, ch));
        using var rs = new Mat(); Cv2.Resize(roi, rs, new OpenCvSharp.Size(224, 224), 0, 0, InterpolationFlags.Linear);
        using var fl = new Mat(); Cv2.Flip(rs, fl, FlipMode.Y);
        using var rot = Cv2.GetRotationMatrix2D(new Point2f(111.5f, 111.5f), 12, 1);
        using var wa = new Mat(); Cv2.WarpAffine(fl, wa, rot, new OpenCvSharp.Size(224, 224), InterpolationFlags.Linear, BorderTypes.Constant, Scalar.All(0));
        using var br = new Mat(); wa.ConvertTo(br, -1, 1.3, 0);
        Normalize((byte*)br.DataPointer, 3);
    }
    return n / sw.Elapsed.TotalSeconds;
}

unsafe void Normalize(byte* src, int stride)
{
    int plane = 224 * 224;
    for (int p = 0; p < plane; p++) { dst[p] = src[p * stride] / 255f; dst[plane + p] = src[p * stride + 1] / 255f; dst[2 * plane + p] = src[p * stride + 2] / 255f; }
}

unsafe double Skia()
{
    var sw = Stopwatch.StartNew();
    var r = new Random(2);
    var info = new SKImageInfo(224, 224, SKColorType.Rgba8888, SKAlphaType.Opaque);
    for (int k = 0; k < n; k++)
    {
        using var data = SKData.CreateCopy(jpegs[k % 16]);
        using var codec = SKCodec.Create(data);
        using var bmp = new SKBitmap(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        codec.GetPixels(bmp.Info, bmp.GetPixels());
        int cw = r.Next(100, 224), ch = r.Next(100, 224), cx = r.Next(0, 224 - cw), cy = r.Next(0, 224 - ch);
        using var sub = new SKBitmap(); bmp.ExtractSubset(sub, new SKRectI(cx, cy, cx + cw, cy + ch));
        using var rs = new SKBitmap(info);
        sub.PeekPixels().ScalePixels(rs.PeekPixels(), new SKSamplingOptions(SKFilterMode.Linear));
        // flip + rotate in one draw (as one affine), brightness via colour filter in the same draw
        using var outBmp = new SKBitmap(info);
        using (var canvas = new SKCanvas(outBmp))
        {
            canvas.Clear(SKColors.Black);
            canvas.Translate(111.5f + 0.5f, 111.5f + 0.5f); canvas.RotateDegrees(-12); canvas.Scale(-1, 1); canvas.Translate(-112f, -112f);
            using var img = SKImage.FromBitmap(rs);
            float b = 1.3f;
            using var paint = new SKPaint { ColorFilter = SKColorFilter.CreateColorMatrix(new float[] { b,0,0,0,0, 0,b,0,0,0, 0,0,b,0,0, 0,0,0,1,0 }) };
            canvas.DrawImage(img, 0, 0, new SKSamplingOptions(SKFilterMode.Linear), paint);
        }
        Normalize((byte*)outBmp.GetPixels(), 4);
    }
    return n / sw.Elapsed.TotalSeconds;
}

unsafe double SkiaDecodeOnly()
{
    var sw = Stopwatch.StartNew();
    for (int k = 0; k < n; k++)
    {
        using var data = SKData.CreateCopy(jpegs[k % 16]);
        using var codec = SKCodec.Create(data);
        using var bmp = new SKBitmap(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        var res = codec.GetPixels(bmp.Info, bmp.GetPixels()); if (res != SKCodecResult.Success) throw new Exception(res.ToString());
    }
    return n / sw.Elapsed.TotalSeconds;
}
double OcvDecodeOnly()
{
    var sw = Stopwatch.StartNew();
    for (int k = 0; k < n; k++) { using var m = Cv2.ImDecode(jpegs[k % 16], ImreadModes.Color); }
    return n / sw.Elapsed.TotalSeconds;
}
Ocv(); Skia();
for (int round = 0; round < 3; round++)
    Console.WriteLine($"round {round}: opencvsharp {Ocv():F0}/s  skiasharp {Skia():F0}/s   decode only: opencv {OcvDecodeOnly():F0}/s skia {SkiaDecodeOnly():F0}/s");
