namespace Vit.Torch.Checkpoints;

/// <summary>Files written whole or not at all: a temporary file beside the target, flushed to disk, then renamed over it.</summary>
internal static class AtomicFile
{
    /// <summary>
    /// Writes <paramref name="path"/> through <paramref name="write"/>. A crash or an exception midway leaves any previous
    /// file at <paramref name="path"/> untouched and no temporary file behind (rename(2) is atomic on one file system).
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder of <paramref name="path"/> does not exist.</exception>
    public static void Write(string path, Action<FileStream> write, int bufferSize = 4096)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = Path.GetFullPath(path);
        var folder = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"cannot write {path}: the folder {folder} does not exist");
        var temp = $"{full}.{Guid.NewGuid():N}.tmp";
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
            try
            {
                File.Delete(temp);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Best effort: the original error matters more than a leftover temporary file.
            }
            throw;
        }
    }
}
