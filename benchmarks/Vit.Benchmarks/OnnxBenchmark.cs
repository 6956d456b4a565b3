using System.Diagnostics;
using System.Globalization;
using Vit.Torch;
using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

/// <summary>
/// Batch scoring of ViT-Ti/16 at 224 on ready tensors (no decoding): our forward without autograd, and the same model
/// exported to ONNX (<see cref="OnnxExport"/>) for eng/bench.sh to time in ONNX Runtime next to it (the
/// <c>onnxruntime</c> subcommand, <see cref="OnnxRuntimeBenchmark"/>). Untrained weights (speed does not depend on them).
/// </summary>
internal static class OnnxBenchmark
{
    public static int Run(Func<string, int, int> get, string output)
    {
        int batch = get("batch", 64), seconds = get("seconds", 10);
        Torch.ManualSeed(0);
        using var model = new VisionTransformer(VitConfig.TinyPatch16);
        model.Eval();
        model.ExportOnnx(output, VitPreprocessing.Default(224, 3));
        using var x = Tensor.Rand([batch, 3, 224, 224]).DetachFromScope();
        using var noGrad = Torch.NoGrad();
        using (var warm = TensorScope.Begin()) model.Forward(x);
        int runs = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds || runs < 2)
        {
            using var scope = TensorScope.Begin();
            model.Forward(x).ToArray<float>();
            runs++;
        }
        var t = Torch.Threads;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"vit-dotnet forward ViT-Ti/16@224 batch {batch} images/s {runs * batch / clock.Elapsed.TotalSeconds:F1} (threads {t}, {runs} runs); " +
            $"ONNX file {new FileInfo(output).Length / 1e6:F1} MB"));
        return 0;
    }
}
