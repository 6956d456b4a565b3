using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.Torch.Checkpoints;

/// <summary>
/// Our model file: one zip readable without this library. <c>model.json</c> holds the format name and version, the
/// architecture (<see cref="VitConfig.ToJson"/>), the labels and the preprocessing (<see cref="VitPreprocessing.ToJson"/>),
/// plus whatever the caller adds (Vit.MLNet: the pipeline steps and input schema); <c>weights.safetensors</c>
/// (stored uncompressed) the weights under timm names; <c>training.json</c> what training did. Saving writes a
/// temporary file and renames it over the target; loading builds nothing before the architecture is checked
/// against the weights' shapes.
/// </summary>
public static class VitModelZip
{
    /// <summary>The value of model.json's <c>format</c>.</summary>
    public const string Magic = "vit-dotnet-model";

    /// <summary>The format version written (1: first; 2: class_token, fc_norm, resize mode, interpolation, crop fraction).</summary>
    public const int FormatVersion = 2;

    /// <summary>Entry names.</summary>
    public const string ModelEntry = "model.json", WeightsEntry = "weights.safetensors", TrainingEntry = "training.json",
        TrainingStateEntry = "training_state.safetensors";

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>
    /// Writes a model file atomically. <paramref name="extra"/>'s top-level fields go into model.json after ours;
    /// <paramref name="trainingJson"/> (null: an empty history) becomes training.json.
    /// </summary>
    /// <remarks><paramref name="trainingState"/>: a training checkpoint (optimizer moments, step) to carry in the zip as
    /// <see cref="TrainingStateEntry"/>, so that continuing from the file resumes the optimizer exactly.</remarks>
    public static void Save(string path, VisionTransformer model, IReadOnlyList<string> labels, VitPreprocessing preprocessing,
        JsonObject? extra = null, string? trainingJson = null, string? trainingState = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(preprocessing);
        if (labels.Count != model.Config.NumClasses)
            throw new ArgumentException($"{labels.Count} labels for a model with {model.Config.NumClasses} classes", nameof(labels));
        preprocessing.Validate();
        var json = new JsonObject
        {
            ["format"] = Magic,
            ["format_version"] = FormatVersion,
            ["library"] = "Vit for .NET",
            ["architecture"] = model.Config.ToJson(),
            ["labels"] = new JsonArray(labels.Select(l => (JsonNode?)l).ToArray()),
            ["preprocessing"] = preprocessing.ToJson(),
        };
        if (extra is not null)
            foreach (var (k, v) in extra)
                json[k] = v?.DeepClone();
        var training = trainingJson ?? new JsonObject { ["history"] = new JsonObject() }.ToJsonString(Indented);

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        AtomicFile.Write(path, fs =>
        {
            using var zip = new ZipArchive(fs, ZipArchiveMode.Create, leaveOpen: true);
            WriteText(zip, ModelEntry, json.ToJsonString(Indented));
            using (var weights = zip.CreateEntry(WeightsEntry, CompressionLevel.NoCompression).Open())
                model.WriteSafetensors(weights);
            WriteText(zip, TrainingEntry, training);
            if (trainingState is not null) zip.CreateEntryFromFile(trainingState, TrainingStateEntry, CompressionLevel.NoCompression);
        });
    }

    /// <summary>
    /// Copies the training state a model file carries (<see cref="TrainingStateEntry"/>) to a new temporary file and
    /// returns its path (the caller deletes it); null when <paramref name="path"/> is not a model zip or carries none.
    /// </summary>
    public static string? ExtractTrainingState(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) return null;
        Span<byte> head = stackalloc byte[4];
        using (var fs = File.OpenRead(path))
            if (fs.Read(head) < 4 || !ZipReader.LooksLikeZip(head)) return null;
        using var zip = OpenZip(path);
        if (zip.Find(TrainingStateEntry) is not { } entry) return null;
        zip.Verify(entry);
        var target = Path.Combine(Path.GetTempPath(), $"vit-training-state-{Guid.NewGuid():N}.safetensors");
        using var source = zip.OpenRead(entry);
        AtomicFile.Write(target, fs => source.CopyTo(fs));
        return target;
    }

    private static void WriteText(ZipArchive zip, string name, string text)
    {
        using var w = new StreamWriter(zip.CreateEntry(name, CompressionLevel.Optimal).Open());
        w.Write(text);
    }

    /// <summary>
    /// Reads a model file: model.json (format, version, architecture, labels, preprocessing) checked, the weights'
    /// shapes checked against the architecture, then the model built and filled. <paramref name="modelJson"/> receives
    /// model.json for the caller's own fields; <paramref name="trainingJson"/> training.json, if present.
    /// </summary>
    /// <exception cref="InvalidDataException">Not our model file, a newer format, or damaged; the message names the file and the problem.</exception>
    public static PretrainedVit Load(string path, PretrainedVitOptions? options, out JsonObject modelJson, out string? trainingJson)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"model file not found: {path}", path);
        using var zip = OpenZip(path);
        return Load(zip, path, options, out modelJson, out trainingJson);
    }

    /// <summary>Opens <paramref name="path"/> as a zip archive; its problems name the file.</summary>
    internal static ZipReader OpenZip(string path)
    {
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        try
        {
            return ZipReader.Open(handle, problem => new InvalidDataException($"{path} is not a readable zip archive (it may be truncated or damaged): {problem}"));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Reads a model file already open in <paramref name="zip"/> (which stays the caller's).</summary>
    internal static PretrainedVit Load(ZipReader zip, string path, PretrainedVitOptions? options, out JsonObject modelJson, out string? trainingJson)
    {
        try
        {
            var modelEntry = zip.Find(ModelEntry) ?? throw new InvalidDataException(
                $"{path} is not a Vit for .NET model file: it has no {ModelEntry} (entries: {string.Join(", ", zip.Entries.Take(10).Select(e => e.Name))})");
            string src = $"{path} ({ModelEntry})";
            JsonObject json;
            zip.Verify(modelEntry);
            using (var s = zip.OpenRead(modelEntry)) json = JsonFields.Parse(s, src);
            if (JsonFields.OptString(json, "format", src) != Magic)
                throw new InvalidDataException($"{path} is not a Vit for .NET model file: {ModelEntry} does not say format '{Magic}'");
            int version = JsonFields.Int(json, "format_version", src);
            if (version > FormatVersion)
                throw new InvalidDataException($"{path} has model format version {version}, newer than this library reads ({FormatVersion}); update Vit for .NET");
            if (version < 1) throw new InvalidDataException($"{path}: invalid format_version {version}");
            var config = VitConfig.FromJson(json["architecture"], $"{src} architecture");
            var labels = JsonFields.Strings(json["labels"], "labels", src);
            var pre = VitPreprocessing.FromJson(json["preprocessing"], $"{src} preprocessing");
            if (pre.ImageSize != config.ImageSize || pre.Channels != config.Channels)
                throw new InvalidDataException(
                    $"{src}: the preprocessing ({pre.ImageSize}px, {pre.Channels} channels) does not match the architecture ({config.ImageSize}px, {config.Channels} channels)");

            trainingJson = null;
            if (zip.Find(TrainingEntry) is { } te)
            {
                zip.Verify(te);
                using var s = zip.OpenRead(te);
                trainingJson = JsonFields.Parse(s, $"{path} ({TrainingEntry})").ToJsonString(Indented);
            }

            var weights = zip.Find(WeightsEntry) ?? throw new InvalidDataException($"{path} is damaged: it has no {WeightsEntry}");
            string weightsSource = $"{path} ({WeightsEntry})";
            zip.Verify(weights);
            using var index = new CheckpointIndex([Safetensors.Open(zip.OpenRead(weights), weights.Length, weightsSource)], weightsSource);
            var result = PretrainedVit.FromIndex(index, new CheckpointDescription(StatedConfig.Of(config, src), labels, pre) { Ours = true },
                options ?? new PretrainedVitOptions(), CheckpointLayout.Timm);
            modelJson = json;
            return result;
        }
        catch (InvalidDataException e) when (!e.Message.Contains(path, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{path} is damaged: {e.Message}", e);
        }
    }
}
