using Microsoft.Extensions.Logging;

namespace Vit.MLNet;

/// <summary>Registers pools with a service collection (ML.NET's <c>services.AddPredictionEnginePool</c>).</summary>
public static class PredictionEnginePoolServiceCollectionExtensions
{
    /// <summary>
    /// Registers a singleton <see cref="PredictionEnginePool{TSrc,TDst}"/>; name its models with the returned builder's
    /// <see cref="PredictionEnginePoolBuilder{TSrc,TDst}.FromFile(string, string, bool)"/>. The pool is created (and its
    /// files loaded) when first resolved, logs through the registered <see cref="ILoggerFactory"/>, and is disposed with
    /// the container.
    /// </summary>
    public static PredictionEnginePoolBuilder<TSrc, TDst> AddPredictionEnginePool<TSrc, TDst>(this Microsoft.Extensions.DependencyInjection.IServiceCollection services,
        Action<PredictionEnginePoolOptions>? configure = null) where TSrc : class where TDst : class, new()
    {
        ArgumentNullException.ThrowIfNull(services);
        var builder = new PredictionEnginePoolBuilder<TSrc, TDst>(services);
        configure?.Invoke(builder.Options);
        builder.Options.Validate();
        Microsoft.Extensions.DependencyInjection.ServiceCollectionServiceExtensions.AddSingleton(services,
            sp => builder.Build((sp.GetService(typeof(ILoggerFactory)) as ILoggerFactory)?.CreateLogger("Vit.MLNet.PredictionEnginePool")));
        return builder;
    }
}

/// <summary>Names the models of a registered pool.</summary>
public sealed class PredictionEnginePoolBuilder<TSrc, TDst> where TSrc : class where TDst : class, new()
{
    private readonly List<(string Name, string Path, bool Watch)> files = new();

    internal PredictionEnginePoolBuilder(Microsoft.Extensions.DependencyInjection.IServiceCollection services) => Services = services;

    /// <summary>The service collection the pool is registered in.</summary>
    public Microsoft.Extensions.DependencyInjection.IServiceCollection Services { get; }

    /// <summary>The pool's settings.</summary>
    public PredictionEnginePoolOptions Options { get; } = new();

    /// <summary>Serves the model file under <paramref name="modelName"/>; with <paramref name="watchForChanges"/> a changed
    /// file is reloaded (see <see cref="PredictionEnginePool{TSrc,TDst}"/>).</summary>
    public PredictionEnginePoolBuilder<TSrc, TDst> FromFile(string modelName, string filePath, bool watchForChanges = false)
    {
        ArgumentNullException.ThrowIfNull(modelName);
        ArgumentException.ThrowIfNullOrEmpty(filePath);
        files.Add((modelName, filePath, watchForChanges));
        return this;
    }

    /// <summary>Serves the model file as the default model (<see cref="PredictionEnginePool{TSrc,TDst}.DefaultModelName"/>).</summary>
    public PredictionEnginePoolBuilder<TSrc, TDst> FromFile(string filePath, bool watchForChanges = false) =>
        FromFile(PredictionEnginePool<TSrc, TDst>.DefaultModelName, filePath, watchForChanges);

    internal PredictionEnginePool<TSrc, TDst> Build(ILogger? logger)
    {
        var pool = new PredictionEnginePool<TSrc, TDst>(Options, logger);
        try
        {
            foreach (var (name, path, watch) in files) pool.AddModelFromFile(name, path, watch);
            return pool;
        }
        catch
        {
            pool.Dispose();
            throw;
        }
    }
}
