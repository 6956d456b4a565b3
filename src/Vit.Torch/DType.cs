namespace Vit.Torch;

/// <summary>Element types. The numeric values are part of the native ABI (see vit_native.cpp).</summary>
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
