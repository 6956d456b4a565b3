using Engine = Vit.Torch.Torch;
using Vit.Torch;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.MLNet;

/// <summary>What a scorer returns per image.</summary>
internal enum ScorerOutput
{
    /// <summary>The softmax of the class logits, in class order.</summary>
    Probabilities,
    /// <summary>The pooled, normalised representation the head reads (<see cref="VisionTransformer.ForwardFeatures"/>).</summary>
    Features,
}

/// <summary>
/// Runs a ViT on images already at its input size (HWC bytes, as <see cref="ImageColumns.PixelReader"/> writes them):
/// one forward pass per call, with no gradient, at the step's precision on its device. Safe to call from several threads
/// at once: the model is only read, and each call has its own tensors.
/// </summary>
internal sealed class VitScorer(VisionTransformer model, VitPreprocessing preprocessing, Device device, Precision precision, ScorerOutput output)
{
    /// <summary>The network.</summary>
    public VisionTransformer Model { get; } = model;

    /// <summary>Input size, channels and normalisation.</summary>
    public VitPreprocessing Preprocessing { get; } = preprocessing;

    /// <summary>Where the model runs.</summary>
    public Device Device { get; } = device;

    /// <summary>Arithmetic of the forward pass.</summary>
    public Precision Precision { get; set; } = precision;

    /// <summary>What each image gives.</summary>
    public ScorerOutput Output { get; } = output;

    /// <summary>Bytes of one input image.</summary>
    public int PixelBytes => Preprocessing.ImageSize * Preprocessing.ImageSize * Preprocessing.Channels;

    /// <summary>Floats per image in the result: classes, or the embedding width.</summary>
    public int Width => Output == ScorerOutput.Probabilities ? Model.Config.NumClasses : Model.Config.Dim;

    /// <summary>Scores <paramref name="count"/> images whose bytes lie one after another in <paramref name="pixels"/>;
    /// returns <paramref name="count"/> × <see cref="Width"/> floats, row-major.</summary>
    public float[] Score(ReadOnlySpan<byte> pixels, int count)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "nothing to score");
        if (pixels.Length < (long)count * PixelBytes)
            throw new ArgumentException($"{pixels.Length} bytes hold fewer than {count} images of {PixelBytes}", nameof(pixels));
        var p = Preprocessing;
        var images = new Image[count];
        try
        {
            for (int i = 0; i < count; i++) images[i] = Image.FromPixels(pixels.Slice(i * PixelBytes, PixelBytes), p.ImageSize, p.ImageSize, p.Channels);
            return Score(images);
        }
        finally
        {
            foreach (var image in images) image?.Dispose();
        }
    }

    /// <summary>Scores images already at the input size and channels.</summary>
    public float[] Score(IReadOnlyList<Image> images)
    {
        using var scope = TensorScope.Begin();
        using var inference = Engine.InferenceMode();
        var batch = ImageBatch.ToTensor(images, Preprocessing.Normalization);
        var input = Device.Type == DeviceType.Cpu ? batch : batch.To(Device);
        Tensor result;
        using (MixedPrecision.Autocast(Precision, Device))
            result = Output == ScorerOutput.Probabilities ? Model.Forward(input) : Model.ForwardFeatures(input);
        result = result.To(DType.Float32);
        if (Output == ScorerOutput.Probabilities) result = F.Softmax(result, 1);
        return result.To(DType.Float32, Vit.Torch.Device.Cpu).ToArray<float>();  // (B, Width)
    }
}
