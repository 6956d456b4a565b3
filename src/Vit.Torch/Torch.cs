using System.Runtime.InteropServices;
using TS = TorchSharp.torch;

namespace Vit.Torch;

/// <summary>Process-wide settings of the engine: seeds, threads, autograd mode, devices, versions.</summary>
public static class Torch
{
    /// <summary>The libtorch version TorchSharp runs, e.g. "2.10.0".</summary>
    public static string Version
    {
        get
        {
            EnsureLoaded();
            return TS.__version__;
        }
    }

    /// <summary>TorchSharp's version, e.g. "0.107.0".</summary>
    public static string TorchSharpVersion =>
        typeof(TS).Assembly.GetName().Version is { } v ? $"{v.Major}.{v.Minor}.{v.Build}" : "unknown";

    /// <summary>Seeds the generator this thread draws from (initialisation, dropout, randperm): its own within
    /// <see cref="UseThreadGenerator"/>, else libtorch's global one.</summary>
    public static void ManualSeed(ulong seed)
    {
        EnsureLoaded();
        if (threadGenerator is { } g) g.manual_seed(unchecked((long)seed));
        else TS.random.manual_seed(unchecked((long)seed));
    }

    /// <summary>A process-wide setting the library applies once, on first use (see <see cref="ProcessSettings"/>).</summary>
    /// <param name="MallocTuned">glibc malloc keeps freed blocks up to 64 MiB (off: VIT_TUNE_MALLOC=0).</param>
    /// <param name="TorchThreads">libtorch's intra-op threads as set (null: left alone, VIT_THREADS=keep; n: VIT_THREADS=n).</param>
    public sealed record ProcessSettingsInfo(bool MallocTuned, int? TorchThreads);

    /// <summary>
    /// The process-wide settings this library applied on its first use, each once and each with an opt-out
    /// (environment variables read at that moment): glibc malloc tuning (VIT_TUNE_MALLOC=0) and libtorch's thread
    /// count (VIT_THREADS=n|keep). The random generator is not among them: trainings draw from their own
    /// (<see cref="UseThreadGenerator"/>).
    /// </summary>
    public static ProcessSettingsInfo ProcessSettings => Loaded.Value;

    /// <summary>Loads TorchSharp's libtorch and applies <see cref="ProcessSettings"/> once; a clear error if it cannot.</summary>
    internal static void EnsureLoaded() => _ = Loaded.Value;

    private static readonly Lazy<ProcessSettingsInfo> Loaded = new(() =>
    {
        try
        {
            TS.InitializeDeviceType(TorchSharp.DeviceType.CPU);
        }
        catch (Exception e) when (e is NotSupportedException or DllNotFoundException or TypeInitializationException)
        {
            throw new TorchException(
                "TorchSharp could not load libtorch: " + e.Message.Split('\n')[0] + " Reference the TorchSharp-cpu package (or " +
                "TorchSharp-cuda-linux / -windows) and build; on a Linux whose libstdc++ predates GCC 13 the build marks one " +
                "version need of libLibTorchSharp.so weak (see eng/build/TorchSharpOnOlderLibstdcxx.targets).", e);
        }
        // VIT_TUNE_MALLOC=0 leaves glibc's malloc settings alone. With the tuning, blocks of up to 1 GiB come from the heap
        // rather than from an mmap of their own, and the heap's top is never given back to the kernel: freed memory is
        // reused by the next step or batch instead of being faulted in again page by page. Any finite trim threshold
        // fails once a batch's peak exceeds it: ViT-Ti/16 float32 scoring at batch 64 (2 cores) freed more than 1 GiB at
        // the top after some batches and not after others, and ran at 14-25 images/s with 400k page faults a batch in
        // the first case, 51-55 with a hundred in the second; untuned, 13. A small ViT's training step otherwise takes
        // ~10x PyTorch's page faults. The cost: the process keeps the heap of its peak after the peak has passed.
        bool tune = OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable("VIT_TUNE_MALLOC") != "0";
        if (tune && (Libc.mallopt(Libc.M_MMAP_THRESHOLD, 1 << 30) != 1 || Libc.mallopt(Libc.M_TRIM_THRESHOLD, -1) != 1))
            tune = false;
        // Threads: every core by default; VIT_THREADS=n for n, VIT_THREADS=keep to leave libtorch's choice.
        var env = Environment.GetEnvironmentVariable("VIT_THREADS");
        int? threads = env == "keep" ? null : int.TryParse(env, out var t) && t > 0 ? t : Environment.ProcessorCount;
        if (threads is { } n) TS.set_num_threads(n);
        return new ProcessSettingsInfo(tune, threads);
    }, LazyThreadSafetyMode.ExecutionAndPublication);

    private static partial class Libc
    {
        internal const int M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3;

        [DllImport("libc", EntryPoint = "mallopt")]
        internal static extern int mallopt(int param, int value);
    }

    [ThreadStatic] private static TS.Generator? threadGenerator;

    /// <summary>The generator this thread's random ops draw from: its own (see <see cref="UseThreadGenerator"/>), or
    /// null for libtorch's global one.</summary>
    internal static TS.Generator? Generator => threadGenerator;

    /// <summary>
    /// Gives this thread its own generator, seeded with <paramref name="seed"/>, until the result is disposed: the
    /// random ops it runs (initialisation, dropout, drop path, randperm) draw from it and not from the global one, so
    /// that work on other threads neither disturbs it nor is disturbed. It draws what the global generator draws
    /// after <c>ManualSeed(seed)</c>. <see cref="Training.Trainer.Fit"/> and <c>VitEstimator.Fit</c> run inside one, so two
    /// trainings on two threads each repeat exactly. Nested uses restore the outer generator.
    /// </summary>
    public static IDisposable UseThreadGenerator(ulong seed)
    {
        EnsureLoaded();
        var outer = threadGenerator;
        threadGenerator = new TS.Generator(seed);
        return new ThreadGeneratorScope(outer);
    }

    private sealed class ThreadGeneratorScope(TS.Generator? outer) : IDisposable
    {
        private bool done;

        public void Dispose()
        {
            if (done) return;
            done = true;
            threadGenerator?.Dispose();
            threadGenerator = outer;
        }
    }

    /// <summary>The state of this thread's generator (<see cref="UseThreadGenerator"/>) or of libtorch's global CPU
    /// generator (torch.get_rng_state): a new uint8 tensor the caller owns.</summary>
    public static Tensor GetRngState()
    {
        EnsureLoaded();
        var g = threadGenerator;
        return Tensor.Run(() => g is null ? TS.random.get_rng_state() : g.get_state());
    }

    /// <summary>Restores a state from <see cref="GetRngState"/> (torch.set_rng_state), so that dropout continues as if uninterrupted.</summary>
    public static void SetRngState(Tensor state)
    {
        ArgumentNullException.ThrowIfNull(state);
        EnsureLoaded();
        var s = state.Native;
        var g = threadGenerator;
        Tensor.Do(() =>
        {
            if (g is null) TS.random.set_rng_state(s);
            else g.set_state(s);
        });
    }

    /// <summary>
    /// Sets libtorch's intra-op threads (its OpenMP pool, which its BLAS and oneDNN use too). Applied at start-up
    /// with <see cref="Environment.ProcessorCount"/> threads, or the VIT_THREADS environment variable when set.
    /// </summary>
    public static void SetThreads(int threads)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, "thread count must be at least 1");
        EnsureLoaded();
        TS.set_num_threads(threads);
    }

    /// <summary>
    /// Runs this thread's libtorch work on <paramref name="threads"/> threads until the returned scope is disposed, without
    /// changing other threads (libtorch's OpenMP thread count is per calling thread). Concurrent callers, such as the
    /// engines of a <c>PredictionEnginePool</c>, each take their share of the cores instead of all taking all of them.
    /// </summary>
    public static IDisposable LocalThreads(int threads)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, "thread count must be at least 1");
        EnsureLoaded();
        int previous = TS.get_num_threads();  // also ATen's lazy per-thread initialisation
        OpenMp.SetThreads(threads);
        return new RestoreThreads(previous);
    }

    private sealed class RestoreThreads(int previous) : IDisposable
    {
        private readonly int thread = Environment.CurrentManagedThreadId;
        private int done;

        public void Dispose()
        {
            // The count belongs to the thread that set it: restoring it on another (after an await, say) would be wrong twice.
            if (Environment.CurrentManagedThreadId != thread)
                throw new InvalidOperationException("a Torch.LocalThreads scope must end on the thread that began it");
            if (Interlocked.Exchange(ref done, 1) == 0) OpenMp.SetThreads(previous);
        }
    }

    /// <summary>The OpenMP runtime libtorch was loaded with (TorchSharp's packages bundle their own libgomp).</summary>
    private static class OpenMp
    {
        private static readonly Lazy<IntPtr> SetNumThreads = new(Find);

        internal static void SetThreads(int n)
        {
            var f = SetNumThreads.Value;
            if (f == IntPtr.Zero) return;  // no OpenMP: libtorch's own pool, whose count is process-wide
            unsafe
            {
                ((delegate* unmanaged<int, void>)f)(n);
            }
        }

        private static IntPtr Find()
        {
            if (!OperatingSystem.IsLinux()) return IntPtr.Zero;
            // The libgomp libtorch_cpu.so linked, as mapped into this process (its name carries a hash).
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                int slash = line.IndexOf('/');
                if (slash < 0) continue;
                var path = line[slash..];
                if (!Path.GetFileName(path).StartsWith("libgomp", StringComparison.Ordinal)) continue;
                if (NativeLibrary.TryLoad(path, out var lib) && NativeLibrary.TryGetExport(lib, "omp_set_num_threads", out var f)) return f;
            }
            return IntPtr.Zero;
        }
    }

    /// <summary>libtorch's intra-op thread count on this thread.</summary>
    public static int Threads
    {
        get
        {
            EnsureLoaded();
            return TS.get_num_threads();
        }
    }

    /// <summary>Number of usable CUDA devices (0 when the referenced TorchSharp package has no CUDA support or no GPU is visible).</summary>
    public static int CudaDeviceCount
    {
        get
        {
            EnsureLoaded();
            try
            {
                return TS.cuda.is_available() ? TS.cuda.device_count() : 0;
            }
            catch (Exception e) when (e is ExternalException or NotSupportedException or InvalidOperationException)
            {
                return 0;
            }
        }
    }

    /// <summary>
    /// Resolves a requested device: CPU always works; CUDA needs a visible device, otherwise this either falls back
    /// to the CPU (<paramref name="fallbackToCpu"/>) or throws an error that says why.
    /// </summary>
    public static Device ResolveDevice(Device requested, bool fallbackToCpu)
    {
        if (requested.Type == DeviceType.Cpu) return requested;
        int n = CudaDeviceCount;
        if (requested.Index >= 0 && requested.Index < n) return requested;
        if (fallbackToCpu) return Device.Cpu;
        throw new TorchException(n == 0
            ? $"device {requested} was requested, but no CUDA device is usable: the application references TorchSharp-cpu (libtorch {Version}, CPU only), or no GPU is visible. Reference TorchSharp-cuda-linux or TorchSharp-cuda-windows instead of TorchSharp-cpu, or use Device.Cpu"
            : $"device {requested} was requested, but only {n} CUDA device(s) are visible");
    }

    /// <summary>Turns autograd recording off on this thread until the returned object is disposed (torch.no_grad).</summary>
    public static IDisposable NoGrad()
    {
        EnsureLoaded();
        return TS.no_grad();
    }

    /// <summary>
    /// Inference mode on this thread until the returned object is disposed (torch.inference_mode): no autograd recording
    /// and no version counting, for scoring. Tensors made inside cannot take part in autograd later. Dispose on the same
    /// thread, innermost first.
    /// </summary>
    public static IDisposable InferenceMode()
    {
        EnsureLoaded();
        return new SameThread(TS.inference_mode(true));
    }

    private sealed class SameThread(IDisposable inner) : IDisposable
    {
        private readonly int threadId = Environment.CurrentManagedThreadId;
        private bool done;

        public void Dispose()
        {
            if (done) return;
            if (Environment.CurrentManagedThreadId != threadId)
                throw new InvalidOperationException("this per-thread mode must be left on the thread that entered it");
            done = true;
            inner.Dispose();
        }
    }
}
