using System.ComponentModel;
using System.Diagnostics;

namespace Vit.Torch.Tests;

/// <summary>
/// Runs the Python scripts of parity/ (copied to the test output) with an interpreter that has PyTorch, for the
/// tests that compare with PyTorch or read files that PyTorch wrote.
/// </summary>
internal static class Python
{
    /// <summary>The exit code by which a script says that it cannot import torch, so that another interpreter is tried.</summary>
    public const int NoTorchExitCode = 3;

    /// <summary>The path of a script of parity/ in the test output (the test project copies parity/*.py there).</summary>
    public static string Script(string name)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "parity", name);
        Assert.IsTrue(File.Exists(script), $"{script} is missing: the test project copies parity/*.py to its output");
        return script;
    }

    /// <summary>
    /// Runs <paramref name="script"/> with the first python3 that has torch: $VIT_PYTHON, then python3 on PATH (which
    /// may be a pyenv or venv without torch), then Debian's /usr/bin/python3. The script exits with
    /// <see cref="NoTorchExitCode"/> when it cannot import torch; any other failure fails the test with its output.
    /// Returns what the script printed.
    /// </summary>
    public static string RunScript(string script, params string[] args)
    {
        var candidates = new List<string>();
        var env = Environment.GetEnvironmentVariable("VIT_PYTHON");
        if (!string.IsNullOrEmpty(env)) candidates.Add(env);
        candidates.Add("python3");
        candidates.Add("/usr/bin/python3");
        var tried = new List<string>();
        foreach (var python in candidates.Distinct())
        {
            int code;
            string stdout, stderr;
            try
            {
                (code, stdout, stderr) = Run(python, [script, .. args], TimeSpan.FromMinutes(2));
            }
            catch (Win32Exception)
            {
                tried.Add($"{python}: not found");
                continue;
            }
            if (code == 0) return stdout;
            if (code != NoTorchExitCode) Assert.Fail($"{python} {script} failed with exit code {code}:\n{stdout}\n{stderr}");
            tried.Add(stderr.Trim());
        }
        Assert.Fail(
            "These tests need python3 with PyTorch (Debian's python3-torch), and none was found. "
            + "Run `sudo bash eng/install-deps.sh` from the repository root (CI installs python3-torch), "
            + "or set VIT_PYTHON to an interpreter that can `import torch`. Tried: " + string.Join("; ", tried));
        return "";
    }

    private static (int Code, string Stdout, string Stderr) Run(string file, string[] args, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{file} {string.Join(' ', args)} did not finish within {timeout}");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
