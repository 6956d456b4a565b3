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
    private volatile bool disposed;

    private readonly int owner = Environment.CurrentManagedThreadId;

    private TensorScope(TensorScope? parent) => this.parent = parent;

    /// <summary>Opens a scope on this thread; dispose it on the same thread (not across an <c>await</c>, which may
    /// resume on another thread: open the scope between awaits, or dispose the tensors yourself).</summary>
    public static TensorScope Begin() => current = new TensorScope(Live());

    /// <summary>The innermost open scope of this thread, if any.</summary>
    public static TensorScope? Current => Live();

    /// <summary>This thread's innermost scope that is still open: a scope disposed from another thread (after an await)
    /// is left behind here, and must not go on collecting this thread's tensors.</summary>
    private static TensorScope? Live()
    {
        var s = current;
        while (s is { disposed: true }) s = s.parent;
        return current = s;
    }

    internal TensorScope? Parent => parent;

    /// <summary>Number of tensors this scope will free.</summary>
    public int Count => owned.Count;

    /// <summary>Records <paramref name="t"/> in this thread's scope; false when there is none (the caller owns it).</summary>
    internal static bool Track(Tensor t)
    {
        var s = current is { disposed: true } ? Live() : current;
        if (s is null) return false;
        s.owned.Add(t);
        return true;
    }

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
        if (owner != Environment.CurrentManagedThreadId)
        {
            // Across an await: free what it holds and close it, so that the thread that began it stops recording into
            // it (it is skipped there from now on), then say what went wrong.
            disposed = true;
            foreach (var t in owned) t.Dispose();
            owned.Clear();
            throw new InvalidOperationException(
                "TensorScope disposed on another thread than the one that began it (an await between Begin and Dispose?): its " +
                "tensors are freed, but those made after the thread changed were not recorded in it. Open scopes between awaits.");
        }
        // Checked before marking this scope disposed, so a wrong-order Dispose leaves every scope usable.
        if (!ReferenceEquals(Live(), this))
            throw new InvalidOperationException(
                "TensorScope disposed out of order: dispose the innermost scope first, on the thread that began it");
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
