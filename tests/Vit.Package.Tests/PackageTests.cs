using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using System.Reflection;
using System.Runtime.Versioning;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using SkiaSharp;

namespace Vit.Package.Tests;

/// <summary>
/// Our NuGet packages as a user gets them (issue 22): <c>dotnet pack</c> makes Vit.Torch, Vit.MLNet and the <c>vit</c>
/// tool into a local folder feed; a fresh console project that references only Vit.MLNet and Microsoft.ML restores
/// them from it, builds and runs the README's first snippet as an unprivileged user (nobody, when the tests run as
/// root), and that user installs the tool from the same feed and reads the model the snippet saved.
/// </summary>
/// <remarks>
/// The packages are packed without building (<c>--no-build</c>, in this test assembly's configuration): the solution
/// build, or this project's build-order references, made them first. The user restores with its own empty NuGet cache;
/// the big packages (TorchSharp-cpu brings libtorch) come from a read-only fallback folder, a hard-linked copy of this
/// process's NuGet cache, so that nothing is downloaded again and the other user never writes into that cache.
/// </remarks>
[TestClass]
[SupportedOSPlatform("linux")]  // setpriv, ldd, ELF libraries: the packages are checked where they are built
public sealed class PackageTests
{
    private const string Version = "0.1.0";
    private static readonly string[] Classes = ["red", "green", "blue"];
    private const int ImagesPerClass = 4;
    private const int Epochs = 10;

    private static string _root = "";
    private static string _feed = "";
    private static string _repository = "";
    private static string _dotnet = "dotnet";
    private static Task? _toolPack;

    /// <summary>Packs the three packages into a local feed in a temporary folder every user can read.</summary>
    [ClassInitialize]
    public static void PackIntoLocalFeed(TestContext _)
    {
        _repository = FindRepository();
        _dotnet = DotnetHost();
        var configuration = typeof(PackageTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "Configuration").Value!;
        _root = Directory.CreateTempSubdirectory("vit-package-tests-").FullName;
        // CreateTempSubdirectory makes it private to this user; the unprivileged one must traverse it.
        File.SetUnixFileMode(_root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        _feed = Path.Combine(_root, "feed");
        void Pack(string project) =>
            Shell.Run(_dotnet, ["pack", Path.Combine(_repository, project), "-c", configuration, "--no-build", "-nologo",
                "-o", _feed, "--disable-build-servers"], timeout: TimeSpan.FromMinutes(5));
        // The tool's pack (a publish, then 1.5 GB compressed) is the long one: it goes on while the consumer builds
        // and runs, and what needs the tool's package waits for it (ToolPackage).
        _toolPack = Task.Run(() => Pack("src/Vit.Cli"));
        var clock = Stopwatch.StartNew();
        Parallel.ForEach(["src/Vit.Torch", "src/Vit.MLNet"], Pack);
        Console.WriteLine($"libraries packed in {clock.Elapsed.TotalSeconds:0} s into {_feed}");
    }

    [ClassCleanup]
    public static void RemoveTemporaryFolder()
    {
        try { _toolPack?.Wait(); } catch (AggregateException) { }  // reported by the tests that need it
        if (_root.Length > 0 && Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    /// <summary>The tool's package, once its pack (started by <see cref="PackIntoLocalFeed"/>) is done.</summary>
    private static string ToolPackage()
    {
        var clock = Stopwatch.StartNew();
        try { _toolPack!.Wait(); }
        catch (AggregateException e) { throw e.InnerException!; }
        Console.WriteLine($"waited {clock.Elapsed.TotalSeconds:0} s for the tool's pack");
        return PackagePath("Vit.Cli");
    }

    [TestMethod]
    public void LibraryPackagesCarryAssemblyDocsReadmeLicenceAndNoNativeLibrary()
    {
        foreach (var id in new[] { "Vit.Torch", "Vit.MLNet" })
        {
            var (nuspec, files) = ReadPackage(id);
            var metadata = nuspec.Root!.Elements().Single(e => e.Name.LocalName == "metadata");
            string Meta(string name) => metadata.Elements().SingleOrDefault(e => e.Name.LocalName == name)?.Value ?? "";
            Assert.AreEqual(Version, Meta("version"), id);
            Assert.AreEqual("Vit for .NET contributors", Meta("authors"), id);
            Assert.AreEqual("MIT", Meta("license"), id);
            Assert.AreEqual("README.md", Meta("readme"), id);
            foreach (var expected in new[] { "LICENSE", "README.md", $"lib/net10.0/{id}.dll", $"lib/net10.0/{id}.xml" })
                CollectionAssert.Contains(files, expected, $"{id} lacks {expected}; it has: {string.Join(", ", files)}");
            // No native library of ours (nor anyone's): the native code comes from TorchSharp's and SkiaSharp's packages.
            var native = files.Where(f => f.StartsWith("runtimes/", StringComparison.Ordinal)
                || Regex.IsMatch(f, @"\.(so(\.\d+)*|dylib|a)$") || (f.EndsWith(".dll", StringComparison.Ordinal) && f != $"lib/net10.0/{id}.dll")).ToList();
            Assert.IsEmpty(native, $"{id} carries binaries besides its assembly: {string.Join(", ", native)}");
        }

        var (torch, torchFiles) = ReadPackage("Vit.Torch");
        foreach (var folder in new[] { "build", "buildTransitive" })
            foreach (var file in new[] { "Vit.Torch.targets", "TorchSharpOnOlderLibstdcxx.targets" })
                CollectionAssert.Contains(torchFiles, $"{folder}/{file}", $"Vit.Torch lacks {folder}/{file}");
        var torchDependencies = Dependencies(torch);
        Assert.AreEqual("0.107.0", torchDependencies.GetValueOrDefault("TorchSharp-cpu"), string.Join(", ", torchDependencies));
        Assert.IsFalse(torchDependencies.ContainsKey("Grpc.Tools"), "Grpc.Tools is a build-time tool, not a dependency");

        // Vit.MLNet compiles against publicized copies of ML.NET's assemblies; the package depends on the real ones.
        var (mlnet, mlnetFiles) = ReadPackage("Vit.MLNet");
        var dependencies = Dependencies(mlnet);
        Assert.AreEqual("[6.0.0]", dependencies.GetValueOrDefault("Microsoft.ML"), string.Join(", ", dependencies));
        Assert.AreEqual("[6.0.0]", dependencies.GetValueOrDefault("Microsoft.ML.ImageAnalytics"), string.Join(", ", dependencies));
        Assert.AreEqual(Version, dependencies.GetValueOrDefault("Vit.Torch"), string.Join(", ", dependencies));
        Assert.IsFalse(dependencies.Keys.Any(d => d.Contains("Publicize", StringComparison.OrdinalIgnoreCase)),
            $"the build tool Publicize became a dependency: {string.Join(", ", dependencies.Keys)}");
        Assert.IsFalse(mlnetFiles.Any(f => f.Contains("Microsoft.ML", StringComparison.Ordinal)),
            $"ML.NET's assemblies (publicized copies?) packed: {string.Join(", ", mlnetFiles)}");
    }

    [TestMethod]
    public void ReadmeSnippetRunsFromTheLocalFeedAsAnUnprivilegedUser()
    {
        var user = Path.Combine(_root, "user");            // everything the unprivileged user writes
        var home = Path.Combine(user, "home");
        var consumer = Path.Combine(user, "consumer");
        var tools = Path.Combine(user, "tools");
        foreach (var d in new[] { home, consumer, tools, Path.Combine(user, "tmp") }) Directory.CreateDirectory(d);
        var fallback = ReadOnlyCopyOfPackageCache();

        File.WriteAllText(Path.Combine(consumer, "consumer.csproj"), """
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Vit.MLNet" Version="0.1.0" />
                <PackageReference Include="Microsoft.ML" Version="6.0.0" />
              </ItemGroup>
            </Project>
            """);
        // Nothing from the folders above (a Directory.Build.props in the temporary folder's parents) reaches it.
        File.WriteAllText(Path.Combine(consumer, "Directory.Build.props"), "<Project />\n");
        File.WriteAllText(Path.Combine(consumer, "Directory.Build.targets"), "<Project />\n");
        // Our three packages from the local feed only (source mapping: a package of the same name on nuget.org is
        // never taken), the rest from nuget.org, found first in the read-only fallback folder.
        File.WriteAllText(Path.Combine(consumer, "NuGet.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{_feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" protocolVersion="3" />
              </packageSources>
              <packageSourceMapping>
                <packageSource key="local">
                  <package pattern="Vit.Torch" />
                  <package pattern="Vit.MLNet" />
                  <package pattern="Vit.Cli" />
                </packageSource>
                <packageSource key="nuget.org">
                  <package pattern="*" />
                </packageSource>
              </packageSourceMapping>
              <fallbackPackageFolders>
                <clear />
                <add key="read-only" value="{fallback}" />
              </fallbackPackageFolders>
            </configuration>
            """);
        File.WriteAllText(Path.Combine(consumer, "Program.cs"), ReadmeSnippet());
        WritePhotos(consumer);
        if (Shell.IsRoot) Shell.Run("chown", ["-R", $"{Shell.NobodyId}:{Shell.NobodyId}", user]);

        var env = UserEnvironment(user, home);
        var uid = Shell.Run("id", ["-u"], consumer, env, asUser: true).Output.Trim();
        Console.WriteLine($"consumer runs as uid {uid}");
        Assert.AreNotEqual("0", uid, "the consumer must be built and run by an unprivileged user");

        var build = Shell.Run(_dotnet, ["build", "-c", "Release", "-nologo", "--disable-build-servers"], consumer, env,
            asUser: true, timeout: TimeSpan.FromMinutes(5));
        // TorchSharp 0.107 needs GLIBCXX_3.4.32; where libstdc++ lacks it, Vit.Torch's buildTransitive targets (through
        // Vit.MLNet) patch the consumer's copy, else the snippet could not load libtorch at all.
        if (LibstdcxxLacksGlibcxx3432())
            StringAssert.Contains(build.Output, "marked that need weak in this output copy",
                "Vit.Torch's transitive build targets did not patch libLibTorchSharp.so in the consumer's output");

        var clock = Stopwatch.StartNew();
        var run = Shell.Run(_dotnet, ["run", "-c", "Release", "--no-build", "--disable-build-servers"], consumer, env,
            asUser: true, timeout: TimeSpan.FromMinutes(5));
        Console.WriteLine($"README snippet ran in {clock.Elapsed.TotalSeconds:0} s ({Classes.Length * ImagesPerClass} images):\n{run.Output}");
        var lines = run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var accuracy = lines.Select(l => double.TryParse(l, NumberStyles.Float, CultureInfo.InvariantCulture, out var a) ? a : (double?)null)
            .FirstOrDefault(a => a is not null);
        Assert.IsNotNull(accuracy, $"no accuracy printed:\n{run.Output}");
        Assert.IsTrue(accuracy is >= 0 and <= 1, $"accuracy {accuracy} is not in [0, 1]");
        // Which class a short training on a dozen images predicts for cat.jpg is not the point here; that it names one is.
        CollectionAssert.Contains(Classes, lines[^1], $"no predicted label printed last:\n{run.Output}");
        Assert.IsTrue(File.Exists(Path.Combine(consumer, "model.zip")), "the snippet saved no model.zip");

        CheckNativeLibraries(Path.Combine(consumer, "bin", "Release", "net10.0"));

        // The tool, installed by the same user with the README's command, reads that model. --add-source cannot be
        // combined with source mapping, so it runs in a folder whose NuGet.config clears every source: the feed given
        // on the command line is the only one (a Vit.Cli on nuget.org is never taken).
        var installer = Path.Combine(user, "install-tool");
        Directory.CreateDirectory(installer);
        File.WriteAllText(Path.Combine(installer, "NuGet.config"),
            "<configuration><packageSources><clear /></packageSources></configuration>\n");
        if (Shell.IsRoot) Shell.Run("chown", ["-R", $"{Shell.NobodyId}:{Shell.NobodyId}", installer]);
        ToolPackage();
        Shell.Run(_dotnet, ["tool", "install", "--tool-path", tools, "--add-source", _feed, "Vit.Cli", "--version", Version],
            installer, env, asUser: true, timeout: TimeSpan.FromMinutes(5));
        var vit = Path.Combine(tools, "vit");
        StringAssert.Contains(Shell.Run(vit, ["--help"], consumer, env, asUser: true).Output, "train");
        var info = JsonNode.Parse(Shell.Run(vit, ["info", "model.zip", "--json"], consumer, env, asUser: true).Output)!;
        var labels = info["model"]!["labels"]!.AsArray().Select(l => (string)l!).Order().ToList();
        CollectionAssert.AreEqual(Classes.Order().ToList(), labels, $"vit info: {info}");
    }

    // After the snippet: MSTest runs a class's tests in their order here, and this one waits for the tool's pack.
    [TestMethod]
    public void ToolPackageCarriesTheRealMLNetAssembliesAndNoNativeLibraryOfOurs()
    {
        ToolPackage();
        var (nuspec, files) = ReadPackage("Vit.Cli");
        Assert.IsTrue(nuspec.Descendants().Any(e => e.Name.LocalName == "packageType" && (string?)e.Attribute("name") == "DotnetTool"),
            "Vit.Cli is not a tool package");
        CollectionAssert.Contains(files, "tools/net10.0/any/vit.dll");
        CollectionAssert.Contains(files, "LICENSE");
        var ours = files.Where(f => Path.GetFileName(f).StartsWith("libvit_", StringComparison.Ordinal)).ToList();
        Assert.IsEmpty(ours, $"the tool carries native libraries of ours: {string.Join(", ", ours)}");
        // The tool carries ML.NET's assemblies: they must be the package's own, never the compile-time publicized copies.
        var cache = GlobalPackagesFolder();
        using var zip = ZipFile.OpenRead(PackagePath("Vit.Cli"));
        foreach (var (name, package) in new[] { ("Microsoft.ML.Core", "microsoft.ml"), ("Microsoft.ML.Data", "microsoft.ml"),
                     ("Microsoft.ML.ImageAnalytics", "microsoft.ml.imageanalytics") })
        {
            var entry = zip.GetEntry($"tools/net10.0/any/{name}.dll") ?? throw new AssertFailedException($"the tool lacks {name}.dll");
            var real = Directory.GetFiles(Path.Combine(cache, package, "6.0.0", "lib"), $"{name}.dll", SearchOption.AllDirectories)
                .Select(File.ReadAllBytes).ToList();
            Assert.IsNotEmpty(real, $"{name}.dll not found in the NuGet cache's {package} 6.0.0");
            using var stream = entry.Open();
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            Assert.IsTrue(real.Any(r => r.AsSpan().SequenceEqual(copy.ToArray())),
                $"the tool's {name}.dll is not the one of the {package} 6.0.0 package (a publicized copy?)");
        }
    }

    /// <summary>Every native library in the consumer's output that this machine can load resolves its dependencies
    /// inside that output or to the system's C and C++ runtimes, never to Debian's libtorch, OpenCV, oneDNN, OpenBLAS or
    /// Gloo; and none of them is ours.</summary>
    private static void CheckNativeLibraries(string output)
    {
        var libraries = Directory.GetFiles(output, "*.so*", SearchOption.AllDirectories)
            .Where(f => Regex.IsMatch(Path.GetFileName(f), @"\.so(\.\d+)*$")).ToList();
        var ours = libraries.Where(f => Path.GetFileName(f).StartsWith("libvit_", StringComparison.Ordinal)).ToList();
        Assert.IsEmpty(ours, $"native libraries of ours in the consumer's output: {string.Join(", ", ours)}");
        var debian = new Regex(@"^/(usr/)?lib(64)?/([^/]+/)?(libtorch|libc10|libopencv|libdnnl|libopenblas|libgloo)");
        var checkedHere = new List<string>();
        foreach (var library in libraries)
        {
            var ldd = Shell.Run("ldd", [library], check: false);
            if (ldd.ExitCode != 0) continue;  // another platform's file (runtimes/linux-arm64/...), not loadable here
            checkedHere.Add(Path.GetFileName(library));
            foreach (Match m in Regex.Matches(ldd.Output, @"^\s*(\S+) => (/\S+)", RegexOptions.Multiline))
                Assert.IsFalse(debian.IsMatch(m.Groups[2].Value),
                    $"{library} resolves {m.Groups[1].Value} to the system's {m.Groups[2].Value}:\n{ldd.Output}");
            if (Path.GetFileName(library) == "libLibTorchSharp.so")
            {
                // TorchSharp's library must find libtorch beside itself (its RUNPATH), in this output.
                var torch = Regex.Match(ldd.Output, @"^\s*libtorch_cpu\.so => (/\S+)", RegexOptions.Multiline);
                Assert.IsTrue(torch.Success && torch.Groups[1].Value.StartsWith(output, StringComparison.Ordinal),
                    $"libLibTorchSharp.so does not resolve libtorch_cpu.so in the consumer's output:\n{ldd.Output}");
            }
        }
        foreach (var expected in new[] { "libLibTorchSharp.so", "libtorch_cpu.so", "libSkiaSharp.so" })
            CollectionAssert.Contains(checkedHere, expected, $"{expected} was not among the libraries ldd read: {string.Join(", ", checkedHere)}");
        Console.WriteLine($"ldd: {checkedHere.Count} native libraries checked in the consumer's output");
    }

    /// <summary>Program.cs: the first C# block of the README's first screen, with two substitutions.
    /// 1. The type declarations the README shows as comments (to keep its example at ten lines) are written as code:
    ///    "// class " at the start of a line becomes "class ".
    /// 2. <see cref="Epochs"/> epochs instead of the default: on a few images the default is 300 passes (as many as
    ///    1,000 optimizer steps need, at most 300), which takes many minutes on two cores; the packages are under test
    ///    here, not the training schedule.</summary>
    private static string ReadmeSnippet()
    {
        var readme = File.ReadAllText(Path.Combine(_repository, "README.md"));
        var firstScreen = readme[..readme.IndexOf("\n## ", StringComparison.Ordinal)];
        var match = Regex.Match(firstScreen, @"```csharp\n(.*?)\n```", RegexOptions.Singleline);
        Assert.IsTrue(match.Success, "the README's first screen has no ```csharp block");
        var code = Regex.Replace(match.Groups[1].Value, @"^// class ", "class ", RegexOptions.Multiline);
        StringAssert.Contains(code, "class ImageInput", "the README's snippet no longer declares ImageInput as expected");
        const string options = "new VitEstimator.Options { Architecture = VitArchitecture.TinyPatch16 }";
        StringAssert.Contains(code, options, "the README's snippet no longer sets its options as this test expects");
        return code.Replace(options, $"new VitEstimator.Options {{ Architecture = VitArchitecture.TinyPatch16, Epochs = {Epochs} }}") + "\n";
    }

    /// <summary>photos/&lt;class&gt;/*.jpg and cat.jpg: solid colours with per-pixel noise (red, green, blue), 64x64 JPEGs
    /// drawn with SkiaSharp (not with the imaging code under test). cat.jpg is red.</summary>
    private static void WritePhotos(string folder)
    {
        var random = new Random(22);
        var colours = new Dictionary<string, (int R, int G, int B)> { ["red"] = (200, 40, 40), ["green"] = (40, 180, 60), ["blue"] = (40, 60, 200) };
        void Write(string path, (int R, int G, int B) c)
        {
            using var bitmap = new SKBitmap(64, 64);
            for (var y = 0; y < 64; y++)
                for (var x = 0; x < 64; x++)
                {
                    byte Noisy(int v) => (byte)Math.Clamp(v + random.Next(-30, 31), 0, 255);
                    bitmap.SetPixel(x, y, new SKColor(Noisy(c.R), Noisy(c.G), Noisy(c.B)));
                }
            using var image = SKImage.FromBitmap(bitmap);
            using var data = image.Encode(SKEncodedImageFormat.Jpeg, 90);
            File.WriteAllBytes(path, data.ToArray());
        }
        foreach (var label in Classes)
        {
            Directory.CreateDirectory(Path.Combine(folder, "photos", label));
            for (var i = 0; i < ImagesPerClass; i++) Write(Path.Combine(folder, "photos", label, $"{i:00}.jpg"), colours[label]);
        }
        Write(Path.Combine(folder, "cat.jpg"), colours["red"]);
    }

    /// <summary>A fallback package folder the unprivileged user can read: this process's NuGet cache, hard-linked (no
    /// copy of libtorch's gigabytes; nothing in it is ever changed: NuGet only reads fallback folders), without our own
    /// packages, which must come from the feed.</summary>
    private static string ReadOnlyCopyOfPackageCache()
    {
        var cache = GlobalPackagesFolder();
        var fallback = Path.Combine(_root, "fallback");
        var linked = Shell.Run("cp", ["-al", cache, fallback], check: false);
        if (linked.ExitCode != 0)
        {
            // Another file system than the cache's: hard links are impossible, a copy still works (slower).
            Console.WriteLine($"cp -al failed ({linked.Error.Trim()}); copying the NuGet cache instead");
            if (Directory.Exists(fallback)) Directory.Delete(fallback, recursive: true);
            Shell.Run("cp", ["-a", cache, fallback], timeout: TimeSpan.FromMinutes(10));
        }
        foreach (var ours in new[] { "vit.torch", "vit.mlnet", "vit.cli" })
            if (Directory.Exists(Path.Combine(fallback, ours))) Directory.Delete(Path.Combine(fallback, ours), recursive: true);
        return fallback;
    }

    /// <summary>The environment of the user's commands: its own home, .NET and NuGet folders inside
    /// <paramref name="user"/>, no build servers left running, and none of this test host's MSBuild or test variables.</summary>
    private static Dictionary<string, string?> UserEnvironment(string user, string home)
    {
        var env = new Dictionary<string, string?>();
        foreach (var key in Environment.GetEnvironmentVariables().Keys.Cast<string>())
            if (key.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase) || key.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("TESTINGPLATFORM", StringComparison.OrdinalIgnoreCase) || key.StartsWith("NUGET_", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("XDG_", StringComparison.OrdinalIgnoreCase) || key is "DOTNET_HOST_PATH" or "LC_ALL")
                env[key] = null;
        env["HOME"] = home;
        env["DOTNET_CLI_HOME"] = home;
        env["NUGET_PACKAGES"] = Path.Combine(home, ".nuget", "packages");
        env["TMPDIR"] = Path.Combine(user, "tmp");
        env["DOTNET_ROOT"] = Path.GetDirectoryName(_dotnet);
        env["PATH"] = $"{Path.GetDirectoryName(_dotnet)}:/usr/local/bin:/usr/bin:/bin";
        env["DOTNET_NOLOGO"] = "1";
        env["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        env["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        env["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        env["MSBUILDDISABLENODEREUSE"] = "1";
        env["LANG"] = "C.UTF-8";
        return env;
    }

    private static bool LibstdcxxLacksGlibcxx3432()
    {
        const string lib = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6";
        return File.Exists(lib) && !File.ReadAllText(lib, System.Text.Encoding.Latin1).Contains("GLIBCXX_3.4.32\0", StringComparison.Ordinal);
    }

    private static string PackagePath(string id)
    {
        var path = Path.Combine(_feed, $"{id}.{Version}.nupkg");
        Assert.IsTrue(File.Exists(path), $"dotnet pack made no {path}; the feed has: {string.Join(", ", Directory.GetFiles(_feed).Select(Path.GetFileName))}");
        return path;
    }

    private static (XDocument Nuspec, List<string> Files) ReadPackage(string id)
    {
        using var zip = ZipFile.OpenRead(PackagePath(id));
        var files = zip.Entries.Select(e => e.FullName).ToList();
        var nuspec = zip.GetEntry($"{id}.nuspec") ?? throw new AssertFailedException($"{id}.nupkg has no {id}.nuspec");
        using var stream = nuspec.Open();
        return (XDocument.Load(stream), files);
    }

    /// <summary>The package's dependencies (id to version range) as its .nuspec lists them.</summary>
    private static Dictionary<string, string> Dependencies(XDocument nuspec) =>
        nuspec.Descendants().Where(e => e.Name.LocalName == "dependency")
            .ToDictionary(e => (string)e.Attribute("id")!, e => (string)e.Attribute("version")!);

    private static string GlobalPackagesFolder()
    {
        var listed = Shell.Run(_dotnet, ["nuget", "locals", "global-packages", "--list"]).Output;
        var match = Regex.Match(listed, @"global-packages:\s*(\S.*?)\s*$", RegexOptions.Multiline);
        Assert.IsTrue(match.Success, $"dotnet nuget locals printed no global-packages folder: {listed}");
        return match.Groups[1].Value.TrimEnd('/');
    }

    private static string FindRepository()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Vit.sln"))) return dir.FullName;
        throw new AssertFailedException($"no Vit.sln above {AppContext.BaseDirectory}");
    }

    /// <summary>The dotnet host that runs these tests (so the consumer is built by the same SDK).</summary>
    private static string DotnetHost()
    {
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (string.IsNullOrEmpty(host) || !File.Exists(host))
            host = Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath
                : (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, "dotnet")).FirstOrDefault(File.Exists);
        if (host is null) throw new AssertFailedException("no dotnet host found (DOTNET_HOST_PATH, the process, PATH)");
        // /usr/bin/dotnet is often a link: the folder of the real one is DOTNET_ROOT.
        return new FileInfo(host).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Path.GetFullPath(host);
    }
}
