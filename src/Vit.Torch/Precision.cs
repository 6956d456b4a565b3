using System.Runtime.Intrinsics.X86;
using static Vit.Torch.Native.NativeMethods;

namespace Vit.Torch;

/// <summary>
/// The arithmetic of matrix products in training and scoring. Weights, optimizer state, gradients' reduction and
/// clipping stay float32 in every mode (mixed precision, Micikevicius et al. 2018).
/// </summary>
public enum Precision
{
    /// <summary>Everything in float32.</summary>
    Float32,

    /// <summary>
    /// bfloat16 mixed precision, as PyTorch's <c>torch.autocast(dtype=torch.bfloat16)</c>: matrix products and
    /// convolutions run in bfloat16; the residual stream, LayerNorm statistics, the loss and the weights stay float32.
    /// </summary>
    BFloat16,

    /// <summary><see cref="BFloat16"/> where the hardware computes bfloat16 natively (AVX512_BF16 or AMX on x86, CUDA),
    /// <see cref="Float32"/> elsewhere (emulated bfloat16 is slower than float32).</summary>
    Auto,
}

/// <summary>Mixed precision: which precision a device gets, and the autocast regions that apply it.</summary>
public static class MixedPrecision
{
    private static readonly Lazy<bool> CpuBFloat16 = new(DetectCpuBFloat16);

    /// <summary>
    /// Whether this machine's CPU has native bfloat16 arithmetic: AVX512_BF16 (CPUID leaf 7 sub-leaf 1, EAX bit 5) or
    /// AMX-BF16 (leaf 7 sub-leaf 0, EDX bit 22), with AVX-512 enabled by the operating system.
    /// </summary>
    public static bool CpuHasNativeBFloat16 => CpuBFloat16.Value;

    /// <summary>Whether <paramref name="device"/> computes bfloat16 natively: CUDA devices are taken to (Ampere and later
    /// have bfloat16 tensor cores; on an older GPU choose <see cref="Precision.Float32"/>), CPUs per
    /// <see cref="CpuHasNativeBFloat16"/>.</summary>
    public static bool HasNativeBFloat16(Device device) => device.Type == DeviceType.Cuda || CpuHasNativeBFloat16;

    /// <summary>The precision <paramref name="precision"/> means on <paramref name="device"/>: <see cref="Precision.Auto"/>
    /// becomes <see cref="Precision.BFloat16"/> or <see cref="Precision.Float32"/>; the others are returned as they are.</summary>
    public static Precision Resolve(Precision precision, Device device) => precision switch
    {
        Precision.Float32 or Precision.BFloat16 => precision,
        Precision.Auto => HasNativeBFloat16(device) ? Precision.BFloat16 : Precision.Float32,
        _ => throw new ArgumentOutOfRangeException(nameof(precision), precision, "unknown precision"),
    };

    /// <summary>
    /// Opens an autocast region on this thread for <paramref name="device"/>'s type (PyTorch's
    /// <c>with torch.autocast(device_type, dtype=torch.bfloat16)</c>) when <paramref name="precision"/> resolves to
    /// <see cref="Precision.BFloat16"/>; for float32, a region that turns autocast off (as <c>enabled=False</c> does),
    /// so an inner float32 region inside a bfloat16 one is float32. Regions nest; dispose on the same thread, innermost
    /// first. Backward passes run outside the region, as in PyTorch.
    /// </summary>
    public static AutocastRegion Autocast(Precision precision, Device device)
    {
        EnsureLoaded();
        bool on = Resolve(precision, device) == Precision.BFloat16;
        int type = (int)device.Type;
        Check(vit_autocast_enter(type, on ? 1 : 0, (int)DType.BFloat16, out var previous, out var previousDtype));
        return new AutocastRegion(type, previous, previousDtype, on);
    }

    /// <summary>Parses "auto", "bf16" / "bfloat16" or "fp32" / "float32" (any case), as tools take it on their command line.</summary>
    public static Precision Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.Trim().ToLowerInvariant() switch
        {
            "auto" => Precision.Auto,
            "bf16" or "bfloat16" => Precision.BFloat16,
            "fp32" or "float32" => Precision.Float32,
            _ => throw new ArgumentException($"unknown precision '{text}': use auto, bf16 or fp32", nameof(text)),
        };
    }

    /// <summary>Whether an autocast region is on for <paramref name="type"/> devices on this thread.</summary>
    public static bool IsAutocastEnabled(DeviceType type = DeviceType.Cpu)
    {
        EnsureLoaded();
        Check(vit_autocast_is_enabled((int)type, out var on));
        return on != 0;
    }

    private static bool DetectCpuBFloat16()
    {
        if (!X86Base.IsSupported || !Avx512F.IsSupported) return false;  // Avx512F.IsSupported includes the OS's XSAVE state
        var (maxLeaf, _, _, _) = X86Base.CpuId(0, 0);
        if (maxLeaf < 7) return false;
        var (_, _, _, edx0) = X86Base.CpuId(7, 0);
        var (eax1, _, _, _) = X86Base.CpuId(7, 1);
        bool avx512Bf16 = (eax1 & (1 << 5)) != 0, amxBf16 = (edx0 & (1 << 22)) != 0;
        return avx512Bf16 || amxBf16;
    }
}

/// <summary>An open autocast region (see <see cref="MixedPrecision.Autocast"/>); disposing it restores the previous state.</summary>
public sealed class AutocastRegion : IDisposable
{
    private readonly int deviceType, previous, previousDtype;
    private readonly int threadId = Environment.CurrentManagedThreadId;
    private bool disposed;

    internal AutocastRegion(int deviceType, int previous, int previousDtype, bool enabled)
    {
        this.deviceType = deviceType;
        this.previous = previous;
        this.previousDtype = previousDtype;
        Enabled = enabled;
    }

    /// <summary>Whether bfloat16 autocast is on inside this region.</summary>
    public bool Enabled { get; }

    /// <summary>Leaves the region. Throws when called from another thread than the one that opened it (autocast is per thread).</summary>
    public void Dispose()
    {
        if (disposed) return;
        if (Environment.CurrentManagedThreadId != threadId)
            throw new InvalidOperationException("an autocast region must be closed on the thread that opened it (autocast state is per thread)");
        disposed = true;
        Check(vit_autocast_exit(deviceType, previous, previousDtype));
    }
}
