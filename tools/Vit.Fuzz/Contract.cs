using Vit.Torch;

namespace Vit.Fuzz;

/// <summary>What a reader may do with any input, the one place the fuzzing harness, the replay and the tests judge it:
/// load it, or refuse it with one of the readers' documented failures. Anything else escapes from
/// <see cref="Check"/> and is a finding: another exception, a tensor left alive, a hang or a crash of the process.</summary>
internal static class Contract
{
    /// <summary>What became of one input that kept the contract.</summary>
    public enum Outcome
    {
        /// <summary>The reader loaded it.</summary>
        Loaded,
        /// <summary>Refused with a documented exception whose message names the file.</summary>
        Refused,
        /// <summary>Refused with a documented exception that does not name the file (counted, not a finding).</summary>
        RefusedUnnamed,
    }

    /// <summary>The readers' documented failures: <see cref="InvalidDataException"/> and <see cref="NotSupportedException"/>
    /// (and, for images, <see cref="Vit.Torch.Imaging.ImageDecodeException"/>);
    /// an <see cref="ArgumentException"/> counts when it names the file (a file that does not say what an option could:
    /// PretrainedVitOptions.Heads).</summary>
    public static bool IsDocumented(Exception e, string work) =>
        e is InvalidDataException or NotSupportedException or Vit.Torch.Imaging.ImageDecodeException
        || e is ArgumentException && e.Message.Contains(work, StringComparison.Ordinal);

    private static bool NamesTheFile(Exception e, string work) =>
        e.Message.Contains(work, StringComparison.Ordinal) || e.Message.Contains(Targets.CsvSource, StringComparison.Ordinal);

    /// <summary>Hands <paramref name="input"/> to <paramref name="target"/>'s reader (its files in <paramref name="work"/>)
    /// and says what became of it; an exception the contract does not allow propagates unchanged, with its stack.</summary>
    /// <exception cref="ContractViolationException">The reader returned, or refused, but left tensors alive.</exception>
    public static Outcome Check(Target target, byte[] input, string work)
    {
        long live = Tensor.LiveCount, images = Vit.Torch.Imaging.Image.LiveCount;
        Outcome outcome;
        try
        {
            target.Read(input, work);
            outcome = Outcome.Loaded;
        }
        catch (Exception e) when (IsDocumented(e, work))
        {
            outcome = NamesTheFile(e, work) ? Outcome.Refused : Outcome.RefusedUnnamed;
        }
        long left = Tensor.LiveCount - live;
        if (left != 0)
            throw new ContractViolationException($"{target.Name}: {left} tensor handle(s) left alive after an input that was {outcome}");
        long imagesLeft = Vit.Torch.Imaging.Image.LiveCount - images;
        if (imagesLeft != 0)
            throw new ContractViolationException($"{target.Name}: {imagesLeft} image(s) left undisposed after an input that was {outcome}");
        return outcome;
    }
}

/// <summary>A finding that is not an exception of the reader's own: the reader broke the contract another way.</summary>
internal sealed class ContractViolationException(string message) : Exception(message);
