namespace Vit.Torch.Training;

/// <summary>Thrown when the loss or the gradients stop being finite; the model keeps its last good weights.</summary>
public sealed class TrainingDivergedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TrainingDivergedException(string message) : base(message)
    {
    }
}
