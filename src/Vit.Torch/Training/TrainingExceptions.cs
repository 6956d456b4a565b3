namespace Vit.Torch.Training;

/// <summary>
/// Training stopped on an error. Nothing trained is lost: <see cref="LastGoodCheckpoint"/> names the checkpoint of the
/// last good step (<see cref="TrainerOptions.CheckpointDirectory"/>'s <c>last.safetensors</c>, or one written to
/// <see cref="TrainerOptions.RescueDirectory"/>), from which <see cref="TrainerOptions.Resume"/> continues, and which
/// <c>PretrainedVit.Load</c> or a fine-tune's <c>StartFrom</c> reads as a model. The original error is the
/// <see cref="Exception.InnerException"/>.
/// </summary>
public class TrainingFailedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TrainingFailedException(string message, string? lastGoodCheckpoint, Exception? inner = null) : base(message, inner) =>
        LastGoodCheckpoint = lastGoodCheckpoint;

    /// <summary>The checkpoint file of the last good step, or null when none could be written.</summary>
    public string? LastGoodCheckpoint { get; }
}

/// <summary>Thrown when the loss or the gradients stop being finite, before the bad step is applied: the model keeps its
/// last good weights, and <see cref="TrainingFailedException.LastGoodCheckpoint"/> holds them with the optimizer's state.</summary>
public sealed class TrainingDivergedException : TrainingFailedException
{
    /// <summary>Creates the exception.</summary>
    public TrainingDivergedException(string message, string? lastGoodCheckpoint = null) : base(message, lastGoodCheckpoint)
    {
    }
}
