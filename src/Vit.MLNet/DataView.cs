using System.Collections;

namespace Vit.MLNet;

/// <summary>The type of a column's values (ML.NET's DataViewType, reduced to what image classification needs).</summary>
public abstract class DataViewType : IEquatable<DataViewType>
{
    private protected DataViewType(Type rawType) => RawType = rawType;

    /// <summary>The .NET type of a value of this column.</summary>
    public Type RawType { get; }

    /// <inheritdoc />
    public virtual bool Equals(DataViewType? other) => other is not null && other.GetType() == GetType() && other.RawType == RawType;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is DataViewType t && Equals(t);

    /// <inheritdoc />
    public override int GetHashCode() => RawType.GetHashCode();
}

/// <summary>Text (string) values.</summary>
public sealed class TextDataViewType : DataViewType
{
    private TextDataViewType() : base(typeof(string)) { }

    /// <summary>The one instance.</summary>
    public static TextDataViewType Instance { get; } = new();

    /// <inheritdoc />
    public override string ToString() => "Text";
}

/// <summary>Numbers: Single, Double, Int32, Int64, or Boolean.</summary>
public sealed class NumberDataViewType : DataViewType
{
    private NumberDataViewType(Type t) : base(t) { }

    /// <summary>float.</summary>
    public static NumberDataViewType Single { get; } = new(typeof(float));
    /// <summary>double.</summary>
    public static NumberDataViewType Double { get; } = new(typeof(double));
    /// <summary>int.</summary>
    public static NumberDataViewType Int32 { get; } = new(typeof(int));
    /// <summary>long.</summary>
    public static NumberDataViewType Int64 { get; } = new(typeof(long));
    /// <summary>bool.</summary>
    public static NumberDataViewType Boolean { get; } = new(typeof(bool));

    /// <inheritdoc />
    public override string ToString() => RawType.Name;
}

/// <summary>A vector of numbers (float[]), of known size or (Size 0) of a size known only after training.</summary>
public sealed class VectorDataViewType : DataViewType
{
    /// <summary>Creates the type.</summary>
    public VectorDataViewType(NumberDataViewType itemType, int size = 0) : base(itemType.RawType.MakeArrayType())
    {
        ItemType = itemType;
        Size = size;
    }

    /// <summary>Type of the elements.</summary>
    public NumberDataViewType ItemType { get; }

    /// <summary>Number of elements (0 = not known yet).</summary>
    public int Size { get; }

    /// <inheritdoc />
    public override bool Equals(DataViewType? other) => other is VectorDataViewType v && v.ItemType.Equals(ItemType) && v.Size == Size;

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(ItemType, Size);

    /// <inheritdoc />
    public override string ToString() => $"Vector<{ItemType}, {(Size == 0 ? "?" : Size)}>";
}

/// <summary>Raw bytes of an encoded image file (byte[]).</summary>
public sealed class BytesDataViewType : DataViewType
{
    private BytesDataViewType() : base(typeof(byte[])) { }

    /// <summary>The one instance.</summary>
    public static BytesDataViewType Instance { get; } = new();

    /// <inheritdoc />
    public override string ToString() => "Bytes";
}

/// <summary>An image column: values are <see cref="ImageSource"/>s, decoded on demand. Height/Width 0 = any size.</summary>
public sealed class ImageDataViewType : DataViewType
{
    /// <summary>Creates the type.</summary>
    public ImageDataViewType(int height = 0, int width = 0) : base(typeof(ImageSource))
    {
        Height = height;
        Width = width;
    }

    /// <summary>Height after resizing, or 0.</summary>
    public int Height { get; }

    /// <summary>Width after resizing, or 0.</summary>
    public int Width { get; }

    /// <inheritdoc />
    public override bool Equals(DataViewType? other) => other is ImageDataViewType i && i.Height == Height && i.Width == Width;

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Height, Width);

    /// <inheritdoc />
    public override string ToString() => Height == 0 ? "Image" : $"Image<{Height}, {Width}>";
}

/// <summary>A named, typed column of a <see cref="DataViewSchema"/>.</summary>
/// <param name="Name">Column name.</param>
/// <param name="Type">Value type.</param>
/// <param name="Index">Position in the schema.</param>
public sealed record DataViewSchemaColumn(string Name, DataViewType Type, int Index)
{
    /// <summary>Extra facts about the column, e.g. the label order of <c>Score</c> ("SlotNames").</summary>
    public IReadOnlyDictionary<string, object> Annotations { get; init; } = new Dictionary<string, object>();
}

/// <summary>The columns of a data view, by position and by name (later columns hide earlier ones of the same name).</summary>
public sealed class DataViewSchema : IReadOnlyList<DataViewSchemaColumn>
{
    private readonly List<DataViewSchemaColumn> columns;

    /// <summary>Builds a schema from (name, type) pairs, with optional annotations.</summary>
    public DataViewSchema(IEnumerable<(string Name, DataViewType Type)> columns)
        : this(columns.Select((c, i) => new DataViewSchemaColumn(c.Name, c.Type, i)))
    {
    }

    internal DataViewSchema(IEnumerable<DataViewSchemaColumn> columns)
    {
        this.columns = columns.Select((c, i) => c with { Index = i }).ToList();
        foreach (var c in this.columns)
            if (string.IsNullOrWhiteSpace(c.Name)) throw new ArgumentException("a column needs a non-empty name");
    }

    /// <summary>Column at position <paramref name="index"/>.</summary>
    public DataViewSchemaColumn this[int index] => columns[index];

    /// <summary>The (last) column named <paramref name="name"/>; throws an error listing the columns when absent.</summary>
    public DataViewSchemaColumn this[string name] => GetColumnOrNull(name) ?? throw new ArgumentOutOfRangeException(nameof(name),
        $"column '{name}' not found; the data has: {string.Join(", ", columns.Select(c => $"{c.Name} ({c.Type})"))}");

    /// <summary>The (last) column named <paramref name="name"/>, or null.</summary>
    public DataViewSchemaColumn? GetColumnOrNull(string name) => columns.LastOrDefault(c => c.Name == name);

    /// <inheritdoc />
    public int Count => columns.Count;

    /// <inheritdoc />
    public IEnumerator<DataViewSchemaColumn> GetEnumerator() => columns.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>A schema with these columns appended (replacing none; lookups by name find the new ones).</summary>
    public DataViewSchema With(params DataViewSchemaColumn[] added) => new(columns.Concat(added));

    /// <summary>Throws an error naming the column when it is missing or has the wrong kind of type.</summary>
    public DataViewSchemaColumn Require(string name, string role, Func<DataViewType, bool> accept, string expected)
    {
        var c = GetColumnOrNull(name) ?? throw new ArgumentException(
            $"{role} column '{name}' not found; the data has: {string.Join(", ", columns.Select(x => $"{x.Name} ({x.Type})"))}");
        if (!accept(c.Type)) throw new ArgumentException($"{role} column '{name}' has type {c.Type}; expected {expected}");
        return c;
    }

    /// <inheritdoc />
    public override string ToString() => string.Join(", ", columns.Select(c => $"{c.Name}: {c.Type}"));
}

/// <summary>One row: values by column position (as in the schema).</summary>
public sealed class DataViewRow
{
    internal DataViewRow(DataViewSchema schema, object?[] values)
    {
        Schema = schema;
        Values = values;
    }

    /// <summary>The row's schema.</summary>
    public DataViewSchema Schema { get; }

    internal object?[] Values { get; }

    /// <summary>Value of the column at <paramref name="index"/>.</summary>
    public object? this[int index] => Values[index];

    /// <summary>Value of the column named <paramref name="name"/>.</summary>
    public object? this[string name] => Values[Schema[name].Index];

    /// <summary>The value typed as <typeparamref name="T"/>.</summary>
    public T Get<T>(string name) => (T)this[name]!;
}

/// <summary>
/// ML.NET's central abstraction, kept minimal: a schema and a re-enumerable sequence of rows. Views are lazy:
/// transforms compute their columns as rows are read.
/// </summary>
public interface IDataView
{
    /// <summary>The columns.</summary>
    DataViewSchema Schema { get; }

    /// <summary>Row count when known without reading the rows.</summary>
    long? GetRowCount();

    /// <summary>Reads the rows from the start.</summary>
    IEnumerable<DataViewRow> GetRows();
}

/// <summary>A materialised, in-memory data view.</summary>
public sealed class TableDataView : IDataView
{
    private readonly IReadOnlyList<object?[]> rows;

    /// <summary>Creates a view over rows whose values follow <paramref name="schema"/>.</summary>
    public TableDataView(DataViewSchema schema, IReadOnlyList<object?[]> rows)
    {
        Schema = schema;
        this.rows = rows;
        for (int r = 0; r < rows.Count; r++)
        {
            if (rows[r].Length != schema.Count)
                throw new ArgumentException($"row {r} has {rows[r].Length} values for {schema.Count} columns");
            for (int c = 0; c < schema.Count; c++)
                if (rows[r][c] is { } v && !schema[c].Type.RawType.IsInstanceOfType(v))
                    throw new ArgumentException($"row {r}, column '{schema[c].Name}': a {v.GetType().Name} where {schema[c].Type} was expected");
        }
    }

    /// <inheritdoc />
    public DataViewSchema Schema { get; }

    /// <inheritdoc />
    public long? GetRowCount() => rows.Count;

    /// <inheritdoc />
    public IEnumerable<DataViewRow> GetRows() => rows.Select(r => new DataViewRow(Schema, r));

    /// <summary>Reads every row of <paramref name="view"/> into memory.</summary>
    public static TableDataView Materialize(IDataView view) =>
        view as TableDataView ?? new TableDataView(view.Schema, view.GetRows().Select(r => r.Values).ToList());
}
