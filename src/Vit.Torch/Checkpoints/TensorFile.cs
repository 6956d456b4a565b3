namespace Vit.Torch.Checkpoints;

/// <summary>A tensor that a checkpoint file holds, as the file's index describes it (no data read yet).</summary>
/// <param name="Name">The tensor's name in the file, e.g. <c>encoder.layers.encoder_layer_0.ln_1.weight</c>.</param>
/// <param name="DType">Element type as stored.</param>
/// <param name="Shape">Sizes of the dimensions (empty for a 0-d tensor).</param>
public sealed record TensorInfo(string Name, DType DType, IReadOnlyList<long> Shape)
{
    /// <summary>Number of elements (the product of the shape; 1 for a 0-d tensor). The file's index was checked, so it fits 64 bits.</summary>
    public long NumElements => Shape.Aggregate(1L, (a, d) => checked(a * d));

    /// <summary>Bytes of the data in the stored element type.</summary>
    public long ByteLength => checked(NumElements * DType.ElementSize());
}

/// <summary>
/// A checkpoint file opened for reading: its validated index of tensors, and reads of one tensor at a time, so that
/// a model can be checked against the index before anything large is allocated, then filled tensor by tensor.
/// Implemented for safetensors (<see cref="Safetensors.Open(string)"/>) and torch.save files (<see cref="TorchCheckpoint.Open(string)"/>).
/// </summary>
public interface ITensorFile : IDisposable
{
    /// <summary>The file's path (used in every error message).</summary>
    string Path { get; }

    /// <summary>The tensors, in the file's order.</summary>
    IReadOnlyList<TensorInfo> Tensors { get; }

    /// <summary>Bytes of tensor data the file holds, each byte counted once (views and shared storages do not add to
    /// it): what the file's tensors can back, whatever their declared sizes.</summary>
    long DataLength { get; }

    /// <summary>String metadata (a safetensors <c>__metadata__</c> map; empty when the format has none).</summary>
    IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Reads one tensor into a new contiguous CPU tensor of its stored type; the caller owns it.</summary>
    /// <exception cref="KeyNotFoundException">The file has no tensor of that name.</exception>
    /// <exception cref="InvalidDataException">The data cannot be read (e.g. the file was truncated); the message names the file.</exception>
    Tensor Read(string name);
}
