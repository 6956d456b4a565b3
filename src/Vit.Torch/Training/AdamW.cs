
namespace Vit.Torch.Training;

/// <summary>
/// AdamW (Loshchilov &amp; Hutter, 2019) with decoupled weight decay, the same update as torch.optim.AdamW.
/// Following the ViT/DeiT recipe, biases, norms, the position embedding and the class token get no decay
/// (see <see cref="DecaysByDefault"/>). The update math runs in libtorch, in place, in one native call per step.
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly Tensor[] parameters;
    private readonly Tensor[] expAvg;
    private readonly Tensor[] expAvgSq;
    private readonly double[] weightDecay;
    private readonly double[] learningRateScale;

    /// <summary>Learning rate of the next step (a schedule sets it every step).</summary>
    public double LearningRate { get; set; }

    /// <summary>β1, β2.</summary>
    public (double Beta1, double Beta2) Betas { get; }

    /// <summary>ε added to the denominator.</summary>
    public double Eps { get; }

    /// <summary>Steps taken so far (the bias corrections depend on it).</summary>
    public long StepCount { get; private set; }

    /// <summary>The per-parameter state, in the order of <see cref="Groups"/>: the moving averages of the gradient and of
    /// its square. The optimizer owns these tensors; read them (e.g. to save a checkpoint), do not dispose them.</summary>
    public IReadOnlyList<(string Name, Tensor ExpAvg, Tensor ExpAvgSq)> State =>
        Groups.Select((g, i) => (g.Name, expAvg[i], expAvgSq[i])).ToList();

    /// <summary>
    /// Restores a state saved from <see cref="State"/> and <see cref="StepCount"/> (a resumed run continues exactly).
    /// Every parameter's moments must be given with its shape; everything is checked before anything is changed.
    /// </summary>
    /// <exception cref="ArgumentException">A moment is missing or has another shape; the message lists every problem.</exception>
    /// <param name="stepCount">The step count to continue from.</param>
    /// <param name="state">The moments by parameter name.</param>
    /// <param name="missingStartAfresh">Parameters without moments start with zeros (a continued run that trains what
    /// the saved one froze) instead of being an error.</param>
    public void LoadState(long stepCount, IReadOnlyDictionary<string, (Tensor ExpAvg, Tensor ExpAvgSq)> state, bool missingStartAfresh = false)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (stepCount < 0) throw new ArgumentOutOfRangeException(nameof(stepCount), stepCount, "the step count cannot be negative");
        var problems = new List<string>();
        for (int i = 0; i < parameters.Length; i++)
        {
            var name = Groups[i].Name;
            if (!state.TryGetValue(name, out var s))
            {
                if (!missingStartAfresh) problems.Add($"{name}: no optimizer state");
            }
            else if (!s.ExpAvg.Shape.AsSpan().SequenceEqual(parameters[i].Shape) || !s.ExpAvgSq.Shape.AsSpan().SequenceEqual(parameters[i].Shape))
                problems.Add($"{name}: optimizer state of shape {Checkpoints.Safetensors.FormatShape(s.ExpAvg.Shape)}, the parameter is {Checkpoints.Safetensors.FormatShape(parameters[i].Shape)}");
        }
        foreach (var name in state.Keys.Except(Groups.Select(g => g.Name)))
            problems.Add($"{name}: optimizer state for a parameter that is not trained");
        if (problems.Count > 0)
            throw new ArgumentException($"the optimizer state does not fit: {string.Join("; ", problems)}", nameof(state));
        for (int i = 0; i < parameters.Length; i++)
        {
            if (!state.TryGetValue(Groups[i].Name, out var s))
            {
                expAvg[i].Fill(0);
                expAvgSq[i].Fill(0);
                continue;
            }
            expAvg[i].CopyFrom(s.ExpAvg);
            expAvgSq[i].CopyFrom(s.ExpAvgSq);
        }
        StepCount = stepCount;
    }

    /// <summary>The parameters, with their names, weight decay and learning-rate scale, in the order the optimizer holds them.</summary>
    public IReadOnlyList<(string Name, Tensor Parameter, double WeightDecay, double LearningRateScale)> Groups { get; }

    /// <summary>
    /// Creates the optimizer over named parameters. Parameters whose <see cref="Tensor.RequiresGrad"/> is false
    /// (frozen) are left out. <paramref name="decays"/> decides per name whether weight decay applies
    /// (default <see cref="DecaysByDefault"/>). <paramref name="learningRateScale"/> gives a parameter's multiplier of
    /// the learning rate (default 1; e.g. <see cref="LayerDecay"/>), which scales its weight decay too, as a
    /// torch.optim parameter group's own lr does.
    /// </summary>
    public AdamW(IEnumerable<(string Name, Tensor Parameter)> namedParameters, double learningRate = TrainerOptions.Defaults.LearningRate,
        double weightDecay = TrainerOptions.Defaults.WeightDecay, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        Func<string, Tensor, bool>? decays = null, Func<string, double>? learningRateScale = null)
    {
        if (!(learningRate >= 0)) throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "learning rate must be >= 0");
        if (!(weightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "weight decay must be >= 0");
        if (!(beta1 >= 0 && beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(beta1), beta1, "beta1 must be in [0, 1)");
        if (!(beta2 >= 0 && beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(beta2), beta2, "beta2 must be in [0, 1)");
        if (!(eps > 0)) throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be > 0");
        decays ??= DecaysByDefault;
        var groups = namedParameters.Where(p => p.Parameter.RequiresGrad)
            .Select(p => (p.Name, p.Parameter, decays(p.Name, p.Parameter) ? weightDecay : 0.0, learningRateScale?.Invoke(p.Name) ?? 1.0))
            .ToList();
        foreach (var g in groups)
            if (!(g.Item4 >= 0 && double.IsFinite(g.Item4)))
                throw new ArgumentOutOfRangeException(nameof(learningRateScale), g.Item4, $"the learning-rate scale of {g.Name} must be finite and >= 0");
        Groups = groups;
        parameters = groups.Select(g => g.Parameter).ToArray();
        this.weightDecay = groups.Select(g => g.Item3).ToArray();
        this.learningRateScale = groups.Select(g => g.Item4).ToArray();
        expAvg = new Tensor[parameters.Length];
        expAvgSq = new Tensor[parameters.Length];
        for (int i = 0; i < parameters.Length; i++)
        {
            var p = parameters[i];
            expAvg[i] = Tensor.Zeros(p.Shape, p.DType, p.Device).DetachFromScope();
            expAvgSq[i] = Tensor.Zeros(p.Shape, p.DType, p.Device).DetachFromScope();
        }
        LearningRate = learningRate;
        Betas = (beta1, beta2);
        Eps = eps;
    }

    /// <summary>The parameters this optimizer updates, in its order.</summary>
    internal IReadOnlyList<Tensor> Parameters => parameters;

    /// <summary>
    /// The ViT/DeiT convention: decay matrices and kernels only; no decay on 1-d parameters (biases, LayerNorm
    /// scales and shifts) nor on the position embedding and class token.
    /// </summary>
    public static bool DecaysByDefault(string name, Tensor parameter)
    {
        var last = name[(name.LastIndexOf('.') + 1)..];
        if (last is "pos_embed" or "cls_token" or "bias") return false;
        return parameter.Dim > 1;
    }

    /// <summary>
    /// Layer-wise learning-rate decay for a ViT (BEiT, Bao et al. 2021; used by MAE and timm fine-tuning): the scale of
    /// a parameter is decay^(depth + 1 - layer), where the layer is 0 for the patch embedding, class token and position
    /// embedding, i + 1 for <c>blocks.i</c>, and depth + 1 (scale 1) for the final norm and the head. Names are ours
    /// (timm's).
    /// </summary>
    public static Func<string, double> LayerDecay(double decay, int depth)
    {
        if (!(decay > 0 && decay <= 1)) throw new ArgumentOutOfRangeException(nameof(decay), decay, "layer decay must be in (0, 1]");
        if (depth < 0) throw new ArgumentOutOfRangeException(nameof(depth), depth, "depth must be >= 0");
        return name =>
        {
            int layer;
            if (name.StartsWith("patch_embed.", StringComparison.Ordinal) || name is "cls_token" or "pos_embed") layer = 0;
            else if (name.StartsWith("blocks.", StringComparison.Ordinal)) layer = int.Parse(name.AsSpan(7, name.IndexOf('.', 7) - 7)) + 1;
            else layer = depth + 1;
            return Math.Pow(decay, depth + 1 - layer);
        };
    }

    /// <summary>Applies one update to every parameter that has a gradient.</summary>
    public void Step()
    {
        StepCount++;
        double bc1 = 1.0 - Math.Pow(Betas.Beta1, StepCount), bc2Sqrt = Math.Sqrt(1.0 - Math.Pow(Betas.Beta2, StepCount));
        Tensor.Do(() =>
        {
            using var noGrad = TorchSharp.torch.no_grad();
            for (int i = 0; i < parameters.Length; i++)
            {
                var p = parameters[i].Native;
                using var g = p.grad;
                if (g is null) continue;
                var (m, v) = (expAvg[i].Native, expAvgSq[i].Native);
                if (!g.shape.SequenceEqual(p.shape) || !m.shape.SequenceEqual(p.shape) || !v.shape.SequenceEqual(p.shape)
                    || g.dtype != p.dtype || m.dtype != p.dtype || v.dtype != p.dtype)
                    throw new TorchException($"AdamW: the gradient or a moment of parameter {i} differs from it in shape or dtype");
                double lr = LearningRate * learningRateScale[i];
                // Decoupled weight decay (Loshchilov & Hutter 2019), then Adam's moments and bias-corrected step.
                // Every Scalar made and kept alive across its call (see Tensor.WithScalar).
                Tensor.WithScalar(1.0 - lr * weightDecay[i], decay => p.mul_(decay));
                Tensor.WithScalars(Betas.Beta1, 1.0 - Betas.Beta1, (b, rest) => m.mul_(b).add_(g, rest));
                Tensor.WithScalars(Betas.Beta2, 1.0 - Betas.Beta2, (b, rest) => v.mul_(b).addcmul_(g, g, rest));
                using var denom = v.sqrt();
                Tensor.WithScalars(bc2Sqrt, Eps, (c, e) => denom.div_(c).add_(e, Tensor.One));
                Tensor.WithScalar(-lr / bc1, size => p.addcdiv_(m, denom, size));
            }
        });
    }

    /// <summary>Drops every parameter's gradient (set to none, as PyTorch's default).</summary>
    public void ZeroGrad()
    {
        foreach (var p in parameters) p.ZeroGrad();
    }

    /// <summary>
    /// The total L2 norm of all gradients; when <paramref name="maxNorm"/> &gt; 0 and the norm exceeds it, scales
    /// the gradients down to it (torch.nn.utils.clip_grad_norm_). Returns the norm before clipping.
    /// </summary>
    public double ClipGradNorm(double maxNorm)
    {
        double total = 0;
        Tensor.Do(() =>
        {
            using var noGrad = TorchSharp.torch.no_grad();
            var grads = new List<TorchSharp.torch.Tensor>();
            try
            {
                foreach (var p in parameters)
                    if (p.Native.grad is { } g) grads.Add(g);
                if (grads.Count == 0) return;
                var norms = grads.Select(g => g.norm(2f).to_type(TorchSharp.torch.ScalarType.Float64, disposeAfter: true)).ToArray();
                using (var stacked = TorchSharp.torch.stack(norms))
                using (var norm = stacked.norm(2f))
                    total = norm.item<double>();
                foreach (var n in norms) n.Dispose();
                if (maxNorm > 0 && double.IsFinite(total))
                {
                    double coef = maxNorm / (total + 1e-6);
                    if (coef < 1.0)
                        Tensor.WithScalar(coef, c =>
                        {
                            foreach (var g in grads) g.mul_(c);
                            return 0;
                        });
                }
            }
            finally
            {
                foreach (var g in grads) g.Dispose();
            }
        });
        return total;
    }

    /// <summary>Frees the moment buffers.</summary>
    public void Dispose()
    {
        foreach (var t in expAvg) t.Dispose();
        foreach (var t in expAvgSq) t.Dispose();
    }
}
