namespace Vit.Torch.Checkpoints;

/// <summary>
/// The tensors of one checkpoint, possibly spread over several files (Hugging Face shards): which file holds each
/// name, and reads under our names through a <see cref="VitNameMap"/> (concatenating parts). Owns the files.
/// </summary>
internal sealed class CheckpointIndex : IDisposable
{
    private readonly List<ITensorFile> files;
    private readonly Dictionary<string, (ITensorFile File, TensorInfo Info, int Order)> byName = new(StringComparer.Ordinal);
    private readonly List<string> names = new();

    public CheckpointIndex(IReadOnlyList<ITensorFile> files, string source)
    {
        this.files = files.ToList();
        Source = source;
        foreach (var f in files)
            foreach (var t in f.Tensors)
            {
                if (byName.TryGetValue(t.Name, out var other))
                    throw new InvalidDataException($"{source}: tensor '{t.Name}' is in both '{other.File.Path}' and '{f.Path}'");
                byName.Add(t.Name, (f, t, names.Count));
                names.Add(t.Name);
            }
    }

    /// <summary>The checkpoint, as error messages name it (a file or a folder).</summary>
    public string Source { get; }

    /// <summary>Every tensor name, in file order.</summary>
    public IReadOnlyList<string> Names => names;

    /// <summary>The metadata of the first file (safetensors; empty for torch.save files).</summary>
    public IReadOnlyDictionary<string, string> Metadata => files.Count > 0 ? files[0].Metadata : new Dictionary<string, string>();

    /// <summary>Bytes of tensor data the files hold, each counted once (<see cref="ITensorFile.DataLength"/>): what
    /// the checkpoint can back, however large its tensors claim to be.</summary>
    public long DataLength => files.Sum(f => f.DataLength);

    public bool Contains(string name) => byName.ContainsKey(name);

    public TensorInfo Info(string name) => byName[name].Info;

    /// <summary>Position of a tensor in file order (reads in this order run front to back through each file).</summary>
    public int Order(string name) => byName[name].Order;

    /// <summary>
    /// The shape our tensor <paramref name="ours"/> would have: the checkpoint's parts concatenated along dimension 0;
    /// null when the checkpoint does not have it.
    /// </summary>
    /// <exception cref="InvalidDataException">Only some parts are present, or their shapes cannot be concatenated.</exception>
    public long[]? Shape(VitNameMap map, string ours)
    {
        var parts = map.Theirs(ours);
        if (parts.Count == 0) return null;
        var present = parts.Where(Contains).ToList();
        if (present.Count == 0) return null;
        if (present.Count != parts.Count)
            throw new InvalidDataException($"{Source} has {string.Join(", ", present)} but not {string.Join(", ", parts.Except(present))}");
        var shape = Info(parts[0]).Shape.ToArray();
        for (int i = 1; i < parts.Count; i++)
        {
            var s = Info(parts[i]).Shape;
            if (s.Count != shape.Length || shape.Length == 0 || !s.Skip(1).SequenceEqual(shape.Skip(1)))
                throw new InvalidDataException(
                    $"{Source}: {parts[0]} {Safetensors.FormatShape(shape)} and {parts[i]} {Safetensors.FormatShape(s.ToArray())} cannot be concatenated into {ours}");
            shape[0] = checked(shape[0] + s[0]);
        }
        return shape;
    }

    /// <summary>Reads our tensor <paramref name="ours"/> (its parts concatenated along dimension 0); the caller owns it.</summary>
    public Tensor Read(VitNameMap map, string ours)
    {
        var parts = map.Theirs(ours);
        if (parts.Count == 1) return ReadOne(parts[0]);
        var read = new List<Tensor>(parts.Count);
        try
        {
            foreach (var p in parts) read.Add(ReadOne(p));
            return Tensor.Cat(read, 0);
        }
        finally
        {
            foreach (var t in read) t.Dispose();
        }
    }

    private Tensor ReadOne(string name)
    {
        var (file, _, _) = byName.TryGetValue(name, out var e) ? e : throw new KeyNotFoundException($"{Source} has no tensor '{name}'");
        return file.Read(name);
    }

    public void Dispose()
    {
        foreach (var f in files) f.Dispose();
    }
}
