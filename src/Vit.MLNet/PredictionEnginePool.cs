using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML;
using Engine = Vit.Torch.Torch;

namespace Vit.MLNet;

/// <summary>
/// Thread-safe predictions over named ML.NET models, for web apps (the shape of <c>Microsoft.Extensions.ML</c>'s pool,
/// over ML.NET's own <see cref="PredictionEngine{TSrc, TDst}"/>; any ML.NET model file, with a ViT step or not). Each model
/// load is a generation with its own bounded set of engines; a reload builds the new generation off the request path
/// and swaps it in atomically; a request keeps the generation it started with, returns its engine there, and the old
/// generation's model is disposed when its last request ends. A reload that fails (a damaged or half-written file)
/// is logged and raised as <see cref="ReloadFailed"/>, and the previous model keeps serving.
/// </summary>
public sealed class PredictionEnginePool<TSrc, TDst> : IDisposable where TSrc : class where TDst : class, new()
{
    /// <summary>The name of the model of <see cref="Predict(TSrc)"/> (ML.NET's default model name is the empty string too).</summary>
    public const string DefaultModelName = "";

    private readonly ConcurrentDictionary<string, Slot> slots = new(StringComparer.Ordinal);
    private readonly PredictionEnginePoolOptions options;
    private readonly ILogger logger;
    private readonly MLContext mlContext = new();
    private int disposed;

    /// <summary>A pool with no models yet: add them with <see cref="AddModel"/> or <see cref="AddModelFromFile"/>.</summary>
    public PredictionEnginePool(PredictionEnginePoolOptions? options = null, ILogger? logger = null)
    {
        this.options = options ?? new PredictionEnginePoolOptions();
        this.options.Validate();
        this.logger = logger ?? NullLogger.Instance;
    }

    /// <summary>Raised after a model is loaded or reloaded (on the reloading thread).</summary>
    public event EventHandler<ModelLoadedEventArgs>? Loaded;

    /// <summary>Raised when a reload fails; the previous version keeps serving.</summary>
    public event EventHandler<ModelReloadFailedEventArgs>? ReloadFailed;

    /// <summary>The names of the models served.</summary>
    public IReadOnlyCollection<string> ModelNames => slots.Keys.ToList();

    /// <summary>Serves a model object under <paramref name="modelName"/>. The pool does not dispose it (its owner does).</summary>
    /// <exception cref="ArgumentException">The name is taken, or the model does not map to <typeparamref name="TSrc"/>/<typeparamref name="TDst"/>.</exception>
    public void AddModel(string modelName, ITransformer model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var slot = new Slot(this, modelName, null);
        try
        {
            slot.Install(new Generation(this, slot, model, 1, ownsModel: false));
            Register(slot);
        }
        catch
        {
            slot.Dispose();
            throw;
        }
        RaiseLoaded(new ModelLoadedEventArgs(slot.Name, 1, null));
    }

    /// <summary>
    /// Loads a model file under <paramref name="modelName"/>; with <paramref name="watchForChanges"/> the file is watched
    /// and reloaded when it changes (written in place, or replaced by a rename).
    /// </summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">The file is not a model file, or is damaged.</exception>
    public void AddModelFromFile(string modelName, string filePath, bool watchForChanges = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(filePath);
        var full = Path.GetFullPath(filePath);
        if (!File.Exists(full)) throw new FileNotFoundException($"model file not found: {full}", full);
        var slot = new Slot(this, modelName, full);
        try
        {
            slot.Install(Load(slot, full, 1));
            if (watchForChanges) slot.Watch();  // before the model is visible: a failure leaves nothing behind
            Register(slot);
        }
        catch
        {
            slot.Dispose();
            throw;
        }
        RaiseLoaded(new ModelLoadedEventArgs(slot.Name, 1, full));
    }

    // Registration and Dispose exclude each other, so a model added while the pool is disposed is either disposed
    // with it or refused.
    private readonly object registration = new();

    private void Register(Slot slot)
    {
        lock (registration)
        {
            ObjectDisposedException.ThrowIf(disposed != 0, this);
            if (!slots.TryAdd(slot.Name, slot))
                throw new ArgumentException($"the pool already has a model named '{slot.Name}'", "modelName");
        }
    }

    // Handlers run outside every lock of the pool, one at a time; one that throws is logged, not allowed to undo a load.
    private void RaiseLoaded(ModelLoadedEventArgs e)
    {
        try
        {
            Loaded?.Invoke(this, e);
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "a Loaded handler failed for model '{Name}' version {Version}", e.ModelName, e.Version);
        }
    }

    private void RaiseReloadFailed(ModelReloadFailedEventArgs e)
    {
        try
        {
            ReloadFailed?.Invoke(this, e);
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "a ReloadFailed handler failed for model '{Name}'", e.ModelName);
        }
    }

    /// <summary>Scores one item with the default model (<see cref="DefaultModelName"/>); safe from any number of threads.</summary>
    public TDst Predict(TSrc example) => Predict(DefaultModelName, example, out _);

    /// <summary>Scores one item with the named model; safe from any number of threads.</summary>
    public TDst Predict(string modelName, TSrc example) => Predict(modelName, example, out _);

    /// <summary>Scores one item with the named model and says which version of it answered (a reload may happen at any time).</summary>
    /// <exception cref="ArgumentException">No model has that name.</exception>
    public TDst Predict(string modelName, TSrc example, out long modelVersion)
    {
        var p = PredictWithDetails(modelName, example);
        modelVersion = p.ModelVersion;
        return p.Prediction;
    }

    /// <summary>Scores one item with the named model and returns, with the prediction, the version that answered and its
    /// labels (in the order of its Score vector): both belong to that answer even when a reload swaps the model meanwhile.</summary>
    public PoolPrediction<TDst> PredictWithDetails(string modelName, TSrc example)
    {
        ArgumentNullException.ThrowIfNull(example);
        return Leased(modelName, g => new PoolPrediction<TDst>(g.Predict(example), g.Version, g.Labels));
    }

    /// <summary>
    /// As <see cref="PredictWithDetails"/> for async code (web requests): waiting for a free engine does not block a
    /// thread, and <paramref name="cancellationToken"/> (e.g. <c>HttpContext.RequestAborted</c>) abandons the wait with an
    /// <see cref="OperationCanceledException"/>. The prediction itself runs on the calling thread once it has an engine.
    /// </summary>
    public async Task<PoolPrediction<TDst>> PredictWithDetailsAsync(string modelName, TSrc example, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(example);
        var generation = SlotOf(modelName).Acquire();
        try
        {
            var prediction = await generation.PredictAsync(example, cancellationToken).ConfigureAwait(false);
            return new PoolPrediction<TDst>(prediction, generation.Version, generation.Labels);
        }
        finally
        {
            generation.Release();
        }
    }

    /// <summary>
    /// Runs <paramref name="action"/> with the named model's current version and its number, holding it (a reload does
    /// not free it meanwhile) and one of its engine places (so it counts against <see cref="PredictionEnginePoolOptions.MaxEngines"/>
    /// and runs with <see cref="PredictionEnginePoolOptions.ThreadsPerEngine"/> intra-op threads on the calling thread): for
    /// work beside predictions, such as attention maps. Do not keep the model.
    /// </summary>
    public T UseModel<T>(string modelName, Func<ITransformer, long, T> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        return Leased(modelName, g => g.Use(action));
    }

    /// <summary>The version the named model serves now: 1 after the first load, one more per successful reload.</summary>
    public long GetModelVersion(string modelName = DefaultModelName) => SlotOf(modelName).Version;

    /// <summary>Engines created so far for the named model's current version (at most <see cref="PredictionEnginePoolOptions.MaxEngines"/>).</summary>
    public int GetEngineCount(string modelName = DefaultModelName) => Leased(modelName, g => g.EngineCount);

    // The named model's current generation, held (a reload does not free it) while `use` runs.
    private T Leased<T>(string modelName, Func<Generation, T> use)
    {
        var generation = SlotOf(modelName).Acquire();
        try
        {
            return use(generation);
        }
        finally
        {
            generation.Release();
        }
    }

    /// <summary>Reloads a file-backed model now (as a change of the watched file does); returns false, after raising
    /// <see cref="ReloadFailed"/>, when the file cannot be loaded.</summary>
    public bool Reload(string modelName = DefaultModelName) => SlotOf(modelName).Reload();

    private Slot SlotOf(string modelName)
    {
        ArgumentNullException.ThrowIfNull(modelName);
        ObjectDisposedException.ThrowIf(disposed != 0, this);
        return slots.TryGetValue(modelName, out var s) ? s
            : throw new ArgumentException($"the pool has no model named '{modelName}' (it has: {string.Join(", ", slots.Keys.Select(k => $"'{k}'"))})", nameof(modelName));
    }

    private Generation Load(Slot slot, string path, long version)
    {
        // A damaged or half-written file is an InvalidDataException (retried by a reload), whatever ML.NET wraps it in.
        var loaded = mlContext.Model.LoadWithClearErrors(path, out _);
        ITransformer model;
        try
        {
            model = options.PrepareModel is { } prepare ? prepare(loaded) : loaded;
        }
        catch
        {
            (loaded as IDisposable)?.Dispose();
            throw;
        }
        try
        {
            return new Generation(this, slot, model, version, ownsModel: true);
        }
        catch
        {
            (model as IDisposable)?.Dispose();
            throw;
        }
    }

    /// <summary>Stops watching and frees every model the pool loaded (after the requests in flight end).</summary>
    public void Dispose()
    {
        lock (registration)
        {
            if (Interlocked.Exchange(ref disposed, 1) != 0) return;
        }
        foreach (var s in slots.Values) s.Dispose();
        slots.Clear();
    }

    /// <summary>One load of a model: its engines (created on demand, each used by one request at a time) and a reference
    /// count — one for the pool while it is current, one per request in flight. The bound on concurrent predictions is the
    /// slot's, shared by every generation of the model, so a swap never runs more than MaxEngines at once.</summary>
    private sealed class Generation
    {
        private readonly PredictionEnginePool<TSrc, TDst> pool;
        private readonly ITransformer model;
        private readonly bool ownsModel;
        private readonly ConcurrentBag<PredictionEngine<TSrc, TDst>> idle = new();
        private readonly SemaphoreSlim free;  // the slot's
        private readonly int threads;
        private int references = 1;
        private int created;

        public Generation(PredictionEnginePool<TSrc, TDst> pool, Slot slot, ITransformer model, long version, bool ownsModel)
        {
            this.pool = pool;
            this.model = model;
            this.ownsModel = ownsModel;
            Version = version;
            threads = pool.options.ThreadsPerEngine;
            free = slot.Free;
            idle.Add(NewEngine());  // checks the mapping now, before the generation serves
            created = 1;
            Labels = VitPipeline.Steps(model).OfType<VitTransformer>().FirstOrDefault()?.Labels ?? [];
        }

        // The engines never own the model: it outlives them (a generation frees it when its last request ends).
        private PredictionEngine<TSrc, TDst> NewEngine() =>
            pool.mlContext.Model.CreatePredictionEngine<TSrc, TDst>(model, new PredictionEngineOptions { OwnsTransformer = false });

        public T Use<T>(Func<ITransformer, long, T> action)
        {
            free.Wait();
            try
            {
                using (Engine.LocalThreads(threads))
                    return action(model, Version);
            }
            finally
            {
                free.Release();
            }
        }

        public long Version { get; }

        public IReadOnlyList<string> Labels { get; }

        public int EngineCount => Volatile.Read(ref created);

        /// <summary>Takes a reference unless the generation is already freed (then the caller reads the newer one).</summary>
        public bool TryAcquire()
        {
            while (true)
            {
                int r = Volatile.Read(ref references);
                if (r == 0) return false;
                if (Interlocked.CompareExchange(ref references, r + 1, r) == r) return true;
            }
        }

        public void Release()
        {
            if (Interlocked.Decrement(ref references) != 0) return;
            while (idle.TryTake(out var engine)) engine.Dispose();
            if (ownsModel) (model as IDisposable)?.Dispose();
        }

        public TDst Predict(TSrc example)
        {
            free.Wait();
            try
            {
                return Run(example);
            }
            finally
            {
                free.Release();
            }
        }

        /// <summary>As <see cref="Predict"/>, waiting for a free place without blocking a thread; cancellable while it waits.</summary>
        public async Task<TDst> PredictAsync(TSrc example, CancellationToken cancellationToken)
        {
            await free.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                return Run(example);
            }
            finally
            {
                free.Release();
            }
        }

        // With a place taken: an idle engine of this generation (or a new one), on this thread's share of threads.
        private TDst Run(TSrc example)
        {
            {
                if (!idle.TryTake(out var engine))
                {
                    engine = NewEngine();
                    Interlocked.Increment(ref created);
                }
                try
                {
                    using (Engine.LocalThreads(threads))
                        return engine.Predict(example);
                }
                finally
                {
                    idle.Add(engine);  // back to the generation it came from
                }
            }
        }
    }

    /// <summary>A named model: its current generation, and for a watched file the watcher and the debounced reload.</summary>
    private sealed class Slot(PredictionEnginePool<TSrc, TDst> pool, string name, string? filePath) : IDisposable
    {
        private readonly object reloadLock = new();
        private readonly AutoResetEvent poked = new(false);

        /// <summary>Places for predictions of this model, over all its generations (never disposed: requests of a drained
        /// generation may still release theirs).</summary>
        public SemaphoreSlim Free { get; } = new(pool.options.Engines, pool.options.Engines);
        private Generation? current;
        private FileSystemWatcher? watcher;
        private long lastPoke;
        private volatile bool closed;

        public string Name { get; } = name ?? throw new ArgumentNullException(nameof(name));

        public string? FilePath { get; } = filePath;

        public long Version => (Volatile.Read(ref current) ?? throw new ObjectDisposedException(nameof(PredictionEnginePool<TSrc, TDst>))).Version;

        public void Install(Generation g) => current = g;

        /// <summary>A reference on the current generation. A generation is freed only after it stopped being current,
        /// so a failed TryAcquire means a newer one is already in place: read again.</summary>
        public Generation Acquire()
        {
            while (true)
            {
                var g = Volatile.Read(ref current) ?? throw new ObjectDisposedException(nameof(PredictionEnginePool<TSrc, TDst>));
                if (g.TryAcquire()) return g;
            }
        }

        public void Watch()
        {
            var dir = Path.GetDirectoryName(FilePath!)!;
            // Reloads run on a thread of their own: under load the thread pool may be too busy to run a timer's
            // callback for many seconds, and a reload must not wait for the requests it is meant to follow.
            new Thread(ReloadLoop) { IsBackground = true, Name = $"model reload: {Name}" }.Start();
            watcher = new FileSystemWatcher(dir, Path.GetFileName(FilePath!))
            {
                NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.CreationTime,
            };
            FileSystemEventHandler changed = (_, _) => Poke();
            watcher.Changed += changed;
            watcher.Created += changed;
            watcher.Renamed += (_, e) =>
            {
                if (string.Equals(Path.GetFullPath(e.FullPath), FilePath, StringComparison.Ordinal)) Poke();
            };
            watcher.Error += (_, e) => pool.logger.LogWarning(e.GetException(), "watching {File} failed; changes may be missed", FilePath);
            watcher.EnableRaisingEvents = true;
        }

        // Every event restarts the quiet period: a file copied in place raises many.
        private void Poke()
        {
            Volatile.Write(ref lastPoke, System.Diagnostics.Stopwatch.GetTimestamp());
            poked.Set();
        }

        private void ReloadLoop()
        {
            while (true)
            {
                poked.WaitOne();
                // Wait until the file has been quiet for ReloadDelay.
                for (var quiet = System.Diagnostics.Stopwatch.GetElapsedTime(Volatile.Read(ref lastPoke));
                     !closed && quiet < pool.options.ReloadDelay;
                     quiet = System.Diagnostics.Stopwatch.GetElapsedTime(Volatile.Read(ref lastPoke)))
                    Thread.Sleep(pool.options.ReloadDelay - quiet);
                if (closed) return;
                try
                {
                    Reload();
                }
                catch (Exception e)
                {
                    pool.logger.LogError(e, "model '{Name}': reloading {File} failed", Name, FilePath);
                }
            }
        }

        public bool Reload()
        {
            if (FilePath is null) throw new InvalidOperationException($"model '{Name}' was not loaded from a file");
            ModelLoadedEventArgs? loaded = null;
            ModelReloadFailedEventArgs? failed = null;
            lock (reloadLock)
            {
                if (closed) return false;
                long next = current!.Version + 1;
                Generation? g = null;
                Exception? error = null;
                for (int attempt = 1; attempt <= pool.options.ReloadAttempts && g is null; attempt++)
                {
                    try
                    {
                        g = pool.Load(this, FilePath, next);
                    }
                    catch (Exception e)
                    {
                        error = e;
                        // Locked, missing for a moment, or still being written: wait for it to settle. Anything else
                        // (a model that does not fit the input and output classes, say) will not get better.
                        if (e is not (IOException or InvalidDataException or UnauthorizedAccessException)) break;
                        if (attempt < pool.options.ReloadAttempts) Thread.Sleep(pool.options.ReloadDelay);
                    }
                }
                if (g is not null)
                {
                    Interlocked.Exchange(ref current, g)!.Release();  // the old one is freed when its last request ends
                    pool.logger.LogInformation("model '{Name}' reloaded from {File}: version {Version}", Name, FilePath, next);
                    loaded = new ModelLoadedEventArgs(Name, next, FilePath);
                }
                else
                {
                    pool.logger.LogError(error, "model '{Name}': reloading {File} failed; version {Version} keeps serving", Name, FilePath, current.Version);
                    failed = new ModelReloadFailedEventArgs(Name, current.Version, FilePath, error!);
                }
            }
            if (loaded is not null) pool.RaiseLoaded(loaded);
            else pool.RaiseReloadFailed(failed!);
            return loaded is not null;
        }

        public void Dispose()
        {
            lock (reloadLock)
            {
                if (closed) return;
                closed = true;
            }
            watcher?.Dispose();
            poked.Set();  // the reload thread sees closed and ends (it disposes nothing it shares)
            Interlocked.Exchange(ref current, null)?.Release();
        }
    }
}

