using Vit.Torch.Modules;

namespace Vit.Torch.Training;

/// <summary>
/// A copy of a model's parameters by name, kept in libtorch memory: the best epoch's weights to restore, or the
/// exponential moving average of the weights.
/// </summary>
internal sealed class WeightSnapshot : IDisposable
{
    private readonly Dictionary<string, Tensor> copies = new(StringComparer.Ordinal);

    public bool HasWeights => copies.Count > 0;

    /// <summary>The copies by parameter name (owned by the snapshot).</summary>
    public IReadOnlyDictionary<string, Tensor> Tensors => copies;

    /// <summary>Copies the model's current parameters into the snapshot.</summary>
    public void Take(Module model)
    {
        using var _ = Torch.NoGrad();
        foreach (var (name, p) in model.NamedParameters())
        {
            if (copies.TryGetValue(name, out var c)) c.CopyFrom(p);
            else copies[name] = p.Detach().Clone().DetachFromScope();
        }
    }

    /// <summary>Copies the snapshot into the model's parameters.</summary>
    public void Restore(Module model)
    {
        foreach (var (name, p) in model.NamedParameters()) p.CopyFrom(copies[name]);
    }

    /// <summary>An exponential moving average step: copy = decay · copy + (1 − decay) · parameter, for every parameter.</summary>
    public void Update(Module model, double decay)
    {
        using var _ = Torch.NoGrad();
        foreach (var (name, p) in model.NamedParameters())
        {
            var c = copies[name];
            c.MulInPlace(decay);
            c.AddInPlace(p, 1 - decay);
        }
    }

    /// <summary>Replaces the copies by <paramref name="values"/> (read from a checkpoint; shapes checked by the caller).</summary>
    public void Load(Module model, IReadOnlyDictionary<string, Tensor> values)
    {
        Take(model);  // allocates every copy with the parameter's shape and type
        foreach (var (name, c) in copies) c.CopyFrom(values[name]);
    }

    public void Dispose()
    {
        foreach (var c in copies.Values) c.Dispose();
        copies.Clear();
    }
}
