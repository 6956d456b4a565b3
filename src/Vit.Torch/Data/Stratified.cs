namespace Vit.Torch.Data;

/// <summary>Stratified splitting: every key (class) keeps the same share in both parts.</summary>
public static class Stratified
{
    /// <summary>
    /// Splits the indices 0..keys.Count-1: for each key, in key order, its indices are shuffled with
    /// <paramref name="rng"/> and round(count x <paramref name="fraction"/>) of them are held out.
    /// Both lists come group by group, in shuffled order within a group.
    /// </summary>
    public static (List<int> Kept, List<int> HeldOut) Split<TKey>(IReadOnlyList<TKey> keys, double fraction, Random rng,
        IComparer<TKey>? comparer = null) where TKey : notnull
    {
        if (!(fraction > 0 && fraction < 1))
            throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "the held-out fraction must be in (0, 1)");
        var kept = new List<int>();
        var heldOut = new List<int>();
        foreach (var group in Enumerable.Range(0, keys.Count).GroupBy(i => keys[i]).OrderBy(g => g.Key, comparer ?? Comparer<TKey>.Default))
        {
            var items = group.ToArray();
            rng.Shuffle(items);
            int n = (int)Math.Round(items.Length * fraction);
            heldOut.AddRange(items.Take(n));
            kept.AddRange(items.Skip(n));
        }
        return (kept, heldOut);
    }
}
