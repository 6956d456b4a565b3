using Vit.Torch.Model;

namespace Vit.Torch.Training;

/// <summary>
/// Calls into a run at the points tests need (to inject a failure, or to watch the steps), given to one trainer through
/// its internal constructor: nothing process-wide, so trainings on other threads never see them.
/// </summary>
internal sealed class TrainerHooks
{
    /// <summary>Called after every optimizer step with the step count and the 1-based epoch.</summary>
    public Action<long, int>? AfterStep { get; init; }

    /// <summary>Called with the model once its gradients are summed, before they are clipped and applied.</summary>
    public Action<VisionTransformer>? BeforeOptimizerStep { get; init; }
}
