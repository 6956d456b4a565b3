using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Vit.Torch.Native;

/// <summary>
/// The exports of <c>libvit_native.so</c>, the C ABI shim over libtorch (see native/vit_native.cpp).
/// Every function returns a status (0 ok); a failure's text is read with <see cref="Check"/>.
/// Tensor arguments are borrowed; a tensor out-parameter is a new handle owned by the caller.
/// </summary>
internal static unsafe partial class NativeMethods
{
    internal const string Lib = "vit_native";

    internal const string InstallHint =
        "Run `sudo bash eng/install-deps.sh` from the repository root (installs Debian's libtorch-dev 1.13, " +
        "libopenblas0-pthread, libopencv-dev, cmake, g++), then `dotnet build`.";

    static NativeMethods()
    {
        NativeLibrary.SetDllImportResolver(typeof(NativeMethods).Assembly, Resolve);
    }

    /// <summary>Loads the imaging library once, with a clear error if it cannot.</summary>
    internal static void EnsureLoaded() => _ = Loaded.Value;

    private static readonly Lazy<bool> Loaded = new(() =>
    {
        try
        {
            vit_last_error(null, 0);
        }
        catch (DllNotFoundException e)
        {
            throw new TorchException(e.Message);
        }
        return true;
    }, LazyThreadSafetyMode.ExecutionAndPublication);

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        if (name != Lib) return IntPtr.Zero;
        var tried = new List<string>();
        var candidates = new List<string>();
        var env = Environment.GetEnvironmentVariable("VIT_NATIVE_PATH");
        if (!string.IsNullOrEmpty(env)) candidates.Add(env);
        candidates.Add(Path.Combine(AppContext.BaseDirectory, "libvit_native.so"));
        var asmDir = Path.GetDirectoryName(assembly.Location);
        if (!string.IsNullOrEmpty(asmDir)) candidates.Add(Path.Combine(asmDir, "libvit_native.so"));
        foreach (var c in candidates.Distinct())
        {
            if (!File.Exists(c))
            {
                tried.Add($"{c} (not found)");
                continue;
            }
            if (NativeLibrary.TryLoad(c, out var handle)) return handle;
            // Loading failed although the file is there: almost always a missing dependency (libtorch).
            try
            {
                NativeLibrary.Load(c);
            }
            catch (Exception e)
            {
                tried.Add($"{c} ({e.Message})");
            }
        }
        throw new DllNotFoundException(
            "Could not load the native shim libvit_native.so. Tried: " + string.Join("; ", tried) + ". " +
            InstallHint);
    }

    /// <summary>Throws a <see cref="TorchException"/> carrying libtorch's message when status is non-zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Check(int status)
    {
        if (status != 0) ThrowLastError();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowLastError()
    {
        int n = vit_last_error(null, 0);
        var buf = new byte[n + 1];
        fixed (byte* p = buf) vit_last_error(p, buf.Length);
        throw new TorchException(System.Text.Encoding.UTF8.GetString(buf, 0, n));
    }

    // ---- library ----
    [LibraryImport(Lib)] internal static partial int vit_last_error(byte* buf, int cap);
}
