using Vit.MLNet;

namespace Vit.Cli;

/// <summary>The data the commands read: an image folder (one subfolder per class) or a CSV/TSV file with ImagePath and
/// Label columns; and model files.</summary>
internal static class CliData
{
    public const string ImagePath = "ImagePath", Label = "Label";

    /// <summary>A labelled data set as rows of (absolute image path, label). A folder follows the ImageFolder convention; a
    /// .csv or .tsv file needs a header with <c>ImagePath</c> and <c>Label</c>, relative paths being relative to the file.</summary>
    public static IDataView Labelled(VitContext ctx, string path, string what)
    {
        if (Directory.Exists(path)) return ctx.Data.LoadFromImageFolder(path);
        if (!File.Exists(path)) throw new UsageException($"{what} not found: {path} (give an image folder with one subfolder per class, or a CSV file)");
        var ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext is not (".csv" or ".tsv"))
            throw new UsageException($"{what} {path} is neither a folder nor a .csv/.tsv file");
        var table = ctx.Data.LoadFromTextFile(path, ext == ".tsv" ? '\t' : ',');
        var names = table.Schema.Select(c => c.Name).ToList();
        foreach (var need in new[] { ImagePath, Label })
            if (!names.Contains(need))
                throw new UsageException($"{path} has no {need} column (its header: {string.Join(", ", names)}); the header must name ImagePath and Label");
        int pathIndex = table.Schema[ImagePath].Index, labelIndex = table.Schema[Label].Index;
        var folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var rows = table.GetRows().Select(r => new object?[]
        {
            Path.GetFullPath(Path.Combine(folder, (string?)r[pathIndex] ?? "")), (string?)r[labelIndex] ?? "",
        }).ToArray();
        if (rows.Length == 0) throw new UsageException($"{path} has a header but no rows");
        return new TableDataView(new DataViewSchema([(ImagePath, TextDataViewType.Instance), (Label, TextDataViewType.Instance)]), rows);
    }

    /// <summary>The image files named on the command line: files as given, folders searched recursively for the
    /// image extensions, in a stable order.</summary>
    public static List<string> ImageFiles(IEnumerable<string> inputs)
    {
        var files = new List<string>();
        foreach (var input in inputs)
        {
            if (Directory.Exists(input))
                files.AddRange(Directory.EnumerateFiles(input, "*", SearchOption.AllDirectories)
                    .Where(f => DataOperationsCatalog.ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                    .Order(StringComparer.Ordinal));
            else if (File.Exists(input)) files.Add(input);
            else throw new UsageException($"no such file or folder: {input}");
        }
        if (files.Count == 0)
            throw new UsageException($"no images ({string.Join(", ", DataOperationsCatalog.ImageExtensions.Order())}) in {string.Join(", ", inputs)}");
        return files;
    }

    /// <summary>Loads a model file; a missing one is a usage error, a damaged one the loader's InvalidDataException.</summary>
    public static (ITransformer Model, DataViewSchema Schema, VitTransformer Vit) LoadModel(VitContext ctx, string path)
    {
        if (!File.Exists(path)) throw new UsageException($"model file not found: {path}");
        var model = ctx.Model.Load(path, out var schema);
        return (model, schema, Transformers.Vit(model, path));
    }

    /// <summary>An empty data view with the schema a model was saved with (what ConvertToOnnx checks the model against).</summary>
    public static IDataView Empty(DataViewSchema schema) => new TableDataView(schema, Array.Empty<object?[]>());

    /// <summary>Rows of image paths only, for scoring.</summary>
    public static IDataView Paths(IEnumerable<string> files) =>
        new TableDataView(new DataViewSchema([(ImagePath, TextDataViewType.Instance)]),
            files.Select(f => new object?[] { Path.GetFullPath(f) }).ToArray());
}
