using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.Torch.Checkpoints;

/// <summary>What the caller says where a checkpoint cannot tell (and the image size to fine-tune at).</summary>
public sealed record PretrainedVitOptions
{
    /// <summary>Attention heads. Needed only when the checkpoint does not say and its hidden size is not a published
    /// ViT's (192, 384, 768, 1024, 1280); an error when the checkpoint says otherwise.</summary>
    public int? Heads { get; init; }

    /// <summary>Image size to build the model for; when it differs from the checkpoint's, the position embeddings are
    /// resampled (<see cref="PositionEmbedding.Resample"/>). Must be a multiple of the patch size.</summary>
    public int? ImageSize { get; init; }

    /// <summary>LayerNorm epsilon when the checkpoint does not say (default: the layout's: 1e-6 for timm and
    /// torchvision, 1e-12 for Hugging Face); an error when the checkpoint says otherwise.</summary>
    public double? LayerNormEps { get; init; }

    /// <summary>Pooling when the checkpoint does not say (default from the tensors: class token, or the mean with
    /// <c>fc_norm</c> or without a class token); an error when the checkpoint says otherwise.</summary>
    public VitPooling? Pooling { get; init; }

    /// <summary>Input normalisation to use instead of the checkpoint's (or the layout's default).</summary>
    public Normalization? Normalization { get; init; }

    /// <summary>Called with the config just before the model is allocated: a test's way to see that a bad file is
    /// refused before anything large is built.</summary>
    internal Action<VitConfig>? BeforeBuilding { get; init; }
}

/// <summary>
/// A published or saved ViT, loaded faithfully: the one entry point for Hugging Face folders (<c>config.json</c> +
/// <c>model.safetensors</c>, sharded or <c>pytorch_model.bin</c>; <c>preprocessor_config.json</c>), timm safetensors
/// (and timm hub folders), torchvision <c>.pth</c> files (read without running pickle code) and torchvision-named
/// safetensors, and our own safetensors and model zips. Nothing is guessed: the config comes from the file, from
/// published shapes, or from <see cref="PretrainedVitOptions"/>, else an error says what is missing.
/// </summary>
/// <remarks>
/// Files are untrusted: the config is cross-checked against the tensor shapes, sizes are capped
/// (<see cref="VitConfig.MaxDim"/>, ...) and the model is allocated only once its parameter count is backed by the
/// file's data; every parse failure is an <see cref="InvalidDataException"/> naming the file and the problem, a
/// ViT variant this library does not implement a <see cref="NotSupportedException"/> naming the feature.
/// </remarks>
public sealed class PretrainedVit : IDisposable
{
    /// <summary>Head counts of the published ViTs by hidden size (Ti, S, B, L, H).</summary>
    private static readonly Dictionary<int, int> PublishedHeads = new() { [192] = 3, [384] = 6, [768] = 12, [1024] = 16, [1280] = 16 };

    private VisionTransformer? model;

    private PretrainedVit(VisionTransformer model, IReadOnlyList<string>? labels, VitPreprocessing preprocessing, CheckpointLayout layout, string source)
    {
        this.model = model;
        Labels = labels;
        Preprocessing = preprocessing;
        Layout = layout;
        Source = source;
    }

    /// <summary>The model with the checkpoint's weights (owned by this object until <see cref="TakeModel"/>).</summary>
    public VisionTransformer Model => model ?? throw new ObjectDisposedException(nameof(PretrainedVit), "the model was taken or disposed");

    /// <summary>The class names in the order of the head's outputs (Hugging Face's id2label, timm's label_names, our
    /// labels), or null when the checkpoint has none or no head.</summary>
    public IReadOnlyList<string>? Labels { get; }

    /// <summary>How images become input for this model: size, channels, mean/std, resize mode and interpolation.</summary>
    public VitPreprocessing Preprocessing { get; }

    /// <summary>How the checkpoint named its tensors.</summary>
    public CheckpointLayout Layout { get; }

    /// <summary>The file or folder read.</summary>
    public string Source { get; }

    /// <summary>Hands the model over to the caller, who disposes it from then on.</summary>
    public VisionTransformer TakeModel()
    {
        var m = Model;
        model = null;
        return m;
    }

    /// <summary>Frees the model unless it was taken.</summary>
    public void Dispose()
    {
        model?.Dispose();
        model = null;
    }

    /// <summary>
    /// Loads a checkpoint: a Hugging Face or timm folder, a safetensors file (ours, timm's or torchvision-named), a
    /// torch.save file (<c>.pth</c>, <c>.bin</c>), or one of our model zips. The format is recognised from the content;
    /// a folder's <c>model.safetensors</c> or <c>pytorch_model.bin</c> is read with the folder's config.json.
    /// </summary>
    /// <exception cref="FileNotFoundException">Nothing at <paramref name="path"/>, or a folder without its files.</exception>
    /// <exception cref="InvalidDataException">The checkpoint is damaged or inconsistent; the message names the file and the problem.</exception>
    /// <exception cref="NotSupportedException">A ViT variant this library does not implement; the message names the feature.</exception>
    /// <exception cref="ArgumentException">The options conflict with the checkpoint, or the head count is unknown.</exception>
    public static PretrainedVit Load(string path, PretrainedVitOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= new PretrainedVitOptions();
        if (Directory.Exists(path))
        {
            var (description, index, timm) = CheckpointFolders.Read(path);
            using (index)
                return FromIndex(index, description, options, expected: timm ? CheckpointLayout.Timm : CheckpointLayout.HuggingFace);
        }
        if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint not found: {path}", path);
        // The weights file of a Hugging Face folder: its config.json beside it says what the file cannot.
        var folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (Path.GetFileName(path) is "model.safetensors" or "pytorch_model.bin" && File.Exists(Path.Combine(folder, "config.json")))
            return Load(folder, options);
        // Recognised by content: zips (ours, or torch.save's), safetensors (a JSON header after 8 bytes), pickles.
        Span<byte> head = stackalloc byte[9];
        int n;
        using (var fs = File.OpenRead(path)) n = fs.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        if (ZipReader.LooksLikeZip(head[..n]))
        {
            var zip = VitModelZip.OpenZip(path);
            bool ours;
            try
            {
                ours = VitModelZip.FindModel(zip, path) is not null;  // our own model zip, or an ML.NET model file holding one
            }
            catch
            {
                zip.Dispose();
                throw;
            }
            if (ours)
                using (zip)
                    return VitModelZip.Load(zip, path, options, out _, out _);
            using var torch = new CheckpointIndex([TorchCheckpoint.Open(zip, path)], path);  // the torch file owns the zip
            return FromIndex(torch, null, options, expected: null);
        }
        if (n >= 1 && head[0] == 0x80 && !(n == 9 && head[8] == (byte)'{'))
            TorchCheckpoint.Open(path).Dispose();  // a bare pickle: the legacy torch.save format, which its reader names
        using var file = new CheckpointIndex([Safetensors.Open(path)], path);
        return FromIndex(file, OurMetadata(file.Metadata, path), options, expected: null);
    }

    /// <summary>The config, preprocessing and labels our safetensors files carry (<see cref="VitMetadata"/>), if any.</summary>
    internal static CheckpointDescription? OurMetadata(IReadOnlyDictionary<string, string> metadata, string path)
    {
        if (!metadata.TryGetValue(VitMetadata.Config, out var config)) return null;
        string source = $"'{path}' metadata";
        var stated = StatedConfig.Of(VitConfig.FromJson(JsonFields.ParseValue(config, $"{source} {VitMetadata.Config}"), $"{source} {VitMetadata.Config}"), source);
        var pre = metadata.TryGetValue(VitMetadata.Preprocessing, out var p)
            ? VitPreprocessing.FromJson(JsonFields.ParseValue(p, $"{source} {VitMetadata.Preprocessing}"), $"{source} {VitMetadata.Preprocessing}")
            : null;
        var labels = metadata.TryGetValue(VitMetadata.Labels, out var l)
            ? JsonFields.Strings(JsonFields.ParseValue(l, $"{source} {VitMetadata.Labels}"), VitMetadata.Labels, source)
            : null;
        return new CheckpointDescription(stated, labels, pre) { Ours = true };
    }

    /// <summary>Builds and fills the model from a checkpoint's tensors and what its files say.</summary>
    internal static PretrainedVit FromIndex(CheckpointIndex index, CheckpointDescription? description, PretrainedVitOptions options, CheckpointLayout? expected)
    {
        var map = VitNameMap.Detect(index.Names, $"'{index.Source}'");
        if (expected is { } e && map.Layout != e)
            throw new InvalidDataException($"'{index.Source}': its config describes a {e} model, but the weights use {map.Layout} names");
        var inferred = FromShapes(index, map);
        var fileConfig = Resolve(inferred, description?.Config, options, map.Layout, index.Source);

        // Before anything is allocated: the file's data must back the parameters the config implies. A parameter takes
        // at least 2 bytes in a file (float16), so more parameters than bytes is a lie; the slack of 2 lets a few
        // missing tensors be listed by name below rather than refused here.
        long needed = new VitParameterCount(fileConfig).Count;
        if (needed > index.DataLength + (1 << 20))
            throw new InvalidDataException(
                $"'{index.Source}': the config needs {needed:N0} parameters but the file holds only {index.DataLength:N0} bytes of tensor data");
        options.BeforeBuilding?.Invoke(fileConfig);
        var config = fileConfig;
        if (options.ImageSize is { } size && size != fileConfig.ImageSize)
        {
            config = fileConfig with { ImageSize = size };
            try
            {
                config.Validate();
            }
            catch (ArgumentException ex)
            {
                throw new ArgumentException($"ImageSize {size}: {ex.Message}", nameof(options), ex);
            }
        }

        var labels = description?.Labels;
        if (config.NumClasses == 0) labels = null;
        else if (labels is not null && labels.Count != config.NumClasses)
            throw new InvalidDataException($"'{index.Source}' names {labels.Count} labels for a head with {config.NumClasses} outputs");
        var preprocessing = FinalPreprocessing(description?.Preprocessing, description?.Ours == true, config, fileConfig, map.Layout, options, index.Source);

        var model = VisionTransformer.ForWeights(config);
        try
        {
            Fill(model, index, map, fileConfig, skipTrainingState: description?.Ours == true);
            model.Eval();
            return new PretrainedVit(model, labels, preprocessing, map.Layout, index.Source);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The shape-determined fields of the config, read from the tensors (our names through the map).</summary>
    private static VitConfig FromShapes(CheckpointIndex index, VitNameMap map)
    {
        string src = $"'{index.Source}'";
        long[]? S(string ours) => index.Shape(map, ours);
        long[] Need(string ours, int rank)
        {
            var s = S(ours) ?? throw new InvalidDataException($"{src} has no {string.Join(" + ", map.Theirs(ours))} (our {ours}): not a complete ViT checkpoint");
            if (s.Length != rank) throw new InvalidDataException($"{src}: {string.Join(" + ", map.Theirs(ours))} has shape {Safetensors.FormatShape(s)}, not {rank}-d");
            return s;
        }
        int Int(long v, string what) => v is > 0 and <= int.MaxValue ? (int)v : throw new InvalidDataException($"{src}: {what} {v} is out of range");

        var patch = Need("patch_embed.proj.weight", 4);  // (D, C, P, P)
        if (patch[2] != patch[3]) throw new NotSupportedException($"{src} has {patch[2]}x{patch[3]} patches; ViT here uses square patches");
        int dim = Int(patch[0], "hidden size"), channels = Int(patch[1], "channel count"), p = Int(patch[2], "patch size");
        var pos = Need("pos_embed", 3);                   // (1, T, D)
        var cls = S("cls_token");                         // (1, 1, D) or absent
        if (cls is not null && !cls.SequenceEqual(new long[] { 1, 1, dim }))
            throw new InvalidDataException($"{src}: the class token has shape {Safetensors.FormatShape(cls)}, not (1, 1, {dim})");
        if (pos[0] != 1 || pos[2] != dim)
            throw new InvalidDataException($"{src}: the position embedding has shape {Safetensors.FormatShape(pos)}, not (1, tokens, {dim})");
        int depth = 0;
        while (depth <= VitConfig.MaxDepth && S($"blocks.{depth}.norm1.weight") is not null) depth++;
        if (depth == 0) throw new InvalidDataException($"{src} has no encoder blocks ({map.Theirs("blocks.0.norm1.weight")[0]})");
        var fc1 = Need("blocks.0.mlp.fc1.weight", 2);     // (M, D)
        bool fcNorm = S("fc_norm.weight") is not null, norm = S("norm.weight") is not null;
        if (fcNorm && norm) throw new NotSupportedException($"{src} has both a final norm and fc_norm; ViT here has one of them");
        if (!fcNorm && !norm) throw new InvalidDataException($"{src} has no final LayerNorm ({string.Join(" or ", map.Theirs("norm.weight").Concat(map.Theirs("fc_norm.weight")))})");
        var head = S("head.weight");                      // (K, D) or absent: headless
        long tokens = pos[1] - (cls is null ? 0 : 1);
        long grid = (long)Math.Round(Math.Sqrt(Math.Max(0, tokens)));
        if (tokens < 1 || grid * grid != tokens)
        {
            long all = (long)Math.Round(Math.Sqrt(pos[1]));
            if (cls is not null && all * all == pos[1])
                throw new NotSupportedException($"{src} has position embeddings without a class-token position (timm's no_embed_class), which Vit for .NET does not implement");
            throw new InvalidDataException($"{src}: the position embedding has {tokens} patch positions, not a square grid");
        }
        var config = new VitConfig
        {
            ImageSize = Int(checked(grid * p), "image size"), PatchSize = p, Channels = channels, Dim = dim, Depth = depth, Heads = 1,
            MlpDim = Int(fc1[0], "MLP size"), NumClasses = head is null ? 0 : Int(head[0], "class count"),
            ClassToken = cls is not null, FcNorm = fcNorm, QkvBias = S("blocks.0.attn.qkv.bias") is not null,
            Pooling = cls is not null && !fcNorm ? VitPooling.ClassToken : VitPooling.Mean,
        };
        try
        {
            return config.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new InvalidDataException($"{src}: {ex.Message}", ex);
        }
    }

    /// <summary>The checkpoint's config: shapes from the tensors, the rest from the files, then the options, then
    /// published values; every stated value must agree with the tensors.</summary>
    private static VitConfig Resolve(VitConfig shapes, StatedConfig? stated, PretrainedVitOptions o, CheckpointLayout layout, string path)
    {
        string said = stated is null ? "" : stated.Source;
        void Agree<TV>(TV? value, TV have, string what) where TV : struct
        {
            if (value is { } v && !EqualityComparer<TV>.Default.Equals(v, have))
                throw new InvalidDataException($"{said} says {what} {v}, but the weights have {have}");
        }
        if (stated is not null)
        {
            Agree(stated.ImageSize, shapes.ImageSize, "image size");
            Agree(stated.PatchSize, shapes.PatchSize, "patch size");
            Agree(stated.Channels, shapes.Channels, "channels");
            Agree(stated.Dim, shapes.Dim, "hidden size");
            Agree(stated.Depth, shapes.Depth, "depth");
            Agree(stated.MlpDim, shapes.MlpDim, "MLP size");
            Agree(stated.NumClasses, shapes.NumClasses, "class count");
            Agree(stated.QkvBias, shapes.QkvBias, "qkv bias");
            Agree(stated.ClassToken, shapes.HasClassToken, "class token");
            Agree(stated.FcNorm, shapes.FcNorm, "fc_norm");
        }
        T? Choose<T>(T? fromFile, T? fromOptions, string option) where T : struct
        {
            if (fromFile is { } f && fromOptions is { } p && !EqualityComparer<T>.Default.Equals(f, p))
                throw new ArgumentException($"{option} is {p}, but {said} says {f}", nameof(o));
            return fromFile ?? fromOptions;
        }
        int heads = Choose(stated?.Heads, o.Heads, "Heads")
                    ?? (PublishedHeads.TryGetValue(shapes.Dim, out var h) ? h
                        : throw new ArgumentException(
                            $"'{path}': the head count is unknown: the checkpoint does not say it, and no published ViT has hidden size {shapes.Dim}. " +
                            $"Pass it: new PretrainedVitOptions {{ Heads = ... }} (a divisor of {shapes.Dim})", nameof(o)));
        var config = shapes with
        {
            Heads = heads,
            LayerNormEps = Choose(stated?.LayerNormEps, o.LayerNormEps, "LayerNormEps") ?? (layout == CheckpointLayout.HuggingFace ? 1e-12 : 1e-6),
            Pooling = Choose(stated?.Pooling, o.Pooling, "Pooling") ?? shapes.Pooling,
            Dropout = stated?.Dropout ?? 0,
            AttentionDropout = stated?.AttentionDropout ?? 0,
            DropPath = stated?.DropPath ?? 0,
        };
        try
        {
            return config.Validate();
        }
        catch (ArgumentException ex) when (stated?.Heads is not null || o.Heads is null)
        {
            throw new InvalidDataException($"'{path}': {ex.Message}", ex);
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException($"Heads {o.Heads}: {ex.Message}", nameof(o), ex);
        }
    }

    /// <summary>The file's preprocessing (or the layout's published default) for the final config.</summary>
    private static VitPreprocessing FinalPreprocessing(VitPreprocessing? stated, bool ours, VitConfig config, VitConfig fileConfig,
        CheckpointLayout layout, PretrainedVitOptions options, string path)
    {
        if (stated is not null && stated.Channels != config.Channels)
            throw new InvalidDataException($"'{path}': the preprocessing is for {stated.Channels}-channel images, the model takes {config.Channels}");
        if (stated is not null && stated.ImageSize != fileConfig.ImageSize)
            throw new InvalidDataException($"'{path}': the preprocessing resizes to {stated.ImageSize}, but the model takes {fileConfig.ImageSize}");
        var pre = stated ?? layout switch
        {
            // transformers' ViTImageProcessor: resize to the size, bilinear, mean/std 0.5.
            CheckpointLayout.HuggingFace => new VitPreprocessing(config.ImageSize, config.Channels, Normalization.Half)
            {
                ResizeMode = ResizeMode.Stretch, Interpolation = Interpolation.Bilinear,
            },
            // torchvision's ViT weights: Resize(256) + CenterCrop(224), bilinear, ImageNet statistics.
            CheckpointLayout.Torchvision => new VitPreprocessing(config.ImageSize, config.Channels, config.Channels == 1 ? Normalization.Half : Normalization.ImageNet)
            {
                ResizeMode = ResizeMode.Crop, Interpolation = Interpolation.Bilinear, CropFraction = 0.875,
            },
            // Our own files (with our config, without preprocessing): the estimator's defaults.
            _ when ours => VitPreprocessing.Default(config.ImageSize, config.Channels),
            // timm's default ViT config (vision_transformer.py's _cfg): crop_pct 0.9, bicubic, mean/std 0.5 (Inception's).
            _ => new VitPreprocessing(config.ImageSize, config.Channels, Normalization.Half)
            {
                ResizeMode = ResizeMode.Crop, Interpolation = Interpolation.Bicubic, CropFraction = 0.9,
            },
        };
        pre = pre with { ImageSize = config.ImageSize, Normalization = options.Normalization ?? pre.Normalization };
        try
        {
            return pre.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException($"preprocessing of '{path}': {ex.Message}", nameof(options), ex);
        }
    }

    /// <summary>
    /// Checks every parameter against the checkpoint (name present, shape, floating type) and that no tensor is left
    /// over (but a training checkpoint's state, with <paramref name="skipTrainingState"/>), listing every problem; then reads the tensors in file order into the parameters, resampling the position
    /// embedding when the model's grid differs from the file's.
    /// </summary>
    private static void Fill(VisionTransformer model, CheckpointIndex index, VitNameMap map, VitConfig fileConfig, bool skipTrainingState)
    {
        var plan = new List<(string Name, Tensor Parameter)>();
        var problems = new List<string>();
        var used = new HashSet<string>(StringComparer.Ordinal);
        int prefix = model.Config.HasClassToken ? 1 : 0;
        foreach (var (name, p) in model.NamedParameters())
        {
            var theirs = map.Theirs(name);
            string label = theirs.Count == 1 && theirs[0] == name ? name : $"{name} ({string.Join(" + ", theirs)})";
            long[]? shape;
            try
            {
                shape = index.Shape(map, name);
            }
            catch (InvalidDataException ex)
            {
                problems.Add($"{label}: {ex.Message}");
                continue;
            }
            if (shape is null)
            {
                problems.Add($"{label}: missing");
                continue;
            }
            used.UnionWith(theirs);
            var want = name == "pos_embed" ? [1, prefix + (long)fileConfig.NumPatches, fileConfig.Dim] : p.Shape;
            if (!want.AsSpan().SequenceEqual(shape))
                problems.Add($"{label}: expected {Safetensors.FormatShape(want)}, the file has {Safetensors.FormatShape(shape)}");
            else if (theirs.Select(index.Info).FirstOrDefault(i => !IsFloating(i.DType)) is { } bad)
                problems.Add($"{label}: {bad.Name} holds {bad.DType} values, not floating point");
            plan.Add((name, p));
        }
        // Our training checkpoints also hold the optimizer's state and the like: a checkpoint loads as a model.
        foreach (var name in index.Names.Where(n => !used.Contains(n) && !map.IsUnused(n)
                     && !(skipTrainingState && n.StartsWith(Training.TrainingCheckpoint.StatePrefix, StringComparison.Ordinal))))
            problems.Add($"{name}: unexpected (the model has no such tensor)");
        if (problems.Count > 0)
            throw new InvalidDataException(
                $"'{index.Source}' does not fit the ViT its config describes ({problems.Count} problem(s)):" + Environment.NewLine + "  " +
                string.Join(Environment.NewLine + "  ", problems.Take(20)) + (problems.Count > 20 ? $"{Environment.NewLine}  ... and {problems.Count - 20} more" : ""));

        // In file order, so that each file is read front to back (a zip entry can only be read that way).
        foreach (var (name, p) in plan.OrderBy(x => index.Order(map.Theirs(x.Name)[0])))
        {
            using var scope = TensorScope.Begin();
            var value = index.Read(map, name);
            if (name == "pos_embed" && fileConfig.GridSize != model.Config.GridSize)
                value = PositionEmbedding.Resample(value, prefix, model.Config.GridSize);
            p.CopyFrom(value);  // converts float16/bfloat16/float64 to the model's float32
        }
    }

    private static bool IsFloating(DType t) => t is DType.Float32 or DType.Float64 or DType.Float16 or DType.BFloat16;
}
