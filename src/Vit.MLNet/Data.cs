using System.Reflection;
using Vit.Torch.Data;

namespace Vit.MLNet;

/// <summary>Names the column a property maps to (as ML.NET's ColumnNameAttribute).</summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class ColumnNameAttribute(string name) : Attribute
{
    /// <summary>The column name.</summary>
    public string Name { get; } = name;
}

/// <summary>Maps the public properties of a class to columns, by name or <see cref="ColumnNameAttribute"/>.</summary>
internal static class ColumnMapping
{
    public static IReadOnlyList<(string Column, PropertyInfo Property)> Of(Type t) =>
        t.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.GetIndexParameters().Length == 0)
            .Select(p => (p.GetCustomAttribute<ColumnNameAttribute>()?.Name ?? p.Name, p))
            .ToList();

    public static DataViewType TypeOf(PropertyInfo p)
    {
        var t = p.PropertyType;
        if (t == typeof(string)) return TextDataViewType.Instance;
        if (t == typeof(float)) return NumberDataViewType.Single;
        if (t == typeof(double)) return NumberDataViewType.Double;
        if (t == typeof(int)) return NumberDataViewType.Int32;
        if (t == typeof(long)) return NumberDataViewType.Int64;
        if (t == typeof(bool)) return NumberDataViewType.Boolean;
        if (t == typeof(float[])) return new VectorDataViewType(NumberDataViewType.Single);
        if (t == typeof(byte[])) return BytesDataViewType.Instance;
        if (t == typeof(ImageSource)) return new ImageDataViewType();
        throw new ArgumentException(
            $"property {p.DeclaringType?.Name}.{p.Name} has type {t.Name}; supported: string, float, double, int, long, bool, float[], byte[], ImageSource");
    }
}

/// <summary>Loading and splitting data (ML.NET's <c>mlContext.Data</c>).</summary>
public sealed class DataOperationsCatalog
{
    private readonly VitContext context;

    internal DataOperationsCatalog(VitContext context) => this.context = context;

    /// <summary>Image file extensions the loaders pick up (<see cref="ImageFolder.Extensions"/>).</summary>
    public static IReadOnlySet<string> ImageExtensions => ImageFolder.Extensions;

    /// <summary>
    /// The ImageFolder convention: one subfolder per class, named after the class. Columns <c>ImagePath</c> (Text,
    /// absolute) and <c>Label</c> (Text, the subfolder name). Files are listed in a stable (ordinal) order, by
    /// <see cref="ImageFolder.List"/>, as <see cref="ImageDataset.FromFolder"/> lists them. A single class is accepted
    /// here (a folder to score may hold one); <see cref="VitEstimator.Fit"/> refuses to train on one.
    /// </summary>
    public IDataView LoadFromImageFolder(string folder)
    {
        var listing = ImageFolder.List(folder, allowSingleClass: true);
        var rows = listing.Files.Select(f => new object?[] { Path.GetFullPath(f.Path), listing.ClassNames[f.Label] }).ToList();
        return new TableDataView(new DataViewSchema([("ImagePath", TextDataViewType.Instance), ("Label", TextDataViewType.Instance)]), rows);
    }

    /// <summary>
    /// A CSV or TSV file whose header names the columns (e.g. <c>ImagePath,Label</c>); every column is Text. Relative
    /// paths stay relative: give LoadImages an <c>imageFolder</c> to resolve them. Read by <see cref="Csv"/> (RFC 4180
    /// quoting): a quoted field may hold the separator, <c>""</c> for a quote, and line breaks; blank lines are skipped.
    /// </summary>
    /// <exception cref="InvalidDataException">Broken quoting, or a row with another number of fields than the first;
    /// the message names the file and the line.</exception>
    public IDataView LoadFromTextFile(string path, char separator = ',', bool hasHeader = true)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"data file not found: {path}", path);
        var records = Csv.ReadFile(path, separator);
        if (records.Count == 0) throw new ArgumentException($"{path} is empty");
        var header = hasHeader ? records[0].Fields : Enumerable.Range(0, records[0].Fields.Count).Select(i => $"Column{i + 1}").ToList();
        var rows = new List<object?[]>();
        foreach (var r in records.Skip(hasHeader ? 1 : 0))
        {
            if (r.Fields.Count != header.Count)
                throw new InvalidDataException($"{path}, line {r.Line}: {r.Fields.Count} fields where the {(hasHeader ? "header" : "first row")} has {header.Count}");
            rows.Add(r.Fields.Cast<object?>().ToArray());
        }
        return new TableDataView(new DataViewSchema(header.Select(h => (h, (DataViewType)TextDataViewType.Instance))), rows);
    }

    /// <summary>A data view over objects; columns are their public properties (by name or <see cref="ColumnNameAttribute"/>).</summary>
    public IDataView LoadFromEnumerable<T>(IEnumerable<T> data) where T : class
    {
        ArgumentNullException.ThrowIfNull(data);
        var map = ColumnMapping.Of(typeof(T));
        var schema = new DataViewSchema(map.Select(m => (m.Column, ColumnMapping.TypeOf(m.Property))));
        var rows = data.Select(item => map.Select(m => m.Property.GetValue(item)).ToArray()).ToList();
        return new TableDataView(schema, rows);
    }

    /// <summary>Reads a data view back into objects of <typeparamref name="T"/> (ML.NET's CreateEnumerable).</summary>
    public IEnumerable<T> CreateEnumerable<T>(IDataView data) where T : class, new()
    {
        var binder = new RowBinder<T>(data.Schema);
        return data.GetRows().Select(binder.Read);
    }

    /// <summary>
    /// Splits rows into a training and a test set. With a <c>Label</c> column (or <paramref name="stratificationColumn"/>)
    /// the split is stratified: every class keeps the same proportion in both sets. Seeded by the context.
    /// </summary>
    public TrainTestData TrainTestSplit(IDataView data, double testFraction = 0.1, string? stratificationColumn = "Label", int? seed = null)
    {
        if (!(testFraction > 0 && testFraction < 1)) throw new ArgumentOutOfRangeException(nameof(testFraction), testFraction, "test fraction must be in (0, 1)");
        var table = TableDataView.Materialize(data);
        var rows = table.GetRows().ToList();
        // Without a stratification column every row has the same key: one group, a plain seeded shuffle.
        var keys = stratificationColumn is not null && table.Schema.GetColumnOrNull(stratificationColumn) is { } col
            ? rows.Select(r => r[col.Index]?.ToString() ?? "").ToList()
            : rows.Select(_ => "").ToList();
        var test = Stratified.Split(keys, testFraction, new Random(seed ?? context.Seed ?? 0), StringComparer.Ordinal).HeldOut.ToHashSet();
        object?[][] Pick(bool inTest) => Enumerable.Range(0, rows.Count).Where(i => test.Contains(i) == inTest).Select(i => rows[i].Values).ToArray();
        return new TrainTestData(new TableDataView(table.Schema, Pick(false)), new TableDataView(table.Schema, Pick(true)));
    }
}

/// <summary>The two halves of a split; deconstructs as <c>var (train, test) = …</c>.</summary>
/// <param name="TrainSet">Rows for training.</param>
/// <param name="TestSet">Rows held out.</param>
public sealed record TrainTestData(IDataView TrainSet, IDataView TestSet);

/// <summary>Fills objects of <typeparamref name="T"/> from rows, by property name / <see cref="ColumnNameAttribute"/>.</summary>
internal sealed class RowBinder<T> where T : class, new()
{
    private readonly List<(int Index, PropertyInfo Property)> bindings = new();

    public RowBinder(DataViewSchema schema)
    {
        foreach (var (column, prop) in ColumnMapping.Of(typeof(T)))
        {
            if (!prop.CanWrite) continue;
            var c = schema.GetColumnOrNull(column) ?? throw new ArgumentException(
                $"{typeof(T).Name}.{prop.Name} maps to column '{column}', which the model does not produce; available: {string.Join(", ", schema.Select(x => x.Name))}");
            if (!prop.PropertyType.IsAssignableFrom(c.Type.RawType))
                throw new ArgumentException($"{typeof(T).Name}.{prop.Name} is {prop.PropertyType.Name} but column '{column}' holds {c.Type}");
            bindings.Add((c.Index, prop));
        }
    }

    public T Read(DataViewRow row)
    {
        var item = new T();
        foreach (var (index, prop) in bindings) prop.SetValue(item, row[index]);
        return item;
    }
}
