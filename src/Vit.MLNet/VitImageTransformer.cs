using Microsoft.ML;
using Microsoft.ML.Data;
using Vit.Torch;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.MLNet;

/// <summary>
/// What the ViT transformers share (<see cref="VitTransformer"/>, <see cref="VitFeaturizingTransformer"/>): an image
/// column in, the model's outputs added as columns, lazily and in batches over data views (reading images ahead on several
/// threads), one row at a time for prediction engines, and saving into ML.NET's model files. Safe to use from several
/// threads at once (the model is only read); dispose it to free native memory.
/// </summary>
public abstract class VitImageTransformer : ITransformer, IDisposable
{
    private protected VitImageTransformer(ImageScoring scoring) => Scoring = scoring;

    private protected ImageScoring Scoring { get; }

    /// <summary>The network.</summary>
    public VisionTransformer Model => Scoring.Scorer.Model;

    /// <summary>Input size, channels, normalisation, and how images of another size are resized.</summary>
    public VitPreprocessing Preprocessing => Scoring.Scorer.Preprocessing;

    /// <summary>Device the model runs on.</summary>
    public Device Device => Scoring.Scorer.Device;

    /// <summary>Arithmetic of the forward pass (saved with the model): <see cref="Vit.Torch.Precision.Auto"/> computes in
    /// bfloat16 mixed precision where the hardware has native bfloat16; <see cref="Vit.Torch.Precision.Float32"/> gives
    /// float32's exact numbers.</summary>
    public Precision Precision
    {
        get => Scoring.Scorer.Precision;
        set => Scoring.Scorer.Precision = value;
    }

    /// <summary>True: a prediction engine can use it one row at a time.</summary>
    public bool IsRowToRowMapper => true;

    /// <summary>The schema <see cref="Transform"/> gives: the input's columns, then this step's.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The image column is missing or is not an image or image bytes.</exception>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Scoring.OutputSchema(inputSchema);

    /// <summary>The step for one row at a time (ML.NET's prediction engines use it).</summary>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new ScoringRowMapper(inputSchema, Scoring);

    /// <summary>Adds this step's columns to <paramref name="input"/>, lazily: images are decoded and scored when a cursor
    /// asks for those columns.</summary>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new ScoredDataView(input, Scoring);
    }

    /// <summary>ML.NET's version header of this step in model files (<paramref name="signature"/>: 8 characters).</summary>
    private protected static VersionInfo Version(string signature, string loaderSignature) =>
        new(signature, verWrittenCur: 0x00010001, verReadableCur: 0x00010001, verWeCanReadBack: 0x00010001,
            loaderAssemblyName: typeof(VitImageTransformer).Assembly.GetName().Name, loaderSignature: loaderSignature);

    private protected abstract VersionInfo VersionInfo { get; }

    /// <summary>Writes this step's settings and model after ML.NET's header.</summary>
    private protected abstract void SaveModel(ModelSaveContext ctx);

    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        ctx.CheckAtModel();
        ctx.SetVersionInfo(VersionInfo);
        SaveModel(ctx);
    }

    /// <summary>Frees the model's native memory.</summary>
    public virtual void Dispose() => Model.Dispose();
}
