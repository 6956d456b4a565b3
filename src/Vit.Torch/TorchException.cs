namespace Vit.Torch;

/// <summary>An error reported by libtorch or TorchSharp; the message is libtorch's own text.</summary>
public sealed class TorchException : Exception
{
    /// <summary>Creates the exception with libtorch's message.</summary>
    public TorchException(string message) : base(message)
    {
    }

    /// <summary>An error libtorch reported through TorchSharp, with libtorch's message (its C++ backtrace cut off).</summary>
    internal static TorchException From(System.Runtime.InteropServices.ExternalException e)
    {
        var text = e.Message;
        int cut = text.IndexOf("\nException raised from", StringComparison.Ordinal);
        return new TorchException(cut > 0 ? text[..cut] : text, e);
    }

    /// <summary>An error with the exception that caused it.</summary>
    public TorchException(string message, Exception inner) : base(message, inner)
    {
    }
}
