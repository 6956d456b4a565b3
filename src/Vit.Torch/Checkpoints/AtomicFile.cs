using System.Diagnostics;
using System.Text;

namespace Vit.Torch.Checkpoints;

/// <summary>Files written whole or not at all: a temporary file beside the target, flushed to disk, then renamed over it.</summary>
internal static class AtomicFile
{
    /// <summary>
    /// Writes <paramref name="path"/> through <paramref name="write"/>. A crash or an exception midway leaves any previous
    /// file at <paramref name="path"/> untouched (rename(2) is atomic on one file system). An exception leaves no temporary
    /// file behind; a killed writer's temporary file (named after its host and process) is deleted by the next write of the
    /// same target once that process is gone.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder of <paramref name="path"/> does not exist.</exception>
    public static void Write(string path, Action<FileStream> write, int bufferSize = 4096)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = Path.GetFullPath(path);
        var folder = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"cannot write {path}: the folder {folder} does not exist");
        var temp = $"{full}.{TempTag}-{Environment.ProcessId}-{Guid.NewGuid():N}.tmp";
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
        foreach (var stale in StaleTemporaries(full)) TryDelete(stale);
    }

    /// <summary>
    /// Temporary files beside <paramref name="full"/> left by writers of this host whose process no longer runs (killed
    /// mid-write). Another host's files (a shared folder) and a running process's files are never included.
    /// </summary>
    internal static IEnumerable<string> StaleTemporaries(string full)
    {
        var prefix = $"{Path.GetFileName(full)}.{TempTag}-";
        string[] candidates;
        try
        {
            candidates = Directory.GetFiles(Path.GetDirectoryName(full)!, prefix + "*.tmp");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            yield break;
        }
        foreach (var file in candidates)
        {
            // name.HOST-PID-GUID.tmp: the process id is the text between the prefix and the next '-'.
            var rest = Path.GetFileName(file).AsSpan(prefix.Length);
            int dash = rest.IndexOf('-');
            if (dash <= 0 || !int.TryParse(rest[..dash], out int pid) || pid == Environment.ProcessId) continue;
            if (!IsRunning(pid)) yield return file;
        }
    }

    /// <summary>This host's name reduced to letters and digits (at most 32), so that temporary names stay portable.</summary>
    internal static readonly string TempTag = MakeTag(Environment.MachineName);

    private static string MakeTag(string host)
    {
        var b = new StringBuilder();
        foreach (var c in host)
            if (char.IsAsciiLetterOrDigit(c) && b.Length < 32) b.Append(c);
        return b.Length == 0 ? "host" : b.ToString();
    }

    private static bool IsRunning(int pid)
    {
        if (OperatingSystem.IsLinux()) return Directory.Exists($"/proc/{pid}");
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;  // no such process
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or NotSupportedException)
        {
            return true;  // cannot tell: keep the file
        }
    }

    private static void TryDelete(string file)
    {
        try
        {
            File.Delete(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the original error (or the finished write) matters more than a leftover temporary file.
        }
    }
}
