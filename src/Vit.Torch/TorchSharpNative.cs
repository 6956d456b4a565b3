using System.Runtime.InteropServices;
using TS = TorchSharp.torch;

namespace Vit.Torch;

/// <summary>The one export of TorchSharp's own native library we call directly: a tensor's data address, which
/// TorchSharp's public API offers only as an int-sized <c>Span</c> (<c>Tensor.bytes</c>).</summary>
internal static partial class TorchSharpNative
{
    [LibraryImport("LibTorchSharp")]
    private static partial IntPtr THSTensor_data(IntPtr handle);

    /// <summary>The address of the first element of a CPU tensor (borrowed; valid while it lives).</summary>
    internal static IntPtr DataPointer(TS.Tensor t)
    {
        var p = THSTensor_data(t.Handle);
        if (p == IntPtr.Zero && t.NumberOfElements > 0) TS.CheckForErrors();
        return p;
    }
}
