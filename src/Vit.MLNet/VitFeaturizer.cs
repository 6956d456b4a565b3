using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Vit.MLNet;
using Vit.Torch;
using Vit.Torch.Checkpoints;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

[assembly: LoadableClass(typeof(VitFeaturizingTransformer), null, typeof(SignatureLoadModel), "Vision Transformer features", VitFeaturizingTransformer.LoaderSignature)]

namespace Vit.MLNet;

/// <summary>
/// Turns images into a pretrained ViT's pooled features, for any ML.NET trainer to learn from (the way ML.NET's
/// <c>DnnFeaturizeImage</c> does with ResNet): made by <c>mlContext.Transforms.FeaturizeImageWithVit(checkpointPath)</c>.
/// Fitting learns nothing; the checkpoint is read when the estimator is made.
/// </summary>
public sealed class VitFeaturizingEstimator : IEstimator<VitFeaturizingTransformer>
{
    private readonly IHostEnvironment env;
    private readonly string checkpointPath;
    private readonly string outputColumnName, inputColumnName;
    private readonly PretrainedVitOptions? options;
    private readonly VitConfig config;

    internal VitFeaturizingEstimator(IHostEnvironment env, string checkpointPath, string outputColumnName, string inputColumnName, PretrainedVitOptions? options)
    {
        ArgumentException.ThrowIfNullOrEmpty(checkpointPath);
        ArgumentException.ThrowIfNullOrEmpty(outputColumnName);
        ArgumentException.ThrowIfNullOrEmpty(inputColumnName);
        (this.env, this.checkpointPath, this.outputColumnName, this.inputColumnName, this.options) = (env, checkpointPath, outputColumnName, inputColumnName, options);
        using var pretrained = PretrainedVit.Load(checkpointPath, options);  // fails now, naming the file, if it cannot be read
        config = pretrained.Model.Config;
    }

    /// <summary>Adds the features column (a vector of floats of the embedding width); checks the image column.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        ImageColumns.Check(inputSchema, inputColumnName);
        var columns = inputSchema.ToDictionary(c => c.Name);
        columns[outputColumnName] = new SchemaShape.Column(outputColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);
        return new SchemaShape(columns.Values);
    }

    /// <summary>Loads the checkpoint (the data is only checked to have the image column).</summary>
    public VitFeaturizingTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ImageColumns.Check(input.Schema, inputColumnName);
        using var pretrained = PretrainedVit.Load(checkpointPath, options);
        if (pretrained.Model.Config != config) throw new InvalidDataException($"{checkpointPath} changed since the estimator was made");
        return new VitFeaturizingTransformer(env, pretrained.TakeModel(), pretrained.Preprocessing, pretrained.Labels, inputColumnName, outputColumnName);
    }
}

/// <summary>
/// Adds a pretrained ViT's pooled features of each image (<see cref="VisionTransformer.ForwardFeatures"/>; float32
/// unless <see cref="VitImageTransformer.Precision"/> says otherwise: features feed other trainers, which expect the same
/// numbers at training and scoring time) as a vector column; the head, if the model has one, is not used.
/// </summary>
public sealed class VitFeaturizingTransformer : VitImageTransformer
{
    internal const string LoaderSignature = "VitFeaturizer";
    private readonly IReadOnlyList<string>? labels;

    internal VitFeaturizingTransformer(IHostEnvironment env, VisionTransformer model, VitPreprocessing preprocessing, IReadOnlyList<string>? labels,
        string inputColumnName, string outputColumnName)
        : base(new ImageScoring(env, inputColumnName, new VitScorer(model, preprocessing, Device.Cpu, Precision.Float32, ScorerOutput.Features),
            VitEstimator.Options.Defaults.ScoringBatchSize, [OutputColumn.Vector(outputColumnName, model.Config.Dim, new DataViewSchema.Annotations.Builder().ToAnnotations())]))
    {
        model.Eval();
        this.labels = labels;
        InputColumnName = inputColumnName;
        OutputColumnName = outputColumnName;
    }

    /// <summary>The image column read.</summary>
    public string InputColumnName { get; }

    /// <summary>The features column written.</summary>
    public string OutputColumnName { get; }

    private static VersionInfo GetVersionInfo() => Version("VITFEATS", LoaderSignature);

    private protected override VersionInfo VersionInfo => GetVersionInfo();

    private protected override void SaveModel(ModelSaveContext ctx)
    {
        ctx.Writer.Write(InputColumnName);
        ctx.Writer.Write(OutputColumnName);
        ctx.Writer.Write(Precision.ToString());
        var classes = labels ?? Enumerable.Range(0, Model.Config.NumClasses).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
        ModelEntries.Write(ctx, Model, classes, Preprocessing, null, null);
    }

    private static VitFeaturizingTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ctx.CheckAtModel(GetVersionInfo());
        string input = ctx.Reader.ReadString(), output = ctx.Reader.ReadString(), precisionText = ctx.Reader.ReadString();
        if (!Enum.TryParse<Precision>(precisionText, out var precision) || !Enum.IsDefined(precision))
            throw new InvalidDataException($"the ViT featurizer step of the model ({ctx.Directory}) is damaged: precision '{precisionText}'");
        using var pretrained = ModelEntries.Load(ctx, out _);
        return new VitFeaturizingTransformer(env, pretrained.TakeModel(), pretrained.Preprocessing, pretrained.Labels, input, output) { Precision = precision };
    }
}
