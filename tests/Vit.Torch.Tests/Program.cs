using System.Globalization;

namespace Vit.Torch.Tests;

/// <summary>
/// The test assembly's entry point, in place of the empty one Microsoft.NET.Test.Sdk generates
/// (GenerateProgramFile is off in the project), so that a test can run code in a fresh process:
/// <c>dotnet Vit.Torch.Tests.dll loader-fingerprint SEED</c> (see <see cref="LoaderTests.Loader_SameSeedSameBatches_InAnotherProcess"/>).
/// </summary>
internal static class Program
{
    /// <summary>How to start this assembly in a fresh process with <paramref name="args"/> (one of the modes of
    /// <see cref="Main"/>), its output and error output redirected.</summary>
    internal static System.Diagnostics.ProcessStartInfo Child(params string[] args) => Vit.Tests.ChildProcess.Of(typeof(Program).Assembly, args);

    public static int Main(string[] args)
    {
        if (args is ["loader-fingerprint", var seed])
        {
            Console.Out.Write(LoaderTests.Fingerprint(int.Parse(seed, CultureInfo.InvariantCulture)));
            return 0;
        }
        if (args is ["train-resumable", var directory])
        {
            // Prints "step N epoch E" after every optimizer step (a test kills the process at one), then the weights' hash.
            Console.Out.WriteLine(ResumeTests.TrainResumable(directory, (step, epoch) => Console.Out.WriteLine($"step {step} epoch {epoch}")));
            return 0;
        }
        if (args is ["dist-worker", var store, var rank, var world, var mode])
            return DistributedTests.Worker(store, int.Parse(rank, CultureInfo.InvariantCulture), int.Parse(world, CultureInfo.InvariantCulture), mode);
        if (args is ["gloo-worker", var glooStore, var glooRank, var glooWorld, var glooMode])
            return GlooGroupTests.Worker(glooStore, int.Parse(glooRank, CultureInfo.InvariantCulture), int.Parse(glooWorld, CultureInfo.InvariantCulture), glooMode);
        if (args is ["settings"])
        {
            // What the library set on its first use in this process (the test sets the opt-outs in the environment).
            var s = Torch.ProcessSettings;
            Console.Out.WriteLine($"malloc {s.MallocTuned} torch {s.TorchThreads?.ToString() ?? "kept"} " +
                                  $"actual {Torch.Threads}");
            return 0;
        }
        if (args is ["atomic-write-hang", var hangPath])
            return AtomicFileTests.WriteAndHang(hangPath);
        if (args is ["dist-train", var trainStore, var trainRank, var trainWorld, var output, var trainMode])
            return DataParallelTests.Worker(trainStore, int.Parse(trainRank, CultureInfo.InvariantCulture), int.Parse(trainWorld, CultureInfo.InvariantCulture), output, trainMode);
        Console.Error.WriteLine("usage: dotnet Vit.Torch.Tests.dll loader-fingerprint SEED | train-resumable DIR | dist-worker STORE RANK WORLD MODE | gloo-worker STORE RANK WORLD MODE | dist-train STORE RANK WORLD DIR MODE | atomic-write-hang PATH (tests run through dotnet test)");
        return args.Length == 0 ? 0 : 2;
    }
}
