using System.Diagnostics;
using System.Reflection;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using SkiaSharp;
using Vit.MLNet;

namespace Vit.WebApp;

/// <summary>The request row: the uploaded image, decoded, in the column the model's LoadImages step would have made
/// (the pool serves the model without that step: <see cref="VitPipeline.WithoutImageLoading"/>).</summary>
public sealed class UploadInput
{
    [AnySizeImage]
    public MLImage Image { get; set; } = null!;
}

/// <summary>The response row: the class probabilities (the predicted label is the best of them, in the model's labels).</summary>
public sealed class UploadPrediction
{
    public float[] Score { get; set; } = [];
}

/// <summary>
/// The web app: <c>POST /api/classify</c> (multipart field <c>imageFile</c>), <c>GET /health</c>, and a page at <c>/</c>.
/// Configuration (command line, environment or appsettings): <c>model</c> (the model file, required; reloaded when it
/// changes), <c>maxUploadBytes</c> (10 MB), <c>maxPixels</c> (50 million), <c>threadsPerEngine</c> (1) and
/// <c>maxEngines</c> (cores / threads). JSON field names are snake_case, as the <c>vit</c> tool's.
/// </summary>
public static class ClassifierApp
{
    /// <summary>The model's name in the pool.</summary>
    public const string ModelName = "classifier";

    private static readonly Lazy<string> Page = new(() =>
    {
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream("index.html")!;
        return new StreamReader(s).ReadToEnd();
    });

    /// <summary>Builds the app; <paramref name="configure"/> may change the builder first (tests use a test server).</summary>
    /// <exception cref="ArgumentException">No model is configured.</exception>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        configure?.Invoke(builder);
        var modelPath = builder.Configuration["model"];
        if (string.IsNullOrEmpty(modelPath)) throw new ArgumentException("no model: start with --model <model.zip> (or set the 'model' configuration key)");
        long maxBytes = builder.Configuration.GetValue<long?>("maxUploadBytes") ?? 10L << 20;
        int threads = builder.Configuration.GetValue<int?>("threadsPerEngine") ?? 1;
        int? engines = builder.Configuration.GetValue<int?>("maxEngines");
        long maxPixels = builder.Configuration.GetValue<long?>("maxPixels") ?? Vit.Torch.Imaging.Image.DefaultMaxPixels;
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower);
        // Room for the multipart framing around the file; the file itself is held to maxBytes below.
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = maxBytes + (64 << 10));
        builder.Services.Configure<FormOptions>(o => o.MultipartBodyLengthLimit = maxBytes + (64 << 10));
        builder.Services.AddPredictionEnginePool<UploadInput, UploadPrediction>(o =>
            {
                o.ThreadsPerEngine = threads;
                o.MaxEngines = engines;
                o.PrepareModel = VitPipeline.WithoutImageLoading;  // the uploads arrive decoded, not as paths
            })
            .FromFile(ModelName, modelPath, watchForChanges: true);

        var app = builder.Build();
        // Loaded now: a missing or damaged model stops the start with its error, instead of failing the first request.
        app.Services.GetRequiredService<PredictionEnginePool<UploadInput, UploadPrediction>>();

        app.MapGet("/", () => Results.Content(Page.Value, "text/html; charset=utf-8"));
        app.MapGet("/health", (PredictionEnginePool<UploadInput, UploadPrediction> pool) =>
            Results.Json(new { status = "ok", modelVersion = pool.GetModelVersion(ModelName) }));
        app.MapPost("/api/classify", (HttpRequest request, PredictionEnginePool<UploadInput, UploadPrediction> pool) =>
            Classify(request, pool, maxBytes, maxPixels));
        return app;
    }

    private static IResult Error(int status, string message) => Results.Json(new { error = message }, statusCode: status);

    private static async Task<IResult> Classify(HttpRequest request, PredictionEnginePool<UploadInput, UploadPrediction> pool, long maxBytes, long maxPixels)
    {
        var clock = Stopwatch.StartNew();
        if (request.ContentLength > maxBytes + (64 << 10))
            return Error(StatusCodes.Status413PayloadTooLarge, $"the upload is larger than the limit of {maxBytes} bytes");
        if (!request.HasFormContentType)
            return Error(StatusCodes.Status400BadRequest, "send the image as multipart/form-data in the field 'imageFile'");
        IFormCollection form;
        try
        {
            form = await request.ReadFormAsync();
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return Error(StatusCodes.Status413PayloadTooLarge, $"the upload is larger than the limit of {maxBytes} bytes");
        }
        catch (InvalidDataException e) when (e.Message.Contains("limit", StringComparison.OrdinalIgnoreCase))
        {
            return Error(StatusCodes.Status413PayloadTooLarge, $"the upload is larger than the limit of {maxBytes} bytes");
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            return Error(StatusCodes.Status400BadRequest, $"the form cannot be read: {e.Message}");
        }
        var file = form.Files["imageFile"];
        if (file is null || file.Length == 0)
            return Error(StatusCodes.Status400BadRequest, "no image: send the picture in the multipart field 'imageFile'");
        if (file.Length > maxBytes)
            return Error(StatusCodes.Status413PayloadTooLarge, $"the image is {file.Length} bytes, over the limit of {maxBytes}");
        var bytes = new byte[file.Length];
        await using (var s = file.OpenReadStream())
            await s.ReadExactlyAsync(bytes);
        if (!LooksLikeImage(bytes))
            return Error(StatusCodes.Status415UnsupportedMediaType, "not a JPEG, PNG, BMP or WebP image");

        // Decoded by SkiaSharp, as the model's LoadImages decoded its training images; the size is read from the header
        // first, so a small file that claims a huge image is refused before any pixel memory is taken.
        using (var codec = SKCodec.Create(new MemoryStream(bytes)))
        {
            if (codec is null) return Error(StatusCodes.Status415UnsupportedMediaType, "the image cannot be decoded");
            if ((long)codec.Info.Width * codec.Info.Height > maxPixels)
                return Error(StatusCodes.Status413PayloadTooLarge, $"the image is {codec.Info.Width}x{codec.Info.Height}, over the limit of {maxPixels} pixels");
        }
        MLImage image;
        try
        {
            image = MLImage.CreateFromStream(new MemoryStream(bytes));
        }
        catch (ArgumentException e)
        {
            return Error(StatusCodes.Status415UnsupportedMediaType, $"the image cannot be decoded: {e.Message}");
        }
        using var _image = image;

        PoolPrediction<UploadPrediction> p;
        (int Rows, int Columns, float[] Values)? attention = null;
        try
        {
            var input = new UploadInput { Image = image };
            if (string.Equals(request.Query["attention"], "true", StringComparison.OrdinalIgnoreCase))
            {
                // Scores and map from one version of the model, even if a reload happens meanwhile.
                (p, attention) = pool.UseModel(ModelName, (model, version) =>
                {
                    var vit = VitPipeline.Find(model, "the attention map");
                    using var engine = new MLContext().Model.CreatePredictionEngine<UploadInput, UploadPrediction>(model,
                        new PredictionEngineOptions { OwnsTransformer = false });
                    return (new PoolPrediction<UploadPrediction>(engine.Predict(input), version, vit.Labels),
                        ((int, int, float[])?)vit.AttentionMap(image));
                });
            }
            else
            {
                p = await pool.PredictWithDetailsAsync(ModelName, input, request.HttpContext.RequestAborted);
            }
        }
        catch (OperationCanceledException) when (request.HttpContext.RequestAborted.IsCancellationRequested)
        {
            return Results.Empty;  // the client went away while the request waited for an engine
        }
        var score = p.Prediction.Score;
        // Best first; ties keep label order, as PredictedLabel does.
        var top = Enumerable.Range(0, score.Length).OrderByDescending(i => score[i]).ThenBy(i => i)
            .Select(i => new { label = p.Labels[i], probability = score[i] }).ToList();
        return Results.Json(new
        {
            PredictedLabel = top[0].label,
            Probability = top[0].probability,
            Top = top,
            ElapsedMs = clock.Elapsed.TotalMilliseconds,
            ModelVersion = p.ModelVersion,
            Attention = attention is { } a ? new { rows = a.Rows, columns = a.Columns, values = a.Values } : null,
        });
    }

    /// <summary>The signatures of the formats the decoder reads: JPEG, PNG, BMP, WebP.</summary>
    public static bool LooksLikeImage(ReadOnlySpan<byte> b) =>
        (b.Length >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        || b.StartsWith((ReadOnlySpan<byte>)[0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A])
        || (b.Length >= 14 && b[0] == (byte)'B' && b[1] == (byte)'M')
        || (b.Length >= 12 && b[..4].SequenceEqual("RIFF"u8) && b[8..12].SequenceEqual("WEBP"u8));
}
