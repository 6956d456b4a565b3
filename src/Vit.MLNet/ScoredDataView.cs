using Microsoft.ML;
using Microsoft.ML.Data;

namespace Vit.MLNet;

/// <summary>
/// The output of a ViT step's <c>Transform</c>: the input's columns, then the step's (Score and PredictedLabel, or
/// Features). Lazy, as ML.NET's views are: nothing is decoded or scored until a cursor asks for an output column. Then
/// the images are read ahead on several threads in the data's order (<see cref="PixelRows"/>) and scored in batches of
/// <see cref="ImageScoring.BatchSize"/>, while the cursor itself reads only the input columns asked for: the image column
/// is decoded once, unless it is asked for too.
/// </summary>
internal sealed class ScoredDataView : IDataView
{
    private readonly IDataView input;
    private readonly ImageScoring scoring;

    public ScoredDataView(IDataView input, ImageScoring scoring)
    {
        this.input = input;
        this.scoring = scoring;
        Schema = scoring.OutputSchema(input.Schema);
    }

    public bool CanShuffle => input.CanShuffle;

    public DataViewSchema Schema { get; }

    public long? GetRowCount() => input.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.ToList();
        int inputCount = input.Schema.Count;
        bool scoringNeeded = needed.Any(c => c.Index >= inputCount);
        var inputColumns = needed.Where(c => c.Index < inputCount).Select(c => input.Schema[c.Index]).ToList();
        // A shuffled read cannot be matched row for row by a second cursor: the one cursor reads the images itself.
        bool inline = scoringNeeded && rand is not null;
        var image = input.Schema[scoring.ImageColumn];
        if (inline && inputColumns.All(c => c.Index != image.Index)) inputColumns.Add(image);
        var main = input.GetRowCursor(inputColumns, rand);
        return new Cursor(this, main, needed.Where(c => c.Index >= inputCount).Select(c => c.Index - inputCount).ToHashSet(), inline);
    }

    // One cursor: ML.NET consumers accept fewer cursors than asked for, and the work is parallel inside it.
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly ScoredDataView view;
        private readonly DataViewRowCursor main;
        private readonly HashSet<int> activeOutputs;
        private readonly ValueGetter<DataViewRowId> mainId;
        private readonly Action<Span<byte>>? inlineRead;
        private PixelRows? ahead;
        private float[] results = [];
        private long first = -1;   // position of results' first row
        private int count;         // rows in results

        public Cursor(ScoredDataView view, DataViewRowCursor main, HashSet<int> activeOutputs, bool inline)
        {
            this.view = view;
            this.main = main;
            this.activeOutputs = activeOutputs;
            mainId = main.GetIdGetter();
            if (inline)
                inlineRead = ImageColumns.PixelReader(main, view.input.Schema[view.scoring.ImageColumn], view.scoring.Scorer.Preprocessing);
        }

        public override DataViewSchema Schema => view.Schema;

        public override long Position => main.Position;

        public override long Batch => main.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => mainId;

        public override bool IsColumnActive(DataViewSchema.Column column) =>
            column.Index < view.input.Schema.Count ? main.IsColumnActive(view.input.Schema[column.Index]) : activeOutputs.Contains(column.Index - view.input.Schema.Count);

        public override bool MoveNext() => main.MoveNext();

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int inputCount = view.input.Schema.Count;
            if (column.Index < inputCount) return main.GetGetter<TValue>(view.input.Schema[column.Index]);
            int output = column.Index - inputCount;
            if (!activeOutputs.Contains(output))
                throw new InvalidOperationException($"column '{column.Name}' was not asked for when the cursor was made");
            var getter = view.scoring.Outputs[output].MakeGetter(Current);
            return getter as ValueGetter<TValue> ?? throw new InvalidOperationException(
                $"column '{column.Name}' holds {column.Type}, not {typeof(TValue).Name}");
        }

        /// <summary>The current row's output vector, scoring the batch it belongs to when it has not been scored yet.</summary>
        private ReadOnlyMemory<float> Current()
        {
            long position = main.Position;
            if (position < 0) throw new InvalidOperationException("the cursor is not on a row: call MoveNext first");
            int width = view.scoring.Scorer.Width;
            if (position < first || position >= first + count)
            {
                if (inlineRead is not null) ScoreInline(position);
                else ScoreAhead(position);
            }
            return results.AsMemory((int)(position - first) * width, width);
        }

        private void ScoreInline(long position)
        {
            var scorer = view.scoring.Scorer;
            var pixels = new byte[scorer.PixelBytes];
            try
            {
                inlineRead!(pixels);
            }
            catch (Exception e) when (e is not (OutOfMemoryException or OperationCanceledException or FileNotFoundException or InvalidDataException))
            {
                throw new InvalidDataException($"row {position}: the image of column '{view.scoring.ImageColumn}' could not be read: {e.Message}", e);
            }
            results = scorer.Score(pixels, 1);
            (first, count) = (position, 1);
        }

        // Reads the rows ahead up to the batch holding `position` (batches nobody asked for are read past), then scores it.
        private void ScoreAhead(long position)
        {
            var s = view.scoring;
            ahead ??= new PixelRows(s.Environment, view.input, s.ImageColumn, s.Scorer.Preprocessing, DataViewUtils.GetThreadCount());
            int batch = s.BatchSize, bytes = s.Scorer.PixelBytes;
            var pixels = new byte[checked(batch * bytes)];
            while (true)
            {
                long start = ahead.Index + 1;  // the first row not read yet
                bool wanted = position < start + batch;
                DataViewRowId? id = null;
                int n = 0;
                for (; n < batch && ahead.MoveNext(); n++)
                {
                    if (!wanted) continue;
                    if (ahead.Error is { } error) throw PixelRows.Failure(ahead.Index, s.ImageColumn, error);
                    ahead.Pixels.CopyTo(pixels.AsSpan(n * bytes, bytes));
                    if (ahead.Index == position) id = ahead.Id;
                }
                if (n == 0 || wanted && id is null)
                    throw new InvalidOperationException($"the input has no row {position} when read a second time: is it an enumerable that can be read only once?");
                if (!wanted) continue;
                DataViewRowId current = default;
                mainId(ref current);
                if (!id!.Value.Equals(current))
                    throw new InvalidOperationException(
                        $"the input gives its rows in another order when read a second time (row {position} has id {current} and then {id}); " +
                        "cache it first (mlContext.Data.Cache) or give its rows in a stable order");
                results = s.Scorer.Score(pixels, n);
                (first, count) = (start, n);
                return;
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                ahead?.Dispose();
                main.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
