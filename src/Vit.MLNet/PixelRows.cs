using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Vit.Torch.Imaging;

namespace Vit.MLNet;

/// <summary>
/// Reads an image column in the data's order, each image already at the model's size and channels, with images decoded
/// and resized on several threads: the data is read through a cursor set (ML.NET splits a single source cursor itself, so
/// <c>LoadImages</c> and <c>ResizeImages</c> run on each thread of the set), every image is converted on the thread that
/// read it, and ML.NET's consolidator puts the rows back in order. An image that cannot be read does not stop the rows:
/// <see cref="Error"/> says why, and the caller decides (training skips it, scoring fails naming it).
/// </summary>
internal sealed class PixelRows : IDisposable
{
    private readonly DataViewRowCursor cursor;
    private readonly ValueGetter<VBuffer<byte>> pixels;
    private readonly ValueGetter<ReadOnlyMemory<char>> error;
    private readonly ValueGetter<DataViewRowId> id;
    private VBuffer<byte> pixelValue;
    private ReadOnlyMemory<char> errorValue;

    /// <summary>Starts reading <paramref name="data"/>'s column <paramref name="imageColumn"/> (and <paramref name="extra"/>,
    /// passed through, e.g. the label) on up to <paramref name="threads"/> threads.</summary>
    public PixelRows(IHostEnvironment env, IDataView data, string imageColumn, VitPreprocessing preprocessing, int threads,
        DataViewSchema.Column? extra = null)
    {
        var image = data.Schema[imageColumn];
        var needed = extra is { } e ? new[] { image, e } : new[] { image };
        var inputs = data.GetRowCursorSet(needed, Math.Max(1, threads));
        // The consolidator asks every cursor of the set for the same schema object.
        var schema = PixelCursor.MakeSchema(preprocessing, extra);
        var wrapped = inputs.Select(c => (DataViewRowCursor)new PixelCursor(c, schema, image, preprocessing, extra)).ToArray();
        cursor = DataViewUtils.ConsolidateGeneric(env, wrapped, batchSize: 64);
        pixels = cursor.GetGetter<VBuffer<byte>>(schema[PixelCursor.PixelsColumn]);
        error = cursor.GetGetter<ReadOnlyMemory<char>>(schema[PixelCursor.ErrorColumn]);
        id = cursor.GetIdGetter();
        Extra = extra is null ? null : schema[PixelCursor.ExtraColumn];
    }

    /// <summary>The passed-through column in <see cref="Cursor"/>'s schema, if any.</summary>
    public DataViewSchema.Column? Extra { get; }

    /// <summary>The ordered cursor, for getters of the passed-through column.</summary>
    public DataViewRowCursor Cursor => cursor;

    /// <summary>Rows read so far, minus one (the index of the current row in the data's order).</summary>
    public long Index { get; private set; } = -1;

    /// <summary>Moves to the next row; false at the end.</summary>
    public bool MoveNext()
    {
        if (!cursor.MoveNext()) return false;
        Index++;
        error(ref errorValue);
        pixels(ref pixelValue);
        return true;
    }

    /// <summary>Why the current row's image could not be read, or null.</summary>
    public string? Error => errorValue.IsEmpty ? null : errorValue.ToString();

    /// <summary>The current row's pixels (empty when <see cref="Error"/> is set).</summary>
    public ReadOnlySpan<byte> Pixels => pixelValue.GetValues();

    /// <summary>The current row's id in the source data.</summary>
    public DataViewRowId Id
    {
        get
        {
            DataViewRowId value = default;
            id(ref value);
            return value;
        }
    }

    /// <summary>Stops the reading threads.</summary>
    public void Dispose() => cursor.Dispose();

    /// <summary>One cursor of the set, with the image read and converted on the thread that moves it.</summary>
    private sealed class PixelCursor : DataViewRowCursor
    {
        public const int PixelsColumn = 0, ErrorColumn = 1, ExtraColumn = 2;

        private readonly DataViewRowCursor input;
        private readonly DataViewSchema.Column? extra;
        private readonly Action<Span<byte>> read;
        private readonly byte[] buffer;
        private long converted = -1;
        private string? failure;

        public PixelCursor(DataViewRowCursor input, DataViewSchema schema, DataViewSchema.Column image, VitPreprocessing preprocessing, DataViewSchema.Column? extra)
        {
            this.input = input;
            this.extra = extra;
            Schema = schema;
            read = ImageColumns.PixelReader(input, image, preprocessing);
            buffer = new byte[preprocessing.ImageSize * preprocessing.ImageSize * preprocessing.Channels];
        }

        public static DataViewSchema MakeSchema(VitPreprocessing preprocessing, DataViewSchema.Column? extra)
        {
            var builder = new DataViewSchema.Builder();
            builder.AddColumn("Pixels", new VectorDataViewType(NumberDataViewType.Byte, preprocessing.ImageSize * preprocessing.ImageSize * preprocessing.Channels));
            builder.AddColumn("Error", TextDataViewType.Instance);
            if (extra is { } e) builder.AddColumn(e.Name, e.Type, e.Annotations);
            return builder.ToSchema();
        }

        public override DataViewSchema Schema { get; }

        public override long Position => input.Position;

        public override long Batch => input.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) => true;

        public override bool MoveNext() => input.MoveNext();

        // Once per row, whichever getter asks first.
        private void Convert()
        {
            if (converted == input.Position) return;
            converted = input.Position;
            failure = null;
            try
            {
                read(buffer);
            }
            catch (Exception e) when (e is not (OutOfMemoryException or OperationCanceledException))
            {
                // LoadImages fails with FileNotFoundException for a missing file and ArgumentException for one SkiaSharp
                // cannot decode; our decoder with InvalidDataException. The kind survives as a prefix (see Failure).
                failure = (e is FileNotFoundException or DirectoryNotFoundException ? MissingPrefix : "") + e.Message;
            }
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            Delegate getter = column.Index switch
            {
                PixelsColumn => (ValueGetter<VBuffer<byte>>)((ref VBuffer<byte> dst) =>
                {
                    Convert();
                    int length = failure is null ? buffer.Length : 0;
                    var editor = VBufferEditor.Create(ref dst, length);
                    if (length > 0) buffer.AsSpan().CopyTo(editor.Values);
                    dst = editor.Commit();
                }),
                ErrorColumn => (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> dst) =>
                {
                    Convert();
                    dst = (failure ?? "").AsMemory();
                }),
                _ => input.GetGetter<TValue>(extra!.Value),
            };
            return (ValueGetter<TValue>)getter;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) input.Dispose();
            base.Dispose(disposing);
        }
    }

    /// <summary>Marks an error text that comes from a missing file.</summary>
    public const string MissingPrefix = "missing: ";

    /// <summary>The exception for a row whose image could not be read (<paramref name="error"/> from <see cref="Error"/>).</summary>
    public static Exception Failure(long row, string column, string error) => error.StartsWith(MissingPrefix, StringComparison.Ordinal)
        ? new FileNotFoundException($"row {row}: the image of column '{column}' was not found: {error[MissingPrefix.Length..]}")
        : new InvalidDataException($"row {row}: the image of column '{column}' could not be read: {error}");
}
