using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Vit.MLNet;
using Vit.Torch;
using Vit.Torch.Imaging;

/// <summary>
/// Serving figures for ViT-Ti/16 at 224 through the ML.NET-style API: single-image latency of
/// <see cref="PredictionEngine{TSrc,TDst}.Predict"/> (decode + resize + normalise + forward), p50 and p99, and batch
/// scoring throughput of <see cref="ITransformer.Transform"/>. The weights are untrained (speed does not depend on them).
/// </summary>
internal static class PredictBenchmark
{
    public sealed class Input
    {
        public string ImagePath { get; set; } = "";
        public string Label { get; set; } = "";
    }

    public sealed class Output
    {
        public uint PredictedLabel { get; set; }
        public float[] Score { get; set; } = [];
    }

    public static int Run(Func<string, int, int> get, Precision precision)
    {
        int requests = get("requests", 200), count = get("images", 512), batch = get("batch", 64);
        var dir = Directory.CreateTempSubdirectory("vit-predict-bench-").FullName;
        try
        {
            BenchImages.Write(dir, count, 256, classes: 3);
            var ml = new MLContext(seed: 1);
            var data = ml.Data.LoadFromImageFolder(dir);
            using var model = ml.Transforms.LoadImages("Image", null, "ImagePath")
                .Append(ml.Transforms.ResizeImages("Image", 224, 224, resizing: ImageResizingEstimator.ResizingKind.IsoCrop))
                .Append(new VitEstimator(ml, new VitEstimator.Options { Architecture = VitArchitecture.TinyPatch16, Epochs = 0, ScoringBatchSize = batch, Precision = precision }))
                .Fit(data);
            var files = Directory.GetFiles(dir, "*.jpg", SearchOption.AllDirectories);
            var engine = ml.Model.CreatePredictionEngine<Input, Output>(model);
            var times = Latency.Measure(10, requests, i => engine.Predict(new Input { ImagePath = files[i % files.Length] }));
            double P(double q) => Latency.Quantile(times, q);
            // Batch scoring through the pipeline (LoadImages -> ResizeImages -> ViT over the folder), warm: one pass first.
            int Score()
            {
                int n = 0;
                var view = model.Transform(data);
                using var cursor = view.GetRowCursor([view.Schema["Score"]]);
                var getScore = cursor.GetGetter<VBuffer<float>>(view.Schema["Score"]);
                VBuffer<float> value = default;
                while (cursor.MoveNext())
                {
                    getScore(ref value);
                    n++;
                }
                return n;
            }
            Score();
            var clock = Stopwatch.StartNew();
            int scored = Score();
            double ips = scored / clock.Elapsed.TotalSeconds;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"vit-dotnet predict ViT-Ti/16@224 single-image latency p50 {P(0.5):F1} ms p99 {P(0.99):F1} ms ({requests} requests); " +
                $"batch scoring through the pipeline, warm, images/s {ips:F1} (batch {batch}, {scored} JPEGs 256x256, {precision})"));
            return 0;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
