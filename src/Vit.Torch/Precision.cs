using System.Runtime.Intrinsics.X86;
using TS = TorchSharp.torch;

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
        bool on = Resolve(precision, device) == Precision.BFloat16;
        return new AutocastRegion(on);
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
    public static bool IsAutocastEnabled(DeviceType type = DeviceType.Cpu) => Vit.Torch.Autocast.Enabled;

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
    private readonly bool previous;
    private readonly Autocast.WeightCasts? previousCasts;
    private readonly int threadId = Environment.CurrentManagedThreadId;
    private bool disposed;

    internal AutocastRegion(bool enabled)
    {
        Enabled = enabled;
        (previous, previousCasts) = Vit.Torch.Autocast.Enter(enabled);
    }

    /// <summary>Whether this region computes in bfloat16.</summary>
    public bool Enabled { get; }

    /// <summary>Restores the state before the region (on the thread that opened it).</summary>
    public void Dispose()
    {
        if (disposed) return;
        if (Environment.CurrentManagedThreadId != threadId)
            throw new InvalidOperationException("an autocast region must be closed on the thread that opened it (autocast state is per thread)");
        disposed = true;
        Vit.Torch.Autocast.Exit(previous, previousCasts);
    }
}

/// <summary>
/// Our bfloat16 autocast, as PyTorch's CPU autocast (TorchSharp has none): a per-thread switch that the products
/// (<see cref="F.Linear"/>, <see cref="F.Conv2d"/>, <see cref="Tensor.MatMul"/>, attention) read to compute in
/// bfloat16 from float32 inputs, while the loss takes float32 and the rest follow their inputs (PyTorch 1.13's and
/// 2.x's CPU autocast lists for the ops a ViT uses). Casts of
/// parameters (leaves that require grad) are made once per region and reused, as autocast's weight cache.
/// </summary>
internal static class Autocast
{
    [ThreadStatic] private static bool enabled;
    [ThreadStatic] private static WeightCasts? casts;

    internal static bool Enabled => enabled;

    /// <summary>The bfloat16 copies of parameters made in one region, freed when it ends.</summary>
    internal sealed class WeightCasts : Dictionary<TS.Tensor, TS.Tensor>
    {
        public WeightCasts() : base(ReferenceEqualityComparer.Instance)
        {
        }
    }

    internal static (bool Previous, WeightCasts? PreviousCasts) Enter(bool on)
    {
        var state = (enabled, casts);
        enabled = on;
        casts = on ? new WeightCasts() : null;
        return state;
    }

    internal static void Exit(bool previous, WeightCasts? previousCasts)
    {
        if (casts is { } mine)
            foreach (var t in mine.Values) t.Dispose();
        enabled = previous;
        casts = previousCasts;
    }

    /// <summary>A tensor in bfloat16 for a product, and whether the caller must dispose it.</summary>
    private readonly struct Low(TS.Tensor tensor, bool owned) : IDisposable
    {
        public TS.Tensor Tensor { get; } = tensor;

        public void Dispose()
        {
            if (owned) Tensor.Dispose();
        }
    }

    private static Low ToLow(TS.Tensor t)
    {
        if (t.dtype != TS.ScalarType.Float32) return new Low(t, false);
        if (casts is { } cache && t.requires_grad && t.is_leaf)
        {
            if (!cache.TryGetValue(t, out var cast)) cache[t] = cast = t.to_type(TS.ScalarType.BFloat16);
            return new Low(cast, false);
        }
        return new Low(t.to_type(TS.ScalarType.BFloat16), true);
    }

    /// <summary>A product op(a, b, c), in bfloat16 inside a region (float32 inputs cast), as given outside.</summary>
    internal static TS.Tensor Product(TS.Tensor a, TS.Tensor b, TS.Tensor? c, Func<TS.Tensor, TS.Tensor, TS.Tensor?, TS.Tensor> op)
    {
        if (!enabled) return op(a, b, c);
        using var a16 = ToLow(a);
        using var b16 = ToLow(b);
        if (c is null) return op(a16.Tensor, b16.Tensor, null);
        using var c16 = ToLow(c);
        return op(a16.Tensor, b16.Tensor, c16.Tensor);
    }

    /// <summary>A binary product of two of our tensors (matmul, bmm).</summary>
    internal static Tensor Binary(Tensor a, Tensor b, Func<TS.Tensor, TS.Tensor, TS.Tensor> op)
    {
        var (x, y) = (a.Native, b.Native);
        var result = Tensor.Run(() => Product(x, y, null, (p, q, _) => op(p, q)));
        GC.KeepAlive(a);
        GC.KeepAlive(b);
        return result;
    }

    /// <summary>libtorch's fused scaled-dot-product attention (scale 1/√Dh), in bfloat16 inside a region.</summary>
    internal static TS.Tensor Attention(TS.Tensor q, TS.Tensor k, TS.Tensor v)
    {
        if (!enabled) return TS.nn.functional.scaled_dot_product_attention(q, k, v);
        using var q16 = ToLow(q);
        using var k16 = ToLow(k);
        using var v16 = ToLow(v);
        return TS.nn.functional.scaled_dot_product_attention(q16.Tensor, k16.Tensor, v16.Tensor);
    }

    /// <summary>The float32 copy of a bfloat16 tensor inside a region (null: use the tensor as it is).</summary>
    internal static TS.Tensor? ToFloat32(TS.Tensor t) =>
        enabled && t.dtype == TS.ScalarType.BFloat16 ? t.to_type(TS.ScalarType.Float32) : null;
}

/// <summary>
/// Which attention kernel <see cref="F.SelfAttention"/> uses when it may choose (no probabilities asked for, no
/// dropout): libtorch's fused scaled_dot_product_attention, or the chain q·kᵀ, softmax, ·v. The chain up to
/// <see cref="ComposedUpToTokens"/> tokens: at ViT-Ti/16's 197 it was the faster in both precisions here (float32
/// training step 1.30 s against 1.40 s at batch 32, scoring 80-83 against 71-78 images/s at batch 64; bfloat16 training
/// 19.5-21.1 against 17.4-18.1 images/s). Above it the fused kernel, whose backward keeps no N×N probabilities (the chain
/// stores them for each block: 1.5 GB for ViT-Ti at 577 tokens and batch 32). VIT_ATTENTION=fused|composed chooses.
/// </summary>
internal static class AttentionKernel
{
    /// <summary>The longest sequence that takes the composed chain by default.</summary>
    internal const long ComposedUpToTokens = 256;

    private static readonly string? Choice = Environment.GetEnvironmentVariable("VIT_ATTENTION");

    internal static bool UseFused(long tokens) => Choice switch
    {
        "fused" => true,
        "composed" => false,
        _ => tokens > ComposedUpToTokens,
    };
}
