using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Vit.MLNet;

/// <summary>
/// Label columns as ML.NET trainers take them: a key column (after <c>MapValueToKey</c>), whose key values name the
/// classes and whose key count is the number of classes; for convenience also plain text labels, whose distinct values,
/// in ordinal order, become the classes. A missing label (key 0, empty text) marks a row that training skips.
/// </summary>
internal static class LabelColumns
{
    /// <summary>What a label column holds.</summary>
    public enum Kind
    {
        /// <summary>Keys (1-based class numbers; 0 = missing).</summary>
        Key,
        /// <summary>Text.</summary>
        Text,
    }

    private const string Expected = "a key (add mlContext.Transforms.Conversion.MapValueToKey) or text";

    /// <summary>The kind of label column <paramref name="name"/>, or an exception naming the column and the type found.</summary>
    public static Kind Check(DataViewSchema schema, string name)
    {
        var column = schema.GetColumnOrNull(name) ?? throw new ArgumentOutOfRangeException(nameof(schema),
            $"Label column '{name}' not found; expected {Expected}. The data has: {ImageColumns.Describe(schema)}");
        return column.Type switch
        {
            KeyDataViewType k when k.Count > 0 && k.Count <= int.MaxValue => Kind.Key,
            TextDataViewType => Kind.Text,
            _ => throw new ArgumentOutOfRangeException(nameof(schema), $"Label column '{name}' has type {column.Type}; expected {Expected}"),
        };
    }

    /// <summary>As <see cref="Check(DataViewSchema, string)"/>, on the schema shape an estimator sees before fitting.</summary>
    public static Kind Check(SchemaShape schema, string name)
    {
        if (!schema.TryFindColumn(name, out var column))
            throw new ArgumentOutOfRangeException(nameof(schema), $"Label column '{name}' not found; expected {Expected}. The data has: {ImageColumns.Describe(schema)}");
        if (column.Kind == SchemaShape.Column.VectorKind.Scalar && column.IsKey) return Kind.Key;
        if (column.Kind == SchemaShape.Column.VectorKind.Scalar && column.ItemType is TextDataViewType) return Kind.Text;
        throw new ArgumentOutOfRangeException(nameof(schema), $"Label column '{name}' has type {ImageColumns.Shape(column)}; expected {Expected}");
    }

    /// <summary>The classes of a key column: its key values as text (any type of value, converted), else "1" … "K".</summary>
    public static IReadOnlyList<string> KeyNames(DataViewSchema.Column column)
    {
        int count = checked((int)((KeyDataViewType)column.Type).Count);
        var annotation = column.Annotations.Schema.GetColumnOrNull(AnnotationUtils.Kinds.KeyValues);
        if (annotation is { Type: VectorDataViewType { ItemType: var item } } && item is PrimitiveDataViewType)
        {
            var names = (IReadOnlyList<string>)typeof(LabelColumns).GetMethod(nameof(AnnotationStrings), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
                .MakeGenericMethod(item.RawType).Invoke(null, [column.Annotations, annotation.Value.Name])!;
            if (names.Count == count) return names;
        }
        return Enumerable.Range(1, count).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToList();
    }

    private static IReadOnlyList<string> AnnotationStrings<T>(DataViewSchema.Annotations annotations, string name)
    {
        VBuffer<T> values = default;
        annotations.GetValue(name, ref values);
        return values.DenseValues().Select(v => v switch
        {
            ReadOnlyMemory<char> m => m.ToString(),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => v?.ToString() ?? "",
        }).ToList();
    }

    /// <summary>
    /// A reader of the current row's class index (0-based; -1 for a missing label) from a key column, or from a text
    /// column through <paramref name="classes"/> (a label not among them reads as -2).
    /// </summary>
    public static Func<int> IndexReader(DataViewRow row, DataViewSchema.Column column, IReadOnlyDictionary<string, int>? classes)
    {
        switch (column.Type)
        {
            case TextDataViewType:
                ArgumentNullException.ThrowIfNull(classes);
                var text = row.GetGetter<ReadOnlyMemory<char>>(column);
                ReadOnlyMemory<char> value = default;
                return () =>
                {
                    text(ref value);
                    var s = value.ToString();
                    return string.IsNullOrWhiteSpace(s) ? -1 : classes.TryGetValue(s, out var i) ? i : -2;
                };
            case KeyDataViewType key:
                return key.RawType switch
                {
                    var t when t == typeof(uint) => KeyIndex<uint>(row, column, k => k),
                    var t when t == typeof(byte) => KeyIndex<byte>(row, column, k => k),
                    var t when t == typeof(ushort) => KeyIndex<ushort>(row, column, k => k),
                    _ => KeyIndex<ulong>(row, column, k => k),
                };
            default:
                throw new ArgumentOutOfRangeException(nameof(column), $"Label column '{column.Name}' has type {column.Type}; expected {Expected}");
        }
    }

    private static Func<int> KeyIndex<T>(DataViewRow row, DataViewSchema.Column column, Func<T, ulong> widen)
    {
        var get = row.GetGetter<T>(column);
        T value = default!;
        return () =>
        {
            get(ref value);
            return (int)widen(value) - 1;  // key 0 (missing) becomes -1
        };
    }

    /// <summary>A reader of the current row's label as text: a key's key value (its name), or the text ("" when missing).</summary>
    public static Func<string> TextReader(DataViewRow row, DataViewSchema.Column column)
    {
        if (column.Type is TextDataViewType)
        {
            var text = row.GetGetter<ReadOnlyMemory<char>>(column);
            ReadOnlyMemory<char> value = default;
            return () =>
            {
                text(ref value);
                return value.ToString();
            };
        }
        var names = KeyNames(column);
        var index = IndexReader(row, column, null);
        return () => index() is var i && i >= 0 && i < names.Count ? names[i] : "";
    }

    /// <summary>The distinct non-empty values of a text column, in ordinal order (one pass reading only that column).</summary>
    public static List<string> DistinctText(IDataView data, string name)
    {
        var column = data.Schema[name];
        var seen = new HashSet<string>(StringComparer.Ordinal);
        using (var cursor = data.GetRowCursor([column]))
        {
            var get = cursor.GetGetter<ReadOnlyMemory<char>>(column);
            ReadOnlyMemory<char> value = default;
            while (cursor.MoveNext())
            {
                get(ref value);
                if (!value.Span.IsWhiteSpace()) seen.Add(value.ToString());
            }
        }
        return seen.Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// The key type a model's PredictedLabel column has: as many keys as classes, its key values the class names, so that
    /// <c>MapKeyToValue</c> gives them back and ML.NET's evaluator pairs it with the label column.
    /// </summary>
    public static DataViewSchema.Annotations KeyValues(IReadOnlyList<string> classes)
    {
        var builder = new DataViewSchema.Annotations.Builder();
        builder.AddKeyValues(classes.Count, TextDataViewType.Instance, Names(classes));
        return builder.ToAnnotations();
    }

    /// <summary>A getter of the class names as ML.NET's text vector (for key values and slot names).</summary>
    public static ValueGetter<VBuffer<ReadOnlyMemory<char>>> Names(IReadOnlyList<string> classes)
    {
        var values = classes.Select(c => c.AsMemory()).ToArray();
        return (ref VBuffer<ReadOnlyMemory<char>> dst) => dst = new VBuffer<ReadOnlyMemory<char>>(values.Length, values);
    }
}
