// How this assembly reaches the parts of ML.NET that are internal.
//
// ML.NET saves a transformer into its model files through ICanSaveModel.Save(ModelSaveContext) and finds the code to load
// it again through [assembly: LoadableClass(..., typeof(SignatureLoadModel), ...)] — the way its own packages do, its
// TorchSharp trainers included. The members involved (ModelSaveContext's Writer, SetVersionInfo and SaveBinaryStream,
// ModelLoadContext, VersionInfo, LoadableClassAttribute, SignatureLoadModel), and a few others we use (the consolidating
// cursor of DataViewUtils, the catalogs' environment, the columns of a fitted ResizeImages step) are internal, shared with ML.NET's own assemblies by InternalsVisibleTo. So:
// - at build time this project compiles against copies of Microsoft.ML.Core, .Data and .ImageAnalytics with every member made
//   public (eng/Publicize, see Vit.MLNet.csproj); the package's real assemblies are the ones that run;
// - at run time the attributes below tell the runtime to let this assembly use those members.
// Internal members carry no compatibility promise. They have not changed from ML.NET 2.0 to 6.0; the package version is
// pinned in Vit.MLNet.csproj and MLNetInternalsTests checks every member used here against the real assemblies.

[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Core")]
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Data")]
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.ImageAnalytics")]

namespace System.Runtime.CompilerServices
{
    /// <summary>
    /// Lets the declaring assembly use the non-public members of the named assembly. The runtime recognises the
    /// attribute by its full name in any assembly; no library defines it publicly, so each user declares it.
    /// </summary>
    [AttributeUsage(AttributeTargets.Assembly, AllowMultiple = true)]
    internal sealed class IgnoresAccessChecksToAttribute(string assemblyName) : Attribute
    {
        /// <summary>The simple name of the assembly whose non-public members this assembly uses.</summary>
        public string AssemblyName { get; } = assemblyName;
    }
}
