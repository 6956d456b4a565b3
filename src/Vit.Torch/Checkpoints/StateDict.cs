using Vit.Torch.Modules;

namespace Vit.Torch.Checkpoints;

/// <summary>
/// A module's weights by checkpoint name (PyTorch's <c>state_dict</c> / <c>load_state_dict</c>), and their
/// safetensors files. Loading first checks every name and shape, then copies: a checkpoint that does not fit
/// is rejected with every problem listed and leaves the module unchanged.
/// </summary>
public static class StateDictExtensions
{
    /// <summary>
    /// The module's parameters by dotted name (<c>blocks.0.attn.qkv.weight</c>), as detached tensors that
    /// <b>share memory</b> with the parameters, like PyTorch's <c>state_dict()</c>. The caller owns the returned
    /// handles and disposes them (or lets an open <see cref="TensorScope"/> do it); disposing them never frees a
    /// parameter. Their values follow later changes to the parameters: <see cref="Tensor.Clone"/> them for a snapshot.
    /// </summary>
    public static Dictionary<string, Tensor> StateDict(this Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var (name, p) in module.NamedParameters()) result.Add(name, p.Detach());
            return result;
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Saves the module's parameters to a safetensors file under their checkpoint names, atomically
    /// (see <see cref="Safetensors.Save"/>). The metadata holds what the module says about itself (a
    /// <see cref="Model.VisionTransformer"/> its config, so that <see cref="PretrainedVit.Load"/> rebuilds it exactly),
    /// then <paramref name="metadata"/>, whose keys win.
    /// </summary>
    public static void SaveSafetensors(this Module module, string path, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        Safetensors.Save(path, module.NamedParameters(), Described(module, metadata));
    }

    /// <summary>Writes the module's parameters as <see cref="SaveSafetensors"/> does, to a stream (e.g. an entry of a zip).</summary>
    public static void WriteSafetensors(this Module module, Stream stream, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        Safetensors.Write(stream, module.NamedParameters(), Described(module, metadata));
    }

    private static Dictionary<string, string> Described(Module module, IReadOnlyDictionary<string, string>? metadata)
    {
        var all = new Dictionary<string, string>(StringComparer.Ordinal);
        module.DescribeInto(all);
        if (metadata is not null)
            foreach (var (k, v) in metadata) all[k] = v;
        return all;
    }

    /// <summary>
    /// Copies <paramref name="weights"/> into the module's parameters (converting between floating-point types,
    /// e.g. a float16 checkpoint into a float32 model). First every parameter is checked: its name must be present,
    /// with the parameter's shape and a floating-point type; with <paramref name="strict"/>, no other name may be
    /// present either. If anything is wrong, one <see cref="ArgumentException"/> lists every problem
    /// (<c>blocks.0.attn.qkv.weight: expected (48, 16), checkpoint has (30, 16)</c>) and no parameter is changed.
    /// A missing parameter is always an error, unlike PyTorch's <c>strict=False</c>: a silently random layer is worse.
    /// The caller keeps ownership of <paramref name="weights"/>.
    /// </summary>
    public static void LoadStateDict(this Module module, IReadOnlyDictionary<string, Tensor> weights, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(weights);
        Load(module, weights, strict, "weights", "checkpoint");
    }

    /// <summary>
    /// Loads a safetensors file into the module, with the checks of <see cref="LoadStateDict"/>; the tensors read
    /// from the file are freed once copied.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not a valid safetensors file.</exception>
    /// <exception cref="ArgumentException">The file's tensors do not fit the module; the message lists every problem.</exception>
    public static void LoadSafetensors(this Module module, string path, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(module);
        var weights = Safetensors.Load(path);
        try
        {
            Load(module, weights, strict, $"'{path}'", "file");
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    private static void Load(Module module, IReadOnlyDictionary<string, Tensor> weights, bool strict, string source, string holder)
    {
        var parameters = module.NamedParameters().ToList();
        var problems = new List<string>();
        foreach (var (name, p) in parameters)
        {
            if (!weights.TryGetValue(name, out var w))
            {
                problems.Add($"{name}: missing (expected {Safetensors.FormatShape(p.Shape)})");
                continue;
            }
            if (w is null)
            {
                problems.Add($"{name}: the {holder}'s tensor is null");
                continue;
            }
            var want = p.Shape;
            var have = w.Shape;
            if (!want.AsSpan().SequenceEqual(have))
                problems.Add($"{name}: expected {Safetensors.FormatShape(want)}, {holder} has {Safetensors.FormatShape(have)}");
            else if (!IsFloating(w.DType) && IsFloating(p.DType))
                problems.Add($"{name}: expected floating-point values, {holder} has {w.DType}");
        }
        if (strict)
        {
            var expected = parameters.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
            foreach (var name in weights.Keys.Where(k => !expected.Contains(k)).Order(StringComparer.Ordinal))
                problems.Add($"{name}: unexpected (the model has no such parameter)");
        }
        if (problems.Count > 0)
            throw new ArgumentException(
                $"cannot load {source} into {module.GetType().Name}: {problems.Count} problem(s), nothing was loaded:"
                + Environment.NewLine + "  " + string.Join(Environment.NewLine + "  ", problems),
                nameof(weights));

        foreach (var (name, p) in parameters) p.CopyFrom(weights[name]);  // no autograd history; converts the type
    }

    private static bool IsFloating(DType t) => t is DType.Float32 or DType.Float64 or DType.Float16 or DType.BFloat16;
}
