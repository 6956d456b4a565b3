using System.Text.Json.Nodes;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.Torch.Checkpoints;

/// <summary>What a checkpoint's own files say about the model, field by field (null: the file does not say).</summary>
internal sealed record StatedConfig(string Source)
{
    public int? ImageSize { get; init; }
    public int? PatchSize { get; init; }
    public int? Channels { get; init; }
    public int? Dim { get; init; }
    public int? Depth { get; init; }
    public int? Heads { get; init; }
    public int? MlpDim { get; init; }
    public int? NumClasses { get; init; }
    public bool? QkvBias { get; init; }
    public bool? ClassToken { get; init; }
    public bool? FcNorm { get; init; }
    public double? LayerNormEps { get; init; }
    public double? Dropout { get; init; }
    public double? AttentionDropout { get; init; }
    public double? DropPath { get; init; }
    public VitPooling? Pooling { get; init; }

    /// <summary>Everything, from one of our complete configs.</summary>
    public static StatedConfig Of(VitConfig c, string source) => new(source)
    {
        ImageSize = c.ImageSize, PatchSize = c.PatchSize, Channels = c.Channels, Dim = c.Dim, Depth = c.Depth, Heads = c.Heads,
        MlpDim = c.MlpDim, NumClasses = c.NumClasses, QkvBias = c.QkvBias, ClassToken = c.HasClassToken, FcNorm = c.FcNorm,
        LayerNormEps = c.LayerNormEps, Dropout = c.Dropout, AttentionDropout = c.AttentionDropout, DropPath = c.DropPath, Pooling = c.Pooling,
    };
}

/// <summary>What a checkpoint folder or file says besides its tensors; <see cref="Ours"/>: written by this library.</summary>
internal sealed record CheckpointDescription(StatedConfig? Config, IReadOnlyList<string>? Labels, VitPreprocessing? Preprocessing)
{
    public bool Ours { get; init; }
}

/// <summary>
/// Hugging Face folders: <c>config.json</c> (transformers' <c>ViTConfig</c>, or timm's hub config with
/// <c>architecture</c> and <c>pretrained_cfg</c>), <c>preprocessor_config.json</c>, and weights in
/// <c>model.safetensors</c>, sharded safetensors (<c>model.safetensors.index.json</c>) or <c>pytorch_model.bin</c>
/// (read by the restricted torch.save reader), possibly sharded too.
/// </summary>
internal static class CheckpointFolders
{
    /// <summary>Reads the folder's description and opens its weights.</summary>
    public static (CheckpointDescription Description, CheckpointIndex Index, bool Timm) Read(string dir)
    {
        var configPath = Path.Combine(dir, "config.json");
        if (!File.Exists(configPath))
            throw new FileNotFoundException($"'{dir}' is a folder without config.json; a Hugging Face model folder has config.json and model.safetensors", configPath);
        var config = JsonFields.ReadFile(configPath);
        CheckpointDescription description;
        bool timm;
        if (JsonFields.Has(config, "model_type"))
        {
            description = ReadTransformersConfig(dir, config, configPath);
            timm = false;
        }
        else if (JsonFields.Has(config, "architecture"))
        {
            description = ReadTimmConfig(config, configPath);
            timm = true;
        }
        else
        {
            throw new InvalidDataException($"'{configPath}' has neither 'model_type' (a Hugging Face transformers model) nor 'architecture' (a timm model)");
        }
        return (description, OpenWeights(dir), timm);
    }

    private static CheckpointDescription ReadTransformersConfig(string dir, JsonObject c, string source)
    {
        var type = JsonFields.String(c, "model_type", source);
        if (type != "vit")
            throw new NotSupportedException(type == "deit"
                ? $"'{source}' is a DeiT model, whose distillation token Vit for .NET does not implement"
                : $"'{source}' has model_type '{type}'; Vit for .NET reads Hugging Face ViT models (model_type 'vit')");
        var act = JsonFields.OptString(c, "hidden_act", source) ?? "gelu";
        if (act != "gelu")
            throw new NotSupportedException($"'{source}' uses the activation '{act}'; Vit for .NET's MLP uses exact GELU ('gelu')");
        int? imageSize = c["image_size"] is { } imageNode ? SquareSize(imageNode, "image_size", source) : null;
        int? patch = c["patch_size"] is { } patchNode ? SquareSize(patchNode, "patch_size", source) : null;
        var stated = new StatedConfig(source)
        {
            Dim = JsonFields.OptInt(c, "hidden_size", source),
            Depth = JsonFields.OptInt(c, "num_hidden_layers", source),
            Heads = JsonFields.OptInt(c, "num_attention_heads", source),
            MlpDim = JsonFields.OptInt(c, "intermediate_size", source),
            ImageSize = imageSize,
            PatchSize = patch,
            Channels = JsonFields.OptInt(c, "num_channels", source),
            QkvBias = JsonFields.OptBool(c, "qkv_bias", source) ?? true,
            LayerNormEps = JsonFields.OptDouble(c, "layer_norm_eps", source) ?? 1e-12,  // ViTConfig's default
            Dropout = JsonFields.OptDouble(c, "hidden_dropout_prob", source),
            AttentionDropout = JsonFields.OptDouble(c, "attention_probs_dropout_prob", source),
            DropPath = JsonFields.OptDouble(c, "drop_path_rate", source),  // ours (transformers' ViT has no stochastic depth)
            Pooling = VitPooling.ClassToken,  // ViTForImageClassification classifies the [CLS] token
            ClassToken = true,
            FcNorm = false,
        };
        var labels = c["id2label"] is { } id2label ? ReadId2Label(id2label, source) : null;
        var preprocessorPath = Path.Combine(dir, "preprocessor_config.json");
        var pre = File.Exists(preprocessorPath) ? ReadPreprocessor(JsonFields.ReadFile(preprocessorPath), preprocessorPath, stated.Channels ?? 3) : null;
        return new CheckpointDescription(stated, labels, pre);
    }

    /// <summary>id2label: {"0": "tench", "1": "goldfish", ...}, ids 0..K-1 each once.</summary>
    private static List<string> ReadId2Label(JsonNode node, string source)
    {
        var o = JsonFields.Object(node, $"{source}: id2label");
        var labels = new string?[o.Count];
        foreach (var (key, value) in o)
        {
            if (!int.TryParse(key, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id) || id >= o.Count)
                throw new InvalidDataException($"{source}: id2label has the key '{key}'; keys must be the class ids 0 to {o.Count - 1}");
            if (value is not JsonValue v || v.GetValueKind() != System.Text.Json.JsonValueKind.String)
                throw new InvalidDataException($"{source}: id2label['{key}'] is not a string");
            labels[id] = v.GetValue<string>();
        }
        return labels.Select((l, i) => l ?? throw new InvalidDataException($"{source}: id2label has no class {i}")).ToList();
    }

    /// <summary>The key under which <see cref="HuggingFaceExport"/> keeps our exact preprocessing in preprocessor_config.json
    /// (transformers ignores keys it does not know).</summary>
    internal const string OurPreprocessingKey = "vit_dotnet_preprocessing";

    /// <summary>
    /// transformers' image processors: ViTImageProcessor (resize to size, stretched, with a PIL filter; rescale 1/255;
    /// normalise), ConvNextImageProcessor's shortest_edge with crop_pct (resize the shorter side to size / crop_pct,
    /// centre-crop), DeiT's do_center_crop with crop_size; ours, exactly, when written by this library.
    /// </summary>
    private static VitPreprocessing ReadPreprocessor(JsonObject p, string source, int channels)
    {
        if (p[OurPreprocessingKey] is { } ours) return VitPreprocessing.FromJson(ours, $"'{source}' {OurPreprocessingKey}");
        int? size = null;
        bool shortestEdge = false;
        if (p["size"] is JsonObject se && JsonFields.Has(se, "shortest_edge"))
            (size, shortestEdge) = (JsonFields.Int(se, "shortest_edge", source), true);
        else if (p["size"] is { } node)
            size = SquareSize(node, "size", source);
        if ((JsonFields.OptBool(p, "do_rescale", source) ?? true) == false)
            throw new NotSupportedException($"'{source}' does not rescale pixels (do_rescale false); Vit for .NET always scales pixels by 1/255");
        if (JsonFields.OptDouble(p, "rescale_factor", source) is { } r && Math.Abs(r * 255 - 1) > 1e-6)
            throw new NotSupportedException($"'{source}' rescales pixels by {r}; Vit for .NET scales them by 1/255");
        var interpolation = (JsonFields.OptInt(p, "resample", source) ?? 2) switch
        {
            0 => Interpolation.Nearest,
            2 => Interpolation.Bilinear,
            3 => Interpolation.Bicubic,
            4 => Interpolation.Area,
            var other => throw new NotSupportedException(
                $"'{source}' resizes with the PIL filter {other} ({(other == 1 ? "LANCZOS" : other == 5 ? "HAMMING" : "unknown")}); supported: 0 nearest, 2 bilinear, 3 bicubic, 4 box"),
        };
        var mode = ResizeMode.Stretch;
        double crop = 1;
        if (JsonFields.OptBool(p, "do_center_crop", source) == true && p["crop_size"] is { } cs && size is { } resized)
        {
            // DeiT's resize to size then crop, or BiT's/CLIP's shorter side to shortest_edge then crop.
            int c = SquareSize(cs, "crop_size", source);
            if (c > resized) throw new InvalidDataException($"'{source}': crop_size {c} is larger than size {resized}");
            (mode, crop, size) = (ResizeMode.Crop, (double)c / resized, c);
        }
        else if (shortestEdge)
        {
            // ConvNeXt's: the shorter side to shortest_edge / crop_pct, then a crop of shortest_edge.
            (mode, crop) = (ResizeMode.Crop, JsonFields.OptDouble(p, "crop_pct", source) ?? 1);
        }
        try
        {
            var normalization = (JsonFields.OptBool(p, "do_normalize", source) ?? true)
                ? new Normalization(
                    JsonFields.Has(p, "image_mean") ? JsonFields.Floats(p, "image_mean", source) : [0.5f],
                    JsonFields.Has(p, "image_std") ? JsonFields.Floats(p, "image_std", source) : [0.5f])
                : new Normalization([0f], [1f]);
            return new VitPreprocessing(size ?? 224, channels, normalization.ForChannels(channels))
            {
                ResizeMode = mode, Interpolation = interpolation, CropFraction = crop,
            }.Validate();
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"'{source}': {e.Message}", e);
        }
    }

    /// <summary>A square size written as a number, [height, width] or {"height", "width"}.</summary>
    private static int SquareSize(JsonNode node, string what, string source)
    {
        var (h, w) = node switch
        {
            JsonValue => (JsonFields.Int(new JsonObject { [what] = node.DeepClone() }, what, source), -1),
            JsonArray { Count: 2 } a => (Element(a[0]), Element(a[1])),
            JsonObject o => (JsonFields.Int(o, "height", source), JsonFields.Int(o, "width", source)),
            _ => throw new InvalidDataException($"'{source}': {what} {node.ToJsonString()} is neither a number, [height, width] nor {{height, width}}"),
        };
        if (w >= 0 && h != w) throw new NotSupportedException($"'{source}': {what} {node.ToJsonString()} is not square; ViT here takes square images");
        if (h < 1) throw new InvalidDataException($"'{source}': {what} {node.ToJsonString()} is not a positive size");
        return h;

        int Element(JsonNode? e) => e is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.Number && v.TryGetValue<int>(out var i)
            ? i
            : throw new InvalidDataException($"'{source}': {what} {node.ToJsonString()} holds something other than integers");
    }

    /// <summary>timm's hub config: architecture, num_classes, global_pool, pretrained_cfg (mean, std, interpolation, crop_pct), label_names.</summary>
    private static CheckpointDescription ReadTimmConfig(JsonObject c, string source)
    {
        var arch = JsonFields.String(c, "architecture", source);
        if (!arch.StartsWith("vit_", StringComparison.Ordinal) && !arch.StartsWith("deit_", StringComparison.Ordinal))
            throw new NotSupportedException($"'{source}' is the timm architecture '{arch}'; Vit for .NET reads timm's plain ViTs (vit_*, deit_*)");
        var pool = JsonFields.OptString(c, "global_pool", source);
        VitPooling? pooling = pool switch
        {
            null => null,
            "token" => VitPooling.ClassToken,
            "avg" => VitPooling.Mean,
            _ => throw new NotSupportedException($"'{source}': global_pool '{pool}' is not supported (token or avg)"),
        };
        var stated = new StatedConfig(source) { NumClasses = JsonFields.OptInt(c, "num_classes", source), Pooling = pooling };
        var labels = c["label_names"] is { } names ? JsonFields.Strings(names, "label_names", source) : null;
        VitPreprocessing? pre = null;
        if (c["pretrained_cfg"] is JsonObject cfg)
        {
            int channels = 3, size = 224;
            if (cfg["input_size"] is JsonArray dims)
            {
                var v = dims.Select(n => n is JsonValue x && x.TryGetValue<int>(out var i) ? i : -1).ToArray();
                if (v.Length != 3 || v[1] != v[2] || v.Any(d => d < 1))
                    throw new InvalidDataException($"'{source}': pretrained_cfg.input_size {dims.ToJsonString()} is not (channels, size, size)");
                (channels, size) = (v[0], v[1]);
            }
            var interpolation = (JsonFields.OptString(cfg, "interpolation", source) ?? "bicubic") switch
            {
                "bicubic" => Interpolation.Bicubic,
                "bilinear" => Interpolation.Bilinear,
                "nearest" => Interpolation.Nearest,
                var other => throw new NotSupportedException($"'{source}': pretrained_cfg.interpolation '{other}' is not supported (bicubic, bilinear, nearest)"),
            };
            try
            {
                pre = new VitPreprocessing(size, channels, new Normalization(
                    JsonFields.Has(cfg, "mean") ? JsonFields.Floats(cfg, "mean", source) : Normalization.Half.Mean,  // timm ViT _cfg: Inception mean/std 0.5
                    JsonFields.Has(cfg, "std") ? JsonFields.Floats(cfg, "std", source) : Normalization.Half.Std))
                {
                    ResizeMode = ResizeMode.Crop, Interpolation = interpolation, CropFraction = JsonFields.OptDouble(cfg, "crop_pct", source) ?? 0.9,
                }.Validate();
            }
            catch (ArgumentException e)
            {
                throw new InvalidDataException($"'{source}': pretrained_cfg: {e.Message}", e);
            }
        }
        return new CheckpointDescription(stated, labels, pre);
    }

    /// <summary>model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json, in that order.</summary>
    private static CheckpointIndex OpenWeights(string dir)
    {
        foreach (var (name, sharded, torch) in new[]
                 {
                     ("model.safetensors", false, false), ("model.safetensors.index.json", true, false),
                     ("pytorch_model.bin", false, true), ("pytorch_model.bin.index.json", true, true),
                 })
        {
            var path = Path.Combine(dir, name);
            if (!File.Exists(path)) continue;
            if (!sharded) return new CheckpointIndex([OpenFile(path, torch)], path);
            return OpenShards(dir, path, torch);
        }
        throw new FileNotFoundException(
            $"'{dir}' has config.json but no weights: expected model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json");
    }

    private static ITensorFile OpenFile(string path, bool torch) => torch ? TorchCheckpoint.Open(path) : Safetensors.Open(path);

    /// <summary>A sharded checkpoint: weight_map names each tensor's shard, a plain file name in the same folder.</summary>
    private static CheckpointIndex OpenShards(string dir, string indexPath, bool torch)
    {
        var index = JsonFields.ReadFile(indexPath);
        var map = JsonFields.Object(index["weight_map"], $"'{indexPath}': weight_map");
        var shardOf = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (tensor, value) in map)
        {
            if (value is not JsonValue v || v.GetValueKind() != System.Text.Json.JsonValueKind.String)
                throw new InvalidDataException($"'{indexPath}': weight_map['{tensor}'] is not a file name");
            var file = v.GetValue<string>();
            // Only a plain file name in this folder: no path into another folder, absolute or relative.
            if (file.Length == 0 || file != Path.GetFileName(file) || file is "." or ".." || file.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0)
                throw new InvalidDataException($"'{indexPath}': weight_map['{tensor}'] is '{file}', which is not a file name in the model's folder");
            shardOf[tensor] = file;
        }
        if (shardOf.Count == 0) throw new InvalidDataException($"'{indexPath}': weight_map is empty");
        var files = new List<ITensorFile>();
        try
        {
            foreach (var shard in shardOf.Values.Distinct().Order(StringComparer.Ordinal))
            {
                var path = Path.Combine(dir, shard);
                if (!File.Exists(path)) throw new FileNotFoundException($"'{indexPath}' names the shard '{shard}', which is not in '{dir}'", path);
                var f = OpenFile(path, torch);
                files.Add(f);
                var held = new HashSet<string>(StringComparer.Ordinal);
                foreach (var t in f.Tensors)
                {
                    if (!shardOf.TryGetValue(t.Name, out var listed) || listed != shard)
                        throw new InvalidDataException($"'{path}' holds '{t.Name}', which '{indexPath}' places {(listed is null ? "nowhere" : $"in '{listed}'")}");
                    held.Add(t.Name);
                }
                foreach (var (tensor, listed) in shardOf)
                    if (listed == shard && !held.Contains(tensor))
                        throw new InvalidDataException($"'{indexPath}' places '{tensor}' in '{shard}', which does not hold it");
            }
            return new CheckpointIndex(files, dir);
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
    }
}
