using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Vit.Torch.Native;

/// <summary>
/// The exports of <c>libvit_gloo.so</c> (native/vit_gloo.cpp): collectives over Debian's Gloo on raw buffers, for
/// <see cref="Distributed.GlooGroup"/>. Every function returns a status (0 ok); a failure's text is read with
/// <see cref="Check"/>. The library is optional: <c>dotnet build -p:VitGloo=true</c> builds it, with Debian's libgloo-dev installed.
/// <c>VIT_GLOO_PATH</c> names the library file to load instead of the copy next to the application.
/// </summary>
/// <remarks>
/// libtorch_cpu, loaded in the same process by TorchSharp, exports its own (newer, incompatible) copy of Gloo under the
/// same symbol names. The library is therefore opened with <c>dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND)</c>: it and
/// the libgloo it pulls in look up Gloo's names in their own dependencies first, even if libtorch's symbols were in the
/// process's global scope. <c>vit_gloo_init</c> checks the binding and refuses to run on another copy.
/// </remarks>
internal static unsafe partial class GlooNative
{
    internal const string Lib = "vit_gloo";

    /// <summary>The ABI version this assembly was written against; the library must report the same.</summary>
    internal const int ExpectedAbiVersion = 2;

    internal const string InstallHint =
        "Training in several processes needs libvit_gloo.so, which `dotnet build -p:VitGloo=true` builds over Debian's Gloo: " +
        "as root, run `apt-get install libgloo-dev cmake g++ make`, then rebuild with -p:VitGloo=true. One process needs neither.";

    private static readonly NativeLoader Loader = NativeLoader.Register(Lib, "VIT_GLOO_PATH", InstallHint, OpenDeepBind);

    // An explicit static constructor makes the type initialise (and register its loader above) before the first call
    // of any import below, not merely before the first field access.
    static GlooNative()
    {
    }

    /// <summary>Loads the library and checks its ABI version once; throws a <see cref="TorchException"/> saying what to
    /// install or rebuild if that fails. A failure is not remembered: a later call tries again.</summary>
    internal static void EnsureLoaded()
    {
        if (loaded) return;
        Loader.CheckAbi(vit_gloo_abi_version, ExpectedAbiVersion);
        loaded = true;
    }

    private static volatile bool loaded;

    /// <summary>The file that provides Gloo's functions to the library: Debian's <c>libgloo.so.0</c>, unless another
    /// copy took precedence (then <c>vit_gloo_init</c> refuses to run).</summary>
    internal static string Provider
    {
        get
        {
            EnsureLoaded();
            var buf = stackalloc byte[4096];
            Check(vit_gloo_provider(buf, 4096));
            return Marshal.PtrToStringUTF8((IntPtr)buf)!;
        }
    }

    /// <summary>Throws a <see cref="TorchException"/> carrying the library's message when status is non-zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Check(int status)
    {
        if (status != 0) ThrowLastError();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowLastError() => throw new TorchException(NativeLoader.LastError(&vit_gloo_last_error));

    // dlopen's flags (glibc, <dlfcn.h>).
    private const int RtldNow = 0x2;
    private const int RtldDeepBind = 0x8;

    /// <summary>Opens one path with RTLD_NOW | RTLD_DEEPBIND (local scope); the handle works with the runtime's
    /// <see cref="NativeLibrary"/> functions, which are dlsym and dlclose on Linux.</summary>
    private static (IntPtr, string?) OpenDeepBind(string path)
    {
        var h = dlopen(path, RtldNow | RtldDeepBind);
        if (h != IntPtr.Zero) return (h, null);
        var error = dlerror();
        return (IntPtr.Zero, error == IntPtr.Zero ? "dlopen failed" : Marshal.PtrToStringUTF8(error));
    }

    // libdl.so.2: glibc's dlopen (since glibc 2.34 in libc.so.6, still reachable through libdl.so.2).
    [LibraryImport("libdl.so.2", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr dlopen(string path, int flags);

    [LibraryImport("libdl.so.2")]
    private static partial IntPtr dlerror();

    // ---- library ----
    [LibraryImport(Lib)] internal static partial int vit_gloo_abi_version();
    // Copies this thread's last error text into buf (truncated to cap - 1 bytes) and returns its full length.
    [LibraryImport(Lib)] internal static partial int vit_gloo_last_error(byte* buf, int cap);
    [LibraryImport(Lib)] internal static partial int vit_gloo_provider(byte* buf, int cap);

    // ---- lifetime ----
    // storeKind 1 TCP (address: rank 0's host, port), 2 file (address: a directory). bindHost null: the library's
    // choice. The group out-parameter is owned by the caller: wrap it in a GlooHandle, which frees it once.
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int vit_gloo_init(int storeKind, string address, int port, int rank, int worldSize, long timeoutMs, string? bindHost, out IntPtr group);
    [LibraryImport(Lib)] internal static partial int vit_gloo_free(IntPtr group);
    [LibraryImport(Lib)] internal static partial int vit_gloo_info(GlooHandle group, out int rank, out int size);

    // ---- collectives (buffers borrowed for the call; timeoutMs 0: the group's) ----
    // element 0 float32, 1 float64, 2 int64, 3 int32; op 0 sum, 1 min, 2 max.
    [LibraryImport(Lib)] internal static partial int vit_gloo_allreduce(GlooHandle group, IntPtr data, long count, int element, int op, long timeoutMs);
    [LibraryImport(Lib)] internal static partial int vit_gloo_broadcast(GlooHandle group, IntPtr data, long bytes, int root, long timeoutMs);
    [LibraryImport(Lib)] internal static partial int vit_gloo_barrier(GlooHandle group, long timeoutMs);
}

/// <summary>Owns one group handle of <c>libvit_gloo.so</c> and frees it exactly once with <c>vit_gloo_free</c> (closing
/// the group's connections), on Dispose or, failing that, on finalisation. The interop marshaller holds it during each
/// call, so a concurrent Dispose takes effect after the collective.</summary>
internal sealed class GlooHandle : SafeHandle
{
    internal GlooHandle(IntPtr handle) : base(IntPtr.Zero, ownsHandle: true) => SetHandle(handle);

    /// <summary>Required by the interop marshaller.</summary>
    public GlooHandle() : base(IntPtr.Zero, true)
    {
    }

    /// <inheritdoc />
    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <inheritdoc />
    protected override bool ReleaseHandle() => GlooNative.vit_gloo_free(handle) == 0;
}
