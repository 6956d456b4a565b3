using System.ComponentModel;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace Vit.Tests;

/// <summary>
/// Runs ONNX models in the real ONNX Runtime: eng/onnxruntime/run.js on Node.js, with the onnxruntime-node package
/// (which carries the CPU libonnxruntime) that eng/install-deps.sh installs.
/// </summary>
internal static class OnnxRuntime
{
    private static readonly Lazy<string> Runner = new(FindRunner);

    /// <summary>Feeds <paramref name="input"/> of shape <paramref name="dims"/> to the model's input; returns every output.</summary>
    public static Dictionary<string, (long[] Shape, float[] Values)> Run(string model, float[] input, params long[] dims)
    {
        var dir = Directory.CreateTempSubdirectory("vit-ort-").FullName;
        try
        {
            var inputPath = Path.Combine(dir, "input.bin");
            File.WriteAllBytes(inputPath, MemoryMarshal.AsBytes(input.AsSpan()).ToArray());
            Node(Runner.Value, model, inputPath, string.Join(",", dims), dir);
            using var shapes = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "outputs.json")));
            var result = new Dictionary<string, (long[], float[])>();
            foreach (var o in shapes.RootElement.EnumerateObject())
            {
                var bytes = File.ReadAllBytes(Path.Combine(dir, o.Name + ".bin"));
                result[o.Name] = (o.Value.EnumerateArray().Select(e => e.GetInt64()).ToArray(), MemoryMarshal.Cast<byte, float>(bytes).ToArray());
            }
            return result;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void Node(params string[] args)
    {
        var psi = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process p;
        try
        {
            p = Process.Start(psi)!;
        }
        catch (Win32Exception)
        {
            Assert.Fail("These tests run ONNX Runtime on Node.js, and `node` is not on PATH: install Node.js, then run `sudo bash eng/install-deps.sh`.");
            throw;
        }
        using (p)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(TimeSpan.FromMinutes(2)))
            {
                p.Kill(entireProcessTree: true);
                Assert.Fail($"node {string.Join(' ', args)} did not finish within 2 minutes");
            }
            if (p.ExitCode != 0) Assert.Fail($"ONNX Runtime failed (node {string.Join(' ', args)}, exit code {p.ExitCode}):\n{stdout.Result}\n{stderr.Result}");
        }
    }

    /// <summary>eng/onnxruntime/run.js of the repository this test was built from, with its node_modules installed.</summary>
    private static string FindRunner()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var runner = Path.Combine(dir.FullName, "eng", "onnxruntime", "run.js");
            if (!File.Exists(runner)) continue;
            if (!Directory.Exists(Path.Combine(dir.FullName, "eng", "onnxruntime", "node_modules", "onnxruntime-node")))
                Assert.Fail($"ONNX Runtime is not installed next to {runner}: run `sudo bash eng/install-deps.sh` (it runs npm ci --ignore-scripts there).");
            return runner;
        }
        Assert.Fail($"eng/onnxruntime/run.js was not found above {AppContext.BaseDirectory}");
        return "";
    }
}
