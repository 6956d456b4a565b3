using System.Diagnostics;
using System.Globalization;

namespace Vit.Tests;

/// <summary>
/// Two "hosts" on one machine, for tests: two network namespaces joined by a veth pair, 10.250.N.1 and 10.250.N.2
/// (N from this process's id), each with its loopback up. Making them needs root (<c>ip netns add</c>);
/// <see cref="TryCreate"/> says why not otherwise. Disposing deletes both, and the pair with them.
/// </summary>
internal sealed class NetworkNamespaces : IDisposable
{
    private readonly string veth;

    private NetworkNamespaces(string[] names, string[] addresses, string veth)
    {
        Names = names;
        Addresses = addresses;
        this.veth = veth;
    }

    /// <summary>The namespaces' names.</summary>
    public string[] Names { get; }

    /// <summary>Host i's address on the pair.</summary>
    public string[] Addresses { get; }

    /// <summary>The namespaces, or null and the reason they cannot be made here.</summary>
    public static (NetworkNamespaces? Spaces, string? Reason) TryCreate()
    {
        int id = Environment.ProcessId;
        if (Environment.UserName != "root") return (null, $"making network namespaces needs root (ip netns add); this runs as {Environment.UserName}");
        string[] names = [$"vit-a-{id}", $"vit-b-{id}"];
        string[] addresses = [$"10.250.{id % 250}.1", $"10.250.{id % 250}.2"];
        var spaces = new NetworkNamespaces(names, addresses, $"vt{id % 100000}");
        var steps = new List<string[]>
        {
            new[] { "netns", "add", names[0] }, new[] { "netns", "add", names[1] },
            new[] { "link", "add", spaces.Device(0), "type", "veth", "peer", "name", spaces.Device(1) },
            new[] { "link", "set", spaces.Device(0), "netns", names[0] }, new[] { "link", "set", spaces.Device(1), "netns", names[1] },
        };
        for (int i = 0; i < 2; i++)
        {
            steps.Add(["-n", names[i], "addr", "add", addresses[i] + "/24", "dev", spaces.Device(i)]);
            steps.Add(["-n", names[i], "link", "set", spaces.Device(i), "up"]);
            steps.Add(["-n", names[i], "link", "set", "lo", "up"]);
        }
        foreach (var args in steps)
        {
            var (code, err, _) = Ip(args);
            if (code == 0) continue;
            spaces.Dispose();
            if (args[0] == "netns") return (null, $"ip {string.Join(' ', args)} failed ({err.Trim()}): no network namespaces here");
            throw new InvalidOperationException($"ip {string.Join(' ', args)}: {err}");
        }
        return (spaces, null);
    }

    /// <summary>Host i's end of the veth pair.</summary>
    public string Device(int i) => veth + (i == 0 ? "a" : "b");

    /// <summary>Makes <paramref name="psi"/> run inside host <paramref name="i"/>'s namespace (<c>ip netns exec</c>).</summary>
    public void RunInside(int i, ProcessStartInfo psi)
    {
        var rest = psi.ArgumentList.ToList();
        var program = psi.FileName;
        psi.FileName = "ip";
        psi.ArgumentList.Clear();
        foreach (var a in new[] { "netns", "exec", Names[i], program }.Concat(rest)) psi.ArgumentList.Add(a);
    }

    /// <summary>The bytes host i's end of the pair has received.</summary>
    public long ReceivedBytes(int i)
    {
        var (code, err, output) = Ip(["netns", "exec", Names[i], "cat", $"/sys/class/net/{Device(i)}/statistics/rx_bytes"]);
        if (code != 0) throw new InvalidOperationException(err);
        return long.Parse(output.Trim(), CultureInfo.InvariantCulture);
    }

    public void Dispose()
    {
        foreach (var ns in Names) Ip(["netns", "del", ns]);  // takes the veth pair with it
    }

    private static (int Code, string Err, string Out) Ip(string[] args)
    {
        var psi = new ProcessStartInfo("ip") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(psi)!;
            var output = p.StandardOutput.ReadToEndAsync();
            var err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, err, output.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, $"cannot run ip: {e.Message}", "");
        }
    }
}
