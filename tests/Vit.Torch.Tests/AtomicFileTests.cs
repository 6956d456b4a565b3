using System.Diagnostics;
using Vit.Torch.Checkpoints;

namespace Vit.Torch.Tests;

/// <summary>What a writer killed midway leaves beside its target, and who cleans it up.</summary>
[TestClass]
public sealed class AtomicFileTests : TempDirectoryTests
{
    /// <summary>The child's half: writes half a file into <paramref name="path"/>'s temporary, says so, and waits to be killed.</summary>
    internal static int WriteAndHang(string path)
    {
        AtomicFile.Write(path, fs =>
        {
            fs.Write(new byte[100_000]);
            fs.Flush();
            Console.Out.WriteLine("writing");
            Console.Out.Flush();
            Thread.Sleep(Timeout.Infinite);
        });
        return 1;  // not reached
    }

    [TestMethod]
    public void AKilledWritersTemporaryIsDeletedByTheNextWrite_OthersAreKept()
    {
        var target = Path.Combine(Dir, "model.zip");
        File.WriteAllBytes(target, [1, 2, 3]);

        using (var child = Process.Start(Program.Child("atomic-write-hang", target))!)
        {
            var line = child.StandardOutput.ReadLine();
            if (line != "writing")
            {
                child.Kill();
                Assert.Fail($"the child did not start writing: {line} {child.StandardError.ReadToEnd()}");
            }
            child.Kill();  // SIGKILL mid-write: no catch block, no finally runs
            child.WaitForExit();
        }
        var killed = Directory.GetFiles(Dir, "model.zip.*.tmp");
        Assert.HasCount(1, killed, "the killed writer left its temporary file");
        Assert.AreEqual(100_000, new FileInfo(killed[0]).Length);
        CollectionAssert.AreEqual(new byte[] { 1, 2, 3 }, File.ReadAllBytes(target), "the target is untouched");

        // Temporaries that must stay: one of a process that still runs, one of this process, one of another host
        // (a shared folder), and one of another target.
        using var alive = Process.Start(new ProcessStartInfo("sleep", "60"))!;
        try
        {
            string Tag(string host, int pid) => Path.Combine(Dir, $"model.zip.{host}-{pid}-{Guid.NewGuid():N}.tmp");
            var kept = new[]
            {
                Tag(AtomicFile.TempTag, alive.Id), Tag(AtomicFile.TempTag, Environment.ProcessId),
                Tag(AtomicFile.TempTag + "x", 999_999_999), Path.Combine(Dir, $"other.zip.{AtomicFile.TempTag}-999999999-{Guid.NewGuid():N}.tmp"),
            };
            foreach (var k in kept) File.WriteAllBytes(k, [9]);

            AtomicFile.Write(target, fs => fs.Write([4, 5]));
            CollectionAssert.AreEqual(new byte[] { 4, 5 }, File.ReadAllBytes(target));
            Assert.IsFalse(File.Exists(killed[0]), "the killed writer's temporary file is gone");
            foreach (var k in kept) Assert.IsTrue(File.Exists(k), $"{Path.GetFileName(k)} is kept");
        }
        finally
        {
            alive.Kill();
        }
    }
}
