using System.Diagnostics;
using System.Reflection;

namespace Vit.Tests;

/// <summary>Starting a test assembly again in a fresh process (its own <c>Program.Main</c> modes), with its output and
/// error output redirected: shared by the test projects that check what survives a process (linked, as OnnxRuntime.cs).</summary>
internal static class ChildProcess
{
    /// <summary>How to start <paramref name="assembly"/> with <paramref name="args"/> under the dotnet host running the tests.</summary>
    public static ProcessStartInfo Of(Assembly assembly, params string[] args)
    {
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (string.IsNullOrEmpty(host) || !File.Exists(host))
            host = Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet";
        var psi = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return psi;
    }
}
