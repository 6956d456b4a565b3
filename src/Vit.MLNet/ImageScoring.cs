using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Vit.Torch.Training;

namespace Vit.MLNet;

/// <summary>A column a ViT step adds: its name, type and annotations, and how its value comes from the row's scorer output.</summary>
/// <param name="Name">The column's name.</param>
/// <param name="Type">Its type.</param>
/// <param name="Annotations">Its annotations (slot names, key values).</param>
/// <param name="MakeGetter">Makes the column's getter (a <c>ValueGetter&lt;T&gt;</c>) from a function that returns the current row's output vector.</param>
internal sealed record OutputColumn(string Name, DataViewType Type, DataViewSchema.Annotations Annotations, Func<Func<ReadOnlyMemory<float>>, Delegate> MakeGetter)
{
    /// <summary>A vector column holding the output vector as it is (the class probabilities, or the features).</summary>
    public static OutputColumn Vector(string name, int size, DataViewSchema.Annotations annotations) =>
        new(name, new VectorDataViewType(NumberDataViewType.Single, size), annotations, current => (ValueGetter<VBuffer<float>>)((ref VBuffer<float> dst) =>
        {
            var values = current().Span;
            var editor = VBufferEditor.Create(ref dst, values.Length);
            values.CopyTo(editor.Values);
            dst = editor.Commit();
        }));

    /// <summary>A key column holding the class of the highest probability (key = class index + 1; ties: the first class).</summary>
    public static OutputColumn ArgMaxKey(string name, IReadOnlyList<string> classes) =>
        new(name, new KeyDataViewType(typeof(uint), classes.Count), LabelColumns.KeyValues(classes),
            current => (ValueGetter<uint>)((ref uint dst) => dst = (uint)Classification.ArgMax(current().Span) + 1));
}

/// <summary>
/// What a fitted ViT step reads and adds: the image column, the scorer, the output columns, and the rows per forward
/// pass. <see cref="ScoredDataView"/> applies it to data views and <see cref="ScoringRowMapper"/> to single rows
/// (prediction engines).
/// </summary>
internal sealed class ImageScoring(IHostEnvironment env, string imageColumn, VitScorer scorer, int batchSize, IReadOnlyList<OutputColumn> outputs)
{
    /// <summary>The environment (ML.NET's cursor machinery needs it).</summary>
    public IHostEnvironment Environment { get; } = env;

    /// <summary>The image column read.</summary>
    public string ImageColumn { get; } = imageColumn;

    /// <summary>The model run on each batch.</summary>
    public VitScorer Scorer { get; } = scorer;

    /// <summary>Images per forward pass.</summary>
    public int BatchSize { get; set; } = batchSize;

    /// <summary>The columns added, in order.</summary>
    public IReadOnlyList<OutputColumn> Outputs { get; } = outputs;

    /// <summary>The input schema with the output columns appended; throws naming the image column when it is missing or mistyped.</summary>
    public DataViewSchema OutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        ImageColumns.Check(inputSchema, ImageColumn);
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        foreach (var o in Outputs) builder.AddColumn(o.Name, o.Type, o.Annotations);
        return builder.ToSchema();
    }
}
