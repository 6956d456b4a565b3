namespace Vit.Torch.Tests;

/// <summary>
/// Plain double-precision reference math for the tests, written independently of libtorch so that a test
/// compares the engine against something it did not compute itself.
/// </summary>
internal static class ReferenceMath
{
    /// <summary>
    /// erf(x) = 2/√π · e^(-x²) · Σ_{n≥0} 2ⁿ x^(2n+1) / (1·3·5···(2n+1)) (Abramowitz &amp; Stegun 7.1.6).
    /// Every term has the sign of x, so there is no cancellation: the relative error is a few ulp for any x
    /// the tests use (|x| ≤ 6 needs under 150 terms).
    /// </summary>
    public static double Erf(double x)
    {
        if (x == 0) return 0;
        double x2 = x * x, term = x, sum = x;
        for (int n = 1; n < 1000; n++)
        {
            term *= 2 * x2 / (2 * n + 1);
            sum += term;
            if (Math.Abs(term) < 1e-17 * Math.Abs(sum)) break;
        }
        return Math.Clamp(2 / Math.Sqrt(Math.PI) * Math.Exp(-x2) * sum, -1, 1);
    }

    /// <summary>Exact GELU, x·Φ(x) = x/2 · (1 + erf(x/√2)) (Hendrycks &amp; Gimpel 2016).</summary>
    public static double Gelu(double x) => 0.5 * x * (1 + Erf(x / Math.Sqrt(2)));

    /// <summary>log Σ exp(z), shifted by the maximum so that it cannot overflow.</summary>
    public static double LogSumExp(ReadOnlySpan<double> z)
    {
        double m = double.NegativeInfinity;
        foreach (var v in z) m = Math.Max(m, v);
        double s = 0;
        foreach (var v in z) s += Math.Exp(v - m);
        return m + Math.Log(s);
    }

    /// <summary>softmax(z) of one row.</summary>
    public static double[] Softmax(ReadOnlySpan<double> z)
    {
        double lse = LogSumExp(z);
        var p = new double[z.Length];
        for (int i = 0; i < z.Length; i++) p[i] = Math.Exp(z[i] - lse);
        return p;
    }

    /// <summary>y = x Wᵀ + b for rows x (rows, in), W (out, in) row-major, b (out) or null.</summary>
    public static double[] Linear(double[] x, int rows, int inF, float[] w, float[]? b, int outF)
    {
        var y = new double[rows * outF];
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < outF; o++)
            {
                double s = b is null ? 0 : b[o];
                for (int i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
                y[r * outF + o] = s;
            }
        return y;
    }

    /// <summary>Layer norm of each row of x (rows, dim) with the biased variance, as Ba et al. 2016 and torch.</summary>
    public static double[] LayerNorm(double[] x, int rows, int dim, float[] w, float[] b, double eps)
    {
        var y = new double[x.Length];
        for (int r = 0; r < rows; r++)
        {
            double mean = 0, var = 0;
            for (int i = 0; i < dim; i++) mean += x[r * dim + i];
            mean /= dim;
            for (int i = 0; i < dim; i++) var += (x[r * dim + i] - mean) * (x[r * dim + i] - mean);
            var /= dim;
            double inv = 1 / Math.Sqrt(var + eps);
            for (int i = 0; i < dim; i++) y[r * dim + i] = (x[r * dim + i] - mean) * inv * w[i] + b[i];
        }
        return y;
    }

    /// <summary>Widens float32 values to double.</summary>
    public static double[] ToDouble(float[] v) => Array.ConvertAll(v, f => (double)f);

    /// <summary>Asserts |expected - actual| ≤ atol + rtol·|expected| elementwise, naming the first bad index.</summary>
    public static void AssertClose(double[] expected, double[] actual, double atol, double rtol, string what)
    {
        Assert.HasCount(expected.Length, actual, $"{what}: length");
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            if (!(Math.Abs(e - a) <= atol + rtol * Math.Abs(e)))
                Assert.Fail($"{what}: element {i} is {a:R}, expected {e:R} (difference {Math.Abs(e - a):E2})");
        }
    }
}
