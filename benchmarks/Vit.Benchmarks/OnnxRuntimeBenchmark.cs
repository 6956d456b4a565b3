using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;

/// <summary>
/// Batch scoring of an ONNX file (the one <c>onnx --out</c> writes) in ONNX Runtime, Microsoft.ML.OnnxRuntime on the
/// CPU: intra-op threads as given, one inter-op thread, every graph optimization; uniform random input in [0, 1) of
/// the model's input shape with the batch as its dynamic dimension; warm-up runs, then runs for at least the given
/// seconds (and at least two). eng/bench.sh runs it in its own process, apart from our forward, so that neither
/// runtime's thread pool competes with the other's.
/// </summary>
internal static class OnnxRuntimeBenchmark
{
    public static int Run(Func<string, int, int> get, string model)
    {
        int batch = get("batch", 64), seconds = get("seconds", 10), threads = get("threads", Environment.ProcessorCount), warmup = get("warmup", 1);
        using var options = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            IntraOpNumThreads = threads,
            // Only parallel execution mode uses inter-op threads; one, so that the count above is all there is.
            InterOpNumThreads = 1,
        };
        using var session = new InferenceSession(model, options);
        var input = session.InputNames[0];
        // The export's input is [N, C, H, W] with N symbolic (-1 here): the batch goes there.
        var dims = session.InputMetadata[input].Dimensions.Select(d => d < 0 ? (long)batch : d).ToArray();
        var rng = new Random(0);
        var data = new float[dims.Aggregate(1L, (a, b) => a * b)];
        for (int i = 0; i < data.Length; i++) data[i] = rng.NextSingle();
        using var tensor = OrtValue.CreateTensorValueFromMemory(data, dims);
        using var runOptions = new RunOptions();
        string[] inputs = [input];
        OrtValue[] values = [tensor];
        var outputs = session.OutputNames;

        for (int i = 0; i < warmup; i++) Score();
        int runs = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds || runs < 2)
        {
            Score();
            runs++;
        }
        var elapsed = clock.Elapsed.TotalSeconds;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"onnxruntime forward {Path.GetFileName(model)} [{string.Join(", ", dims)}] images/s {runs * batch / elapsed:F1} " +
            $"(ONNX Runtime {OrtEnv.Instance().GetVersionString()}, intra-op threads {threads}, " +
            $"{runs} runs after {warmup} warm-up)"));
        return 0;

        // One batch: every output computed and handed back (then freed), as a caller scoring images would get them.
        void Score()
        {
            using var results = session.Run(runOptions, inputs, values, outputs);
        }
    }
}
