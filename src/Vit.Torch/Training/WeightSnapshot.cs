namespace Vit.Torch.Training;

/// <summary>A copy of a model's parameters, kept in libtorch memory, to restore the best epoch.</summary>
internal sealed class WeightSnapshot : IDisposable
{
    private readonly Dictionary<string, Tensor> copies = new();

    public bool HasWeights => copies.Count > 0;

    public void Take(Modules.Module model)
    {
        using var _ = Torch.NoGrad();
        foreach (var (name, p) in model.NamedParameters())
        {
            if (copies.TryGetValue(name, out var c)) c.CopyFrom(p);
            else copies[name] = p.Detach().Clone().DetachFromScope();
        }
    }

    public void Restore(Modules.Module model)
    {
        foreach (var (name, p) in model.NamedParameters()) p.CopyFrom(copies[name]);
    }

    public void Dispose()
    {
        foreach (var c in copies.Values) c.Dispose();
        copies.Clear();
    }
}
