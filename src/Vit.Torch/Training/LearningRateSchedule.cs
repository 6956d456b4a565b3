namespace Vit.Torch.Training;

/// <summary>Shapes of the learning rate after warmup.</summary>
public enum ScheduleKind
{
    /// <summary>Half-cosine from the peak down to the minimum (Loshchilov &amp; Hutter, SGDR), as in ViT/DeiT.</summary>
    Cosine,
    /// <summary>Linear decay from the peak to the minimum.</summary>
    Linear,
    /// <summary>Constant at the peak.</summary>
    Constant,
}

/// <summary>
/// Linear warmup from 0 to the peak over <see cref="WarmupSteps"/>, then a decay to <see cref="MinLearningRate"/>
/// at <see cref="TotalSteps"/>. A pure function of the step, so a resumed run continues exactly.
/// </summary>
public sealed record LearningRateSchedule(double PeakLearningRate, long TotalSteps, long WarmupSteps = 0,
    double MinLearningRate = 0, ScheduleKind Kind = ScheduleKind.Cosine)
{
    /// <summary>The learning rate for step (0-based) <paramref name="step"/>.</summary>
    public double At(long step)
    {
        if (TotalSteps <= 0) throw new InvalidOperationException("the schedule needs at least one step");
        if (step < WarmupSteps) return PeakLearningRate * (step + 1) / WarmupSteps;
        if (Kind == ScheduleKind.Constant) return PeakLearningRate;
        long decaySteps = Math.Max(1, TotalSteps - WarmupSteps);
        double t = Math.Clamp((double)(step - WarmupSteps) / decaySteps, 0, 1);
        double factor = Kind == ScheduleKind.Cosine ? 0.5 * (1 + Math.Cos(Math.PI * t)) : 1 - t;
        return MinLearningRate + (PeakLearningRate - MinLearningRate) * factor;
    }
}
