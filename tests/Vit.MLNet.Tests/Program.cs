namespace Vit.MLNet.Tests;

/// <summary>
/// The test assembly's entry point, in place of the empty one Microsoft.NET.Test.Sdk generates (GenerateProgramFile is
/// off in the project), so that a test can run code in a fresh process:
/// <c>dotnet Vit.MLNet.Tests.dll score-saved MODEL INPUTS OUTPUT</c> (see <see cref="EndToEndTests"/>).
/// </summary>
internal static class Program
{
    /// <summary>How to start this assembly in a fresh process with <paramref name="args"/> (one of the modes of
    /// <see cref="Main"/>), its output and error output redirected.</summary>
    internal static System.Diagnostics.ProcessStartInfo Child(params string[] args) => Vit.Tests.ChildProcess.Of(typeof(Program).Assembly, args);

    public static int Main(string[] args)
    {
        if (args is ["score-saved", var model, var inputs, var output])
        {
            EndToEndTests.ScoreSaved(model, inputs, output);
            return 0;
        }
        Console.Error.WriteLine("usage: dotnet Vit.MLNet.Tests.dll score-saved MODEL INPUTS OUTPUT (tests run through dotnet test)");
        return args.Length == 0 ? 0 : 2;
    }
}
