using System.Text.Json.Nodes;
using Vit.Torch.Checkpoints;
using Vit.Torch.Model;

namespace Vit.Torch.Training;

/// <summary>Where a run is and what it has done: what a checkpoint restores besides tensors.</summary>
internal sealed class RunState
{
    /// <summary>The epoch in progress (0-based); <see cref="TrainerOptions.Epochs"/> when training is over.</summary>
    public int Epoch { get; set; }

    /// <summary>Batches of <see cref="Epoch"/> done (at an optimizer-step boundary).</summary>
    public int Batch { get; set; }

    /// <summary>Optimizer steps done, in this run's schedule.</summary>
    public long Step { get; set; }

    /// <summary>The epoch's running sums: loss × samples, right predictions, samples.</summary>
    public double LossSum { get; set; }

    public long Correct { get; set; }

    public long Seen { get; set; }

    /// <summary>Training time of the epoch so far, and of the run so far, carried over a resume.</summary>
    public TimeSpan EpochTime { get; set; }

    public TimeSpan RunTime { get; set; }

    /// <summary>Early stopping's bookkeeping.</summary>
    public double BestScore { get; set; } = double.NegativeInfinity;

    public int BestEpoch { get; set; }

    public int SinceBest { get; set; }

    public bool StoppedEarly { get; set; }

    public List<EpochResult> History { get; } = new();
}

/// <summary>
/// Checkpoint files of a run: our safetensors (the model's weights under their names, with its config and the caller's
/// metadata, so that <see cref="PretrainedVit.Load"/> reads a checkpoint as a model) plus, under
/// <see cref="StatePrefix"/>, the optimizer's moments, the generator's state, the EMA and best-epoch weights, and in
/// the metadata <see cref="StateKey"/> the run's position, history and fingerprint.
/// </summary>
internal static class TrainingCheckpoint
{
    /// <summary>The prefix of the tensors that are training state, not model weights.</summary>
    public const string StatePrefix = "training_state.";

    /// <summary>The metadata key of the run's state (JSON).</summary>
    public const string StateKey = "vit.training_state";

    private const int FormatVersion = 1;

    /// <summary>Writes a checkpoint atomically.</summary>
    public static void Save(string path, VisionTransformer model, AdamW optimizer, WeightSnapshot? ema, WeightSnapshot? best, RunState state,
        Tensor rng, IReadOnlyDictionary<string, string> fingerprint, IReadOnlyDictionary<string, string>? metadata)
    {
        using var scope = TensorScope.Begin();
        var tensors = new List<(string, Tensor)>(model.NamedParameters());
        foreach (var (name, m, v) in optimizer.State)
        {
            tensors.Add(($"{StatePrefix}exp_avg.{name}", m));
            tensors.Add(($"{StatePrefix}exp_avg_sq.{name}", v));
        }
        tensors.Add(($"{StatePrefix}rng", rng));
        if (ema is { HasWeights: true })
            tensors.AddRange(ema.Tensors.Select(kv => ($"{StatePrefix}ema.{kv.Key}", kv.Value)));
        if (best is { HasWeights: true })
            tensors.AddRange(best.Tensors.Select(kv => ($"{StatePrefix}best.{kv.Key}", kv.Value)));
        var all = Metadata(model, metadata);
        all[StateKey] = StateJson(state, optimizer.StepCount, fingerprint).ToJsonString();
        Safetensors.Save(path, tensors, all);
    }

    /// <summary>
    /// Writes the optimizer's state alone (AdamW's moments and step, with the run's position): what a model file carries
    /// so that continuing from it resumes the optimizer exactly, at the size of two copies of the trained weights.
    /// </summary>
    public static void SaveOptimizer(string path, AdamW optimizer, RunState state, IReadOnlyDictionary<string, string> fingerprint)
    {
        var tensors = new List<(string, Tensor)>();
        foreach (var (name, m, v) in optimizer.State)
        {
            tensors.Add(($"{StatePrefix}exp_avg.{name}", m));
            tensors.Add(($"{StatePrefix}exp_avg_sq.{name}", v));
        }
        Safetensors.Save(path, tensors, new Dictionary<string, string> { [StateKey] = StateJson(state, optimizer.StepCount, fingerprint).ToJsonString() });
    }

    /// <summary>Writes weights alone (the best epoch's) as a model file, atomically.</summary>
    public static void SaveWeights(string path, VisionTransformer model, WeightSnapshot weights, IReadOnlyDictionary<string, string>? metadata) =>
        Safetensors.Save(path, model.NamedParameters().Select(p => (p.Name, weights.Tensors[p.Name])), Metadata(model, metadata));

    private static Dictionary<string, string> Metadata(VisionTransformer model, IReadOnlyDictionary<string, string>? metadata)
    {
        var all = new Dictionary<string, string>(StringComparer.Ordinal);
        if (metadata is not null)
            foreach (var (k, v) in metadata) all[k] = v;
        all[VitMetadata.Config] = model.Config.ToJson().ToJsonString();
        return all;
    }

    /// <summary>
    /// Restores a checkpoint into the model, the optimizer, the EMA and best snapshots and libtorch's generator, and
    /// returns the run's state; with <paramref name="fingerprint"/>, first refuses a checkpoint of other options or data.
    /// Everything is checked before anything changes.
    /// </summary>
    /// <exception cref="ArgumentException">The checkpoint is of another run: the message names every difference.</exception>
    /// <exception cref="InvalidDataException">The file is damaged or not a training checkpoint.</exception>
    public static RunState Restore(string path, VisionTransformer model, AdamW optimizer, WeightSnapshot? ema, WeightSnapshot? best,
        IReadOnlyDictionary<string, string>? fingerprint, bool optimizerOnly = false)
    {
        using var file = Safetensors.Open(path);
        if (!file.Metadata.TryGetValue(StateKey, out var text))
            throw new InvalidDataException($"'{path}' holds no training state ({StateKey}): it is a model file, not a checkpoint of a run");
        var json = JsonFields.Object(JsonFields.ParseValue(text, $"'{path}' {StateKey}"), $"'{path}' {StateKey}");
        string src = $"'{path}' {StateKey}";
        if (JsonFields.Int(json, "format_version", src) != FormatVersion)
            throw new InvalidDataException($"{src}: format version {json["format_version"]}, this library reads {FormatVersion}");
        if (fingerprint is not null)
        {
            var saved = JsonFields.Object(json["fingerprint"], $"{src} fingerprint");
            var differences = new List<string>();
            foreach (var (key, now) in fingerprint)
            {
                var then = saved[key] is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.String ? v.GetValue<string>() : null;
                if (then != now) differences.Add(then is null ? $"{key} is new ({Short(now)})" : $"{key} was {Short(then)}, now {Short(now)}");
            }
            foreach (var (key, _) in saved)
                if (!fingerprint.ContainsKey(key)) differences.Add($"{key} is gone");
            if (differences.Count > 0)
                throw new ArgumentException(
                    $"cannot resume from '{path}': it is a checkpoint of another run ({string.Join("; ", differences)}). " +
                    "Resume with the same options and data, or start a new run in another CheckpointDirectory (StartFrom can take its weights).");
        }

        // Every tensor present with the right shape before anything is changed.
        var byName = file.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var problems = new List<string>();
        void Need(string name, long[] shape)
        {
            if (!byName.TryGetValue(name, out var info)) problems.Add($"{name}: missing");
            else if (!info.Shape.SequenceEqual(shape)) problems.Add($"{name}: {Safetensors.FormatShape(info.Shape.ToArray())}, expected {Safetensors.FormatShape(shape)}");
        }
        var parameters = model.NamedParameters().ToList();
        if (!optimizerOnly)
            foreach (var (name, p) in parameters) Need(name, p.Shape);
        foreach (var (name, m, _) in optimizer.State)
        {
            // Continuing trains what the saved run may have frozen (a head-only run): those parameters start afresh.
            if (optimizerOnly && !byName.ContainsKey($"{StatePrefix}exp_avg.{name}")) continue;
            Need($"{StatePrefix}exp_avg.{name}", m.Shape);
            Need($"{StatePrefix}exp_avg_sq.{name}", m.Shape);
        }
        bool hasEma = byName.ContainsKey($"{StatePrefix}ema.{parameters[0].Name}"), hasBest = byName.ContainsKey($"{StatePrefix}best.{parameters[0].Name}");
        if (!optimizerOnly)
        {
            if (ema is not null && !hasEma) problems.Add("the run keeps an EMA of the weights, the checkpoint has none");
            foreach (var (name, p) in parameters)
            {
                if (ema is not null) Need($"{StatePrefix}ema.{name}", p.Shape);
                if (hasBest) Need($"{StatePrefix}best.{name}", p.Shape);
            }
            if (!byName.ContainsKey($"{StatePrefix}rng")) problems.Add($"{StatePrefix}rng: missing");
        }
        if (problems.Count > 0)
            throw new InvalidDataException($"'{path}' does not fit this run: {string.Join("; ", problems.Take(10))}");
        var state = StateFromJson(json, src, out long optimizerSteps);

        using var scope = TensorScope.Begin();
        Tensor Read(string name) => file.Read(name);
        var moments = optimizer.State.Where(s => byName.ContainsKey($"{StatePrefix}exp_avg.{s.Name}")).ToDictionary(s => s.Name,
            s => (Read($"{StatePrefix}exp_avg.{s.Name}"), Read($"{StatePrefix}exp_avg_sq.{s.Name}")), StringComparer.Ordinal);
        if (optimizerOnly)
        {
            optimizer.LoadState(optimizerSteps, moments, missingStartAfresh: true);
            return state;
        }
        var weights = parameters.ToDictionary(p => p.Name, p => Read(p.Name), StringComparer.Ordinal);
        var rng = Read($"{StatePrefix}rng");
        var emaWeights = ema is null ? null : parameters.ToDictionary(p => p.Name, p => Read($"{StatePrefix}ema.{p.Name}"), StringComparer.Ordinal);
        var bestWeights = best is null || !hasBest ? null : parameters.ToDictionary(p => p.Name, p => Read($"{StatePrefix}best.{p.Name}"), StringComparer.Ordinal);
        // Read whole; now apply.
        foreach (var (name, p) in parameters) p.CopyFrom(weights[name]);
        optimizer.LoadState(optimizerSteps, moments);
        if (emaWeights is not null) ema!.Load(model, emaWeights);
        if (bestWeights is not null) best!.Load(model, bestWeights);
        Torch.SetRngState(rng);
        return state;
    }

    private static string Short(string s) => s.Length <= 80 ? s : s[..77] + "...";

    private static JsonObject StateJson(RunState s, long optimizerSteps, IReadOnlyDictionary<string, string> fingerprint) => new()
    {
        ["format_version"] = FormatVersion,
        ["epoch"] = s.Epoch,
        ["batch"] = s.Batch,
        ["step"] = s.Step,
        ["optimizer_steps"] = optimizerSteps,
        ["loss_sum"] = s.LossSum,
        ["correct"] = s.Correct,
        ["seen"] = s.Seen,
        ["epoch_seconds"] = s.EpochTime.TotalSeconds,
        ["run_seconds"] = s.RunTime.TotalSeconds,
        ["best_score"] = double.IsFinite(s.BestScore) ? s.BestScore : null,
        ["best_epoch"] = s.BestEpoch,
        ["since_best"] = s.SinceBest,
        ["stopped_early"] = s.StoppedEarly,
        ["history"] = new JsonArray(s.History.Select(e => (JsonNode?)EpochJson(e)).ToArray()),
        ["fingerprint"] = new JsonObject(fingerprint.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
    };

    private static RunState StateFromJson(JsonObject j, string src, out long optimizerSteps)
    {
        optimizerSteps = Long(j, "optimizer_steps", src);
        var state = new RunState
        {
            Epoch = JsonFields.Int(j, "epoch", src), Batch = JsonFields.Int(j, "batch", src), Step = Long(j, "step", src),
            LossSum = JsonFields.Double(j, "loss_sum", src), Correct = Long(j, "correct", src), Seen = Long(j, "seen", src),
            EpochTime = TimeSpan.FromSeconds(JsonFields.Double(j, "epoch_seconds", src)), RunTime = TimeSpan.FromSeconds(JsonFields.Double(j, "run_seconds", src)),
            BestScore = JsonFields.OptDouble(j, "best_score", src) ?? double.NegativeInfinity, BestEpoch = JsonFields.Int(j, "best_epoch", src),
            SinceBest = JsonFields.Int(j, "since_best", src), StoppedEarly = JsonFields.Bool(j, "stopped_early", src),
        };
        if (state.Epoch < 0 || state.Batch < 0 || state.Step < 0 || optimizerSteps < 0)
            throw new InvalidDataException($"{src}: a negative position (epoch {state.Epoch}, batch {state.Batch}, step {state.Step})");
        if (j["history"] is not JsonArray history) throw new InvalidDataException($"{src} lacks 'history'");
        foreach (var e in history) state.History.Add(EpochFromJson(JsonFields.Object(e, $"{src} history"), $"{src} history"));
        return state;
    }

    private static long Long(JsonObject o, string key, string src) =>
        o[key] is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.Number && v.TryGetValue<long>(out var l)
            ? l
            : throw new InvalidDataException($"{src}: '{key}' is not an integer");

    private static JsonObject EpochJson(EpochResult e) => new()
    {
        ["epoch"] = e.Epoch, ["train_loss"] = Finite(e.TrainLoss), ["train_accuracy"] = Finite(e.TrainAccuracy),
        ["evaluation"] = EvaluationJson(e.Evaluation), ["ema_evaluation"] = EvaluationJson(e.EmaEvaluation),
        ["images_per_second"] = Finite(e.ImagesPerSecond), ["elapsed_seconds"] = e.Elapsed.TotalSeconds, ["learning_rate"] = e.LearningRate,
    };

    private static JsonNode? EvaluationJson(EvaluationResult? e) => e is null ? null : new JsonObject
    {
        ["count"] = e.Count, ["loss"] = Finite(e.Loss), ["accuracy"] = e.Accuracy, ["top5_accuracy"] = e.Top5Accuracy,
    };

    private static double? Finite(double v) => double.IsFinite(v) ? v : null;

    private static EpochResult EpochFromJson(JsonObject o, string src)
    {
        EvaluationResult? Eval(string key) => o[key] is JsonObject e
            ? new EvaluationResult(JsonFields.Int(e, "count", src), JsonFields.OptDouble(e, "loss", src) ?? double.NaN,
                JsonFields.Double(e, "accuracy", src), JsonFields.Double(e, "top5_accuracy", src))
            : null;
        return new EpochResult(JsonFields.Int(o, "epoch", src), JsonFields.OptDouble(o, "train_loss", src) ?? double.NaN,
            JsonFields.OptDouble(o, "train_accuracy", src) ?? double.NaN, Eval("evaluation"), JsonFields.OptDouble(o, "images_per_second", src) ?? 0,
            TimeSpan.FromSeconds(JsonFields.Double(o, "elapsed_seconds", src)), JsonFields.Double(o, "learning_rate", src))
        {
            EmaEvaluation = Eval("ema_evaluation"),
        };
    }
}
