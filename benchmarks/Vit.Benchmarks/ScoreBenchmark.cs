using System.Diagnostics;
using System.Globalization;
using Vit.Torch;
using Vit.Torch.Model;

/// <summary>
/// Batch scoring on ready tensors (no decoding): the model's forward and softmax, eval mode, in inference mode, at the
/// given precision, for the sizes of <c>train-step</c>. Its PyTorch peer is benchmarks/peer/score.py.
/// </summary>
internal static class ScoreBenchmark
{
    public static int Run(Func<string, int, int> get, VitConfig cfg, Precision precision)
    {
        int batch = get("batch", 64), warmup = get("warmup", 2), runs = get("runs", 4);
        Torch.ManualSeed(0);
        using var model = new VisionTransformer(cfg);
        model.Eval();
        using var x = Tensor.Randn([batch, cfg.Channels, cfg.ImageSize, cfg.ImageSize]).DetachFromScope();
        using var inference = Torch.InferenceMode();
        var clock = new Stopwatch();
        for (int i = 0; i < warmup + runs; i++)
        {
            if (i == warmup) clock.Start();
            Score();
        }
        clock.Stop();
        var t = Torch.Threads;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"vit-dotnet score images/s {runs * batch / clock.Elapsed.TotalSeconds:F1} (threads {t}, batch {batch}, runs {runs}, {precision})"));
        return 0;

        void Score()
        {
            using var scope = TensorScope.Begin();
            using (MixedPrecision.Autocast(precision, Device.Cpu)) F.Softmax(model.Forward(x).To(DType.Float32), -1).ToArray<float>();
        }
    }
}
