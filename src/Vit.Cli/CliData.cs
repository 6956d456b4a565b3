using Microsoft.ML;
using Vit.MLNet;
using Vit.Torch.Data;

namespace Vit.Cli;

/// <summary>The data the commands read: an image folder (one subfolder per class) or a CSV/TSV file with ImagePath and
/// Label columns; and model files.</summary>
internal static class CliData
{
    public const string ImagePath = "ImagePath", Label = "Label", Image = "Image";

    /// <summary>A labelled data set as rows of (absolute image path, label text). A folder follows the ImageFolder
    /// convention; a .csv or .tsv file needs a header with <c>ImagePath</c> and <c>Label</c>, relative paths being relative
    /// to the file (read by <see cref="Csv"/>: RFC 4180 quoting).</summary>
    public static IDataView Labelled(MLContext ml, string path, string what)
    {
        if (Directory.Exists(path)) return ml.Data.LoadFromImageFolder(path);
        if (!File.Exists(path)) throw new UsageException($"{what} not found: {path} (give an image folder with one subfolder per class, or a CSV file)");
        var ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext is not (".csv" or ".tsv"))
            throw new UsageException($"{what} {path} is neither a folder nor a .csv/.tsv file");
        var records = Csv.ReadFile(path, ext == ".tsv" ? '\t' : ',');
        if (records.Count == 0) throw new UsageException($"{path} is empty");
        var header = records[0].Fields;
        int pathIndex = IndexOf(header, ImagePath, path), labelIndex = IndexOf(header, Label, path);
        var folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var rows = new List<VitCatalog.ImageFolderRow>();
        foreach (var r in records.Skip(1))
        {
            if (r.Fields.Count != header.Count)
                throw new UsageException($"{path}, line {r.Line}: {r.Fields.Count} fields where the header has {header.Count}");
            rows.Add(new VitCatalog.ImageFolderRow { ImagePath = Path.GetFullPath(Path.Combine(folder, r.Fields[pathIndex])), Label = r.Fields[labelIndex] });
        }
        if (rows.Count == 0) throw new UsageException($"{path} has a header but no rows");
        return ml.Data.LoadFromEnumerable(rows);
    }

    private static int IndexOf(IReadOnlyList<string> header, string name, string path)
    {
        for (int i = 0; i < header.Count; i++)
            if (header[i] == name) return i;
        throw new UsageException($"{path} has no {name} column (its header: {string.Join(", ", header)}); the header must name ImagePath and Label");
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
                    .Where(f => ImageFolder.Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                    .Order(StringComparer.Ordinal));
            else if (File.Exists(input)) files.Add(input);
            else throw new UsageException($"no such file or folder: {input}");
        }
        if (files.Count == 0)
            throw new UsageException($"no images ({string.Join(", ", ImageFolder.Extensions.Order())}) in {string.Join(", ", inputs)}");
        return files;
    }

    /// <summary>Loads a model file (ML.NET's); a missing one is a usage error. A model zip of an earlier version of this
    /// library (not an ML.NET model file) is named as such, with the command that converts it.</summary>
    public static (ITransformer Model, DataViewSchema Schema, VitTransformer Vit) LoadModel(MLContext ml, string path)
    {
        if (!File.Exists(path)) throw new UsageException($"model file not found: {path}");
        ITransformer model;
        DataViewSchema schema;
        try
        {
            model = ml.Model.LoadWithClearErrors(path, out schema);
        }
        catch (Exception e) when (e is not OutOfMemoryException && Vit.Torch.Checkpoints.VitModelZip.IsStandalone(path))
        {
            throw new UsageException($"{path} is a model zip of an earlier Vit for .NET, not an ML.NET model file; convert it with: vit import {path} --out <new.zip>");
        }
        return (model, schema, VitPipeline.Find(model, path));
    }

    /// <summary>Rows of image paths only, for scoring.</summary>
    public static IDataView Paths(MLContext ml, IEnumerable<string> files) =>
        ml.Data.LoadFromEnumerable(files.Select(f => new PathRow { ImagePath = Path.GetFullPath(f) }));

    /// <summary>A row of <see cref="Paths"/>.</summary>
    public sealed class PathRow
    {
        /// <summary>The image file.</summary>
        public string ImagePath { get; set; } = "";
    }
}
