namespace Vit.Torch.Tests;

/// <summary>A test class whose every test gets a fresh temporary folder, <see cref="Dir"/>, deleted afterwards.</summary>
public abstract class TempDirectoryTests
{
    /// <summary>This test's folder.</summary>
    protected string Dir { get; private set; } = "";

    public TestContext TestContext { get; set; } = null!;

    [TestInitialize]
    public void CreateFolder() => Dir = Directory.CreateTempSubdirectory($"vit-{GetType().Name}-").FullName;

    [TestCleanup]
    public void DeleteFolder()
    {
        if (Directory.Exists(Dir)) Directory.Delete(Dir, recursive: true);
    }
}
