using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Vit.MLNet;

/// <summary>
/// Marks an <see cref="MLImage"/> property of an input class as an image of any size, the type <c>LoadImages</c> gives
/// its column: for images that arrive in memory (uploads), fed to a model without its LoadImages step
/// (<see cref="VitPipeline.WithoutImageLoading"/>). ML.NET 6.0's own <c>[ImageType]</c> without a size cannot serve: it
/// registers <c>new ImageDataViewType(0, 0)</c>, which throws ("Must be positive") when a prediction engine is made.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class AnySizeImageAttribute : DataViewTypeAttribute
{
    /// <inheritdoc />
    public override bool Equals(DataViewTypeAttribute other) => other is AnySizeImageAttribute;

    /// <inheritdoc />
    public override int GetHashCode() => typeof(AnySizeImageAttribute).GetHashCode();

    /// <summary>Registers the size-less image type for <see cref="MLImage"/> members marked with this attribute.</summary>
    public override void Register() => DataViewTypeManager.Register(new ImageDataViewType(), typeof(MLImage), this);
}
