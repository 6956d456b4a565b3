using System.Collections.Concurrent;
using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.MLNet;

/// <summary>Saving and loading model files, and prediction engines (ML.NET's <c>mlContext.Model</c>).</summary>
public sealed class ModelOperationsCatalog
{
    internal ModelOperationsCatalog() { }

    /// <summary>
    /// Saves a fitted pipeline (LoadImages/ResizeImages steps and the ViT) with the schema of its input to a model
    /// file (a zip: model.json, weights.safetensors, training.json). Atomic: a crash leaves any previous file intact.
    /// </summary>
    public void Save(ITransformer model, DataViewSchema inputSchema, string filePath) => ModelFile.Save(model, inputSchema, filePath);

    /// <summary>Loads a model file; <paramref name="inputSchema"/> receives the schema it was saved with.</summary>
    public ITransformer Load(string filePath, out DataViewSchema inputSchema) => ModelFile.Load(filePath, out inputSchema);

    /// <summary>
    /// A prediction engine for single items. Not thread-safe: use one per thread, or
    /// <see cref="CreatePredictionEnginePool{TSrc,TDst}"/> in web apps.
    /// </summary>
    public PredictionEngine<TSrc, TDst> CreatePredictionEngine<TSrc, TDst>(ITransformer model)
        where TSrc : class where TDst : class, new() => new(model);

    /// <summary>A thread-safe pool of prediction engines over one model, for concurrent requests.</summary>
    public PredictionEnginePool<TSrc, TDst> CreatePredictionEnginePool<TSrc, TDst>(ITransformer model)
        where TSrc : class where TDst : class, new() => new(model);
}

/// <summary>
/// Predicts one item at a time through a fitted pipeline (ML.NET's PredictionEngine). Input properties map to the
/// pipeline's input columns, output properties to its output columns, by name or <see cref="ColumnNameAttribute"/>.
/// Not thread-safe (it reuses buffers); the numbers equal those of <see cref="ITransformer.Transform"/>.
/// </summary>
public sealed class PredictionEngine<TSrc, TDst> where TSrc : class where TDst : class, new()
{
    private readonly ITransformer model;
    private readonly IReadOnlyList<(string Column, System.Reflection.PropertyInfo Property)> inputs;
    private readonly DataViewSchema inputSchema;
    private readonly RowBinder<TDst> binder;
    private readonly object?[][] row = new object?[1][];
    private int busy;

    internal PredictionEngine(ITransformer model)
    {
        this.model = model ?? throw new ArgumentNullException(nameof(model));
        inputs = ColumnMapping.Of(typeof(TSrc)).Where(m => m.Property.CanRead).ToList();
        inputSchema = new DataViewSchema(inputs.Select(m => (m.Column, ColumnMapping.TypeOf(m.Property))));
        // Checks now, not at the first request: every input column the pipeline needs, every output property it fills.
        binder = new RowBinder<TDst>(model.GetOutputSchema(inputSchema));
    }

    /// <summary>Scores one item.</summary>
    public TDst Predict(TSrc example)
    {
        ArgumentNullException.ThrowIfNull(example);
        if (Interlocked.Exchange(ref busy, 1) != 0)
            throw new InvalidOperationException("PredictionEngine is not thread-safe and is already predicting on another thread; use CreatePredictionEnginePool");
        try
        {
            row[0] = inputs.Select(m => m.Property.GetValue(example)).ToArray();
            var output = model.Transform(new TableDataView(inputSchema, row));
            return binder.Read(output.GetRows().Single());
        }
        finally
        {
            Volatile.Write(ref busy, 0);
        }
    }
}

/// <summary>A thread-safe pool of <see cref="PredictionEngine{TSrc,TDst}"/>s sharing one model; for web apps.</summary>
public sealed class PredictionEnginePool<TSrc, TDst> where TSrc : class where TDst : class, new()
{
    private readonly ITransformer model;
    private readonly ConcurrentBag<PredictionEngine<TSrc, TDst>> engines = new();

    internal PredictionEnginePool(ITransformer model)
    {
        this.model = model;
        engines.Add(new PredictionEngine<TSrc, TDst>(model));  // validates the mapping up front
    }

    /// <summary>Scores one item; safe to call from any number of threads.</summary>
    public TDst Predict(TSrc example)
    {
        var engine = engines.TryTake(out var e) ? e : new PredictionEngine<TSrc, TDst>(model);
        try
        {
            return engine.Predict(example);
        }
        finally
        {
            engines.Add(engine);
        }
    }
}

/// <summary>A model to start training from: one of our model files, or a safetensors checkpoint (timm names).</summary>
internal sealed record PretrainedModel(VisionTransformer Model, IReadOnlyList<string>? Labels, Normalization? Normalization)
{
    public static PretrainedModel Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"StartFrom: file not found: {path}", path);
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            var header = Safetensors.ReadHeader(path);
            var config = InferConfig(header, path);
            var model = new VisionTransformer(config);
            try
            {
                model.LoadSafetensors(path);
                return new PretrainedModel(model, null, null);
            }
            catch
            {
                model.Dispose();
                throw;
            }
        }
        var (m, labels, pre) = ModelFile.LoadModel(path);
        return new PretrainedModel(m, labels, pre.Normalization);
    }

    /// <summary>Reads a ViT's shape from its tensor shapes (timm names), as timm checkpoints carry no config.</summary>
    private static VitConfig InferConfig(SafetensorsHeader header, string path)
    {
        var shapes = header.Entries.ToDictionary(e => e.Name, e => e.Shape.ToArray());
        long[] Need(string name) => shapes.TryGetValue(name, out var s) ? s
            : throw new InvalidDataException($"{path} is not a ViT checkpoint with timm names: it has no '{name}'");
        var patch = Need("patch_embed.proj.weight");      // (D, C, P, P)
        var pos = Need("pos_embed");                        // (1, T, D)
        var fc1 = Need("blocks.0.mlp.fc1.weight");          // (M, D)
        var head = Need("head.weight");                     // (K, D)
        int depth = 0;
        while (shapes.ContainsKey($"blocks.{depth}.attn.qkv.weight")) depth++;
        bool cls = shapes.ContainsKey("cls_token");
        int dim = (int)patch[0], p = (int)patch[2];
        int tokens = (int)pos[1] - (cls ? 1 : 0);
        int grid = (int)Math.Round(Math.Sqrt(tokens));
        if (grid * grid != tokens) throw new InvalidDataException($"{path}: pos_embed has {tokens} patch positions, not a square grid");
        // Head count is not stored in the weights; the presets' D/64 rule (Ti 3, S 6, B 12, L 16) covers the published models.
        int heads = dim switch { 192 => 3, 384 => 6, 768 => 12, 1024 => 16, _ => Math.Max(1, dim / 64) };
        return new VitConfig
        {
            ImageSize = grid * p, PatchSize = p, Channels = (int)patch[1], Dim = dim, Depth = depth, Heads = heads,
            MlpDim = (int)fc1[0], NumClasses = (int)head[0], Pooling = cls ? VitPooling.ClassToken : VitPooling.Mean,
        }.Validate();
    }
}
