using Microsoft.ML;
using Vit.MLNet;
using Vit.Torch.Data;
using Vit.Torch.Imaging;

/// <summary>
/// Fashion-MNIST (Debian's dataset-fashion-mnist) written out as PNG files in &lt;root&gt;/&lt;split&gt;/&lt;class&gt;/, as a
/// user's photos would be, and read back as rows of (ImagePath, Label) for the examples' pipelines.
/// </summary>
internal static class FashionMnistFiles
{
    /// <summary>The class name used as a label and folder name ('/' is not allowed in a folder name).</summary>
    public static string ClassName(long label) => FashionMnist.ClassNames[(int)label].Replace('/', '-');

    /// <summary>Rows of the classes <paramref name="from"/>..<paramref name="to"/>, at most <paramref name="perClass"/> each.</summary>
    public static IDataView Rows(MLContext ml, InMemoryDataset data, string root, string split, int from, int to, int perClass) =>
        ml.Data.LoadFromEnumerable(Enumerable.Range(0, data.Count).Where(i => data.Label(i) >= from && data.Label(i) <= to)
            .GroupBy(i => data.Label(i)).SelectMany(g => g.Take(perClass))
            .Select(i => new Row { ImagePath = WritePng(data, i, Path.Combine(root, split)), Label = ClassName(data.Label(i)) }).ToList());

    private static string WritePng(InMemoryDataset d, int i, string root)
    {
        var dir = Directory.CreateDirectory(Path.Combine(root, ClassName(d.Label(i)))).FullName;
        var path = Path.Combine(dir, $"{i:D5}.png");
        if (File.Exists(path)) return path;
        var px = new byte[28 * 28];
        var src = d.Image(i);
        for (int k = 0; k < px.Length; k++) px[k] = (byte)Math.Clamp(MathF.Round((src[k] * FashionMnist.Std + FashionMnist.Mean) * 255f), 0, 255);
        using var img = Image.FromPixels(px, 28, 28, 1);
        File.WriteAllBytes(path, img.EncodePng());
        return path;
    }

    /// <summary>A row of an image folder: the file and its class.</summary>
    public sealed class Row
    {
        public string ImagePath { get; set; } = "";

        public string Label { get; set; } = "";
    }
}
