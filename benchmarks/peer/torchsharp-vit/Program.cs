// The plain TorchSharp ViT a .NET user would write (Model.cs), timed the way eng/bench.sh times ours
// (benchmarks/Vit.Benchmarks) and PyTorch's (benchmarks/peer/train_step.py, score.py): ViT-Ti/16 at 224 on random
// ready tensors, float32 or bfloat16 (casts in each linear and the patch convolution; see Model.cs).
//
//   dotnet build -c Release benchmarks/peer/torchsharp-vit
//   dotnet benchmarks/peer/torchsharp-vit/bin/Release/net10.0/torchsharp-vit.dll train-step --batch 32 --steps 5 --precision bfloat16
//   dotnet benchmarks/peer/torchsharp-vit/bin/Release/net10.0/torchsharp-vit.dll score --batch 64 --runs 4 --precision bfloat16
//
// train-step: forward, cross-entropy with label smoothing 0.1, backward, clip_grad_norm_ 1.0, AdamW (decay 0.05 on
// matrices but the position embedding, as the PyTorch peer), one DisposeScope per step. score: eval mode, forward and
// softmax under inference_mode, copied to a float[]. Prints one line, images/s over the timed steps (after --warmup).
using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using TorchSharpVit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

const string Usage =
    "usage: torchsharp-vit train-step [--batch 64 --warmup 3 --steps 10 --precision float32|bfloat16 --threads N]\n" +
    "       torchsharp-vit score [--batch 64 --warmup 2 --runs 4 --precision float32|bfloat16 --threads N]\n" +
    "example: torchsharp-vit train-step --batch 32 --steps 5 --precision bfloat16";

if (args.Length == 0 || args[0] is not ("train-step" or "score") || args.Length % 2 == 0)
    return Fail(args.Length > 0 && args[0] is "--help" or "-h" ? null : "expected train-step or score, then --name value pairs");
var training = args[0] == "train-step";
var known = training ? new[] { "batch", "warmup", "steps", "precision", "threads" } : ["batch", "warmup", "runs", "precision", "threads"];
var opts = new Dictionary<string, string>();
for (int i = 1; i < args.Length; i += 2)
{
    var name = args[i].StartsWith("--", StringComparison.Ordinal) ? args[i][2..] : "";
    if (!known.Contains(name)) return Fail($"unknown option '{args[i]}' for {args[0]}");
    opts[name] = args[i + 1];
}
int batch = Get("batch", 64), warmup = Get("warmup", training ? 3 : 2), timed = Get(training ? "steps" : "runs", training ? 10 : 4);
int threads = Get("threads", Environment.ProcessorCount);
var precision = opts.GetValueOrDefault("precision", "float32");
ScalarType compute;
if (precision == "float32") compute = ScalarType.Float32;
else if (precision == "bfloat16") compute = ScalarType.BFloat16;
else return Fail($"precision '{precision}' is not float32 or bfloat16");
if (batch < 1 || warmup < 0 || timed < 1 || threads < 1) return Fail("batch, steps/runs and threads must be >= 1, warmup >= 0");

torch.set_num_threads(threads);
torch.manual_seed(0);
using var model = new VisionTransformer(compute);
using var images = randn(batch, 3, 224, 224);                           // (B, 3, 224, 224)
using var labels = arange(batch, ScalarType.Int64).remainder(1000);    // label i % 1000

double seconds = training ? TrainSteps() : ScoreRuns();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"peer-torchsharp {args[0]} images/s {batch * timed / seconds:F1} (threads {torch.get_num_threads()}, batch {batch}, " +
    $"{(training ? "steps" : "runs")} {timed}, {precision}, ViT-Ti/16@224, TorchSharp-cpu 0.107.0, {CpuModel()})"));
return 0;

double TrainSteps()
{
    model.train();
    var parameters = model.named_parameters().ToList();
    static bool Decays((string name, TorchSharp.Modules.Parameter parameter) p) => p.parameter.dim() > 1 && p.name != "pos_embed";
    using var optimizer = torch.optim.AdamW(
    [
        new TorchSharp.Modules.AdamW.ParamGroup(parameters.Where(Decays).Select(p => p.parameter), weight_decay: 0.05),
        new TorchSharp.Modules.AdamW.ParamGroup(parameters.Where(p => !Decays(p)).Select(p => p.parameter), weight_decay: 0.0),
    ], lr: 1e-3);
    var clock = new Stopwatch();
    for (int s = 0; s < warmup + timed; s++)
    {
        if (s == warmup) clock.Start();
        using var scope = NewDisposeScope();
        optimizer.zero_grad();
        var loss = F.cross_entropy(model.call(images), labels, label_smoothing: 0.1);
        loss.backward();
        nn.utils.clip_grad_norm_(model.parameters(), 1.0);
        optimizer.step();
        _ = loss.item<float>();
    }
    return clock.Elapsed.TotalSeconds;
}

double ScoreRuns()
{
    model.eval();
    using var inference = torch.inference_mode();
    var clock = new Stopwatch();
    for (int r = 0; r < warmup + timed; r++)
    {
        if (r == warmup) clock.Start();
        using var scope = NewDisposeScope();
        float[] probabilities = F.softmax(model.call(images), -1).data<float>().ToArray();  // (B, 1000) on the CPU
        GC.KeepAlive(probabilities);
    }
    return clock.Elapsed.TotalSeconds;
}

int Get(string name, int fallback) =>
    opts.TryGetValue(name, out var v) ? int.Parse(v, NumberStyles.Integer, CultureInfo.InvariantCulture) : fallback;

static int Fail(string? problem)
{
    if (problem is null) { Console.WriteLine(Usage); return 0; }
    Console.Error.WriteLine($"torchsharp-vit: {problem}\n{Usage}");
    return 2;
}

static string CpuModel()
{
    try
    {
        var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
        return line is null ? "CPU unknown" : line[(line.IndexOf(':') + 1)..].Trim();
    }
    catch (IOException) { return "CPU unknown"; }
}
