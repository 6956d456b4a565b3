using Vit.Torch.Model;

namespace Vit.Torch.Tests;

/// <summary>
/// Checks autograd against central finite differences, in float64 on tiny shapes. The loss is
/// L = Σ_k Σ (output_k ⊙ W_k) with fixed random W_k, so every output element matters with its own weight.
/// The reference side evaluates L from the forward values alone (the dot product is done in C#), so it does
/// not depend on any backward formula.
/// </summary>
internal static class GradCheck
{
    /// <summary>Finite-difference step. In float64 the rounding error of the quotient is ~1e-16·|L|/eps ≈ 1e-10
    /// and the truncation error eps²·L'''/6 ≈ 1e-13, both far below the tolerance.</summary>
    public const double Eps = 1e-6;

    /// <summary>Allowed |autograd - numeric| ≤ Atol + Rtol·max(|autograd|, |numeric|).</summary>
    public const double Atol = 1e-6, Rtol = 1e-6;

    /// <summary>One differentiable input: row-major values and a shape.</summary>
    public sealed record Input(double[] Data, long[] Shape);

    /// <summary>Checks a function with one output.</summary>
    public static void Check(Func<Tensor[], Tensor> f, params Input[] inputs) => Check(xs => [f(xs)], inputs);

    /// <summary>
    /// Checks d L / d input for every element of every input of <paramref name="f"/>: autograd (Backward, then
    /// Grad) against (L(x + eps) - L(x - eps)) / 2eps, rebuilding the perturbed input from a double[].
    /// </summary>
    public static void Check(Func<Tensor[], Tensor[]> f, params Input[] inputs)
    {
        var analytic = new double[inputs.Length][];
        double[][] weights;
        using (TensorScope.Begin())
        {
            var xs = Build(inputs, -1, -1, 0);
            foreach (var x in xs) x.RequiresGrad = true;
            var outs = f(xs);
            Assert.IsNotEmpty(outs, "the function produced no output");
            var rng = new Random(20240607);
            weights = new double[outs.Length][];
            Tensor? loss = null;
            for (int k = 0; k < outs.Length; k++)
            {
                Assert.AreEqual(DType.Float64, outs[k].DType, $"output {k} is not float64, so the check would lose precision");
                var w = new double[outs[k].NumElements];
                for (int j = 0; j < w.Length; j++) w[j] = 2 * rng.NextDouble() - 1;
                weights[k] = w;
                var term = (outs[k] * Tensor.FromArray(w, outs[k].Shape)).Sum();
                loss = loss is null ? term : loss + term;
            }
            loss!.Backward();
            for (int i = 0; i < inputs.Length; i++)
            {
                var g = xs[i].Grad();
                Assert.IsNotNull(g, $"input {i} received no gradient");
                CollectionAssert.AreEqual(inputs[i].Shape, g.Shape, $"gradient of input {i} has the wrong shape");
                analytic[i] = g.ToArray<double>();
            }
        }

        var failures = new List<string>();
        int checkedCount = 0;
        using (Torch.NoGrad())
        {
            for (int i = 0; i < inputs.Length; i++)
                for (int j = 0; j < inputs[i].Data.Length; j++)
                {
                    double x0 = inputs[i].Data[j];
                    double up = x0 + Eps, down = x0 - Eps;
                    double numeric = (Loss(f, inputs, weights, i, j, up) - Loss(f, inputs, weights, i, j, down)) / (up - down);
                    double a = analytic[i][j];
                    checkedCount++;
                    if (!(Math.Abs(a - numeric) <= Atol + Rtol * Math.Max(Math.Abs(a), Math.Abs(numeric))))
                        failures.Add($"input {i} element {j}: autograd {a:R}, finite difference {numeric:R}");
                }
        }
        if (failures.Count > 0)
            Assert.Fail($"{failures.Count} of {checkedCount} gradient elements differ:\n" + string.Join("\n", failures.Take(10)));
    }

    // Σ_k Σ_j output_k[j] · W_k[j], evaluated in C# from the forward values only.
    private static double Loss(Func<Tensor[], Tensor[]> f, Input[] inputs, double[][] weights, int which, int element, double value)
    {
        using var scope = TensorScope.Begin();
        var outs = f(Build(inputs, which, element, value));
        Assert.HasCount(weights.Length, outs);
        double loss = 0;
        for (int k = 0; k < outs.Length; k++)
        {
            var y = outs[k].ToArray<double>();
            Assert.HasCount(weights[k].Length, y);
            for (int j = 0; j < y.Length; j++) loss += y[j] * weights[k][j];
        }
        return loss;
    }

    // Fresh float64 tensors from the inputs; element `element` of input `which` is replaced by `value`.
    private static Tensor[] Build(Input[] inputs, int which, int element, double value)
    {
        var xs = new Tensor[inputs.Length];
        for (int i = 0; i < inputs.Length; i++)
        {
            var data = inputs[i].Data;
            if (i == which)
            {
                data = (double[])data.Clone();
                data[element] = value;
            }
            xs[i] = Tensor.FromArray(data, inputs[i].Shape);
        }
        return xs;
    }
}

[TestClass]
public sealed class GradientTests
{
    // A new instance per test: each test draws the same values whatever order the tests run in.
    private readonly Random rng = new(12345);

    private static long Count(long[] shape) => shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Uniform values in [lo, hi).</summary>
    private GradCheck.Input U(long[] shape, double lo = -1, double hi = 1)
    {
        var d = new double[Count(shape)];
        for (int i = 0; i < d.Length; i++) d[i] = lo + (hi - lo) * rng.NextDouble();
        return new(d, shape);
    }

    /// <summary>Values with |v| in [min, max) and a random sign: away from 0, where |x| and relu have a kink.</summary>
    private GradCheck.Input AwayFromZero(long[] shape, double min = 0.2, double max = 1.5)
    {
        var d = new double[Count(shape)];
        for (int i = 0; i < d.Length; i++) d[i] = (rng.Next(2) == 0 ? -1 : 1) * (min + (max - min) * rng.NextDouble());
        return new(d, shape);
    }

    private static GradCheck.Input Values(long[] shape, params double[] data) => new(data, shape);

    // ------------------------------------------------------------------ the checker itself can fail

    [TestMethod]
    public void GradCheck_DetectsAWrongGradient()
    {
        // x ⊙ detach(x): autograd sees only one factor (gradient x), the true derivative of x² is 2x.
        var e = Assert.ThrowsExactly<AssertFailedException>(() =>
            GradCheck.Check(xs => xs[0] * xs[0].Detach(), U([2, 3], 0.5, 1.5)));
        Assert.Contains("differ", e.Message);
    }

    [TestMethod]
    public void GradCheck_DetectsAnInputWithoutGradient()
    {
        Assert.ThrowsExactly<AssertFailedException>(() =>
            GradCheck.Check(xs => xs[0] * 2.0 + xs[1].Detach(), U([2, 3]), U([2, 3])));
    }

    // ------------------------------------------------------------------ arithmetic

    [TestMethod]
    public void Add_SameShape() => GradCheck.Check(xs => xs[0] + xs[1], U([2, 3]), U([2, 3]));

    [TestMethod]
    public void Add_BroadcastsRowVector() => GradCheck.Check(xs => xs[0] + xs[1], U([2, 3]), U([3]));

    [TestMethod]
    public void Add_BroadcastsColumnAgainstRow() => GradCheck.Check(xs => xs[0] + xs[1], U([2, 1]), U([1, 3]));

    [TestMethod]
    public void Sub_SameShape() => GradCheck.Check(xs => xs[0] - xs[1], U([2, 3]), U([2, 3]));

    [TestMethod]
    public void Sub_Broadcasts() => GradCheck.Check(xs => xs[0] - xs[1], U([3]), U([2, 3]));

    [TestMethod]
    public void Mul_SameShape() => GradCheck.Check(xs => xs[0] * xs[1], U([2, 3]), U([2, 3]));

    [TestMethod]
    public void Mul_Broadcasts() => GradCheck.Check(xs => xs[0] * xs[1], U([2, 3]), U([2, 1]));

    [TestMethod]
    public void Mul_SameTensorTwice() => GradCheck.Check(xs => xs[0] * xs[0], U([2, 3]));

    [TestMethod]
    public void Div_SameShape() => GradCheck.Check(xs => xs[0] / xs[1], U([2, 3]), AwayFromZero([2, 3], 0.5, 2));

    [TestMethod]
    public void Div_Broadcasts() => GradCheck.Check(xs => xs[0] / xs[1], U([2, 3]), AwayFromZero([3], 0.5, 2));

    [TestMethod]
    public void ScalarPlusAndPlusScalar() => GradCheck.Check(xs => [xs[0] + 2.5, 1.5 + xs[0]], U([2, 3]));

    [TestMethod]
    public void MinusScalar() => GradCheck.Check(xs => xs[0] - 2.5, U([2, 3]));

    [TestMethod]
    public void ScalarMinusTensor() => GradCheck.Check(xs => 2.5 - xs[0], U([2, 3]));

    [TestMethod]
    public void TimesScalarAndScalarTimes() => GradCheck.Check(xs => [xs[0] * 2.5, -0.75 * xs[0]], U([2, 3]));

    [TestMethod]
    public void DivideByScalar() => GradCheck.Check(xs => xs[0] / 2.5, U([2, 3]));

    [TestMethod]
    public void UnaryMinus() => GradCheck.Check(xs => -xs[0], U([2, 3]));

    // ------------------------------------------------------------------ matrix products

    [TestMethod]
    public void MatMul_Matrices() => GradCheck.Check(xs => xs[0].MatMul(xs[1]), U([2, 3]), U([3, 4]));

    [TestMethod]
    public void MatMul_BatchedBroadcastsTheRightOperand() =>
        GradCheck.Check(xs => xs[0].MatMul(xs[1]), U([2, 2, 3]), U([3, 2]));

    [TestMethod]
    public void MatMul_VectorTimesMatrix() => GradCheck.Check(xs => xs[0].MatMul(xs[1]), U([3]), U([3, 2]));

    [TestMethod]
    public void Bmm() => GradCheck.Check(xs => xs[0].Bmm(xs[1]), U([2, 2, 3]), U([2, 3, 2]));

    // ------------------------------------------------------------------ elementwise functions

    [TestMethod]
    public void Pow_Square() => GradCheck.Check(xs => xs[0].Pow(2), U([2, 3]));

    [TestMethod]
    public void Pow_Cube() => GradCheck.Check(xs => xs[0].Pow(3), U([2, 3]));

    [TestMethod]
    public void Pow_FractionalOfPositive() => GradCheck.Check(xs => xs[0].Pow(1.5), U([2, 3], 0.3, 2));

    [TestMethod]
    public void Pow_NegativeExponent() => GradCheck.Check(xs => xs[0].Pow(-2), AwayFromZero([2, 3], 0.5, 2));

    [TestMethod]
    public void Exp() => GradCheck.Check(xs => xs[0].Exp(), U([2, 3], -2, 2));

    [TestMethod]
    public void Log_OfPositive() => GradCheck.Check(xs => xs[0].Log(), U([2, 3], 0.2, 3));

    [TestMethod]
    public void Sqrt_OfPositive() => GradCheck.Check(xs => xs[0].Sqrt(), U([2, 3], 0.2, 3));

    [TestMethod]
    public void Tanh() => GradCheck.Check(xs => xs[0].Tanh(), U([2, 3], -2, 2));

    [TestMethod]
    public void Abs_AwayFromZero() => GradCheck.Check(xs => xs[0].Abs(), AwayFromZero([2, 3]));

    [TestMethod]
    public void Erf() => GradCheck.Check(xs => xs[0].Erf(), U([2, 3], -2, 2));

    [TestMethod]
    public void Floor_HasZeroGradientBetweenIntegers() =>
        GradCheck.Check(xs => xs[0].Floor(), Values([2, 3], -1.5, -0.3, 0.2, 0.7, 1.4, 2.6));

    [TestMethod]
    public void Clamp_InsideAndOutsideTheBounds() =>
        // Two values below, two inside, two above [-0.5, 0.5]; none within eps of a bound.
        GradCheck.Check(xs => xs[0].Clamp(-0.5, 0.5), Values([2, 3], -0.9, 0.7, -0.3, 0.2, -0.6, 1.1));

    [TestMethod]
    public void Maximum_GradientGoesToTheLargerInput()
    {
        var a = U([2, 3]);
        var b = a.Data.Select((v, i) => v + (i % 2 == 0 ? 0.3 : -0.4)).ToArray();  // no ties
        GradCheck.Check(xs => xs[0].Maximum(xs[1]), a, Values([2, 3], b));
    }

    [TestMethod]
    public void Where_RoutesGradientByCondition()
    {
        using var cond = Tensor.FromArray(new[] { true, false, false, true, true, false }, 2, 3);
        GradCheck.Check(xs => Tensor.Where(cond, xs[0], xs[1]), U([2, 3]), U([2, 3]));
    }

    // ------------------------------------------------------------------ reductions

    [TestMethod]
    public void Sum_All() => GradCheck.Check(xs => xs[0].Sum(), U([2, 3]));

    [TestMethod]
    public void Sum_OverOneDim() => GradCheck.Check(xs => xs[0].Sum(1), U([2, 3]));

    [TestMethod]
    public void Sum_OverTwoDimsKeepDim() => GradCheck.Check(xs => xs[0].Sum([0, 2], keepDim: true), U([2, 3, 2]));

    [TestMethod]
    public void Mean_All() => GradCheck.Check(xs => xs[0].Mean(), U([2, 3]));

    [TestMethod]
    public void Mean_OverOneDim() => GradCheck.Check(xs => xs[0].Mean(0), U([2, 3]));

    [TestMethod]
    public void Mean_OverTwoDimsKeepDim() => GradCheck.Check(xs => xs[0].Mean([1, 2], keepDim: true), U([2, 3, 2]));

    [TestMethod]
    public void Max_ValuesAlongDim() => GradCheck.Check(xs => xs[0].Max(1).Values, U([2, 3]));

    [TestMethod]
    public void TopK_Values() => GradCheck.Check(xs => xs[0].TopK(2, -1).Values, U([2, 4]));

    // ------------------------------------------------------------------ shape and indexing

    [TestMethod]
    public void Reshape() => GradCheck.Check(xs => xs[0].Reshape(3, -1), U([2, 3]));

    [TestMethod]
    public void Reshape_OfTransposed() => GradCheck.Check(xs => xs[0].Transpose(0, 1).Reshape(6), U([2, 3]));

    [TestMethod]
    public void View() => GradCheck.Check(xs => xs[0].View(-1, 2), U([2, 3]));

    [TestMethod]
    public void Permute() => GradCheck.Check(xs => xs[0].Permute(2, 0, 1), U([2, 3, 2]));

    [TestMethod]
    public void Transpose() => GradCheck.Check(xs => xs[0].Transpose(0, 2), U([2, 3, 2]));

    [TestMethod]
    public void Expand_SizeOneDims() => GradCheck.Check(xs => xs[0].Expand(2, 3), U([2, 1]));

    [TestMethod]
    public void Expand_NewLeadingDimKeepingSizes() => GradCheck.Check(xs => xs[0].Expand(2, -1), U([1, 3]));

    [TestMethod]
    public void Flatten_Range() => GradCheck.Check(xs => xs[0].Flatten(0, 1), U([2, 2, 3]));

    [TestMethod]
    public void Flatten_All() => GradCheck.Check(xs => xs[0].Flatten(), U([2, 2, 3]));

    [TestMethod]
    public void Unsqueeze() => GradCheck.Check(xs => [xs[0].Unsqueeze(1), xs[0].Unsqueeze(-1)], U([2, 3]));

    [TestMethod]
    public void Squeeze() => GradCheck.Check(xs => xs[0].Squeeze(1), U([2, 1, 3]));

    [TestMethod]
    public void Slice_WithStep() => GradCheck.Check(xs => xs[0].Slice(1, 0, 3, 2), U([2, 3]));

    [TestMethod]
    public void Slice_Rows() => GradCheck.Check(xs => xs[0].Slice(0, 1, 3), U([3, 2]));

    [TestMethod]
    public void Select() => GradCheck.Check(xs => [xs[0].Select(1, 2), xs[0].Select(0, -1)], U([2, 3]));

    [TestMethod]
    public void IndexSelect_WithRepeatedIndexAccumulates()
    {
        using var index = Tensor.FromArray(new long[] { 2, 0, 2 }, 3);
        GradCheck.Check(xs => xs[0].IndexSelect(1, index), U([2, 3]));
    }

    [TestMethod]
    public void Gather()
    {
        using var index = Tensor.FromArray(new long[] { 0, 0, 2, 1, 2, 1 }, 2, 3);
        GradCheck.Check(xs => xs[0].Gather(1, index), U([2, 3]));
    }

    [TestMethod]
    public void Cat_AlongColumns() => GradCheck.Check(xs => Tensor.Cat(xs, 1), U([2, 3]), U([2, 2]));

    [TestMethod]
    public void Cat_AlongRows() => GradCheck.Check(xs => Tensor.Cat(xs, 0), U([2, 3]), U([1, 3]));

    [TestMethod]
    public void Stack() => GradCheck.Check(xs => Tensor.Stack(xs, 1), U([2, 3]), U([2, 3]), U([2, 3]));

    [TestMethod]
    public void Chunk_EveryChunkCarriesGradient() => GradCheck.Check(xs => xs[0].Chunk(3, 1), U([2, 6]));

    [TestMethod]
    public void CloneAndContiguous() =>
        GradCheck.Check(xs => [xs[0].Clone(), xs[0].Transpose(0, 1).Contiguous()], U([2, 3]));

    // ------------------------------------------------------------------ neural-network functions

    [TestMethod]
    public void Linear_WithBias_GradientsForInputWeightAndBias() =>
        GradCheck.Check(xs => F.Linear(xs[0], xs[1], xs[2]), U([2, 3]), U([4, 3]), U([4]));

    [TestMethod]
    public void Linear_WithoutBias() => GradCheck.Check(xs => F.Linear(xs[0], xs[1]), U([2, 3]), U([4, 3]));

    [TestMethod]
    public void Linear_OnTokens() =>
        GradCheck.Check(xs => F.Linear(xs[0], xs[1], xs[2]), U([2, 2, 3]), U([4, 3]), U([4]));

    [TestMethod]
    public void Conv2d_PatchEmbeddingStride() =>
        // kernel = stride = 2, as a patch embedding with P = 2: (2, 2, 4, 4) -> (2, 3, 2, 2).
        GradCheck.Check(xs => F.Conv2d(xs[0], xs[1], xs[2], (2, 2)), U([2, 2, 4, 4]), U([3, 2, 2, 2]), U([3]));

    [TestMethod]
    public void Conv2d_PaddedWithoutBias() =>
        GradCheck.Check(xs => F.Conv2d(xs[0], xs[1], null, (1, 1), (1, 1)), U([1, 2, 3, 3]), U([2, 2, 3, 3]));

    [TestMethod]
    public void LayerNorm_GradientsForInputWeightAndBias() =>
        GradCheck.Check(xs => F.LayerNorm(xs[0], [5], xs[1], xs[2]), U([2, 5], -2, 2), U([5], 0.5, 1.5), U([5]));

    [TestMethod]
    public void LayerNorm_OverTwoTrailingDims() =>
        GradCheck.Check(xs => F.LayerNorm(xs[0], [2, 3], xs[1], xs[2], 1e-5), U([2, 2, 3], -2, 2), U([2, 3]), U([2, 3]));

    [TestMethod]
    public void LayerNorm_WithoutAffine() => GradCheck.Check(xs => F.LayerNorm(xs[0], [4], null, null), U([3, 4], -2, 2));

    [TestMethod]
    public void Gelu() => GradCheck.Check(xs => F.Gelu(xs[0]), U([2, 3], -3, 3));

    [TestMethod]
    public void Relu_AwayFromZero() => GradCheck.Check(xs => F.Relu(xs[0]), AwayFromZero([2, 3]));

    [TestMethod]
    public void Softmax_LastDim() => GradCheck.Check(xs => F.Softmax(xs[0], -1), U([2, 3], -2, 2));

    [TestMethod]
    public void Softmax_FirstDim() => GradCheck.Check(xs => F.Softmax(xs[0], 0), U([2, 3], -2, 2));

    [TestMethod]
    public void LogSoftmax() => GradCheck.Check(xs => F.LogSoftmax(xs[0], 1), U([2, 3], -2, 2));

    [TestMethod]
    public void SelfAttention_FusedNode() =>
        // (B 2, N 3, 3D 12) with 2 heads of 2: the one autograd node of F.SelfAttention against finite differences.
        GradCheck.Check(xs => F.SelfAttention(xs[0], 2, 0.7, 0, false, out _, false), U([2, 3, 12], -2, 2));

    [TestMethod]
    public void SelfAttention_FusedNodeWithDropout() =>
        // The same seed before every evaluation draws the same dropout mask, so the finite differences see one function.
        GradCheck.Check(xs =>
        {
            Torch.ManualSeed(31);
            return F.SelfAttention(xs[0], 2, 0.7, 0.4, true, out _, false);
        }, U([2, 3, 12], -2, 2));

    [TestMethod]
    public void Dropout_ZeroProbabilityInTrainingIsIdentity() => GradCheck.Check(xs => F.Dropout(xs[0], 0, training: true), U([2, 3]));

    [TestMethod]
    public void Dropout_NotTrainingIsIdentity() => GradCheck.Check(xs => F.Dropout(xs[0], 0.5, training: false), U([2, 3]));

    [TestMethod]
    public void DropPath_EvalIsIdentity() => GradCheck.Check(xs => DropPath.Apply(xs[0], 0.3, training: false), U([2, 2, 3]));

    [TestMethod]
    public void DropPath_ZeroRateInTrainingIsIdentity() => GradCheck.Check(xs => DropPath.Apply(xs[0], 0, training: true), U([2, 2, 3]));

    [TestMethod]
    public void CrossEntropy_ClassIndices()
    {
        using var target = Tensor.FromArray(new long[] { 1, 0, 3 }, 3);
        GradCheck.Check(xs => F.CrossEntropy(xs[0], target), U([3, 4], -2, 2));
    }

    [TestMethod]
    public void CrossEntropy_ClassIndicesWithLabelSmoothing()
    {
        using var target = Tensor.FromArray(new long[] { 1, 0, 3 }, 3);
        GradCheck.Check(xs => F.CrossEntropy(xs[0], target, labelSmoothing: 0.1), U([3, 4], -2, 2));
    }

    [TestMethod]
    public void CrossEntropy_ClassIndicesPerSampleAndSum()
    {
        using var target = Tensor.FromArray(new long[] { 2, 2, 0 }, 3);
        GradCheck.Check(xs => [F.CrossEntropy(xs[0], target, 0.1, F.Reduction.None), F.CrossEntropy(xs[0], target, 0, F.Reduction.Sum)],
            U([3, 4], -2, 2));
    }

    [TestMethod]
    public void CrossEntropy_SoftTargets_GradientsForLogitsAndTargets()
    {
        // Rows of the target are probabilities (as mixup makes them); the loss is linear in the target.
        var t = U([3, 4], 0.1, 1);
        for (int r = 0; r < 3; r++)
        {
            double s = 0;
            for (int c = 0; c < 4; c++) s += t.Data[r * 4 + c];
            for (int c = 0; c < 4; c++) t.Data[r * 4 + c] /= s;
        }
        GradCheck.Check(xs => F.CrossEntropy(xs[0], xs[1]), U([3, 4], -2, 2), t);
    }

    // ------------------------------------------------------------------ values against formulas

    [TestMethod]
    public void ReferenceErf_MatchesTabulatedValues()
    {
        // Known values to 16 digits (as C99 erf gives them, e.g. via Python math.erf); the series sums ~30 terms, so allow a few ulp.
        Assert.AreEqual(0.5204998778130465, ReferenceMath.Erf(0.5), 1e-15);
        Assert.AreEqual(0.8427007929497149, ReferenceMath.Erf(1), 1e-15);
        Assert.AreEqual(0.9953222650189527, ReferenceMath.Erf(2), 1e-15);
        Assert.AreEqual(0.9999779095030014, ReferenceMath.Erf(3), 1e-15);
        Assert.AreEqual(-0.8427007929497149, ReferenceMath.Erf(-1), 1e-15);
    }

    [TestMethod]
    public void Erf_MatchesReference()
    {
        double[] x = [-4, -2.5, -1, -0.3, -1e-4, 0, 1e-4, 0.3, 1, 2.5, 4];
        using var scope = TensorScope.Begin();
        var y = Tensor.FromArray(x, x.Length).Erf().ToArray<double>();
        ReferenceMath.AssertClose(x.Select(ReferenceMath.Erf).ToArray(), y, 1e-15, 1e-14, "erf");
    }

    [TestMethod]
    public void Gelu_IsTheExactErfForm()
    {
        // Exact GELU differs from the tanh approximation by up to ~5e-4 (e.g. 1.5e-4 at x = 1), far above this tolerance.
        double[] x = [-6, -3, -1.5, -1, -0.5, -1e-3, 0, 1e-3, 0.5, 1, 1.5, 3, 6];
        using var scope = TensorScope.Begin();
        var y = F.Gelu(Tensor.FromArray(x, x.Length)).ToArray<double>();
        ReferenceMath.AssertClose(x.Select(ReferenceMath.Gelu).ToArray(), y, 1e-14, 1e-13, "gelu");
    }

    /// <summary>Per-sample cross-entropy with label smoothing e: (1-e)·(-log p_y) + e·mean_c(-log p_c).</summary>
    private static double[] CrossEntropyReference(double[] logits, long[] target, int classes, double e)
    {
        var loss = new double[target.Length];
        for (int i = 0; i < target.Length; i++)
        {
            var z = logits.AsSpan(i * classes, classes);
            double lse = ReferenceMath.LogSumExp(z);
            double nll = lse - z[(int)target[i]];
            double uniform = 0;
            for (int c = 0; c < classes; c++) uniform += lse - z[c];
            loss[i] = (1 - e) * nll + e * uniform / classes;
        }
        return loss;
    }

    [TestMethod]
    public void CrossEntropy_WithLabelSmoothing_EqualsFormula()
    {
        const int n = 4, c = 5;
        var logits = U([n, c], -3, 3).Data;
        long[] target = [4, 0, 2, 2];
        using var scope = TensorScope.Begin();
        var z = Tensor.FromArray(logits, n, c);
        var y = Tensor.FromArray(target, n);
        foreach (var e in new[] { 0.0, 0.1, 0.3 })
        {
            var expected = CrossEntropyReference(logits, target, c, e);
            var perSample = F.CrossEntropy(z, y, e, F.Reduction.None).ToArray<double>();
            ReferenceMath.AssertClose(expected, perSample, 1e-13, 1e-13, $"per-sample loss, smoothing {e}");
            Assert.AreEqual(expected.Average(), F.CrossEntropy(z, y, e).Item(), 1e-13, $"mean loss, smoothing {e}");
            Assert.AreEqual(expected.Sum(), F.CrossEntropy(z, y, e, F.Reduction.Sum).Item(), 1e-13, $"summed loss, smoothing {e}");
        }
    }

    [TestMethod]
    public void CrossEntropy_WithSoftTargets_EqualsFormula()
    {
        // -Σ_c t_c log p_c, with one-hot rows agreeing with the class-index form.
        const int n = 3, c = 4;
        var logits = U([n, c], -3, 3).Data;
        double[] t = [0.7, 0.3, 0, 0, 0, 0, 0, 1, 0.25, 0.25, 0.25, 0.25];
        var expected = new double[n];
        for (int i = 0; i < n; i++)
        {
            var z = logits.AsSpan(i * c, c);
            double lse = ReferenceMath.LogSumExp(z);
            for (int k = 0; k < c; k++) expected[i] -= t[i * c + k] * (z[k] - lse);
        }
        using var scope = TensorScope.Begin();
        var loss = F.CrossEntropy(Tensor.FromArray(logits, n, c), Tensor.FromArray(t, n, c), 0, F.Reduction.None).ToArray<double>();
        ReferenceMath.AssertClose(expected, loss, 1e-13, 1e-13, "soft-target loss");
    }
}
