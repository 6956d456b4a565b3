using Vit.Torch.Imaging;

namespace Vit.MLNet;

/// <summary>The per-image training augmentation of each <see cref="AugmentationPreset"/>.</summary>
internal static class Augmentations
{
    public static Func<Image, Random, Image>? For(AugmentationPreset preset, int size) => preset switch
    {
        AugmentationPreset.None => null,
        AugmentationPreset.Light => (image, rng) => Light(image, rng, size),
        AugmentationPreset.Standard => (image, rng) =>
        {
            using var light = Light(image, rng, size);
            using var rand = Augment.RandAugment(light, rng, ops: 2, magnitude: 9);
            return Augment.RandomErasing(rand, rng, p: 0.25);
        },
        _ => throw new ArgumentException($"unknown augmentation preset {preset}"),
    };

    private static Image Light(Image image, Random rng, int size)
    {
        using var crop = Augment.RandomResizedCrop(image, rng, size, size, minScale: 0.6, maxScale: 1.0);
        return Augment.RandomHorizontalFlip(crop, rng);
    }
}
