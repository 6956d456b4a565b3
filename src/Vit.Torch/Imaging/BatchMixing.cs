namespace Vit.Torch.Imaging;

/// <summary>
/// Batch-level mixing as in DeiT/timm: with probability <see cref="Probability"/> a batch is mixed, by CutMix
/// with probability <see cref="SwitchProbability"/> (when both are enabled) and otherwise by Mixup. Always
/// returns soft targets (B, classes) whose rows sum to 1, so the loss (F.CrossEntropy with probability targets)
/// is the same whether or not a batch was mixed.
/// </summary>
public sealed record BatchMixing
{
    /// <summary>Mixup's Beta(α, α) parameter; 0 disables Mixup. Default 0.8 (DeiT).</summary>
    public double MixupAlpha { get; init; } = 0.8;

    /// <summary>CutMix's Beta(α, α) parameter; 0 disables CutMix. Default 1.0 (DeiT).</summary>
    public double CutMixAlpha { get; init; } = 1.0;

    /// <summary>Probability that a batch is mixed at all. Default 1.</summary>
    public double Probability { get; init; } = 1.0;

    /// <summary>Probability of CutMix rather than Mixup when both are enabled. Default 0.5.</summary>
    public double SwitchProbability { get; init; } = 0.5;

    /// <summary>Label smoothing folded into the targets. Default 0.1 (DeiT).</summary>
    public double LabelSmoothing { get; init; } = 0.1;

    /// <summary>
    /// Mixes <paramref name="images"/> (float32 CPU (B, C, H, W)) in place and returns the soft targets for
    /// <paramref name="labels"/> (int64 (B)); the caller owns the returned tensor.
    /// </summary>
    public Tensor Apply(Tensor images, Tensor labels, int numClasses, Random rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if (MixupAlpha < 0 || CutMixAlpha < 0) throw new InvalidOperationException("mixing alphas must be >= 0");
        if (Probability is < 0 or > 1 || SwitchProbability is < 0 or > 1) throw new InvalidOperationException("probabilities must be in [0, 1]");
        bool mix = rng.NextDouble() < Probability;
        bool cut = rng.NextDouble() < SwitchProbability;
        if (!mix || (MixupAlpha == 0 && CutMixAlpha == 0)) return Augment.SoftTargets(labels, numClasses, LabelSmoothing);
        if (CutMixAlpha > 0 && (cut || MixupAlpha == 0)) return Augment.CutMix(images, labels, numClasses, rng, CutMixAlpha, LabelSmoothing);
        return Augment.Mixup(images, labels, numClasses, rng, MixupAlpha, LabelSmoothing);
    }
}
