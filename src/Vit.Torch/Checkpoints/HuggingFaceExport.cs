using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.Torch.Checkpoints;

/// <summary>
/// A model as a Hugging Face folder, for Python colleagues: what transformers' <c>ViTForImageClassification.from_pretrained</c>
/// (or <c>ViTModel</c> for a headless model) and <c>AutoImageProcessor</c> read, and what <see cref="PretrainedVit.Load"/>
/// reads back identically.
/// </summary>
public static class HuggingFaceExport
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>
    /// Writes <c>config.json</c>, <c>model.safetensors</c> (transformers' names; qkv split into query, key and value) and
    /// <c>preprocessor_config.json</c> into <paramref name="directory"/> (created if missing), each file atomically.
    /// Labels default to "0", "1", ...; preprocessing to <see cref="VitPreprocessing.Default"/>.
    /// </summary>
    /// <exception cref="NotSupportedException">A model transformers' ViT cannot express: mean pooling, fc_norm, no class token.</exception>
    public static void SavePretrained(this VisionTransformer model, string directory, VitPreprocessing? preprocessing = null, IReadOnlyList<string>? labels = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var c = model.Config;
        if (c.Pooling != VitPooling.ClassToken || c.FcNorm || !c.HasClassToken)
            throw new NotSupportedException(
                "transformers' ViT classifies the class token after a final LayerNorm on every token; a model with mean pooling, fc_norm or no class token cannot be written in its layout (export it as ONNX or as our safetensors)");
        preprocessing ??= VitPreprocessing.Default(c.ImageSize, c.Channels);
        preprocessing.Validate();
        if (preprocessing.ImageSize != c.ImageSize || preprocessing.Channels != c.Channels)
            throw new ArgumentException($"the preprocessing ({preprocessing.ImageSize}px, {preprocessing.Channels} channels) does not fit the model ({c.ImageSize}px, {c.Channels} channels)", nameof(preprocessing));
        if (labels is not null && labels.Count != c.NumClasses)
            throw new ArgumentException($"{labels.Count} labels for a model with {c.NumClasses} classes", nameof(labels));
        labels ??= Enumerable.Range(0, c.NumClasses).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToList();

        Directory.CreateDirectory(directory);
        bool classifier = model.Head is not null;
        var map = VitNameMap.HuggingFace(classifier);
        using (var scope = TensorScope.Begin())
        {
            var tensors = new List<(string, Tensor)>();
            foreach (var (name, p) in model.NamedParameters())
            {
                var theirs = map.Theirs(name);
                var parts = theirs.Count == 1 ? [p] : p.Chunk(theirs.Count, 0);  // (3D, ...) -> query, key, value
                for (int i = 0; i < theirs.Count; i++) tensors.Add((theirs[i], parts[i]));
            }
            Safetensors.Save(Path.Combine(directory, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        }
        WriteJson(Path.Combine(directory, "config.json"), Config(c, classifier, labels));
        WriteJson(Path.Combine(directory, "preprocessor_config.json"), Preprocessor(preprocessing));
    }

    private static JsonObject Config(VitConfig c, bool classifier, IReadOnlyList<string> labels)
    {
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray(classifier ? "ViTForImageClassification" : "ViTModel"),
            ["model_type"] = "vit",
            ["hidden_size"] = c.Dim,
            ["num_hidden_layers"] = c.Depth,
            ["num_attention_heads"] = c.Heads,
            ["intermediate_size"] = c.MlpDim,
            ["hidden_act"] = "gelu",
            ["hidden_dropout_prob"] = c.Dropout,
            ["attention_probs_dropout_prob"] = c.AttentionDropout,
            ["drop_path_rate"] = c.DropPath,  // not transformers' (it has no stochastic depth), kept for our round trip
            ["initializer_range"] = 0.02,
            ["layer_norm_eps"] = c.LayerNormEps,
            ["image_size"] = c.ImageSize,
            ["patch_size"] = c.PatchSize,
            ["num_channels"] = c.Channels,
            ["qkv_bias"] = c.QkvBias,
            ["encoder_stride"] = c.PatchSize,
            ["torch_dtype"] = "float32",
        };
        if (classifier)
        {
            json["id2label"] = new JsonObject(labels.Select((l, i) => KeyValuePair.Create(i.ToString(CultureInfo.InvariantCulture), (JsonNode?)l)));
            // label2id maps each name to an id; repeated names (allowed in our labels) keep their first id.
            var label2id = new JsonObject();
            for (int i = 0; i < labels.Count; i++)
                if (!label2id.ContainsKey(labels[i])) label2id[labels[i]] = i;
            json["label2id"] = label2id;
        }
        return json;
    }

    /// <summary>
    /// transformers' processor closest to ours: ViTImageProcessor (resize to the size) for a stretch or pad, and
    /// ConvNextImageProcessor (shorter side to size / crop_pct, then a centre crop) for a crop; ours exactly under the
    /// key transformers ignores and <see cref="PretrainedVit.Load"/> reads.
    /// </summary>
    private static JsonObject Preprocessor(VitPreprocessing p)
    {
        var norm = p.Normalization.ForChannels(p.Channels);
        int resample = p.Interpolation switch
        {
            Interpolation.Nearest => 0,
            Interpolation.Bilinear => 2,
            Interpolation.Bicubic => 3,
            _ => 4,  // area: PIL's BOX
        };
        var json = new JsonObject
        {
            ["image_processor_type"] = p.ResizeMode == ResizeMode.Crop ? "ConvNextImageProcessor" : "ViTImageProcessor",
            ["do_resize"] = true,
            ["size"] = p.ResizeMode == ResizeMode.Crop
                ? new JsonObject { ["shortest_edge"] = p.ImageSize }
                : new JsonObject { ["height"] = p.ImageSize, ["width"] = p.ImageSize },
            ["resample"] = resample,
            ["do_rescale"] = true,
            ["rescale_factor"] = 1 / 255.0,
            ["do_normalize"] = true,
            ["image_mean"] = new JsonArray(norm.Mean.Select(v => (JsonNode?)(double)v).ToArray()),
            ["image_std"] = new JsonArray(norm.Std.Select(v => (JsonNode?)(double)v).ToArray()),
        };
        if (p.ResizeMode == ResizeMode.Crop) json["crop_pct"] = p.CropFraction;
        json[CheckpointFolders.OurPreprocessingKey] = p.ToJson();
        return json;
    }

    private static void WriteJson(string path, JsonObject json)
    {
        var text = System.Text.Encoding.UTF8.GetBytes(json.ToJsonString(Indented));
        AtomicFile.Write(path, fs => fs.Write(text));
    }
}
