namespace Vit.MLNet.Tests;

/// <summary>Reading a data view's columns through its cursors, in row order, as ML.NET's consumers do.</summary>
internal static class Rows
{
    public static List<float[]> Vectors(IDataView view, string column = "Score")
    {
        var col = view.Schema[column];
        var result = new List<float[]>();
        using var cursor = view.GetRowCursor([col]);
        var get = cursor.GetGetter<VBuffer<float>>(col);
        VBuffer<float> value = default;
        while (cursor.MoveNext())
        {
            get(ref value);
            result.Add(value.DenseValues().ToArray());
        }
        return result;
    }

    public static List<string> Texts(IDataView view, string column)
    {
        var col = view.Schema[column];
        var result = new List<string>();
        using var cursor = view.GetRowCursor([col]);
        var get = cursor.GetGetter<ReadOnlyMemory<char>>(col);
        ReadOnlyMemory<char> value = default;
        while (cursor.MoveNext())
        {
            get(ref value);
            result.Add(value.ToString());
        }
        return result;
    }

    public static List<uint> Keys(IDataView view, string column)
    {
        var col = view.Schema[column];
        var result = new List<uint>();
        using var cursor = view.GetRowCursor([col]);
        var get = cursor.GetGetter<uint>(col);
        uint value = 0;
        while (cursor.MoveNext())
        {
            get(ref value);
            result.Add(value);
        }
        return result;
    }

    /// <summary>A vector annotation of a column (slot names, key values) as text.</summary>
    public static string[] Annotation(DataViewSchema.Column column, string kind)
    {
        VBuffer<ReadOnlyMemory<char>> values = default;
        column.Annotations.GetValue(kind, ref values);
        return values.DenseValues().Select(v => v.ToString()).ToArray();
    }

    public static long Count(IDataView view)
    {
        long n = 0;
        using var cursor = view.GetRowCursor([]);
        while (cursor.MoveNext()) n++;
        return n;
    }

    /// <summary>The fixture's image files, class by class, each class's files in ordinal order.</summary>
    public static string[] Files(string folder) =>
        Fixtures.Classes.SelectMany(c => Directory.GetFiles(Path.Combine(folder, c)).Order(StringComparer.Ordinal)).ToArray();

    /// <summary>The first file (ordinal order) of a class of the fixture folder.</summary>
    public static string First(string cls) => Directory.GetFiles(Path.Combine(Fixtures.Folder, cls)).Order(StringComparer.Ordinal).First();

    public static IDataView Labeled(MLContext ml, IEnumerable<(string Path, string Label)> rows) =>
        ml.Data.LoadFromEnumerable(rows.Select(r => new LabeledInput { ImagePath = r.Path, Label = r.Label }).ToList());

    /// <summary>Records the warnings ML.NET's log receives.</summary>
    public static System.Collections.Concurrent.ConcurrentQueue<string> Warnings(MLContext ml)
    {
        var warnings = new System.Collections.Concurrent.ConcurrentQueue<string>();
        ml.Log += (_, e) =>
        {
            if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) warnings.Enqueue(e.Message);
        };
        return warnings;
    }
}

/// <summary>What an estimator is given before fitting: ML.NET makes it with SchemaShape.Create, which is internal (its
/// EstimatorChain.Fit calls it, then GetOutputSchema of every step, before fitting any).</summary>
internal static class Shapes
{
    public static SchemaShape Of(DataViewSchema schema) =>
        (SchemaShape)typeof(SchemaShape).GetMethod("Create", System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic,
            [typeof(DataViewSchema)])!.Invoke(null, [schema])!;
}

/// <summary>A row with an image path and a text label (ML.NET's engines need every column the pipeline reads).</summary>
public sealed class LabeledInput
{
    public string ImagePath { get; set; } = "";

    public string Label { get; set; } = "";
}

internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
