using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.InteropServices;

namespace Vit.Torch.Native;

/// <summary>
/// Finds and loads our own native library (<c>libvit_gloo.so</c>, the optional collectives of data-parallel training): the file named by
/// its environment override if that is set (then nothing else), else the copy next to the application
/// (<see cref="AppContext.BaseDirectory"/>) or next to this assembly. A failure lists every path tried, why each did not
/// load, and what to install.
/// </summary>
/// <remarks>
/// .NET allows one <see cref="NativeLibrary.SetDllImportResolver"/> per assembly, so a class that declares imports
/// (<see cref="GlooNative"/>) registers their loader here and one resolver dispatches
/// by library name.
/// </remarks>
internal sealed class NativeLoader
{
    private static readonly ConcurrentDictionary<string, NativeLoader> Loaders = new(StringComparer.Ordinal);

    private readonly Func<string, (IntPtr Handle, string? Error)> open;
    private readonly Lock gate = new();
    private IntPtr handle;

    static NativeLoader()
    {
        try
        {
            NativeLibrary.SetDllImportResolver(typeof(NativeLoader).Assembly, Resolve);
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidOperationException(
                "Another DllImportResolver was set for Vit.Torch, which allows only one: a native library of this assembly " +
                "must register its loader through NativeLoader.Register instead.", e);
        }
    }

    /// <param name="name">The name in the <c>[LibraryImport]</c> declarations, e.g. <c>vit_gloo</c>.</param>
    /// <param name="environmentVariable">The override: a full path to the library.</param>
    /// <param name="installHint">What to run when the library or one of its dependencies is missing.</param>
    /// <param name="open">Opens one path: the handle, or zero and the loader's message.</param>
    private NativeLoader(string name, string environmentVariable, string installHint, Func<string, (IntPtr, string?)> open)
    {
        Name = name;
        FileName = $"lib{name}.so";
        EnvironmentVariable = environmentVariable;
        InstallHint = installHint;
        this.open = open;
    }

    /// <summary>The library's name in the import declarations.</summary>
    public string Name { get; }

    /// <summary>The file, e.g. <c>libvit_gloo.so</c>.</summary>
    public string FileName { get; }

    /// <summary>The environment variable that names the file to load instead.</summary>
    public string EnvironmentVariable { get; }

    /// <summary>What to install or run when loading fails.</summary>
    public string InstallHint { get; }

    /// <summary>Registers the loader of library <paramref name="name"/>, loaded with <see cref="NativeLibrary.Load(string)"/>.</summary>
    public static NativeLoader Register(string name, string environmentVariable, string installHint) =>
        Register(name, environmentVariable, installHint, OpenDefault);

    /// <summary>Registers the loader of library <paramref name="name"/>, loaded by <paramref name="open"/>.</summary>
    public static NativeLoader Register(string name, string environmentVariable, string installHint, Func<string, (IntPtr, string?)> open) =>
        Loaders.GetOrAdd(name, n => new NativeLoader(n, environmentVariable, installHint, open));

    /// <summary>The loaded library (loaded on first use). Throws <see cref="DllNotFoundException"/> naming every path
    /// tried and what to install; a failure is not remembered, so a later call tries again.</summary>
    public IntPtr Handle
    {
        get
        {
            lock (gate)
            {
                if (handle == IntPtr.Zero) handle = Load();
                return handle;
            }
        }
    }

    /// <summary>The paths tried, in order.</summary>
    public IReadOnlyList<string> Candidates()
    {
        if (Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } env) return [env];
        var list = new List<string> { Path.Combine(AppContext.BaseDirectory, FileName) };
        var assemblyDir = Path.GetDirectoryName(typeof(NativeLoader).Assembly.Location);
        if (!string.IsNullOrEmpty(assemblyDir)) list.Add(Path.Combine(assemblyDir, FileName));
        return list.Distinct().ToList();
    }

    private IntPtr Load()
    {
        var tried = new List<string>();
        foreach (var path in Candidates())
        {
            if (!File.Exists(path))
            {
                tried.Add($"{path} (not found)");
                continue;
            }
            // The file is there but does not load: almost always a missing dependency (libgloo), named here.
            var (h, error) = open(path);
            if (h != IntPtr.Zero) return h;
            tried.Add($"{path} ({error})");
        }
        var overridden = Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } ? $" ({EnvironmentVariable} is set)" : "";
        throw new DllNotFoundException($"Could not load {FileName}{overridden}. Tried: {string.Join("; ", tried)}. {InstallHint}");
    }

    /// <summary>Loads with the runtime's own loader (dlopen with RTLD_LAZY, local scope).</summary>
    private static (IntPtr, string?) OpenDefault(string path)
    {
        try
        {
            return (NativeLibrary.Load(path), null);
        }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
        {
            return (IntPtr.Zero, e.Message);
        }
    }

    /// <summary>Calls the library's ABI-version export (which loads it) and checks the version; a library that cannot
    /// load or is stale is a <see cref="TorchException"/> saying what to install or rebuild.</summary>
    public void CheckAbi(Func<int> abiVersion, int expected)
    {
        int abi;
        try
        {
            abi = abiVersion();
        }
        catch (DllNotFoundException e)
        {
            throw new TorchException(e.Message);
        }
        if (abi != expected)
            throw new TorchException(
                $"{FileName} has ABI version {abi} but Vit.Torch expects {expected}: the library is stale. " +
                "Rebuild with `dotnet build` (it rebuilds the native libraries).");
    }

    /// <summary>This thread's last error text of a library whose export copies it into (buffer, capacity) and returns
    /// its full length.</summary>
    public static unsafe string LastError(delegate*<byte*, int, int> lastError)
    {
        int n = lastError(null, 0);
        var buf = new byte[n + 1];
        fixed (byte* p = buf) lastError(p, buf.Length);
        return System.Text.Encoding.UTF8.GetString(buf, 0, n);
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath) =>
        Loaders.TryGetValue(name, out var loader) ? loader.Handle : IntPtr.Zero;
}
