using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using static Vit.Torch.Native.NativeMethods;

namespace Vit.Torch;

/// <summary>Process-wide settings of the engine: seeds, threads, autograd mode, devices, versions.</summary>
public static unsafe class Torch
{
    /// <summary>The linked libtorch version, e.g. "1.13.1".</summary>
    public static string Version
    {
        get
        {
            EnsureLoaded();
            return TorchVersion;
        }
    }

    /// <summary>Seeds the generator this thread draws from (initialisation, dropout, randperm): its own within
    /// <see cref="UseThreadGenerator"/>, else libtorch's global one.</summary>
    public static void ManualSeed(ulong seed)
    {
        EnsureLoaded();
        Check(vit_manual_seed(seed));
    }

    /// <summary>A process-wide setting the library applies once, on first use (see <see cref="ProcessSettings"/>).</summary>
    /// <param name="MallocTuned">glibc malloc keeps freed blocks up to 64 MiB (off: VIT_TUNE_MALLOC=0).</param>
    /// <param name="TorchThreads">libtorch's intra-op threads as set (null: left alone, VIT_THREADS=keep; n: VIT_THREADS=n).</param>
    /// <param name="BlasThreads">OpenBLAS's threads as set (1; null with VIT_THREADS=keep).</param>
    public sealed record ProcessSettingsInfo(bool MallocTuned, int? TorchThreads, int? BlasThreads)
    {
        /// <summary>OpenCV's threads as set on first use of images (1; VIT_OPENCV_THREADS=n or =keep; null: left alone or
        /// images not used yet).</summary>
        public int? OpenCvThreads => Imaging.Image.OpenCvThreads;
    }

    /// <summary>
    /// The process-wide settings this library applied on its first use, each once and each with an opt-out
    /// (environment variables read at that moment): glibc malloc tuning (VIT_TUNE_MALLOC=0), libtorch and OpenBLAS
    /// thread counts (VIT_THREADS=n|keep), OpenCV's thread count (VIT_OPENCV_THREADS=n|keep). The random generator is
    /// not among them: trainings draw from their own (<see cref="UseThreadGenerator"/>).
    /// </summary>
    public static ProcessSettingsInfo ProcessSettings
    {
        get
        {
            EnsureLoaded();
            return Native.NativeMethods.AppliedSettings!;
        }
    }

    [ThreadStatic] private static int threadGenerators;

    /// <summary>
    /// Gives this thread its own generator, seeded with <paramref name="seed"/>, until the result is disposed: the
    /// random ops it runs (initialisation, dropout, drop path, randperm) draw from it and not from the global one, so
    /// that work on other threads neither disturbs it nor is disturbed. It draws what the global generator draws
    /// after <c>ManualSeed(seed)</c>. <see cref="Training.Trainer.Fit"/> and <c>VitEstimator.Fit</c> run inside one, so two
    /// trainings on two threads each repeat exactly. Nested uses restore the outer generator's state.
    /// </summary>
    public static IDisposable UseThreadGenerator(ulong seed)
    {
        EnsureLoaded();
        var outer = threadGenerators > 0 ? GetRngState().DetachFromScope() : null;
        Check(vit_thread_generator_set(1, seed));
        threadGenerators++;
        return new ThreadGeneratorScope(outer);
    }

    private sealed class ThreadGeneratorScope(Tensor? outer) : IDisposable
    {
        private bool done;

        public void Dispose()
        {
            if (done) return;
            done = true;
            threadGenerators--;
            if (outer is null)
            {
                Check(vit_thread_generator_set(0, 0));
                return;
            }
            Check(vit_thread_generator_set(1, 0));
            SetRngState(outer);
            outer.Dispose();
        }
    }

    /// <summary>The state of libtorch's global CPU generator (torch.get_rng_state): a new uint8 tensor the caller owns.</summary>
    public static Tensor GetRngState()
    {
        EnsureLoaded();
        return Tensor.Wrap(vit_rng_get_state(out var o), o);
    }

    /// <summary>Restores a state from <see cref="GetRngState"/> (torch.set_rng_state), so that dropout continues as if uninterrupted.</summary>
    public static void SetRngState(Tensor state)
    {
        ArgumentNullException.ThrowIfNull(state);
        EnsureLoaded();
        Check(vit_rng_set_state(state.Handle));
    }

    /// <summary>
    /// The one knob for intra-op threads: sets libtorch's pool and OpenBLAS's pool together so that they do not
    /// oversubscribe the cores. By default OpenBLAS gets one thread: libtorch already runs its parallel regions on
    /// every core, and a second pool of spinning BLAS threads on top measured 5-30% slower on this project's
    /// 2-core machines (see eng/bench.sh). Applied at start-up with <see cref="Environment.ProcessorCount"/>
    /// threads, or the VIT_THREADS environment variable when set.
    /// </summary>
    public static void SetThreads(int threads, int blasThreads = 1)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, "thread count must be at least 1");
        if (blasThreads < 1) throw new ArgumentOutOfRangeException(nameof(blasThreads), blasThreads, "BLAS thread count must be at least 1");
        EnsureLoaded();
        Check(vit_threads_set(threads, blasThreads));
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
        Check(vit_threads_local_set(threads, out var previous));
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
            if (Interlocked.Exchange(ref done, 1) == 0) Check(vit_threads_local_set(previous, out _));
        }
    }

    /// <summary>Current (libtorch, OpenBLAS) thread counts; OpenBLAS is -1 when it is not the BLAS in use.</summary>
    public static (int Torch, int Blas) Threads
    {
        get
        {
            EnsureLoaded();
            Check(vit_threads_get(out var t, out var b));
            return (t, b);
        }
    }

    /// <summary>libtorch's description of its parallel set-up (OpenMP, BLAS, threads).</summary>
    public static string ParallelInfo
    {
        get
        {
            EnsureLoaded();
            var buf = new byte[4096];
            fixed (byte* p = buf) Check(vit_parallel_info(p, buf.Length));
            return Marshal.PtrToStringUTF8((IntPtr)Unsafe.AsPointer(ref buf[0]))!;
        }
    }

    /// <summary>Number of usable CUDA devices (0 when libtorch has no CUDA support).</summary>
    public static int CudaDeviceCount
    {
        get
        {
            EnsureLoaded();
            Check(vit_cuda_device_count(out var n));
            return n;
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
            ? $"device {requested} was requested, but the linked libtorch ({Version}, Debian's CPU build) has no CUDA support or no GPU is visible; use Device.Cpu"
            : $"device {requested} was requested, but only {n} CUDA device(s) are visible");
    }

    /// <summary>Turns autograd recording off on this thread until the returned object is disposed (torch.no_grad).</summary>
    public static IDisposable NoGrad() => new GradMode(false);

    /// <summary>Turns autograd recording on on this thread until disposed (torch.enable_grad).</summary>
    public static IDisposable EnableGrad() => new GradMode(true);

    /// <summary>
    /// Inference mode on this thread until the returned object is disposed (torch.inference_mode): no autograd recording
    /// and no version counting, for scoring. Tensors made inside cannot take part in autograd later. Dispose on the same
    /// thread, innermost first.
    /// </summary>
    public static IDisposable InferenceMode()
    {
        EnsureLoaded();
        Check(vit_inference_mode_enter(out var guard));
        return new NativeGuard(guard, vit_inference_mode_exit);
    }

    /// <summary>
    /// Times every libtorch op run on this thread (forward and backward) until the returned object is disposed, then
    /// writes them to <paramref name="path"/> as a Chrome trace (open in chrome://tracing or Perfetto).
    /// </summary>
    public static IDisposable Profile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        EnsureLoaded();
        Check(vit_profile_begin(Path.GetFullPath(path), out var guard));
        return new NativeGuard(guard, vit_profile_end);
    }

    private sealed class NativeGuard(IntPtr guard, Action<IntPtr> free) : IDisposable
    {
        private readonly int threadId = Environment.CurrentManagedThreadId;

        public void Dispose()
        {
            if (guard == IntPtr.Zero) return;
            if (Environment.CurrentManagedThreadId != threadId)
                throw new InvalidOperationException("this per-thread mode must be left on the thread that entered it");
            free(guard);
            guard = IntPtr.Zero;
        }
    }

    private sealed class GradMode : IDisposable
    {
        private readonly int previous;
        private bool disposed;

        public GradMode(bool enabled)
        {
            EnsureLoaded();
            Check(vit_grad_set_enabled(enabled ? 1 : 0, out previous));
        }

        public void Dispose()
        {
            if (disposed) return;
            disposed = true;
            Check(vit_grad_set_enabled(previous, out _));
        }
    }
}
