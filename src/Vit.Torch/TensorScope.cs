namespace Vit.Torch;

/// <summary>
/// Frees the intermediates of a step. While a scope is open on a thread, every tensor created on that thread
/// is recorded in it, and disposing the scope disposes them all, except those handed on with
/// <see cref="MoveToOuter"/> or taken out with <see cref="Tensor.DetachFromScope"/>. Scopes nest.
/// </summary>
/// <example><code>
/// using (var scope = TensorScope.Begin())
/// {
///     var loss = F.CrossEntropy(model.Forward(x), y);   // hundreds of intermediates
///     loss.Backward();
/// }                                                      // all freed here
/// </code></example>
public sealed class TensorScope : IDisposable
{
    [ThreadStatic] private static TensorScope? current;

    private readonly TensorScope? parent;
    private readonly List<Tensor> owned = new();
    private bool disposed;

    private TensorScope(TensorScope? parent) => this.parent = parent;

    /// <summary>Opens a scope on this thread; dispose it on the same thread.</summary>
    public static TensorScope Begin() => current = new TensorScope(current);

    /// <summary>The innermost open scope of this thread, if any.</summary>
    public static TensorScope? Current => current;

    internal TensorScope? Parent => parent;

    /// <summary>Number of tensors this scope will free.</summary>
    public int Count => owned.Count;

    internal static void Track(Tensor t) => current?.owned.Add(t);

    internal bool Remove(Tensor t)
    {
        // Search from the end: the tensor handed on is almost always among the last created.
        for (int i = owned.Count - 1; i >= 0; i--)
            if (ReferenceEquals(owned[i], t))
            {
                owned.RemoveAt(i);
                return true;
            }
        return false;
    }

    /// <summary>Hands a tensor created in this scope to the enclosing scope (or to the caller when none).</summary>
    public Tensor MoveToOuter(Tensor tensor)
    {
        if (Remove(tensor)) parent?.owned.Add(tensor);
        return tensor;
    }

    /// <summary>Frees every tensor recorded in this scope and closes it.</summary>
    public void Dispose()
    {
        if (disposed) return;
        // Checked before marking this scope disposed, so a wrong-order Dispose leaves every scope usable.
        if (!ReferenceEquals(current, this))
            throw new InvalidOperationException(
                "TensorScope disposed out of order or on another thread: dispose the innermost scope first, on the thread that began it");
        disposed = true;
        current = parent;
        foreach (var t in owned) t.Dispose();
        owned.Clear();
    }
}

public sealed partial class Tensor
{
    /// <summary>
    /// Takes this tensor out of every open scope on this thread: the caller now owns it and must dispose it
    /// (used for parameters and optimizer state that outlive a step).
    /// </summary>
    public Tensor DetachFromScope()
    {
        for (var s = TensorScope.Current; s is not null; s = s.Parent)
            if (s.Remove(this)) break;
        return this;
    }

}
