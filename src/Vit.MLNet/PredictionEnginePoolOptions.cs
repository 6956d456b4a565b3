using Microsoft.ML;

namespace Vit.MLNet;

/// <summary>Settings of a <see cref="PredictionEnginePool{TSrc,TDst}"/>.</summary>
public sealed class PredictionEnginePoolOptions
{
    /// <summary>Predictions running at once per model (and so engines per model): more requests wait for a free engine.
    /// Default: the core count divided by <see cref="ThreadsPerEngine"/>, at least 1.</summary>
    public int? MaxEngines { get; set; }

    /// <summary>Intra-op threads each engine computes with (on its own calling thread). Default 1: with
    /// <see cref="MaxEngines"/> engines at once, the cores are shared out rather than oversubscribed.</summary>
    public int ThreadsPerEngine { get; set; } = 1;

    /// <summary>How long a watched file must stay quiet before it is reloaded (a copy in progress raises many events).</summary>
    public TimeSpan ReloadDelay { get; set; } = TimeSpan.FromMilliseconds(300);

    /// <summary>Attempts to load a changed file that is locked or still being written, <see cref="ReloadDelay"/> apart,
    /// before the reload is given up (the old model keeps serving).</summary>
    public int ReloadAttempts { get; set; } = 10;

    /// <summary>Applied to every model the pool loads from a file, before its engines are made: for example
    /// <see cref="VitPipeline.WithoutImageLoading"/>, to feed images decoded in memory to a model trained on image paths.
    /// Null: the model as loaded.</summary>
    public Func<ITransformer, ITransformer>? PrepareModel { get; set; }

    internal int Engines => MaxEngines ?? Math.Max(1, Environment.ProcessorCount / Math.Max(1, ThreadsPerEngine));

    internal void Validate()
    {
        if (MaxEngines is < 1) throw new ArgumentOutOfRangeException(nameof(MaxEngines), MaxEngines, "MaxEngines must be at least 1");
        if (ThreadsPerEngine < 1) throw new ArgumentOutOfRangeException(nameof(ThreadsPerEngine), ThreadsPerEngine, "ThreadsPerEngine must be at least 1");
        if (ReloadDelay < TimeSpan.Zero || ReloadDelay > TimeSpan.FromHours(1))
            throw new ArgumentOutOfRangeException(nameof(ReloadDelay), ReloadDelay, "ReloadDelay must be between 0 and 1 hour");
        if (ReloadAttempts < 1) throw new ArgumentOutOfRangeException(nameof(ReloadAttempts), ReloadAttempts, "ReloadAttempts must be at least 1");
    }
}

/// <summary>A model the pool (re)loaded: its name, the version it now serves, and where it came from.</summary>
/// <param name="ModelName">The model's name in the pool.</param>
/// <param name="Version">1 for the first load, then one more per successful reload.</param>
/// <param name="FilePath">The file it was loaded from (null for a model given as an object).</param>
public sealed record ModelLoadedEventArgs(string ModelName, long Version, string? FilePath);

/// <summary>A reload that failed: the pool goes on serving <paramref name="ServingVersion"/>.</summary>
/// <param name="ModelName">The model's name in the pool.</param>
/// <param name="ServingVersion">The version still served.</param>
/// <param name="FilePath">The file that could not be loaded.</param>
/// <param name="Error">Why.</param>
public sealed record ModelReloadFailedEventArgs(string ModelName, long ServingVersion, string FilePath, Exception Error);

/// <summary>A prediction with the model version that made it and that version's labels (the order of its Score vector).</summary>
/// <param name="Prediction">The output row.</param>
/// <param name="ModelVersion">The version that answered.</param>
/// <param name="Labels">Its labels.</param>
public sealed record PoolPrediction<TDst>(TDst Prediction, long ModelVersion, IReadOnlyList<string> Labels);

