using Microsoft.ML;
using Microsoft.ML.Data;
using Vit.Torch;
using Vit.Torch.Imaging;
using Vit.Torch.Reports;

namespace Vit.MLNet;

/// <summary>The pictures of a fitted model: learning curves, confusion matrix (ML.NET's evaluator), attention rollout.</summary>
internal static class Pictures
{
    public static IReadOnlyList<string> Write(VitTransformer vit, string folder, IDataView? data, string labelColumnName, int samples)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        Directory.CreateDirectory(folder);
        var written = new List<string>();
        if (vit.History is { Result.Epochs.Count: > 0 } h)
        {
            written.Add(Path.Combine(folder, "curves.png"));
            TrainingCurves.Write(written[^1], h.Result.Epochs);
        }
        if (data is null) return written;

        var ml = new MLContext();
        var scored = vit.Transform(data);
        var metrics = ml.MulticlassClassification.EvaluateVit(vit, data, labelColumnName);
        written.Add(Path.Combine(folder, "confusion.png"));
        var counts = metrics.ConfusionMatrix.Counts.Select(r => (IReadOnlyList<long>)r.Select(c => (long)Math.Round(c)).ToList()).ToList();
        ConfusionMatrixPicture.Write(written[^1], vit.Labels, counts);

        var rows = new List<(Image Image, string Truth, string Predicted)>();
        try
        {
            var image = scored.Schema[vit.Columns.Image];
            var label = scored.Schema[labelColumnName];
            var predicted = scored.Schema[vit.Columns.PredictedLabel];
            using (var cursor = scored.GetRowCursor([image, label, predicted]))
            {
                var readImage = ImageColumns.ImageReader(cursor, image);
                var readTruth = LabelColumns.TextReader(cursor, label);
                var readPredicted = LabelColumns.TextReader(cursor, predicted);
                while (rows.Count < samples && cursor.MoveNext())
                {
                    using var decoded = readImage();
                    rows.Add((ImageColumns.ToModelInput(decoded, vit.Preprocessing), readTruth(), readPredicted()));
                }
            }
            if (rows.Count == 0) return written;
            using var scope = TensorScope.Begin();
            var batch = ImageBatch.ToTensor(rows.Select(r => r.Image).ToList(), vit.Preprocessing.Normalization);
            var rollout = AttentionRollout.Compute(vit.Model, vit.Device.Type == DeviceType.Cpu ? batch : batch.To(vit.Device));
            written.Add(Path.Combine(folder, "attention.svg"));
            AttentionRollout.WriteOverlays(written[^1], rows.Select(r => r.Image).ToList(), rollout.To(DType.Float32, Device.Cpu),
                rows.Select(r => r.Predicted).ToList(), rows.Select(r => r.Truth).ToList());
        }
        finally
        {
            foreach (var r in rows) r.Image.Dispose();
        }
        return written;
    }
}
