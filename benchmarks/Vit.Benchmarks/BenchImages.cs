using Vit.Torch.Imaging;

/// <summary>Photo-like JPEGs (smooth gradients plus noise) the benchmarks write to a temporary folder.</summary>
internal static class BenchImages
{
    /// <summary>Writes <paramref name="count"/> JPEGs of <paramref name="size"/>² pixels, image i into class folder
    /// <c>c{i % classes}</c> when <paramref name="classes"/> &gt; 0 (a folder dataset), else all into <paramref name="dir"/>.
    /// Returns the files' paths in order.</summary>
    public static List<string> Write(string dir, int count, int size, int classes = 0)
    {
        var rng = new Random(1);
        var px = new byte[size * size * 3];
        var paths = new List<string>(count);
        for (int i = 0; i < count; i++)
        {
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                    for (int c = 0; c < 3; c++)
                        px[(y * size + x) * 3 + c] = (byte)Math.Clamp((x * (c + 1) + y * (3 - c) + i * 7) % 256 + rng.Next(-20, 21), 0, 255);
            using var img = Image.FromPixels(px, size, size, 3);
            var folder = classes > 0 ? Directory.CreateDirectory(Path.Combine(dir, $"c{i % classes}")).FullName : dir;
            var path = Path.Combine(folder, $"{i:D5}.jpg");
            File.WriteAllBytes(path, img.EncodeJpeg(90));
            paths.Add(path);
        }
        return paths;
    }
}
