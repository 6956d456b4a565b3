namespace Vit.Torch.Data;

/// <summary>
/// Seeds derived from several numbers that are the same in every process. <see cref="HashCode.Combine{T1, T2}"/>
/// is not: .NET randomises it per process, so a run seeded through it cannot be repeated.
/// </summary>
internal static class StableSeed
{
    /// <summary>A non-negative seed mixing <paramref name="a"/>, <paramref name="b"/> and <paramref name="c"/>.</summary>
    public static int Combine(int a, int b, int c)
    {
        ulong h = Mix((uint)a);
        h = Mix(h ^ (uint)b);
        h = Mix(h ^ (uint)c);
        return (int)(h & 0x7FFF_FFFF);  // Random(int) folds negative seeds onto positive ones
    }

    // SplitMix64's step and finaliser (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", 2014).
    private static ulong Mix(ulong z)
    {
        z += 0x9E37_79B9_7F4A_7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EBUL;
        return z ^ (z >> 31);
    }
}
