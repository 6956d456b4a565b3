namespace Vit.Torch.Modules;

/// <summary>
/// A layer with parameters and children, registered explicitly under their checkpoint names (timm/HF style,
/// e.g. <c>blocks.0.attn.qkv.weight</c>), so C# field names stay .NET-like and nothing depends on reflection.
/// A module owns its parameters and frees them on <see cref="Dispose"/>.
/// </summary>
public abstract class Module : IDisposable
{
    private readonly List<(string Name, Tensor Tensor)> parameters = new();
    private readonly List<(string Name, Module Module)> children = new();
    private bool disposed;

    /// <summary>True while training (dropout, drop path active); false after <see cref="Eval"/>.</summary>
    public bool Training { get; private set; } = true;

    /// <summary>Registers a parameter: it leaves every tensor scope, requires grad, and is owned by this module.</summary>
    protected Tensor RegisterParameter(string name, Tensor tensor)
    {
        CheckName(name);
        tensor.DetachFromScope();
        tensor.RequiresGrad = true;
        parameters.Add((name, tensor));
        return tensor;
    }

    /// <summary>Registers a child module under <paramref name="name"/>.</summary>
    protected T RegisterModule<T>(string name, T module) where T : Module
    {
        CheckName(name);
        children.Add((name, module));
        return module;
    }

    /// <summary>Swaps the child registered as <paramref name="name"/> for a new one and frees the old one.</summary>
    protected T ReplaceModule<T>(string name, T module) where T : Module
    {
        int i = children.FindIndex(c => c.Name == name);
        if (i < 0) throw new ArgumentException($"no module named '{name}' to replace", nameof(name));
        var old = children[i].Module;
        children[i] = (name, module);
        old.Dispose();
        return module;
    }

    private void CheckName(string name)
    {
        if (string.IsNullOrEmpty(name)) throw new ArgumentException("a parameter or module needs a name", nameof(name));
        if (parameters.Any(p => p.Name == name) || children.Any(c => c.Name == name))
            throw new ArgumentException($"'{name}' is already registered", nameof(name));
    }

    /// <summary>All parameters with their dotted names, in registration order (depth first).</summary>
    public IEnumerable<(string Name, Tensor Parameter)> NamedParameters(string prefix = "")
    {
        foreach (var (n, t) in parameters) yield return (prefix + n, t);
        foreach (var (n, m) in children)
            foreach (var p in m.NamedParameters(prefix + n + "."))
                yield return p;
    }

    /// <summary>All parameters, in the order of <see cref="NamedParameters"/>.</summary>
    public IEnumerable<Tensor> Parameters() => NamedParameters().Select(p => p.Parameter);

    /// <summary>Child modules with their dotted names (depth first, this module excluded).</summary>
    public IEnumerable<(string Name, Module Module)> NamedModules(string prefix = "")
    {
        foreach (var (n, m) in children)
        {
            yield return (prefix + n, m);
            foreach (var c in m.NamedModules(prefix + n + ".")) yield return c;
        }
    }

    /// <summary>Total number of parameter elements.</summary>
    public long ParameterCount() => Parameters().Sum(p => p.NumElements);

    /// <summary>
    /// Adds what this module's safetensors files should say about it (see <see cref="Checkpoints.StateDictExtensions.SaveSafetensors"/>),
    /// e.g. a model's config, so that a file can be read back without being told the model's shape. Default: nothing.
    /// </summary>
    protected internal virtual void DescribeInto(IDictionary<string, string> metadata) { }

    /// <summary>The direct children with their names, in registration order.</summary>
    protected IEnumerable<(string Name, Module Module)> Children => children;

    /// <summary>Training mode on (true) or off, for this module and all children.</summary>
    public virtual void Train(bool on = true)
    {
        Training = on;
        foreach (var (_, m) in children) m.Train(on);
    }

    /// <summary>Evaluation mode: dropout and drop path off.</summary>
    public void Eval() => Train(false);

    /// <summary>
    /// Converts every parameter to the floating-point type <paramref name="dtype"/> in place (PyTorch's
    /// <c>module.to(dtype)</c>, e.g. <see cref="DType.Float64"/> for gradient checks). Parameter objects stay the
    /// same, so references held by layers remain valid; gradients are dropped. Create optimizers afterwards.
    /// </summary>
    public void To(DType dtype)
    {
        if (dtype is not (DType.Float32 or DType.Float64 or DType.Float16 or DType.BFloat16))
            throw new ArgumentException($"parameters must be floating point, not {dtype}", nameof(dtype));
        foreach (var p in Parameters())
        {
            using var converted = p.To(dtype);
            p.SetData(converted);
        }
    }

    /// <summary>Moves every parameter to <paramref name="device"/> in place (the parameter objects stay the same).</summary>
    public void To(Device device)
    {
        foreach (var p in Parameters())
        {
            if (p.Device == device) continue;
            using var moved = p.To(device);
            p.SetData(moved);
        }
    }

    /// <summary>The device of the first parameter (the module's device).</summary>
    public Device Device => Parameters().FirstOrDefault()?.Device ?? Device.Cpu;

    /// <summary>Drops the gradients of all parameters.</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters()) p.ZeroGrad();
    }

    /// <summary>Frees the parameters of this module and its children.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        foreach (var (_, m) in children) m.Dispose();
        foreach (var (_, t) in parameters) t.Dispose();
        GC.SuppressFinalize(this);
    }
}
