using Vit.MLNet;

namespace Vit.MLNet.Tests;

/// <summary>Transform is lazy (nothing is read or scored until a cursor asks for an output column), gives every row its
/// own scores in row order across batches, and under shuffled cursors too.</summary>
[TestClass]
public sealed class ScoringTests
{
    private static readonly Lazy<TransformerChain<Microsoft.ML.Transforms.KeyToValueMappingTransformer>> model = new(() =>
    {
        var ml = new MLContext(seed: 14);
        var options = Fixtures.TinyOptions(epochs: 2);
        // float32: its results do not depend on the batch's shape beyond rounding of 1e-6; bfloat16's (Precision.Auto on a
        // CPU with native bfloat16, as this one may be) do, by more than the 1e-5 these tests hold Transform to.
        options.Precision = global::Vit.Torch.Precision.Float32;
        return Fixtures.Pipeline(ml, options).Fit(ml.Data.LoadFromImageFolder(Fixtures.Folder));
    });

    private static VitTransformer Vit => VitPipeline.Find(model.Value, "test");

    /// <summary>Each row's scores one at a time through a PredictionEngine (not disposed: it would dispose the shared model).</summary>
    private static List<float[]> OneByOne(MLContext ml, IEnumerable<string> files)
    {
        var engine = ml.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(model.Value);
        return files.Select(f => engine.Predict(new ImageInput { ImagePath = f }).Score).ToList();
    }

    /// <summary>150 rows (the 60 images in a shuffled order, repeated), more than two batches of 64 (and many of 7): each row
    /// gets the scores a PredictionEngine gives it alone, in row order.</summary>
    [TestMethod]
    public void TransformOverSeveralBatches_GivesEachRowItsOwnScores_InRowOrder()
    {
        var ml = new MLContext();
        var files = Rows.Files(Fixtures.Folder);
        var shuffle = new Random(3);
        var order = Enumerable.Range(0, files.Length).OrderBy(_ => shuffle.Next()).ToArray();
        var rows = Enumerable.Range(0, 150).Select(i => files[order[i % files.Length]]).ToList();
        var expected = OneByOne(ml, rows);
        var data = Rows.Labeled(ml, rows.Select(f => (f, "")));
        int original = Vit.ScoringBatchSize;
        try
        {
            foreach (int batch in new[] { 64, 7, 150 })
            {
                Vit.ScoringBatchSize = batch;
                var scores = Rows.Vectors(model.Value.Transform(data));
                Assert.HasCount(150, scores, $"batch {batch}");
                for (int i = 0; i < rows.Count; i++)
                    for (int k = 0; k < 3; k++)
                        Assert.AreEqual(expected[i][k], scores[i][k], 1e-5, $"batch {batch}, row {i} ({rows[i]}), class {k}");
            }
        }
        finally
        {
            Vit.ScoringBatchSize = original;
        }
        Assert.IsFalse(expected.All(s => s.SequenceEqual(expected[0])), "the images score differently");
    }

    /// <summary>A cursor that asks only for input columns does not score: a view whose image files are gone still gives
    /// its labels; asking for a score then fails on the missing file.</summary>
    [TestMethod]
    public void ACursorForTheLabelOnly_ReadsNoImage()
    {
        var ml = new MLContext();
        var dir = Directory.CreateTempSubdirectory("vit-gone-").FullName;
        var copies = Fixtures.Classes.Select(c =>
        {
            var copy = Path.Combine(dir, c + ".png");
            File.Copy(Rows.First(c), copy);
            return copy;
        }).ToList();
        var scored = model.Value.Transform(Rows.Labeled(ml, copies.Select((f, i) => (f, Fixtures.Classes[i]))));
        Assert.HasCount(3, Rows.Vectors(scored), "with the files there, the view scores");
        foreach (var f in copies) File.Delete(f);

        CollectionAssert.AreEqual(Fixtures.Classes, Rows.Texts(scored, "Label"), "the labels without the images");
        CollectionAssert.AreEqual(copies, Rows.Texts(scored, "ImagePath"));
        Assert.AreEqual(3L, Rows.Count(scored));
        var e = Assert.ThrowsExactly<FileNotFoundException>(() => Rows.Vectors(scored));
        StringAssert.Contains(e.Message, copies[0]);
        // Through MapKeyToValue, ML.NET reads our view on a worker thread of its own and wraps what it throws.
        var wrapped = Assert.Throws<Exception>(() => Rows.Texts(scored, "PredictedLabel"));
        var inner = wrapped;
        while (inner is not FileNotFoundException && inner.InnerException is not null) inner = inner.InnerException;
        Assert.IsInstanceOfType<FileNotFoundException>(inner, wrapped.ToString());
        StringAssert.Contains(inner.Message, copies[0]);
    }

    /// <summary>A shuffled cursor (a cached input can shuffle) gives each row the score of its own image.</summary>
    [TestMethod]
    public void AShuffledCursor_GivesEachRowItsOwnScore()
    {
        var ml = new MLContext();
        var files = Rows.Files(Fixtures.Folder);
        var expected = files.Zip(OneByOne(ml, files)).ToDictionary(p => p.First, p => p.Second);
        var data = ml.Data.Cache(Rows.Labeled(ml, files.Select(f => (f, ""))));
        Assert.IsTrue(data.CanShuffle);
        var scored = model.Value.Transform(data);
        Assert.IsTrue(scored.CanShuffle);
        foreach (int seed in new[] { 1, 2 })
        {
            var path = scored.Schema["ImagePath"];
            var score = scored.Schema["Score"];
            var seen = new List<string>();
            using var cursor = scored.GetRowCursor([path, score], new Random(seed));
            var getPath = cursor.GetGetter<ReadOnlyMemory<char>>(path);
            var getScore = cursor.GetGetter<VBuffer<float>>(score);
            ReadOnlyMemory<char> p = default;
            VBuffer<float> s = default;
            while (cursor.MoveNext())
            {
                getPath(ref p);
                getScore(ref s);
                var values = s.DenseValues().ToArray();
                var want = expected[p.ToString()];
                for (int k = 0; k < 3; k++) Assert.AreEqual(want[k], values[k], 1e-5, $"seed {seed}, {p}, class {k}");
                seen.Add(p.ToString());
            }
            CollectionAssert.AreEquivalent(files, seen, "every row once");
            CollectionAssert.AreNotEqual(files, seen, "the rows came shuffled");
        }
    }
}
