using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.Torch.Checkpoints;

/// <summary>Reads one entry of a stored model: calls <paramref name="read"/> with a stream of the entry's data and its
/// length in bytes, and returns true; returns false when there is no entry of that name. The stream is the caller's only
/// while <paramref name="read"/> runs.</summary>
public delegate bool ModelEntryReader(string name, Action<Stream, long> read);

/// <summary>Writes one entry of a stored model: <paramref name="write"/> writes the entry's data to the stream it is given.</summary>
public delegate void ModelEntryWriter(string name, Action<Stream> write);

/// <summary>
/// Our stored model, as a set of entries readable without this library. <c>model.json</c> holds the format name and
/// version, the architecture (<see cref="VitConfig.ToJson"/>), the labels and the preprocessing
/// (<see cref="VitPreprocessing.ToJson"/>), plus whatever the caller adds; <c>weights.safetensors</c> the weights under
/// timm names; <c>training.json</c> what training did; optionally <c>training_state.safetensors</c>, the optimizer's
/// state. The entries live in a zip of their own (<see cref="Save"/>) or in a folder of another zip — Vit.MLNet writes
/// them into ML.NET's model files through <see cref="Write"/>. Loading builds nothing before the architecture is
/// checked against the weights' shapes.
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
    /// Writes the entries of a model through <paramref name="write"/>. <paramref name="extra"/>'s top-level fields go into
    /// model.json after ours; <paramref name="trainingJson"/> (null: an empty history) becomes training.json;
    /// <paramref name="trainingState"/>, a training checkpoint file (optimizer moments, step), is carried as
    /// <see cref="TrainingStateEntry"/> so that continuing from the model resumes the optimizer exactly.
    /// </summary>
    public static void Write(ModelEntryWriter write, VisionTransformer model, IReadOnlyList<string> labels, VitPreprocessing preprocessing,
        JsonObject? extra = null, string? trainingJson = null, string? trainingState = null)
    {
        ArgumentNullException.ThrowIfNull(write);
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
        write(ModelEntry, s => WriteText(s, json.ToJsonString(Indented)));
        write(WeightsEntry, s => model.WriteSafetensors(s));
        write(TrainingEntry, s => WriteText(s, training));
        if (trainingState is not null)
            write(TrainingStateEntry, s =>
            {
                using var source = File.OpenRead(trainingState);
                source.CopyTo(s);
            });
    }

    private static void WriteText(Stream stream, string text)
    {
        using var w = new StreamWriter(stream, new System.Text.UTF8Encoding(false), 4096, leaveOpen: true);
        w.Write(text);
    }

    /// <summary>Writes a model as a zip file of its own, atomically (a temporary file renamed over the target); the
    /// safetensors entries are stored uncompressed, so they can be read in place. See <see cref="Write"/>.</summary>
    public static void Save(string path, VisionTransformer model, IReadOnlyList<string> labels, VitPreprocessing preprocessing,
        JsonObject? extra = null, string? trainingJson = null, string? trainingState = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        AtomicFile.Write(path, fs =>
        {
            using var zip = new ZipArchive(fs, ZipArchiveMode.Create, leaveOpen: true);
            Write((name, write) =>
            {
                var level = name.EndsWith(".safetensors", StringComparison.Ordinal) ? CompressionLevel.NoCompression : CompressionLevel.Optimal;
                using var entry = zip.CreateEntry(name, level).Open();
                write(entry);
            }, model, labels, preprocessing, extra, trainingJson, trainingState);
        });
    }

    /// <summary>
    /// Copies the training state a model file carries (<see cref="TrainingStateEntry"/>) to a new temporary file and
    /// returns its path (the caller deletes it); null when <paramref name="path"/> is not a zip holding a model, or the
    /// model carries none.
    /// </summary>
    public static string? ExtractTrainingState(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!IsZip(path)) return null;
        using var zip = OpenZip(path);
        if (FindModel(zip, path) is not { } prefix || zip.Find(prefix + TrainingStateEntry) is not { } entry) return null;
        zip.Verify(entry);
        var target = Path.Combine(Path.GetTempPath(), $"vit-training-state-{Guid.NewGuid():N}.safetensors");
        using var source = zip.OpenRead(entry);
        AtomicFile.Write(target, fs => source.CopyTo(fs));
        return target;
    }

    /// <summary>Whether <paramref name="path"/> is a file that starts as a zip archive does.</summary>
    internal static bool IsZip(string path)
    {
        if (!File.Exists(path)) return false;
        Span<byte> head = stackalloc byte[4];
        using var fs = File.OpenRead(path);
        return fs.ReadAtLeast(head, 4, throwOnEndOfStream: false) == 4 && ZipReader.LooksLikeZip(head);
    }

    /// <summary>Whether <paramref name="path"/> is a model zip of its own (<see cref="Save"/>, and the model files of Vit for
    /// .NET before its models became ML.NET model files), rather than another archive holding a model.</summary>
    public static bool IsStandalone(string path)
    {
        if (!IsZip(path)) return false;
        try
        {
            using var zip = OpenZip(path);
            return zip.Find(ModelEntry) is not null;
        }
        catch (InvalidDataException)
        {
            return false;
        }
    }

    /// <summary>
    /// The folder inside <paramref name="zip"/> holding a model's entries: "" for a model zip of its own, or the folder of
    /// the one <c>model.json</c> another archive holds (an ML.NET model file, whose ViT step keeps its entries in its own
    /// folder); null when there is none.
    /// </summary>
    /// <exception cref="InvalidDataException">The archive holds several models: which one is meant cannot be told.</exception>
    internal static string? FindModel(ZipReader zip, string path)
    {
        if (zip.Find(ModelEntry) is not null) return "";
        var found = zip.Entries.Where(e => e.Name.EndsWith("/" + ModelEntry, StringComparison.Ordinal) && zip.Find(e.Name[..^ModelEntry.Length] + WeightsEntry) is not null)
            .Select(e => e.Name[..^ModelEntry.Length]).ToList();
        return found.Count switch
        {
            0 => null,
            1 => found[0],
            _ => throw new InvalidDataException($"{path} holds {found.Count} ViT models ({string.Join(", ", found)}); read the one you mean from a file that holds only it"),
        };
    }

    /// <summary>
    /// Reads a model file, a zip of its own (<see cref="Save"/>) or another zip holding one (an ML.NET model file):
    /// model.json (format, version, architecture, labels, preprocessing) checked, the weights' shapes checked against
    /// the architecture, then the model built and filled. <paramref name="modelJson"/> receives model.json for the
    /// caller's own fields; <paramref name="trainingJson"/> training.json, if present. Every entry read is checked
    /// against the archive's CRC-32.
    /// </summary>
    /// <exception cref="InvalidDataException">Not a model file, a newer format, or damaged; the message names the file and the problem.</exception>
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
        var prefix = FindModel(zip, path) ?? throw new InvalidDataException(
            $"{path} is not a Vit for .NET model file: it has no {ModelEntry} (entries: {string.Join(", ", zip.Entries.Take(10).Select(e => e.Name))})");
        return Load((name, read) =>
        {
            if (zip.Find(prefix + name) is not { } entry) return false;
            zip.Verify(entry);
            using var s = Seekable(zip, entry);
            read(s, entry.Length);
            return true;
        }, path, options, out modelJson, out trainingJson);
    }

    /// <summary>
    /// A seekable stream of an entry's data: the entry itself when it is stored, else an inflated copy (in memory up to
    /// 64 MB, beyond in a temporary file deleted on close). ML.NET deflates the entries of its model files, and a
    /// safetensors file checks the CRC-32 of its tensor data (<c>vit.crc32</c>) only where it can read the data twice.
    /// </summary>
    private static Stream Seekable(ZipReader zip, ZipEntry entry)
    {
        var source = zip.OpenRead(entry);
        if (source.CanSeek) return source;
        using (source)
        {
            Stream copy = entry.Length <= 64 << 20 ? new MemoryStream((int)entry.Length)
                : new FileStream(Path.Combine(Path.GetTempPath(), $"vit-entry-{Guid.NewGuid():N}.tmp"), FileMode.CreateNew, FileAccess.ReadWrite,
                    FileShare.None, 1 << 16, FileOptions.DeleteOnClose);
            try
            {
                source.CopyTo(copy);
                copy.Position = 0;
                return copy;
            }
            catch
            {
                copy.Dispose();
                throw;
            }
        }
    }

    /// <summary>
    /// Reads a model from its entries, wherever they are stored (<paramref name="source"/> names them in messages): as
    /// <see cref="Load(string, PretrainedVitOptions?, out JsonObject, out string?)"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">Not our model, a newer format, or damaged; the message names the source and the problem.</exception>
    public static PretrainedVit Load(ModelEntryReader entries, string source, PretrainedVitOptions? options, out JsonObject modelJson, out string? trainingJson)
    {
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentException.ThrowIfNullOrEmpty(source);
        try
        {
            string src = $"{source} ({ModelEntry})";
            JsonObject? json = null;
            if (!entries(ModelEntry, (s, _) => json = JsonFields.Parse(s, src)))
                throw new InvalidDataException($"{source} is not a Vit for .NET model: it has no {ModelEntry}");
            if (JsonFields.OptString(json!, "format", src) != Magic)
                throw new InvalidDataException($"{source} is not a Vit for .NET model: {ModelEntry} does not say format '{Magic}'");
            int version = JsonFields.Int(json!, "format_version", src);
            if (version > FormatVersion)
                throw new InvalidDataException($"{source} has model format version {version}, newer than this library reads ({FormatVersion}); update Vit for .NET");
            if (version < 1) throw new InvalidDataException($"{source}: invalid format_version {version}");
            var config = VitConfig.FromJson(json!["architecture"], $"{src} architecture");
            var labels = JsonFields.Strings(json!["labels"], "labels", src);
            var pre = VitPreprocessing.FromJson(json!["preprocessing"], $"{src} preprocessing");
            if (pre.ImageSize != config.ImageSize || pre.Channels != config.Channels)
                throw new InvalidDataException(
                    $"{src}: the preprocessing ({pre.ImageSize}px, {pre.Channels} channels) does not match the architecture ({config.ImageSize}px, {config.Channels} channels)");

            string? training = null;
            entries(TrainingEntry, (s, _) => training = JsonFields.Parse(s, $"{source} ({TrainingEntry})").ToJsonString(Indented));

            string weightsSource = $"{source} ({WeightsEntry})";
            PretrainedVit? result = null;
            bool found = entries(WeightsEntry, (s, length) =>
            {
                // The tensor file would own the stream; the entry's stream belongs to the reader, so lend it unclosable.
                using var index = new CheckpointIndex([Safetensors.Open(new BorrowedStream(s), length, weightsSource)], weightsSource);
                result = PretrainedVit.FromIndex(index, new CheckpointDescription(StatedConfig.Of(config, src), labels, pre) { Ours = true },
                    options ?? new PretrainedVitOptions(), CheckpointLayout.Timm);
            });
            if (!found) throw new InvalidDataException($"{source} is damaged: it has no {WeightsEntry}");
            modelJson = json!;
            trainingJson = training;
            return result!;
        }
        catch (InvalidDataException e) when (!e.Message.Contains(source, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{source} is damaged: {e.Message}", e);
        }
    }

    /// <summary>A stream lent to an owner that disposes what it is given: disposing this leaves the inner stream open.</summary>
    private sealed class BorrowedStream(Stream inner) : Stream
    {
        public override bool CanRead => inner.CanRead;
        public override bool CanSeek => inner.CanSeek;
        public override bool CanWrite => false;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => inner.Position = value; }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override int Read(Span<byte> buffer) => inner.Read(buffer);
        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
        public override void Flush() { }
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
