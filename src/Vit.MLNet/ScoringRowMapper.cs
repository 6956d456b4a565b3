using Microsoft.ML;
using Microsoft.ML.Data;

namespace Vit.MLNet;

/// <summary>
/// A ViT step on one row at a time, for ML.NET's <c>PredictionEngine</c>: the output columns of a row are computed
/// when first asked for (one forward pass of one image) and kept until the input moves to another row.
/// </summary>
internal sealed class ScoringRowMapper : IRowToRowMapper
{
    private readonly ImageScoring scoring;

    public ScoringRowMapper(DataViewSchema inputSchema, ImageScoring scoring)
    {
        this.scoring = scoring;
        InputSchema = inputSchema;
        OutputSchema = scoring.OutputSchema(inputSchema);
    }

    public DataViewSchema InputSchema { get; }

    public DataViewSchema OutputSchema { get; }

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var depending = dependingColumns.ToList();
        var needed = depending.Where(c => c.Index < InputSchema.Count).Select(c => InputSchema[c.Index]).ToList();
        if (depending.Any(c => c.Index >= InputSchema.Count) && needed.All(c => c.Name != scoring.ImageColumn))
            needed.Add(InputSchema[scoring.ImageColumn]);
        return needed;
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) =>
        new Row(this, input, activeColumns.Select(c => c.Index).ToHashSet());

    private sealed class Row : DataViewRow
    {
        private readonly ScoringRowMapper mapper;
        private readonly DataViewRow input;
        private readonly HashSet<int> active;
        private Action<Span<byte>>? read;
        private float[] result = [];
        private long scored = -1;

        public Row(ScoringRowMapper mapper, DataViewRow input, HashSet<int> active)
        {
            this.mapper = mapper;
            this.input = input;
            this.active = active;
        }

        public override DataViewSchema Schema => mapper.OutputSchema;

        public override long Position => input.Position;

        public override long Batch => input.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) =>
            column.Index < mapper.InputSchema.Count ? input.IsColumnActive(mapper.InputSchema[column.Index]) : active.Contains(column.Index);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int inputCount = mapper.InputSchema.Count;
            if (column.Index < inputCount) return input.GetGetter<TValue>(mapper.InputSchema[column.Index]);
            var getter = mapper.scoring.Outputs[column.Index - inputCount].MakeGetter(Current);
            return getter as ValueGetter<TValue> ?? throw new InvalidOperationException($"column '{column.Name}' holds {column.Type}, not {typeof(TValue).Name}");
        }

        private ReadOnlyMemory<float> Current()
        {
            if (scored != input.Position || scored < 0)
            {
                var scorer = mapper.scoring.Scorer;
                read ??= ImageColumns.PixelReader(input, mapper.InputSchema[mapper.scoring.ImageColumn], scorer.Preprocessing);
                var pixels = new byte[scorer.PixelBytes];
                read(pixels);
                result = scorer.Score(pixels, 1);
                scored = input.Position;
            }
            return result;
        }
    }
}
