namespace Vit.Torch;

/// <summary>Element types (each maps to one of TorchSharp's ScalarType values; see DTypes).</summary>
public enum DType
{
    /// <summary>32-bit float (torch.float32).</summary>
    Float32 = 0,
    /// <summary>64-bit float (torch.float64).</summary>
    Float64 = 1,
    /// <summary>64-bit signed integer (torch.int64), used for class indices.</summary>
    Int64 = 2,
    /// <summary>32-bit signed integer.</summary>
    Int32 = 3,
    /// <summary>8-bit unsigned integer (pixels).</summary>
    UInt8 = 4,
    /// <summary>Boolean.</summary>
    Bool = 5,
    /// <summary>16-bit IEEE float.</summary>
    Float16 = 6,
    /// <summary>16-bit brain float.</summary>
    BFloat16 = 7,
    /// <summary>16-bit signed integer.</summary>
    Int16 = 8,
    /// <summary>8-bit signed integer.</summary>
    Int8 = 9,
}

/// <summary>Sizes of element types.</summary>
public static class DTypeExtensions
{
    /// <summary>Bytes per element.</summary>
    public static int ElementSize(this DType t) => t switch
    {
        DType.Float32 or DType.Int32 => 4,
        DType.Float64 or DType.Int64 => 8,
        DType.Float16 or DType.BFloat16 or DType.Int16 => 2,
        DType.UInt8 or DType.Bool or DType.Int8 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown dtype"),
    };
}

/// <summary>Our element types and TorchSharp's (libtorch's ScalarType).</summary>
internal static class DTypes
{
    internal static TorchSharp.torch.ScalarType ToScalarType(this DType t) => t switch
    {
        DType.Float32 => TorchSharp.torch.ScalarType.Float32,
        DType.Float64 => TorchSharp.torch.ScalarType.Float64,
        DType.Int64 => TorchSharp.torch.ScalarType.Int64,
        DType.Int32 => TorchSharp.torch.ScalarType.Int32,
        DType.UInt8 => TorchSharp.torch.ScalarType.Byte,
        DType.Bool => TorchSharp.torch.ScalarType.Bool,
        DType.Float16 => TorchSharp.torch.ScalarType.Float16,
        DType.BFloat16 => TorchSharp.torch.ScalarType.BFloat16,
        DType.Int16 => TorchSharp.torch.ScalarType.Int16,
        DType.Int8 => TorchSharp.torch.ScalarType.Int8,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown dtype"),
    };

    internal static DType FromScalarType(TorchSharp.torch.ScalarType t) => t switch
    {
        TorchSharp.torch.ScalarType.Float32 => DType.Float32,
        TorchSharp.torch.ScalarType.Float64 => DType.Float64,
        TorchSharp.torch.ScalarType.Int64 => DType.Int64,
        TorchSharp.torch.ScalarType.Int32 => DType.Int32,
        TorchSharp.torch.ScalarType.Byte => DType.UInt8,
        TorchSharp.torch.ScalarType.Bool => DType.Bool,
        TorchSharp.torch.ScalarType.Float16 => DType.Float16,
        TorchSharp.torch.ScalarType.BFloat16 => DType.BFloat16,
        TorchSharp.torch.ScalarType.Int16 => DType.Int16,
        TorchSharp.torch.ScalarType.Int8 => DType.Int8,
        _ => throw new TorchException($"tensor has an element type Vit.Torch does not support ({t})"),
    };
}
