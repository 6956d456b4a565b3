namespace Vit.Torch.Training;

/// <summary>
/// The one set of classification rules, for the trainer's evaluation and for scored data: the predicted class is the
/// highest score, the first in label order on ties; the label is in the top k when fewer than k classes score strictly
/// higher (ties count in the label's favour). A NaN score is lower than any number: it is never predicted, and a label
/// scored NaN is in no top k.
/// </summary>
public static class Classification
{
    /// <summary>The index of the highest score, the first in label order on ties (0 when every score is NaN).</summary>
    public static int ArgMax(ReadOnlySpan<float> scores)
    {
        if (scores.IsEmpty) throw new ArgumentException("no scores", nameof(scores));
        int best = 0;
        for (int c = 1; c < scores.Length; c++)
            if (scores[c] > scores[best] || (float.IsNaN(scores[best]) && !float.IsNaN(scores[c]))) best = c;
        return best;
    }

    /// <summary>Whether <paramref name="label"/> is among the <paramref name="k"/> highest scores: fewer than k classes
    /// score strictly higher than it.</summary>
    public static bool InTopK(ReadOnlySpan<float> scores, int label, int k)
    {
        if ((uint)label >= (uint)scores.Length) throw new ArgumentOutOfRangeException(nameof(label), label, $"{scores.Length} classes");
        if (float.IsNaN(scores[label])) return false;
        int higher = 0;
        for (int c = 0; c < scores.Length; c++) if (scores[c] > scores[label]) higher++;
        return higher < k;
    }
}
