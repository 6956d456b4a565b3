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
        VitMetadata.Of(c, preprocessing, labels);  // checks that they fit the model
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
        WriteJson(Path.Combine(directory, "preprocessor_config.json"), Preprocessor(preprocessing));
        WriteJson(Path.Combine(directory, "config.json"), Config(c, classifier, labels));  // last: a folder with it is complete
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
    /// transformers' processor that does what ours does: ViTImageProcessor (resize to the size) for a stretch, and
    /// BitImageProcessor (the shorter side to floor(size / crop fraction), then a centre crop of the size) for a crop.
    /// A pad has no equivalent there and is written as a stretch. Ours, exactly, goes under a key transformers ignores
    /// and <see cref="PretrainedVit.Load"/> reads.
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
        bool crop = p.ResizeMode == ResizeMode.Crop;
        var json = new JsonObject
        {
            ["image_processor_type"] = crop ? "BitImageProcessor" : "ViTImageProcessor",
            ["do_resize"] = true,
            ["size"] = crop
                ? new JsonObject { ["shortest_edge"] = (int)Math.Floor(p.ImageSize / p.CropFraction) }
                : new JsonObject { ["height"] = p.ImageSize, ["width"] = p.ImageSize },
            ["resample"] = resample,
            ["do_rescale"] = true,
            ["rescale_factor"] = 1 / 255.0,
            ["do_normalize"] = true,
            ["image_mean"] = Floats(norm.Mean),
            ["image_std"] = Floats(norm.Std),
        };
        if (crop)
        {
            json["do_center_crop"] = true;
            json["crop_size"] = new JsonObject { ["height"] = p.ImageSize, ["width"] = p.ImageSize };
            json["do_convert_rgb"] = true;
        }
        json[CheckpointFolders.OurPreprocessingKey] = p.ToJson();
        return json;
    }

    /// <summary>Floats as their shortest decimal (0.485, not 0.48500001430511475).</summary>
    private static JsonArray Floats(float[] values) =>
        new(values.Select(v => (JsonNode?)double.Parse(v.ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture)).ToArray());

    private static void WriteJson(string path, JsonObject json)
    {
        var text = System.Text.Encoding.UTF8.GetBytes(json.ToJsonString(Indented));
        AtomicFile.Write(path, fs => fs.Write(text));
    }
}
