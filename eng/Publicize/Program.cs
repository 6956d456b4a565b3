using Mono.Cecil;

// Writes a copy of an assembly in which every type, method and field is public, to compile against.
//
// Why: ML.NET's extension points for saving a transformer into its model files (ModelSaveContext's writer and
// binary streams, ModelLoadContext, VersionInfo, LoadableClassAttribute, SignatureLoadModel) are internal, shared
// with its own packages through InternalsVisibleTo. Vit.MLNet compiles against these copies and declares
// [IgnoresAccessChecksTo] for the two assemblies, so the runtime lets it call those members of the package's real,
// unchanged assemblies. The copies never run and are never shipped.
//
// Usage: Publicize <input.dll> <output.dll>
if (args.Length != 2)
{
    Console.Error.WriteLine("usage: Publicize <input.dll> <output.dll>");
    return 2;
}
var (input, output) = (args[0], args[1]);
var resolver = new DefaultAssemblyResolver();
resolver.AddSearchDirectory(Path.GetDirectoryName(Path.GetFullPath(input))!);
using (var assembly = AssemblyDefinition.ReadAssembly(input, new ReaderParameters { AssemblyResolver = resolver }))
{
    int types = 0, members = 0;
    foreach (var type in assembly.MainModule.GetTypes())
    {
        if (type.IsNested ? !type.IsNestedPublic : !type.IsPublic)
        {
            if (type.IsNested) type.IsNestedPublic = true;
            else type.IsPublic = true;
            types++;
        }
        foreach (var method in type.Methods.Where(m => !m.IsPublic))
        {
            method.IsPublic = true;
            members++;
        }
        // An event's backing field has the event's name: left private, else every use of the event is ambiguous.
        var events = type.Events.Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var field in type.Fields.Where(f => !f.IsPublic && !events.Contains(f.Name)))
        {
            field.IsPublic = true;
            members++;
        }
    }
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
    var temporary = output + ".tmp";
    assembly.Write(temporary);
    File.Move(temporary, output, overwrite: true);
    Console.WriteLine($"Publicize: {Path.GetFileName(input)} -> {output} ({types} types, {members} members made public)");
}
return 0;
