namespace Vit.MLNet;

/// <summary>A fitted pipeline step: maps a data view to a data view with more columns (ML.NET's ITransformer).</summary>
public interface ITransformer
{
    /// <summary>The schema <see cref="Transform"/> produces from <paramref name="inputSchema"/>; throws when the input does not fit.</summary>
    DataViewSchema GetOutputSchema(DataViewSchema inputSchema);

    /// <summary>Lazily applies the step to <paramref name="input"/>.</summary>
    IDataView Transform(IDataView input);
}

/// <summary>A pipeline step that learns from data (ML.NET's IEstimator).</summary>
public interface IEstimator<out TTransformer> where TTransformer : ITransformer
{
    /// <summary>Learns from <paramref name="input"/> and returns the fitted step.</summary>
    TTransformer Fit(IDataView input);

    /// <summary>The schema the fitted step will produce, checked without training (schema propagation).</summary>
    DataViewSchema GetOutputSchema(DataViewSchema inputSchema);
}

/// <summary>A transformer made of steps (lets code walk a chain without knowing its last step's type).</summary>
public interface ITransformerChain : ITransformer
{
    /// <summary>The steps in order.</summary>
    IReadOnlyList<ITransformer> Transformers { get; }
}

/// <summary>Walking a fitted pipeline: its steps in order, and its ViT step.</summary>
public static class Transformers
{
    /// <summary>The steps of a transformer, chains flattened, in order.</summary>
    public static IEnumerable<ITransformer> Steps(ITransformer t) =>
        t is ITransformerChain c ? c.Transformers.SelectMany(Steps) : [t];

    /// <summary>The one ViT step of a pipeline, or an <see cref="ArgumentException"/> that says what the pipeline holds;
    /// <paramref name="what"/> names the operation that needs it, for the message.</summary>
    public static VitTransformer Vit(ITransformer model, string what)
    {
        ArgumentNullException.ThrowIfNull(model);
        var steps = Steps(model).ToList();
        var vits = steps.OfType<VitTransformer>().ToList();
        return vits.Count == 1 ? vits[0] : throw new ArgumentException(
            $"{what} needs a pipeline with one VitTransformer step (a fitted VitEstimator); this one has {vits.Count} among its steps: "
            + string.Join(", ", steps.Select(s => s.GetType().Name)), nameof(model));
    }
}

/// <summary>Fitted steps applied one after another (ML.NET's TransformerChain).</summary>
public sealed class TransformerChain<TLast> : ITransformerChain, IDisposable where TLast : class, ITransformer
{
    /// <summary>Creates the chain.</summary>
    public TransformerChain(IReadOnlyList<ITransformer> transformers)
    {
        if (transformers.Count == 0) throw new ArgumentException("a chain needs at least one transformer");
        Transformers = transformers;
    }

    /// <summary>The steps in order.</summary>
    public IReadOnlyList<ITransformer> Transformers { get; }

    /// <summary>The last step (e.g. the <see cref="VitTransformer"/>).</summary>
    public TLast LastTransformer => (TLast)Transformers[^1];

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) =>
        Transformers.Aggregate(inputSchema, (s, t) => t.GetOutputSchema(s));

    /// <inheritdoc />
    public IDataView Transform(IDataView input) => Transformers.Aggregate(input, (d, t) => t.Transform(d));

    /// <summary>Disposes the steps that own native memory.</summary>
    public void Dispose()
    {
        foreach (var t in Transformers) (t as IDisposable)?.Dispose();
    }
}

/// <summary>Estimators applied one after another; <see cref="Fit"/> fits each on the output of the previous ones.</summary>
public sealed class EstimatorChain<TLast> : IEstimator<TransformerChain<TLast>> where TLast : class, ITransformer
{
    private readonly IReadOnlyList<IEstimator<ITransformer>> estimators;

    internal EstimatorChain(IReadOnlyList<IEstimator<ITransformer>> estimators) => this.estimators = estimators;

    /// <summary>Appends a step.</summary>
    public EstimatorChain<TNew> Append<TNew>(IEstimator<TNew> next) where TNew : class, ITransformer =>
        new(estimators.Append(next).ToList());

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) =>
        estimators.Aggregate(inputSchema, (s, e) => e.GetOutputSchema(s));

    /// <inheritdoc />
    public TransformerChain<TLast> Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        GetOutputSchema(input.Schema);  // fail fast on a missing or mistyped column, before any training
        var fitted = new List<ITransformer>();
        var data = input;
        foreach (var e in estimators)
        {
            var t = e.Fit(data);
            fitted.Add(t);
            data = t.Transform(data);
        }
        return new TransformerChain<TLast>(fitted);
    }
}

/// <summary>ML.NET's <c>Append</c> on a single estimator.</summary>
public static class EstimatorExtensions
{
    /// <summary>Starts a chain: this estimator, then <paramref name="next"/>.</summary>
    public static EstimatorChain<TNew> Append<TFirst, TNew>(this IEstimator<TFirst> first, IEstimator<TNew> next)
        where TFirst : class, ITransformer where TNew : class, ITransformer =>
        new([first, next]);
}

/// <summary>A view that adds columns computed from each input row (lazily, in chunks so that work can be batched).</summary>
internal sealed class MappedDataView : IDataView
{
    private readonly IDataView input;
    private readonly Func<IReadOnlyList<DataViewRow>, IReadOnlyList<object?[]>> map;
    private readonly int chunk;

    /// <param name="input">The source.</param>
    /// <param name="added">The added columns (their Index fields are re-assigned).</param>
    /// <param name="map">Computes the added values of a chunk of rows.</param>
    /// <param name="chunk">Rows per call of <paramref name="map"/>.</param>
    public MappedDataView(IDataView input, DataViewSchemaColumn[] added, Func<IReadOnlyList<DataViewRow>, IReadOnlyList<object?[]>> map, int chunk = 1)
    {
        this.input = input;
        this.map = map;
        this.chunk = Math.Max(1, chunk);
        Schema = input.Schema.With(added);
    }

    public DataViewSchema Schema { get; }

    public long? GetRowCount() => input.GetRowCount();

    public IEnumerable<DataViewRow> GetRows()
    {
        foreach (var rows in input.GetRows().Chunk(chunk))
        {
            var extra = map(rows);
            for (int i = 0; i < rows.Length; i++)
                yield return new DataViewRow(Schema, [.. rows[i].Values, .. extra[i]]);
        }
    }
}
