// Measures training-step throughput (images/s) of a ViT on random data: forward, cross-entropy, backward,
// gradient clipping, AdamW. The same measurement is made by benchmarks/peer/train_step.py in PyTorch eager on
// the same machine; eng/bench.sh runs both side by side and prints the ratio.
//
//   dotnet run -c Release --project benchmarks/Vit.Benchmarks -- train-step --image 28 --channels 1 --patch 4 \
//       --dim 96 --depth 6 --heads 4 --mlp 192 --classes 10 --batch 128 --threads 2
using System.Diagnostics;
using System.Globalization;
using Vit.Torch;
using Vit.Torch.Model;
using Vit.Torch.Training;

var opts = new Dictionary<string, string>();
if (args.Length == 0 || args[0] is not ("train-step" or "score" or "fit" or "loader" or "predict" or "save-routes" or "onnx" or "onnxruntime" or "dist-train"))
{
    Console.Error.WriteLine("usage: Vit.Benchmarks train-step [--image N --channels N --patch N --dim N --depth N --heads N --mlp N " +
                            "--classes N --batch N --threads N --warmup N --steps N]\n" +
                            "       Vit.Benchmarks loader [--images N --source-size N --size N --batch N --workers N --epochs N --preset none|light|standard]\n" +
                            "       Vit.Benchmarks score [sizes as train-step, --batch N --runs N --precision float32|bfloat16]\n" +
                            "       Vit.Benchmarks fit [--images N --batch N --epochs N --precision float32|bfloat16 --dir DIR]\n" +
                            "       Vit.Benchmarks predict [--requests N --images N --batch N --precision float32|bfloat16]\n" +
                            "       Vit.Benchmarks save-routes [--images N --requests N --precision float32|bfloat16]\n" +
                            "       Vit.Benchmarks onnx --out model.onnx [--batch N --seconds N]\n" +
                            "       Vit.Benchmarks onnxruntime --model model.onnx [--batch N --seconds N --threads N --warmup N]\n" +
                            "       Vit.Benchmarks dist-train [sizes as train-step, --world N --threads N --batch N --warmup N --steps N --precision P]");
    return 2;
}
for (int i = 1; i + 1 < args.Length; i += 2) opts[args[i].TrimStart('-')] = args[i + 1];
int Get(string k, int d) => opts.TryGetValue(k, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : d;
if (args[0] == "loader") return LoaderBenchmark.Run(Get, opts.GetValueOrDefault("preset", "standard"));
var precision = Enum.Parse<Precision>(opts.GetValueOrDefault("precision", "Float32"), ignoreCase: true);
if (args[0] == "predict") return PredictBenchmark.Run(Get, precision);
if (args[0] == "save-routes") return SaveRoutesBenchmark.Run(Get, precision);
if (args[0] == "fit") return FitBenchmark.Run(Get, precision, opts.GetValueOrDefault("dir"));
if (args[0] == "onnx") return OnnxBenchmark.Run(Get, opts.GetValueOrDefault("out", "vit-ti16.onnx"));
if (args[0] == "onnxruntime") return OnnxRuntimeBenchmark.Run(Get, opts.GetValueOrDefault("model", "vit-ti16.onnx"));

var cfg = new VitConfig
{
    ImageSize = Get("image", 224), Channels = Get("channels", 3), PatchSize = Get("patch", 16), Dim = Get("dim", 192),
    Depth = Get("depth", 12), Heads = Get("heads", 3), MlpDim = Get("mlp", 768), NumClasses = Get("classes", 1000),
}.Validate();
if (args[0] == "dist-train") return DistBenchmark.Run(args, Get, cfg, precision);
if (args[0] == "score") return ScoreBenchmark.Run(Get, cfg, precision);
int batch = Get("batch", 64), warmup = Get("warmup", 3), steps = Get("steps", 10);
Torch.SetThreads(Get("threads", Environment.ProcessorCount));
Torch.ManualSeed(0);
using var model = new VisionTransformer(cfg);
using var optimizer = new AdamW(model.NamedParameters(), 1e-3, 0.05);
using var x = Tensor.Randn([batch, cfg.Channels, cfg.ImageSize, cfg.ImageSize]).DetachFromScope();
using var y = Tensor.FromArray(Enumerable.Range(0, batch).Select(i => (long)(i % cfg.NumClasses)).ToArray(), batch).DetachFromScope();
var clock = new Stopwatch();
for (int s = 0; s < warmup + steps; s++)
{
    if (s == warmup) clock.Start();
    Step();
}
clock.Stop();
var t = Torch.Threads;
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"vit-dotnet train-step images/s {batch * steps / clock.Elapsed.TotalSeconds:F1} (threads {t}, batch {batch}, steps {steps}, {precision})"));
return 0;

// One training step: forward and loss under autocast, backward, clipping, AdamW; waits for the loss's value.
void Step()
{
    using var scope = TensorScope.Begin();
    Tensor loss;
    using (MixedPrecision.Autocast(precision, Device.Cpu)) loss = F.CrossEntropy(model.Forward(x), y, 0.1);
    loss.Backward();
    optimizer.ClipGradNorm(1.0);
    optimizer.Step();
    optimizer.ZeroGrad();
    _ = loss.Item();
}
