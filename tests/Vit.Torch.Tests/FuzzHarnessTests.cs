using Vit.Fuzz;

namespace Vit.Torch.Tests;

/// <summary>
/// The fuzzing harness (tools/Vit.Fuzz) kept working between campaigns: every target's seeds load through the contract
/// afl-fuzz runs, damaged copies of them keep it, and the contract itself tells a refusal from a finding.
/// </summary>
[TestClass]
public sealed class FuzzHarnessTests : TempDirectoryTests
{
    /// <summary>Damaged copies of a valid input, the same every run: empty, cut at a few lengths, single bytes flipped.</summary>
    private static IEnumerable<byte[]> Damaged(byte[] seed)
    {
        yield return [];
        foreach (var length in new[] { 1, 8, seed.Length / 2, seed.Length - 1 })
            if (length >= 0 && length < seed.Length) yield return seed[..length];
        for (int k = 0; k < 24; k++)
        {
            var copy = (byte[])seed.Clone();
            copy[(int)((long)k * 7919 % copy.Length)] ^= (byte)(1 << (k % 8));
            yield return copy;
        }
    }

    [TestMethod]
    public void EveryTargetsSeedsLoadAndTheirDamagedCopiesKeepTheContract()
    {
        var problems = new List<string>();
        foreach (var target in Targets.All)
        {
            var work = Path.Combine(Dir, target.Name);
            List<byte[]> seeds;
            try
            {
                seeds = AflHarness.Prepare(target, work);  // throws when a seed does not load
            }
            catch (Exception e)
            {
                problems.Add($"{target.Name}: {e.GetType().Name}: {e.Message}");
                continue;
            }
            Assert.IsNotEmpty(seeds, target.Name);
            foreach (var seed in seeds)
                foreach (var input in Damaged(seed))
                {
                    try
                    {
                        Contract.Check(target, input, work);
                    }
                    catch (Exception e)
                    {
                        problems.Add($"{target.Name}: an input of {input.Length} bytes: {e.GetType().Name}: {e.Message}");
                    }
                }
        }
        Assert.IsEmpty(problems, string.Join("\n", problems));
    }

    [TestMethod]
    public void TheContractRefusesWhatIsDocumentedAndLetsEverythingElseThrough()
    {
        var work = Dir;
        Contract.Outcome Check(Action read) => Contract.Check(new Target("t", _ => [], (_, _) => read()), [1, 2, 3], work);

        Assert.AreEqual(Contract.Outcome.Loaded, Check(() => { }));
        Assert.AreEqual(Contract.Outcome.Refused, Check(() => throw new InvalidDataException($"'{work}/x' is truncated")));
        Assert.AreEqual(Contract.Outcome.RefusedUnnamed, Check(() => throw new NotSupportedException("dtype F8 is not supported")));
        Assert.AreEqual(Contract.Outcome.Refused, Check(() => throw new ArgumentException($"'{work}/x' does not say how many heads")));
        // A finding: an exception the readers do not document, an ArgumentException that does not come from the file,
        // a tensor left alive.
        Assert.ThrowsExactly<InvalidOperationException>(() => Check(() => throw new InvalidOperationException("boom")));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Check(() => throw new ArgumentOutOfRangeException("index")));
        Tensor? leaked = null;
        try
        {
            var e = Assert.ThrowsExactly<ContractViolationException>(() => Check(() => leaked = Tensor.Zeros([2])));
            StringAssert.Contains(e.Message, "1 tensor handle(s) left alive");
        }
        finally
        {
            leaked?.Dispose();
        }
    }
}
