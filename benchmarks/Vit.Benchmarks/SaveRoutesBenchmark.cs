using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Vit.MLNet;
using Vit.Torch;

/// <summary>
/// The two ways a fitted ViT pipeline can live in an ML.NET model file, measured side by side on ViT-Ti/16 at 224:
/// (1) ours: the VitTransformer saved through ML.NET's ICanSaveModel (weights inside the zip, our engine scores);
/// (2) ML.NET's ONNX scorer: LoadImages -> ResizeImages -> ExtractPixels(1/255) -> ApplyOnnxModel(our ONNX export), saved
/// by ML.NET with the ONNX bytes inside. Each file is loaded with ml.Model.Load into a fresh MLContext and measured:
/// single-image latency (PredictionEngine, JPEG path in), warm batch throughput (Transform over the folder), file size,
/// and the largest difference of the two routes' scores on the same images.
/// </summary>
internal static class SaveRoutesBenchmark
{
    public sealed class Input
    {
        public string ImagePath { get; set; } = "";
    }

    public sealed class Output
    {
        public float[] Score { get; set; } = [];
    }

    public static int Run(Func<string, int, int> get, Precision precision)
    {
        int count = get("images", 512), requests = get("requests", 100);
        var dir = Directory.CreateTempSubdirectory("vit-routes-").FullName;
        try
        {
            var files = BenchImages.Write(Path.Combine(dir, "images"), count, 256, classes: 4);
            var ml = new MLContext(seed: 1);
            var data = ml.Data.LoadFromImageFolder(Path.Combine(dir, "images"));
            var load = ml.Transforms.LoadImages("Image", null, "ImagePath")
                .Append(ml.Transforms.ResizeImages("Image", 224, 224, resizing: ImageResizingEstimator.ResizingKind.IsoCrop));
            // A ViT-Ti/16 as it would be after training (0 epochs: the measurement is of scoring, not of accuracy).
            using var trained = load.Append(new VitEstimator(ml, new VitEstimator.Options
            {
                Architecture = VitArchitecture.TinyPatch16, Epochs = 0, Precision = precision,
            })).Fit(data);
            var paths = ml.Data.LoadFromEnumerable(Array.Empty<Input>());

            string ours = Path.Combine(dir, "ours.zip");
            var scoring = new TransformerChain<ITransformer>(VitPipeline.Steps(trained).ToArray());
            ml.Model.Save(scoring, paths.Schema, ours);

            string onnx = Path.Combine(dir, "model.onnx"), viaOnnx = Path.Combine(dir, "onnx.zip");
            ml.Model.ExportVitToOnnx(trained, paths.Schema, onnx);
            var onnxPipeline = load
                .Append(ml.Transforms.ExtractPixels("pixel_values", "Image", scaleImage: 1f / 255))
                .Append(ml.Transforms.ApplyOnnxModel(["Score"], ["pixel_values"], onnx))
                .Fit(paths);
            ml.Model.Save(onnxPipeline, paths.Schema, viaOnnx);

            var (oursLatency, oursBatch, oursScores) = Measure(ours, files, requests);
            var (onnxLatency, onnxBatch, onnxScores) = Measure(viaOnnx, files, requests);
            double difference = oursScores.Zip(onnxScores, (a, b) => a.Zip(b, (x, y) => (double)Math.Abs(x - y)).Max()).Max();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"save-routes ViT-Ti/16@224 ({count} JPEGs 256x256, {MixedPrecision.Resolve(precision, Device.Cpu)} for ours): " +
                $"ours file {new FileInfo(ours).Length / 1e6:F1} MB, p50 {oursLatency:F1} ms, batch {oursBatch:F1} img/s; " +
                $"onnx file {new FileInfo(viaOnnx).Length / 1e6:F1} MB, p50 {onnxLatency:F1} ms, batch {onnxBatch:F1} img/s; " +
                $"largest score difference {difference:G3}"));
            return 0;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Loads a model file into a fresh context; single-image latency (median), warm batch throughput, and the scores.</summary>
    private static (double P50, double Batch, List<float[]> Scores) Measure(string path, List<string> files, int requests)
    {
        var ml = new MLContext();
        var model = ml.Model.Load(path, out _);
        using var _model = model as IDisposable;
        var engine = ml.Model.CreatePredictionEngine<Input, Output>(model);
        var times = Latency.Measure(5, requests, i => engine.Predict(new Input { ImagePath = files[i % files.Count] }));
        var view = ml.Data.LoadFromEnumerable(files.Select(f => new Input { ImagePath = f }));
        List<float[]> Score() => ml.Data.CreateEnumerable<Output>(model.Transform(view), reuseRowObject: false).Select(o => o.Score).ToList();
        Score();  // warm
        var clock = Stopwatch.StartNew();
        var scores = Score();
        return (Latency.Quantile(times, 0.5), files.Count / clock.Elapsed.TotalSeconds, scores);
    }
}
