using System.Globalization;

namespace Vit.Torch.Tests;

/// <summary>
/// The test assembly's entry point, in place of the empty one Microsoft.NET.Test.Sdk generates
/// (GenerateProgramFile is off in the project), so that a test can run code in a fresh process:
/// <c>dotnet Vit.Torch.Tests.dll loader-fingerprint SEED</c> (see <see cref="LoaderTests.Loader_SameSeedSameBatches_InAnotherProcess"/>).
/// </summary>
internal static class Program
{
    public static int Main(string[] args)
    {
        if (args is ["loader-fingerprint", var seed])
        {
            Console.Out.Write(LoaderTests.Fingerprint(int.Parse(seed, CultureInfo.InvariantCulture)));
            return 0;
        }
        Console.Error.WriteLine("usage: dotnet Vit.Torch.Tests.dll loader-fingerprint SEED (tests run through dotnet test)");
        return args.Length == 0 ? 0 : 2;
    }
}
