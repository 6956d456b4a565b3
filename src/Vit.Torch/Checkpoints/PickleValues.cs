namespace Vit.Torch.Checkpoints;

// The values that the restricted unpickler (PickleReader) builds. Python's None, bool, int, float, str and bytes are
// null, bool, long, double, string and byte[]. The containers are plain classes, not records: a record's generated
// ToString, Equals and GetHashCode walk its members, and a pickle can build containers that hold themselves, or
// share a child so often that a walk takes exponential time. Nothing in the reader walks a container.

/// <summary>A Python tuple.</summary>
internal sealed class PickleTuple(object?[] items)
{
    public static readonly PickleTuple Empty = new([]);

    public object?[] Items { get; } = items;
}

/// <summary>A Python list.</summary>
internal sealed class PickleList(List<object?> items)
{
    public List<object?> Items { get; } = items;
}

/// <summary>A Python dict, or a <c>collections.OrderedDict</c>, as its (key, value) pairs in insertion order.</summary>
internal sealed class PickleDict(bool isOrderedDict)
{
    /// <summary>True for an OrderedDict made by REDUCE (the only kind of object that BUILD may set state on).</summary>
    public bool IsOrderedDict { get; } = isOrderedDict;

    public List<KeyValuePair<object?, object?>> Items { get; } = [];
}

/// <summary>What an allowed global is.</summary>
internal enum PickleGlobalKind
{
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    StorageClass,
}

/// <summary>One of the few globals that the reader resolves (<see cref="PickleReader.AllowedGlobals"/>); never imported or called.</summary>
/// <param name="Name">The dotted name, e.g. <c>torch.FloatStorage</c>.</param>
/// <param name="Kind">What it is.</param>
/// <param name="StorageDType">For a storage class, its element type.</param>
internal sealed record PickleGlobal(string Name, PickleGlobalKind Kind, DType StorageDType = default);

/// <summary>A storage named by a persistent id <c>('storage', torch.FloatStorage, key, location, numel)</c>: data entry <c>data/key</c>.</summary>
/// <param name="Key">The storage's key (its data entry is <c>&lt;prefix&gt;/data/&lt;key&gt;</c>).</param>
/// <param name="ClassName">The storage class, e.g. <c>torch.FloatStorage</c>.</param>
/// <param name="DType">The element type of the storage class.</param>
/// <param name="NumElements">The storage's length in elements, as the pickle declares it (non-negative).</param>
internal sealed record PickleStorage(string Key, string ClassName, DType DType, long NumElements);

/// <summary>
/// A tensor from <c>torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, ...)</c>: a strided view
/// of a storage. Sizes and strides are non-negative and there are at most <see cref="PickleReader.MaxDims"/>; whether
/// the view lies within its storage is checked where the tensor's name is known.
/// </summary>
internal sealed class PickleTensor(PickleStorage storage, long storageOffset, long[] shape, long[] stride)
{
    public PickleStorage Storage { get; } = storage;

    public long StorageOffset { get; } = storageOffset;

    public long[] Shape { get; } = shape;

    public long[] Stride { get; } = stride;
}
