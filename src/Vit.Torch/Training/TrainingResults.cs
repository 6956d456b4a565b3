namespace Vit.Torch.Training;

/// <summary>What one epoch did.</summary>
/// <param name="Epoch">1-based epoch number.</param>
/// <param name="TrainLoss">Mean training loss over the epoch.</param>
/// <param name="TrainAccuracy">Training accuracy over the epoch (with augmentation and dropout on).</param>
/// <param name="Evaluation">Held-out metrics, when an evaluation set was given.</param>
/// <param name="ImagesPerSecond">Training throughput of the epoch.</param>
/// <param name="Elapsed">Wall time since training started.</param>
/// <param name="LearningRate">Learning rate of the epoch's last step.</param>
public sealed record EpochResult(int Epoch, double TrainLoss, double TrainAccuracy, EvaluationResult? Evaluation,
    double ImagesPerSecond, TimeSpan Elapsed, double LearningRate)
{
    /// <summary>Held-out metrics of the exponential moving average of the weights, with <see cref="TrainerOptions.EmaDecay"/>.</summary>
    public EvaluationResult? EmaEvaluation { get; init; }
}

/// <summary>Progress of training, reported after every step.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Epochs">Planned epochs.</param>
/// <param name="Step">Steps done so far (1-based, over all epochs).</param>
/// <param name="TotalSteps">Planned steps.</param>
/// <param name="Loss">Loss of this step.</param>
/// <param name="Accuracy">Training accuracy of the epoch so far.</param>
/// <param name="LearningRate">Learning rate of this step.</param>
/// <param name="ImagesPerSecond">Training throughput of the epoch so far.</param>
/// <param name="Elapsed">Time since training started.</param>
/// <param name="Eta">Estimated time left for the planned steps (evaluation excluded).</param>
public sealed record VitTrainingProgress(int Epoch, int Epochs, long Step, long TotalSteps, double Loss, double Accuracy,
    double LearningRate, double ImagesPerSecond, TimeSpan Elapsed, TimeSpan Eta);

/// <summary>The metric early stopping watches on the evaluation set.</summary>
public enum EarlyStoppingMetric
{
    /// <summary>Top-1 accuracy (higher is better).</summary>
    Accuracy,
    /// <summary>Mean cross-entropy (lower is better).</summary>
    Loss,
}

/// <summary>Early stopping: stop after <paramref name="Patience"/> epochs without an improvement larger than
/// <paramref name="MinDelta"/> in <paramref name="Metric"/>; the best epoch's weights are restored.</summary>
public sealed record EarlyStopping(EarlyStoppingMetric Metric = EarlyStoppingMetric.Accuracy, int Patience = 3, double MinDelta = 0);

/// <summary>The outcome of <see cref="Trainer.Fit"/>.</summary>
/// <param name="Epochs">Per-epoch history.</param>
/// <param name="BestEpoch">Epoch whose weights the model holds when early stopping or cancellation restored the best one; otherwise the last epoch (0 when none finished).</param>
/// <param name="StoppedEarly">True when early stopping ended training.</param>
/// <param name="Cancelled">True when the cancellation token ended training.</param>
public sealed record TrainingResult(IReadOnlyList<EpochResult> Epochs, int BestEpoch, bool StoppedEarly, bool Cancelled)
{
    /// <summary>The checkpoint of the run's end (<c>last.safetensors</c>), when checkpoints were written.</summary>
    public string? LastCheckpoint { get; init; }

    /// <summary>The best epoch's weights (<c>best.safetensors</c>), when checkpoints and an evaluation set were used.</summary>
    public string? BestCheckpoint { get; init; }

    /// <summary>Where a resumed run took up: epochs done and batches done in the next one (null: started from scratch).</summary>
    public (int Epoch, int Batch)? ResumedAt { get; init; }

    /// <summary>Checkpoints this run wrote, and the wall time they took.</summary>
    public (int Count, TimeSpan Time) Checkpoints { get; init; }

    /// <summary>Wall time spent summing gradients over the ranks (<see cref="TrainerOptions.Distributed"/>; zero alone).</summary>
    public TimeSpan GradientSync { get; init; }
}

/// <summary>Classification metrics on a held-out set.</summary>
/// <param name="Count">Images evaluated.</param>
/// <param name="Loss">Mean cross-entropy (no smoothing).</param>
/// <param name="Accuracy">Top-1 accuracy.</param>
/// <param name="Top5Accuracy">Top-5 accuracy (top-k with k = min(5, classes)).</param>
public sealed record EvaluationResult(int Count, double Loss, double Accuracy, double Top5Accuracy);
