namespace Vit.Torch;

/// <summary>Kind of device a tensor lives on. Values are part of the native ABI.</summary>
public enum DeviceType
{
    /// <summary>Host memory.</summary>
    Cpu = 0,
    /// <summary>An NVIDIA GPU (only when the linked libtorch was built with CUDA).</summary>
    Cuda = 1,
}

/// <summary>A device: CPU, or CUDA with a device index.</summary>
public readonly record struct Device(DeviceType Type, int Index = 0)
{
    /// <summary>The CPU.</summary>
    public static Device Cpu => new(DeviceType.Cpu);

    /// <summary>CUDA device <paramref name="index"/>.</summary>
    public static Device Cuda(int index = 0) => new(DeviceType.Cuda, index);

    /// <summary>Parses "cpu", "cuda" or "cuda:N".</summary>
    public static Device Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var t = text.Trim().ToLowerInvariant();
        if (t == "cpu") return Cpu;
        if (t == "cuda") return Cuda();
        if (t.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(t.AsSpan(5), out var i) && i >= 0)
            return Cuda(i);
        throw new ArgumentException($"unknown device '{text}': use cpu, cuda or cuda:N", nameof(text));
    }

    /// <inheritdoc />
    public override string ToString() => Type == DeviceType.Cpu ? "cpu" : $"cuda:{Index}";

    /// <summary>The same device as TorchSharp names it; a CUDA device must be usable (see <see cref="Torch.ResolveDevice"/>).</summary>
    internal TorchSharp.torch.Device ToTorchSharp()
    {
        if (Type == DeviceType.Cpu) return TorchSharp.torch.CPU;
        Torch.ResolveDevice(this, fallbackToCpu: false);  // no usable GPU: our error, which says what to reference
        return new TorchSharp.torch.Device(TorchSharp.DeviceType.CUDA, Index);
    }
}
