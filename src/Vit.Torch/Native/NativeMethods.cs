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

    /// <summary>The ABI version this assembly was written against; the shim must report the same.</summary>
    internal const int ExpectedAbiVersion = 9;

    /// <summary>The libtorch major.minor the shim is built and tested against.</summary>
    internal const string ExpectedTorchVersion = "1.13";

    internal const string InstallHint =
        "Run `sudo bash eng/install-deps.sh` from the repository root (installs Debian's libtorch-dev 1.13, " +
        "libopenblas0-pthread, libopencv-dev, cmake, g++), then `dotnet build`.";

    static NativeMethods()
    {
        NativeLibrary.SetDllImportResolver(typeof(NativeMethods).Assembly, Resolve);
    }

    /// <summary>Loads the shim, checks its ABI and libtorch versions once, and throws a clear error if not.</summary>
    internal static void EnsureLoaded() => _ = Loaded.Value;

    private static readonly Lazy<bool> Loaded = new(() =>
    {
        int abi;
        try
        {
            abi = vit_abi_version();
        }
        catch (DllNotFoundException e)
        {
            throw new TorchException(e.Message);
        }
        if (abi != ExpectedAbiVersion)
            throw new TorchException(
                $"libvit_native.so has ABI version {abi} but Vit.Torch expects {ExpectedAbiVersion}: the native " +
                "shim is stale. Rebuild with `dotnet build` (it rebuilds the shim).");
        var version = TorchVersion;
        if (!version.StartsWith(ExpectedTorchVersion + ".", StringComparison.Ordinal))
            throw new TorchException(
                $"libtorch {version} is linked, but Vit.Torch is built and tested against {ExpectedTorchVersion}. " +
                InstallHint);
        // The process-wide settings, applied here once and recorded in Torch.ProcessSettings; each has its opt-out.
        // VIT_TUNE_MALLOC=0 leaves glibc's malloc settings alone (see vit_runtime_init).
        bool tune = Environment.GetEnvironmentVariable("VIT_TUNE_MALLOC") != "0";
        Check(vit_runtime_init(tune ? 1 : 0));
        // Default threads: every core for libtorch, one for OpenBLAS (measured best; see Torch.SetThreads);
        // VIT_THREADS=n for n, VIT_THREADS=keep to leave both as the process has them.
        var env = Environment.GetEnvironmentVariable("VIT_THREADS");
        int? threads = env == "keep" ? null : int.TryParse(env, out var t) && t > 0 ? t : Environment.ProcessorCount;
        if (threads is { } n) Check(vit_threads_set(n, 1));
        AppliedSettings = new Torch.ProcessSettingsInfo(tune, threads, threads is null ? null : 1);
        return true;
    }, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>What <see cref="EnsureLoaded"/> set (see <see cref="Torch.ProcessSettings"/>).</summary>
    internal static Torch.ProcessSettingsInfo? AppliedSettings { get; private set; }

    internal static string TorchVersion
    {
        get
        {
            var buf = stackalloc byte[64];
            Check(vit_torch_version(buf, 64));
            return Marshal.PtrToStringUTF8((IntPtr)buf)!;
        }
    }

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
    [LibraryImport(Lib)] internal static partial int vit_abi_version();
    [LibraryImport(Lib)] internal static partial int vit_last_error(byte* buf, int cap);
    [LibraryImport(Lib)] internal static partial int vit_torch_version(byte* buf, int cap);
    [LibraryImport(Lib)] internal static partial int vit_runtime_init(int tuneMalloc);
    [LibraryImport(Lib)] internal static partial long vit_live_tensor_count();
    [LibraryImport(Lib)] internal static partial int vit_threads_set(int torchThreads, int blasThreads);
    [LibraryImport(Lib)] internal static partial int vit_threads_get(out int torchThreads, out int blasThreads);
    [LibraryImport(Lib)] internal static partial int vit_threads_local_set(int threads, out int previous);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int vit_dist_init(int storeKind, string address, int port, int rank, int worldSize, long timeoutMs, string? bindHost, out IntPtr group);
    [LibraryImport(Lib)] internal static partial int vit_dist_free(IntPtr group);
    [LibraryImport(Lib)] internal static partial int vit_dist_info(IntPtr group, out int rank, out int size);
    [LibraryImport(Lib)] internal static partial int vit_dist_allreduce(IntPtr group, IntPtr* tensors, int n, int op, long timeoutMs);
    [LibraryImport(Lib)] internal static partial int vit_dist_broadcast(IntPtr group, IntPtr* tensors, int n, int root, long timeoutMs);
    [LibraryImport(Lib)] internal static partial int vit_dist_barrier(IntPtr group, long timeoutMs);
    [LibraryImport(Lib)] internal static partial int vit_dist_allreduce_grads(IntPtr group, IntPtr* parameters, int n, long bucketBytes, long timeoutMs);
    [LibraryImport(Lib)] internal static partial int vit_parallel_info(byte* buf, int cap);
    [LibraryImport(Lib)] internal static partial int vit_cuda_device_count(out int count);
    [LibraryImport(Lib)] internal static partial int vit_manual_seed(ulong seed);
    [LibraryImport(Lib)] internal static partial int vit_thread_generator_set(int use, ulong seed);
    [LibraryImport(Lib)] internal static partial int vit_rng_get_state(out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_rng_set_state(TensorHandle state);
    [LibraryImport(Lib)] internal static partial int vit_grad_set_enabled(int enabled, out int previous);
    // Autocast regions (device type 0 CPU, 1 CUDA): enter returns the previous switch and dtype for exit.
    [LibraryImport(Lib)] internal static partial int vit_autocast_enter(int deviceType, int enabled, int dtype, out int previousEnabled, out int previousDtype);
    [LibraryImport(Lib)] internal static partial int vit_autocast_exit(int deviceType, int previousEnabled, int previousDtype);
    [LibraryImport(Lib)] internal static partial int vit_autocast_is_enabled(int deviceType, out int enabled);
    // Inference mode: the guard handle is owned by the caller and freed by exit, on the same thread.
    [LibraryImport(Lib)] internal static partial int vit_inference_mode_enter(out IntPtr guard);
    [LibraryImport(Lib)] internal static partial void vit_inference_mode_exit(IntPtr guard);
    // Profiler: the guard is owned by the caller; freeing it writes the Chrome trace.
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static partial int vit_profile_begin(string path, out IntPtr guard);
    [LibraryImport(Lib)] internal static partial void vit_profile_end(IntPtr guard);

    // ---- lifetime, creation, metadata ----
    [LibraryImport(Lib)] internal static partial void vit_tensor_free(IntPtr t);
    [LibraryImport(Lib)] internal static partial int vit_tensor_empty(long* dims, int n, int dtype, int dev, int devIndex, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_full(long* dims, int n, double value, int dtype, int dev, int devIndex, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_arange(double start, double end, double step, int dtype, int dev, int devIndex, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_random(long* dims, int n, int kind, int dtype, int dev, int devIndex, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_randperm(long n, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_bernoulli(long* dims, int n, double p, int dtype, int dev, int devIndex, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_from_data(void* data, long nbytes, long* dims, int n, int dtype, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_copy_to(TensorHandle t, void* dst, long nbytes);
    [LibraryImport(Lib)] internal static partial int vit_tensor_nbytes(IntPtr t, out long bytes);
    [LibraryImport(Lib)] internal static partial int vit_tensor_data_ptr(TensorHandle t, out IntPtr ptr);
    [LibraryImport(Lib)] internal static partial int vit_tensor_ndim(TensorHandle t, out int n);
    [LibraryImport(Lib)] internal static partial int vit_tensor_shape(TensorHandle t, long* dims, int cap);
    [LibraryImport(Lib)] internal static partial int vit_tensor_dtype(TensorHandle t, out int dtype);
    [LibraryImport(Lib)] internal static partial int vit_tensor_device(TensorHandle t, out int type, out int index);
    [LibraryImport(Lib)] internal static partial int vit_tensor_item(TensorHandle t, out double value);
    [LibraryImport(Lib)] internal static partial int vit_tensor_to(TensorHandle t, int dtype, int dev, int devIndex, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_clone(TensorHandle t, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_detach(TensorHandle t, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_contiguous(TensorHandle t, out IntPtr o);

    // ---- autograd ----
    [LibraryImport(Lib)] internal static partial int vit_tensor_set_requires_grad(TensorHandle t, int flag);
    [LibraryImport(Lib)] internal static partial int vit_tensor_requires_grad(TensorHandle t, out int flag);
    [LibraryImport(Lib)] internal static partial int vit_tensor_backward(TensorHandle t, TensorHandle gradOutput);
    [LibraryImport(Lib)] internal static partial int vit_tensor_grad(TensorHandle t, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_grad_reset(TensorHandle t);

    // ---- elementwise (binary, unary, scalar) ----
    [LibraryImport(Lib)] internal static partial int vit_tensor_add(TensorHandle a, TensorHandle b, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_sub(TensorHandle a, TensorHandle b, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_mul(TensorHandle a, TensorHandle b, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_div(TensorHandle a, TensorHandle b, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_matmul(TensorHandle a, TensorHandle b, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_bmm(TensorHandle a, TensorHandle b, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_eq(TensorHandle a, TensorHandle b, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_lt(TensorHandle a, TensorHandle b, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_maximum(TensorHandle a, TensorHandle b, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_neg(TensorHandle a, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_exp(TensorHandle a, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_log(TensorHandle a, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_sqrt(TensorHandle a, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_tanh(TensorHandle a, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_abs(TensorHandle a, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_erf(TensorHandle a, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_floor(TensorHandle a, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_gelu(TensorHandle a, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_relu(TensorHandle a, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_isfinite(TensorHandle a, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_sum_all(TensorHandle a, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_mean_all(TensorHandle a, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_all(TensorHandle a, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_add_scalar(TensorHandle a, double s, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_mul_scalar(TensorHandle a, double s, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_div_scalar(TensorHandle a, double s, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_pow_scalar(TensorHandle a, double s, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_lt_scalar(TensorHandle a, double s, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_gt_scalar(TensorHandle a, double s, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_eq_scalar(TensorHandle a, double s, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_rsub_scalar(TensorHandle a, double s, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_clamp(TensorHandle a, double lo, double hi, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_where(TensorHandle cond, TensorHandle a, TensorHandle b, out IntPtr o);

    // ---- reductions ----
    [LibraryImport(Lib)] internal static partial int vit_tensor_sum(TensorHandle a, long* dims, int n, int keepdim, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_mean(TensorHandle a, long* dims, int n, int keepdim, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_max(TensorHandle a, long dim, int keepdim, out IntPtr values, out IntPtr indices);
    [LibraryImport(Lib)] internal static partial int vit_tensor_argmax(TensorHandle a, long dim, int keepdim, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_topk(TensorHandle a, long k, long dim, int largest, int sorted, out IntPtr values, out IntPtr indices);

    // ---- shape and indexing ----
    [LibraryImport(Lib)] internal static partial int vit_tensor_reshape(TensorHandle a, long* dims, int n, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_view(TensorHandle a, long* dims, int n, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_permute(TensorHandle a, long* dims, int n, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_transpose(TensorHandle a, long d0, long d1, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_expand(TensorHandle a, long* dims, int n, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_flatten(TensorHandle a, long start, long end, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_unsqueeze(TensorHandle a, long dim, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_squeeze(TensorHandle a, long dim, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_slice(TensorHandle a, long dim, long start, long end, long step, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_select(TensorHandle a, long dim, long index, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_index_select(TensorHandle a, long dim, TensorHandle index, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_gather(TensorHandle a, long dim, TensorHandle index, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_cat(IntPtr* parts, int n, long dim, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_stack(IntPtr* parts, int n, long dim, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_tensor_chunk(TensorHandle a, long count, long dim, IntPtr* outs);
    [LibraryImport(Lib)] internal static partial int vit_tensor_one_hot(TensorHandle labels, long classes, int dtype, out IntPtr o);

    // ---- neural-network ops ----
    [LibraryImport(Lib)] internal static partial int vit_nn_linear(TensorHandle x, TensorHandle w, TensorHandle b, int gelu, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_nn_conv2d(TensorHandle x, TensorHandle w, TensorHandle b, long strideH, long strideW, long padH, long padW, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_nn_interpolate(TensorHandle x, int mode, long outH, long outW, int antialias, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_nn_layer_norm(TensorHandle x, long* dims, int n, TensorHandle w, TensorHandle b, double eps, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_nn_softmax(TensorHandle x, long dim, out IntPtr o);
    // probs may be null; otherwise it receives a second new handle (the attention probabilities).
    [LibraryImport(Lib)] internal static partial int vit_nn_self_attention(TensorHandle qkv, long heads, double scale, double dropout, int train, out IntPtr o, IntPtr* probs);
    [LibraryImport(Lib)] internal static partial int vit_nn_log_softmax(TensorHandle x, long dim, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_nn_dropout(TensorHandle x, double p, int train, out IntPtr o);
    [LibraryImport(Lib)] internal static partial int vit_nn_cross_entropy(TensorHandle logits, TensorHandle target, double labelSmoothing, int reduction, out IntPtr o);

    // ---- in place, init, optimisation ----
    [LibraryImport(Lib)] internal static partial int vit_tensor_copy_(TensorHandle dst, TensorHandle src);
    [LibraryImport(Lib)] internal static partial int vit_tensor_set_data(TensorHandle dst, TensorHandle src);
    [LibraryImport(Lib)] internal static partial int vit_tensor_fill_(TensorHandle t, double value);
    [LibraryImport(Lib)] internal static partial int vit_tensor_add_(TensorHandle t, TensorHandle other, double alpha);
    [LibraryImport(Lib)] internal static partial int vit_tensor_mul_scalar_(TensorHandle t, double s);
    [LibraryImport(Lib)] internal static partial int vit_tensor_normal_(TensorHandle t, double mean, double std);
    [LibraryImport(Lib)] internal static partial int vit_tensor_uniform_(TensorHandle t, double lo, double hi);
    [LibraryImport(Lib)] internal static partial int vit_tensor_trunc_normal_(TensorHandle t, double mean, double std, double lo, double hi);
    [LibraryImport(Lib)] internal static partial int vit_optim_adamw_step(IntPtr* parms, IntPtr* expAvg, IntPtr* expAvgSq, double* weightDecay, double* lrScale, int n, double lr, double beta1, double beta2, double eps, long step);
    [LibraryImport(Lib)] internal static partial int vit_optim_clip_grad_norm(IntPtr* parms, int n, double maxNorm, out double totalNorm);
}
