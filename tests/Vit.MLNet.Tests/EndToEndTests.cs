using System.Diagnostics;
using System.Globalization;
using Vit.MLNet;
using Vit.Torch;

namespace Vit.MLNet.Tests;

/// <summary>The program an ML.NET user writes, saved in one process and used in another.</summary>
[TestClass]
public sealed class EndToEndTests
{
    /// <summary>
    /// MapValueToKey → LoadImages → ResizeImages → VitEstimator → MapKeyToValue, fitted, evaluated by ML.NET's own
    /// evaluator on a test split and saved with ML.NET's Save; then a fresh process loads the file with ML.NET's Load and
    /// scores every test image with a PredictionEngine: the same predicted label and the same scores (1e-5) as Transform
    /// gave in the first process.
    /// </summary>
    [TestMethod]
    public void TheMLNetUsersProgram_ScoresTheSameInAFreshProcess()
    {
        var ml = new MLContext(seed: 1);
        var options = Fixtures.TinyOptions(epochs: 6);
        // Saved with the model. float32, so that Transform's batches and the engine's single rows agree within 1e-5 (bfloat16's
        // rounding depends on the batch's shape); the default, Auto, is compared engine to engine below.
        options.Precision = Precision.Float32;
        var data = ml.Data.LoadFromImageFolder(Fixtures.Folder);
        var split = ml.Data.TrainTestSplit(data, testFraction: 0.2, seed: 1);
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath"))
            .Append(ml.Transforms.ResizeImages("Image", 16, 16))
            .Append(new VitEstimator(ml, options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        using var model = pipeline.Fit(split.TrainSet);
        var vit = VitPipeline.Find(model, "test");

        var scored = model.Transform(split.TestSet);
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        var paths = Rows.Texts(split.TestSet, "ImagePath");
        var labels = Rows.Texts(split.TestSet, "Label");
        Assert.IsGreaterThan(5, paths.Count, "a test split of about 12 rows");
        Assert.AreEqual(paths.Count, (int)metrics.ConfusionMatrix.Counts.Sum(r => r.Sum()), "every test row is evaluated");
        Assert.AreEqual(3, metrics.ConfusionMatrix.NumberOfClasses);
        Assert.IsGreaterThanOrEqualTo(0.9, metrics.MicroAccuracy, $"accuracy {metrics.MicroAccuracy}");

        var predicted = Rows.Texts(scored, "PredictedLabel");
        var scores = Rows.Vectors(scored);
        Assert.HasCount(labels.Count, predicted);
        Assert.AreEqual(metrics.MicroAccuracy, predicted.Zip(labels).Count(p => p.First == p.Second) / (double)labels.Count, 1e-12,
            "ML.NET's accuracy is that of the PredictedLabel column");

        var dir = Directory.CreateTempSubdirectory("vit-e2e-").FullName;
        var modelPath = Path.Combine(dir, "model.zip");
        ml.Model.Save(model, data.Schema, modelPath);
        // Under Precision.Auto (bfloat16 on a CPU with it) the first process's engine answers, row by row, for the second's.
        vit.Precision = Precision.Auto;
        var engine = ml.Model.CreatePredictionEngine<LabeledInput, ImagePrediction>(model);
        var auto = paths.Zip(labels, (p, l) => engine.Predict(new LabeledInput { ImagePath = p, Label = l }).Score).ToList();
        var inputs = Path.Combine(dir, "inputs.tsv");
        File.WriteAllLines(inputs, paths.Zip(labels, (p, l) => $"{p}\t{l}"));
        var output = Path.Combine(dir, "child.tsv");

        using (var child = Process.Start(Program.Child("score-saved", modelPath, inputs, output))!)
        {
            var stdout = child.StandardOutput.ReadToEndAsync();
            var stderr = child.StandardError.ReadToEndAsync();
            if (!child.WaitForExit(TimeSpan.FromMinutes(3)))
            {
                child.Kill(entireProcessTree: true);
                Assert.Fail("the child process did not finish within 3 minutes");
            }
            Assert.AreEqual(0, child.ExitCode, $"child failed:\n{stdout.Result}\n{stderr.Result}");
            Assert.AreNotEqual(Environment.ProcessId.ToString(CultureInfo.InvariantCulture), stdout.Result.Trim(), "a fresh process");
        }
        var lines = File.ReadAllLines(output);
        Assert.HasCount(paths.Count, lines);
        for (int i = 0; i < lines.Length; i++)
        {
            var fields = lines[i].Split('\t');
            Assert.AreEqual(predicted[i], fields[0], $"row {i} ({paths[i]}): predicted label");
            var childScores = Floats(fields[1]);
            Assert.HasCount(3, childScores);
            for (int k = 0; k < 3; k++)
                Assert.AreEqual(scores[i][k], childScores[k], 1e-5, $"row {i} ({paths[i]}), class {k}");
            var childAuto = Floats(fields[2]);
            for (int k = 0; k < 3; k++)
                Assert.AreEqual(auto[i][k], childAuto[k], 1e-5, $"row {i} ({paths[i]}), class {k}, Precision.Auto");
        }
        Directory.Delete(dir, recursive: true);
    }

    private static float[] Floats(string text) => text.Split(' ').Select(s => float.Parse(s, CultureInfo.InvariantCulture)).ToArray();

    private static string Text(float[] values) => string.Join(' ', values.Select(s => s.ToString("R", CultureInfo.InvariantCulture)));

    /// <summary>The child's side: ML.NET's Load of the model file, a PredictionEngine over it, one prediction per input row
    /// (path and label, as the pipeline's first step, MapValueToKey("Label"), reads a label too).</summary>
    internal static void ScoreSaved(string modelPath, string inputsPath, string outputPath)
    {
        Console.Out.WriteLine(Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        var ml = new MLContext();
        var model = ml.Model.Load(modelPath, out _);
        try
        {
            var engine = ml.Model.CreatePredictionEngine<LabeledInput, ImagePrediction>(model);
            var vit = VitPipeline.Find(model, "child");
            if (vit.Precision != Precision.Float32) throw new InvalidDataException($"the model was saved to score in Float32, it loads as {vit.Precision}");
            var lines = File.ReadAllLines(inputsPath).Select(line =>
            {
                var fields = line.Split('\t');
                var input = new LabeledInput { ImagePath = fields[0], Label = fields[1] };
                vit.Precision = Precision.Float32;  // as saved
                var p = engine.Predict(input);
                vit.Precision = Precision.Auto;
                var auto = engine.Predict(input);
                return $"{p.PredictedLabel}\t{Text(p.Score)}\t{Text(auto.Score)}";
            }).ToList();
            File.WriteAllLines(outputPath, lines);
        }
        finally
        {
            (model as IDisposable)?.Dispose();
        }
    }
}
