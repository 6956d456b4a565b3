namespace Vit.Torch;

/// <summary>An error reported by libtorch or the native shim; the message is libtorch's own text.</summary>
public sealed class TorchException : Exception
{
    /// <summary>Creates the exception with libtorch's message.</summary>
    public TorchException(string message) : base(message)
    {
    }
}
