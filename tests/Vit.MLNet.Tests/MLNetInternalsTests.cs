using System.Collections.Immutable;
using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Text.Json;
using Vit.MLNet;

namespace Vit.MLNet.Tests;

/// <summary>
/// Vit.MLNet uses members of ML.NET that are internal (see src/Vit.MLNet/MLNetInternals.cs): it compiles against
/// publicized copies of Microsoft.ML.Core, .Data and .ImageAnalytics and runs against the real ones, so a member that
/// moves in another ML.NET version fails only at run time. These tests check, on the assemblies this process really runs
/// with, that every member Vit.MLNet.dll refers to in those three assemblies exists with the signature it was compiled
/// against, that the internal ones are exactly the ones listed here (each checked again by hand), and that the version is
/// the pinned one.
/// </summary>
[TestClass]
public sealed class MLNetInternalsTests
{
    private static readonly string[] Pinned = ["Microsoft.ML.Core", "Microsoft.ML.Data", "Microsoft.ML.ImageAnalytics"];

    private static string Versions => string.Join(", ", Pinned.Select(a =>
        $"{a} {Assembly.Load(a).GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion}"));

    private static string Moved(string what) =>
        $"ML.NET's internal member {what} is not there as Vit.MLNet uses it, in the assemblies this test runs with ({Versions}). " +
        "Vit.MLNet calls it (see src/Vit.MLNet/MLNetInternals.cs); the Microsoft.ML and Microsoft.ML.ImageAnalytics version pinned in " +
        "src/Vit.MLNet/Vit.MLNet.csproj ([6.0.0]) must not be moved without updating Vit.MLNet to the member's new shape and this test.";

    /// <summary>
    /// The internal members Vit.MLNet.dll refers to, as <see cref="Describe(MemberInfo)"/> writes them: what the scan of
    /// its metadata must find, no more and no less (a new use of an internal member must be added here, and so reviewed).
    /// </summary>
    private static readonly string[] Internal =
    [
        "Microsoft.ML.Data.AnnotationBuilderExtensions",
        "Microsoft.ML.Data.AnnotationBuilderExtensions::AddKeyValues``1(Microsoft.ML.DataViewSchema+Annotations+Builder, System.Int32, Microsoft.ML.Data.PrimitiveDataViewType, Microsoft.ML.ValueGetter`1<Microsoft.ML.Data.VBuffer`1<!!0>>) : System.Void",
        "Microsoft.ML.Data.AnnotationBuilderExtensions::AddSlotNames(Microsoft.ML.DataViewSchema+Annotations+Builder, System.Int32, Microsoft.ML.ValueGetter`1<Microsoft.ML.Data.VBuffer`1<System.ReadOnlyMemory`1<System.Char>>>) : System.Void",
        "Microsoft.ML.Data.CatalogUtils",
        "Microsoft.ML.Data.CatalogUtils::GetEnvironment(Microsoft.ML.Data.IInternalCatalog) : Microsoft.ML.Runtime.IHostEnvironment",
        "Microsoft.ML.Data.DataViewUtils",
        "Microsoft.ML.Data.DataViewUtils::ConsolidateGeneric(Microsoft.ML.Runtime.IChannelProvider, Microsoft.ML.DataViewRowCursor[], System.Int32) : Microsoft.ML.DataViewRowCursor",
        "Microsoft.ML.Data.DataViewUtils::GetThreadCount(System.Int32, System.Boolean) : System.Int32",
        "Microsoft.ML.Data.IInternalCatalog",
        "Microsoft.ML.LoadableClassAttribute",
        "Microsoft.ML.LoadableClassAttribute::.ctor(System.Type, System.Type, System.Type, System.String, System.String[])",
        "Microsoft.ML.ModelLoadContext",
        "Microsoft.ML.ModelLoadContext::CheckAtModel(Microsoft.ML.VersionInfo) : System.Void",
        "Microsoft.ML.ModelLoadContext::Directory : System.String",
        "Microsoft.ML.ModelLoadContext::Reader : System.IO.BinaryReader",
        "Microsoft.ML.ModelLoadContext::TryLoadBinaryStream(System.String, System.Action`1<System.IO.BinaryReader>) : System.Boolean",
        "Microsoft.ML.ModelSaveContext::CheckAtModel() : System.Void",
        "Microsoft.ML.ModelSaveContext::SaveBinaryStream(System.String, System.Action`1<System.IO.BinaryWriter>) : System.Void",
        "Microsoft.ML.ModelSaveContext::SetVersionInfo(Microsoft.ML.VersionInfo) : System.Void",
        "Microsoft.ML.ModelSaveContext::Writer : System.IO.BinaryWriter",
        "Microsoft.ML.Runtime.IHostEnvironmentInternal",
        "Microsoft.ML.Runtime.IHostEnvironmentInternal::get_Seed() : System.Nullable`1<System.Int32>",
        "Microsoft.ML.SchemaShape+Column::.ctor(System.String, Microsoft.ML.SchemaShape+Column+VectorKind, Microsoft.ML.Data.DataViewType, System.Boolean, Microsoft.ML.SchemaShape)",
        "Microsoft.ML.SchemaShape::Create(Microsoft.ML.DataViewSchema) : Microsoft.ML.SchemaShape",
        "Microsoft.ML.SchemaShape::TryFindColumn(System.String, Microsoft.ML.SchemaShape+Column&) : System.Boolean",
        "Microsoft.ML.SignatureLoadModel",
        "Microsoft.ML.Transforms.Image.ImageResizingEstimator+ColumnOptions",
        "Microsoft.ML.Transforms.Image.ImageResizingEstimator+ColumnOptions::ImageHeight : System.Int32",
        "Microsoft.ML.Transforms.Image.ImageResizingEstimator+ColumnOptions::ImageWidth : System.Int32",
        "Microsoft.ML.Transforms.Image.ImageResizingEstimator+ColumnOptions::Name : System.String",
        "Microsoft.ML.Transforms.Image.ImageResizingEstimator+ColumnOptions::Resizing : Microsoft.ML.Transforms.Image.ImageResizingEstimator+ResizingKind",
        "Microsoft.ML.Transforms.Image.ImageResizingTransformer::get_Columns() : System.Collections.Generic.IReadOnlyCollection`1<Microsoft.ML.Transforms.Image.ImageResizingEstimator+ColumnOptions>",
        "Microsoft.ML.VersionInfo",
        "Microsoft.ML.VersionInfo::.ctor(System.String, System.UInt32, System.UInt32, System.UInt32, System.String, System.String, System.String)",
    ];

    /// <summary>Vit.MLNet was built against, and runs with, ML.NET 6.0.0.</summary>
    [TestMethod]
    public void VitMLNetIsBuiltAgainstAndRunsWithMLNet600()
    {
        // Built against: the dependency graph the build resolved (this test assembly's deps.json) gives Vit.MLNet's packages.
        var deps = Path.Combine(AppContext.BaseDirectory, "Vit.MLNet.Tests.deps.json");
        using var json = JsonDocument.Parse(File.ReadAllText(deps));
        var target = json.RootElement.GetProperty("targets").EnumerateObject().First().Value;
        var vit = target.EnumerateObject().Single(p => p.Name.StartsWith("Vit.MLNet/", StringComparison.Ordinal)).Value.GetProperty("dependencies");
        foreach (var package in new[] { "Microsoft.ML", "Microsoft.ML.ImageAnalytics" })
            Assert.AreEqual("6.0.0", vit.GetProperty(package).GetString(), Moved($"(the package {package})"));

        // Runs with: the assemblies loaded in this process, by their file and informational versions.
        var referenced = typeof(VitEstimator).Assembly.GetReferencedAssemblies().ToDictionary(a => a.Name!);
        foreach (var name in Pinned)
        {
            var assembly = Assembly.Load(name);
            var file = assembly.GetCustomAttribute<AssemblyFileVersionAttribute>()?.Version ?? "";
            var informational = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "";
            StringAssert.StartsWith(file, "6.0.", $"{name} file version {file}: {Moved("(the version)")}");
            Assert.IsTrue(informational == "6.0.0" || informational.StartsWith("6.0.0+", StringComparison.Ordinal), $"{name} {informational}: {Moved("(the version)")}");
            Assert.IsTrue(referenced.ContainsKey(name), $"Vit.MLNet references {name}");
            Assert.AreEqual(referenced[name].Version, assembly.GetName().Version, $"{name}: the assembly version Vit.MLNet was compiled against is the one loaded");
        }
    }

    /// <summary>The members named in src/Vit.MLNet/MLNetInternals.cs, each with the signature Vit.MLNet calls.</summary>
    [TestMethod]
    public void TheInternalMembersVitMLNetUsesHaveTheirExpectedSignatures()
    {
        const BindingFlags All = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static;
        var failures = new List<string>();
        void Check(bool ok, string what)
        {
            if (!ok) failures.Add(what);
        }
        // Each type is looked for in the three assemblies; in which one Vit.MLNet expects it (as the runtime resolves it,
        // type forwarders included) is what the scan below checks.
        Type T(string name) => Pinned.Select(a => Assembly.Load(a).GetType(name)).FirstOrDefault(t => t is not null) ?? throw new AssertFailedException(Moved(name));
        var saveCtx = T("Microsoft.ML.ModelSaveContext");
        var loadCtx = T("Microsoft.ML.ModelLoadContext");
        var versionInfo = T("Microsoft.ML.VersionInfo");
        var channelProvider = T("Microsoft.ML.Runtime.IChannelProvider");
        var hostEnv = T("Microsoft.ML.Runtime.IHostEnvironment");

        Check(saveCtx.GetField("Writer", All)?.FieldType == typeof(BinaryWriter), "ModelSaveContext.Writer : BinaryWriter");
        Check(saveCtx.GetMethod("SetVersionInfo", All, [versionInfo])?.ReturnType == typeof(void), "ModelSaveContext.SetVersionInfo(VersionInfo)");
        Check(saveCtx.GetMethod("SaveBinaryStream", All, [typeof(string), typeof(Action<BinaryWriter>)])?.ReturnType == typeof(void),
            "ModelSaveContext.SaveBinaryStream(string, Action<BinaryWriter>)");
        Check(saveCtx.GetMethod("CheckAtModel", All, Type.EmptyTypes)?.ReturnType == typeof(void), "ModelSaveContext.CheckAtModel()");
        Check(loadCtx.GetField("Reader", All)?.FieldType == typeof(BinaryReader), "ModelLoadContext.Reader : BinaryReader");
        Check(loadCtx.GetMethod("TryLoadBinaryStream", All, [typeof(string), typeof(Action<BinaryReader>)])?.ReturnType == typeof(bool),
            "ModelLoadContext.TryLoadBinaryStream(string, Action<BinaryReader>) : bool");
        Check(loadCtx.GetMethod("CheckAtModel", All, [versionInfo])?.ReturnType == typeof(void), "ModelLoadContext.CheckAtModel(VersionInfo)");
        Check(loadCtx.GetField("Directory", All)?.FieldType == typeof(string), "ModelLoadContext.Directory : string");

        // VersionInfo's constructor: Vit.MLNet passes its arguments by name, compiled to positions (and the optional seventh,
        // loaderSignatureAlt, as its default null), so the order of the names matters.
        var ctor = versionInfo.GetConstructors(All).SingleOrDefault(c => c.GetParameters().Length == 7);
        Check(ctor is not null && string.Join(", ", ctor.GetParameters().Select(p => $"{p.ParameterType.Name} {p.Name}"))
              == "String modelSignature, UInt32 verWrittenCur, UInt32 verReadableCur, UInt32 verWeCanReadBack, String loaderAssemblyName, String loaderSignature, String loaderSignatureAlt"
              && ctor.GetParameters()[6] is { IsOptional: true, DefaultValue: null },
            "VersionInfo(string modelSignature, uint verWrittenCur, uint verReadableCur, uint verWeCanReadBack, string loaderAssemblyName, string loaderSignature, " +
            "string loaderSignatureAlt = null), found: "
            + string.Join("; ", versionInfo.GetConstructors(All).Select(c => string.Join(", ", c.GetParameters().Select(p => $"{p.ParameterType.Name} {p.Name}")))));

        var loadable = T("Microsoft.ML.LoadableClassAttribute");
        Check(typeof(Attribute).IsAssignableFrom(loadable) && loadable.GetConstructor(All, [typeof(Type), typeof(Type), typeof(Type), typeof(string), typeof(string[])]) is not null,
            "LoadableClassAttribute(Type instType, Type argType, Type sigType, string userName, params string[] loadNames)");
        var signature = T("Microsoft.ML.SignatureLoadModel");
        Check(typeof(Delegate).IsAssignableFrom(signature) && signature.GetMethod("Invoke")!.GetParameters().Select(p => p.ParameterType).SequenceEqual([loadCtx]),
            "delegate SignatureLoadModel(ModelLoadContext ctx)");

        // The attributes as the runtime reads them (ML.NET's catalog finds the loaders through them): the signature type
        // resolves from the name the compiler wrote, and each loaded class has the Create(IHostEnvironment, ModelLoadContext)
        // that ML.NET calls.
        var attributes = typeof(VitEstimator).Assembly.GetCustomAttributesData().Where(a => a.AttributeType == loadable).ToList();
        Check(attributes.Count == 2, $"two LoadableClass attributes on Vit.MLNet (VitTransformer, VitFeaturizingTransformer), found {attributes.Count}");
        foreach (var a in attributes)
        {
            var args = a.ConstructorArguments;
            var instance = (Type)args[0].Value!;
            Check(ReferenceEquals(args[2].Value, signature), $"LoadableClass({instance.Name}): the signature type is SignatureLoadModel, found {args[2].Value}");
            Check(instance.GetMethod("Create", All, [hostEnv, loadCtx]) is { IsStatic: true } create && create.ReturnType == instance,
                $"{instance.Name}.Create(IHostEnvironment, ModelLoadContext)");
        }

        var viewUtils = T("Microsoft.ML.Data.DataViewUtils");
        Check(viewUtils.GetMethod("ConsolidateGeneric", All, [channelProvider, typeof(DataViewRowCursor[]), typeof(int)])?.ReturnType == typeof(DataViewRowCursor),
            "DataViewUtils.ConsolidateGeneric(IChannelProvider, DataViewRowCursor[], int) : DataViewRowCursor");
        Check(viewUtils.GetMethod("GetThreadCount", All, [typeof(int), typeof(bool)]) is { ReturnType: var threads } getThreadCount && threads == typeof(int)
              && getThreadCount.GetParameters().All(p => p.IsOptional), "DataViewUtils.GetThreadCount(int num = 0, bool preferOne = false) : int");
        var internalEnv = T("Microsoft.ML.Runtime.IHostEnvironmentInternal");
        Check(internalEnv.GetProperty("Seed", All)?.PropertyType == typeof(int?) && internalEnv.IsAssignableFrom(typeof(MLContext)),
            "IHostEnvironmentInternal.Seed : int?, implemented by MLContext");
        var catalogUtils = T("Microsoft.ML.Data.CatalogUtils");
        var internalCatalog = T("Microsoft.ML.Data.IInternalCatalog");
        Check(catalogUtils.GetMethod("GetEnvironment", All, [internalCatalog])?.ReturnType == hostEnv, "CatalogUtils.GetEnvironment(IInternalCatalog) : IHostEnvironment");
        foreach (var catalog in new[] { typeof(TransformsCatalog), typeof(ModelOperationsCatalog), typeof(MulticlassClassificationCatalog),
                     typeof(MulticlassClassificationCatalog.MulticlassClassificationTrainers) })
            Check(internalCatalog.IsAssignableFrom(catalog), $"{catalog.Name} implements IInternalCatalog (VitCatalog reaches its environment through it)");

        // Schema shapes and annotations, as ML.NET's own estimators make them.
        var schemaShape = typeof(SchemaShape);
        Check(schemaShape.GetMethod("Create", All, [typeof(DataViewSchema)])?.ReturnType == schemaShape, "SchemaShape.Create(DataViewSchema) : SchemaShape");
        Check(schemaShape.GetMethod("TryFindColumn", All, [typeof(string), typeof(SchemaShape.Column).MakeByRefType()])?.ReturnType == typeof(bool),
            "SchemaShape.TryFindColumn(string, out SchemaShape.Column) : bool");
        Check(typeof(SchemaShape.Column).GetConstructor(All, [typeof(string), typeof(SchemaShape.Column.VectorKind), typeof(DataViewType), typeof(bool), schemaShape]) is not null,
            "SchemaShape.Column(string name, VectorKind vecKind, DataViewType itemType, bool isKey, SchemaShape annotations = null)");
        var annotations = T("Microsoft.ML.Data.AnnotationBuilderExtensions");
        Check(annotations.GetMethod("AddSlotNames", All, [typeof(DataViewSchema.Annotations.Builder), typeof(int), typeof(ValueGetter<VBuffer<ReadOnlyMemory<char>>>)])?.ReturnType == typeof(void),
            "AnnotationBuilderExtensions.AddSlotNames(this DataViewSchema.Annotations.Builder, int, ValueGetter<VBuffer<ReadOnlyMemory<char>>>)");
        Check(annotations.GetMethods(All).Any(m => m.Name == "AddKeyValues" && m.IsGenericMethodDefinition && m.GetParameters().Select(p => p.ParameterType.Name).SequenceEqual(
                  ["Builder", "Int32", "PrimitiveDataViewType", "ValueGetter`1"])),
            "AnnotationBuilderExtensions.AddKeyValues<T>(this DataViewSchema.Annotations.Builder, int, PrimitiveDataViewType, ValueGetter<VBuffer<T>>)");
        var resizer = T("Microsoft.ML.Transforms.Image.ImageResizingTransformer");
        var columnOptions = T("Microsoft.ML.Transforms.Image.ImageResizingEstimator+ColumnOptions");
        Check(resizer.GetProperty("Columns", All)?.PropertyType == typeof(IReadOnlyCollection<>).MakeGenericType(columnOptions),
            "ImageResizingTransformer.Columns : IReadOnlyCollection<ImageResizingEstimator.ColumnOptions>");
        foreach (var (field, type) in new[] { ("Name", typeof(string)), ("ImageWidth", typeof(int)), ("ImageHeight", typeof(int)),
                     ("Resizing", typeof(Microsoft.ML.Transforms.Image.ImageResizingEstimator.ResizingKind)) })
            Check(columnOptions.GetField(field, All)?.FieldType == type, $"ImageResizingEstimator.ColumnOptions.{field} : {type.Name}");

        Assert.IsEmpty(failures, string.Join("\n", failures.Select(Moved)));
    }

    /// <summary>
    /// Every member Vit.MLNet.dll refers to in the three assemblies, read from its metadata, exists in the assemblies this
    /// process runs with, with the signature it was compiled against; the ones that are not public are exactly
    /// <see cref="Internal"/>.
    /// </summary>
    [TestMethod]
    public void EveryMemberVitMLNetRefersToInMLNetExists_AndTheInternalOnesAreListed()
    {
        var (missing, nonPublic, count) = Scan(typeof(VitEstimator).Assembly.Location);
        Assert.IsGreaterThan(30, count, "the scan sees Vit.MLNet's references into ML.NET");
        Assert.IsEmpty(missing, string.Join("\n", missing.Select(Moved)));
        var unlisted = nonPublic.Except(Internal).Order(StringComparer.Ordinal).ToList();
        Assert.IsEmpty(unlisted, "Vit.MLNet uses internal members of ML.NET not listed in MLNetInternalsTests.Internal (add them there, and to the checks by hand):\n"
                                  + string.Join("\n", unlisted.Select(u => $"        \"{u}\",")));
        var unused = Internal.Except(nonPublic).ToList();
        Assert.IsEmpty(unused, "listed in MLNetInternalsTests.Internal but no longer used by Vit.MLNet (remove them):\n" + string.Join("\n", unused));
    }

    // ------------------------------------------------------------------ the scan

    /// <summary>A type in a signature, as text that reflection's types also give (<see cref="Describe(Type)"/>), with the
    /// assembly and full name of the type (the generic definition, for an instantiation) when it is one of another assembly.</summary>
    private sealed record Sig(string Text, string? Assembly = null, string? FullName = null);

    private sealed class Signatures(MetadataReader md) : ISignatureTypeProvider<Sig, object?>
    {
        public Sig GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind)
        {
            var (assembly, name) = Resolve(md, handle);
            return new Sig(name, assembly, name);
        }

        public Sig GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind)
        {
            var t = md.GetTypeDefinition(handle);
            var name = md.GetString(t.Name);
            var ns = md.GetString(t.Namespace);
            if (t.GetDeclaringType() is { IsNil: false } outer) return new Sig(GetTypeFromDefinition(reader, outer, rawTypeKind).Text + "+" + name);
            return new Sig(ns.Length == 0 ? name : ns + "." + name);
        }

        public Sig GetTypeFromSpecification(MetadataReader reader, object? context, TypeSpecificationHandle handle, byte rawTypeKind) =>
            md.GetTypeSpecification(handle).DecodeSignature(this, context);

        public Sig GetGenericInstantiation(Sig genericType, ImmutableArray<Sig> typeArguments) =>
            genericType with { Text = $"{genericType.Text}<{string.Join(",", typeArguments.Select(a => a.Text))}>" };

        public Sig GetSZArrayType(Sig elementType) => new(elementType.Text + "[]");
        public Sig GetArrayType(Sig elementType, ArrayShape shape) => new($"{elementType.Text}[{new string(',', shape.Rank - 1)}]");
        public Sig GetByReferenceType(Sig elementType) => new(elementType.Text + "&");
        public Sig GetPointerType(Sig elementType) => new(elementType.Text + "*");
        public Sig GetPinnedType(Sig elementType) => elementType;
        public Sig GetModifiedType(Sig modifier, Sig unmodifiedType, bool isRequired) => unmodifiedType;
        public Sig GetGenericMethodParameter(object? context, int index) => new($"!!{index}");
        public Sig GetGenericTypeParameter(object? context, int index) => new($"!{index}");
        public Sig GetFunctionPointerType(MethodSignature<Sig> signature) => new("fnptr");
        public Sig GetPrimitiveType(PrimitiveTypeCode typeCode) => new(typeCode switch
        {
            PrimitiveTypeCode.Void => "System.Void", PrimitiveTypeCode.Boolean => "System.Boolean", PrimitiveTypeCode.Char => "System.Char",
            PrimitiveTypeCode.SByte => "System.SByte", PrimitiveTypeCode.Byte => "System.Byte", PrimitiveTypeCode.Int16 => "System.Int16",
            PrimitiveTypeCode.UInt16 => "System.UInt16", PrimitiveTypeCode.Int32 => "System.Int32", PrimitiveTypeCode.UInt32 => "System.UInt32",
            PrimitiveTypeCode.Int64 => "System.Int64", PrimitiveTypeCode.UInt64 => "System.UInt64", PrimitiveTypeCode.Single => "System.Single",
            PrimitiveTypeCode.Double => "System.Double", PrimitiveTypeCode.String => "System.String", PrimitiveTypeCode.IntPtr => "System.IntPtr",
            PrimitiveTypeCode.UIntPtr => "System.UIntPtr", PrimitiveTypeCode.Object => "System.Object", PrimitiveTypeCode.TypedReference => "System.TypedReference",
            _ => typeCode.ToString(),
        });
    }

    private static (string? Assembly, string FullName) Resolve(MetadataReader md, TypeReferenceHandle handle)
    {
        var t = md.GetTypeReference(handle);
        var name = md.GetString(t.Name);
        switch (t.ResolutionScope.Kind)
        {
            case HandleKind.TypeReference:
                var (assembly, outer) = Resolve(md, (TypeReferenceHandle)t.ResolutionScope);
                return (assembly, outer + "+" + name);
            case HandleKind.AssemblyReference:
                var ns = md.GetString(t.Namespace);
                return (md.GetString(md.GetAssemblyReference((AssemblyReferenceHandle)t.ResolutionScope).Name), ns.Length == 0 ? name : ns + "." + name);
            default:
                return (null, name);
        }
    }

    /// <summary>A type as <see cref="Signatures"/> writes it.</summary>
    private static string Describe(Type t)
    {
        if (t.IsGenericParameter) return (t.IsGenericMethodParameter ? "!!" : "!") + t.GenericParameterPosition;
        if (t.IsByRef) return Describe(t.GetElementType()!) + "&";
        if (t.IsPointer) return Describe(t.GetElementType()!) + "*";
        if (t.IsSZArray) return Describe(t.GetElementType()!) + "[]";
        if (t.IsArray) return $"{Describe(t.GetElementType()!)}[{new string(',', t.GetArrayRank() - 1)}]";
        if (t.IsGenericType && !t.IsGenericTypeDefinition)
            return $"{Describe(t.GetGenericTypeDefinition())}<{string.Join(",", t.GetGenericArguments().Select(Describe))}>";
        return t.IsNested ? Describe(t.DeclaringType!) + "+" + t.Name : t.Namespace is { Length: > 0 } ns ? ns + "." + t.Name : t.Name;
    }

    /// <summary>A member as the lists of this test write it: <c>Type::Name(parameter types) : type</c>.</summary>
    private static string Describe(MemberInfo m) => m switch
    {
        ConstructorInfo c => $"{Describe(c.DeclaringType!)}::.ctor({string.Join(", ", c.GetParameters().Select(p => Describe(p.ParameterType)))})",
        MethodInfo x => $"{Describe(x.DeclaringType!)}::{x.Name}{(x.IsGenericMethodDefinition ? $"``{x.GetGenericArguments().Length}" : "")}({string.Join(", ", x.GetParameters().Select(p => Describe(p.ParameterType)))}) : {Describe(x.ReturnType)}",
        FieldInfo f => $"{Describe(f.DeclaringType!)}::{f.Name} : {Describe(f.FieldType)}",
        Type t => Describe(t),
        _ => m.ToString()!,
    };

    private static bool Accessible(Type t) => t.IsGenericParameter || t.IsVisible;

    private static bool Accessible(MemberInfo m) => Accessible(m.DeclaringType!) && m switch
    {
        MethodBase b => b.IsPublic || b.IsFamily || b.IsFamilyOrAssembly,
        FieldInfo f => f.IsPublic || f.IsFamily || f.IsFamilyOrAssembly,
        _ => true,
    };

    /// <summary>The references of the assembly at <paramref name="path"/> into the pinned assemblies: those that do not
    /// resolve here, the non-public ones that do, and how many there are.</summary>
    private static (List<string> Missing, HashSet<string> NonPublic, int Count) Scan(string path)
    {
        using var pe = new PEReader(File.OpenRead(path));
        var md = pe.GetMetadataReader();
        var provider = new Signatures(md);
        var missing = new List<string>();
        var nonPublic = new HashSet<string>(StringComparer.Ordinal);
        int count = 0;
        const BindingFlags All = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static;

        Type? Runtime(string assembly, string fullName) => Assembly.Load(assembly).GetType(fullName, throwOnError: false);

        foreach (var handle in md.TypeReferences)
        {
            var (assembly, name) = Resolve(md, handle);
            if (assembly is null || !Pinned.Contains(assembly)) continue;
            count++;
            var type = Runtime(assembly, name);
            if (type is null) missing.Add($"type {name} (in {assembly})");
            else if (!Accessible(type)) nonPublic.Add(Describe(type));
        }

        foreach (var handle in md.MemberReferences)
        {
            var member = md.GetMemberReference(handle);
            Sig parent = member.Parent.Kind switch
            {
                HandleKind.TypeReference => provider.GetTypeFromReference(md, (TypeReferenceHandle)member.Parent, 0),
                HandleKind.TypeSpecification => provider.GetTypeFromSpecification(md, null, (TypeSpecificationHandle)member.Parent, 0),
                _ => new Sig("?"),
            };
            if (parent.Assembly is null || !Pinned.Contains(parent.Assembly)) continue;
            count++;
            var name = md.GetString(member.Name);
            var type = Runtime(parent.Assembly, parent.FullName!);
            if (type is null)
            {
                missing.Add($"{parent.FullName}::{name} (its type is not in {parent.Assembly})");
                continue;
            }
            MemberInfo? found;
            string wanted;
            if (member.GetKind() == MemberReferenceKind.Field)
            {
                var fieldType = member.DecodeFieldSignature(provider, null).Text;
                wanted = $"{Describe(type)}::{name} : {fieldType}";
                found = type.GetField(name, All) is { } f && Describe(f.FieldType) == fieldType ? f : null;
            }
            else
            {
                var sig = member.DecodeMethodSignature(provider, null);
                var parameters = sig.ParameterTypes.Select(p => p.Text).ToList();
                wanted = $"{Describe(type)}::{name}({string.Join(", ", parameters)}) : {sig.ReturnType.Text}";
                IEnumerable<MethodBase> candidates = name == ".ctor" ? type.GetConstructors(All) : type.GetMethods(All).Where(m => m.Name == name);
                if (type.IsInterface) candidates = candidates.Concat(type.GetInterfaces().SelectMany(i => i.GetMethods(All)).Where(m => m.Name == name));
                found = candidates.FirstOrDefault(m =>
                    (m.IsGenericMethodDefinition ? m.GetGenericArguments().Length : 0) == sig.GenericParameterCount
                    && m.GetParameters().Select(p => Describe(p.ParameterType)).SequenceEqual(parameters)
                    && (m is ConstructorInfo || Describe(((MethodInfo)m).ReturnType) == sig.ReturnType.Text));
            }
            if (found is null) missing.Add(wanted);
            else if (!Accessible(found)) nonPublic.Add(Describe(found));
        }
        return (missing, nonPublic, count);
    }
}
