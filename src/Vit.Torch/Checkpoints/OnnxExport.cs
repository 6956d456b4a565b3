using System.Reflection;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Vit.Torch.Checkpoints.Onnx;
using Vit.Torch.Imaging;
using Vit.Torch.Model;

namespace Vit.Torch.Checkpoints;

/// <summary>
/// ONNX export of a <see cref="VisionTransformer"/> for ONNX Runtime and ML.NET's <c>ApplyOnnxModel</c>. The graph takes
/// <c>pixel_values</c>, float32 [N, C, H, W], planar RGB (or gray) in [0, 1], which is what ML.NET's
/// <c>ExtractPixels(outputColumnName: "pixel_values", scaleImage: 1f / 255)</c> produces, normalises it per channel
/// inside the graph, and returns <c>logits</c> and <c>Score</c> (their softmax), each [N, classes]; N is dynamic.
/// Opset 17 (LayerNormalization), IR version 8; exact GELU through Erf; the weights are initializers; the config,
/// preprocessing and labels are in <c>metadata_props</c> under the keys of <see cref="VitMetadata"/>.
/// </summary>
public static class OnnxExport
{
    /// <summary>The ONNX IR version written (ONNX 1.10-1.12; with opset 17, ONNX Runtime 1.12 and later read it).</summary>
    public const long IrVersion = 8;

    /// <summary>Above this many bytes of weights, <see cref="ExportOnnx(VisionTransformer, string, VitPreprocessing, IReadOnlyList{string}?)"/>
    /// keeps them in a file beside the model (ONNX external data: protobuf messages cannot exceed 2 GB).</summary>
    public const long MaxInlineWeightBytes = 1L << 30;

    /// <summary>Test hook: the inline limit in force (a test lowers it to exercise external data on a small model).</summary>
    internal static long InlineLimit = MaxInlineWeightBytes;

    /// <summary>The opset of the default domain (17: the first with LayerNormalization).</summary>
    public const long Opset = 17;

    /// <summary>The graph's input and output names.</summary>
    public const string InputName = "pixel_values", LogitsName = "logits", ScoreName = "Score";

    /// <summary>
    /// Writes the model as ONNX to <paramref name="path"/>, atomically (a temporary file, then a rename): an error
    /// leaves no half-written file. Weights beyond <see cref="MaxInlineWeightBytes"/> (ViT-H and larger) go to
    /// <c>&lt;file&gt;.data</c> beside it as ONNX external data, which ONNX Runtime and ML.NET load from there.
    /// See <see cref="OnnxExport"/> for the graph's inputs and outputs.
    /// </summary>
    /// <exception cref="ArgumentException">A headless model, or labels or preprocessing that do not fit it.</exception>
    /// <exception cref="DirectoryNotFoundException">The folder of <paramref name="path"/> does not exist.</exception>
    public static void ExportOnnx(this VisionTransformer model, string path, VitPreprocessing preprocessing, IReadOnlyList<string>? labels = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var graph = Build(model, preprocessing, labels, out var weights);
        if (weights.Bytes > InlineLimit)
        {
            var data = path + ".data";
            AtomicFile.Write(data, weights.MoveOut(Path.GetFileName(data)));
        }
        AtomicFile.Write(path, graph.WriteTo);
    }

    /// <summary>Writes the model as ONNX to a writable stream (the graph is built whole before the first byte is written).</summary>
    /// <exception cref="NotSupportedException">The weights exceed <see cref="MaxInlineWeightBytes"/>: a stream cannot carry the
    /// file of external data beside it; export to a path.</exception>
    public static void ExportOnnx(this VisionTransformer model, Stream stream, VitPreprocessing preprocessing, IReadOnlyList<string>? labels = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanWrite) throw new ArgumentException("the stream to write the ONNX model to is not writable", nameof(stream));
        var graph = Build(model, preprocessing, labels, out var weights);
        if (weights.Bytes > InlineLimit)
            throw new NotSupportedException(
                $"the model's weights are {weights.Bytes / 1e9:F1} GB, more than one ONNX message holds; export to a file path, which keeps them beside it as external data");
        graph.WriteTo(stream);
    }

    /// <summary>The ONNX model of <paramref name="model"/> (ViT eq. 1-4, as <see cref="VisionTransformer.Forward"/> computes it).</summary>
    internal static ModelProto Build(VisionTransformer model, VitPreprocessing preprocessing, IReadOnlyList<string>? labels, out OnnxWeights weights)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(preprocessing);
        var c = model.Config;
        if (model.Head is null) throw new ArgumentException("a headless model has no logits to export; give it a head (ReplaceHead) or fine-tune it first", nameof(model));
        var metadata = VitMetadata.Of(c, preprocessing, labels);  // checks that they fit the model

        using var scope = TensorScope.Begin();
        var g = new OnnxGraph();
        var p = model.StateDict();
        long d = c.Dim, heads = c.Heads, dh = c.HeadDim, size = c.ImageSize, patch = c.PatchSize;
        g.Input(InputName, "N", c.Channels, size, size);

        // (x - mean) / std per channel, on [0, 1] pixels.
        var norm = preprocessing.Normalization.ForChannels(c.Channels);
        var x = g.Node("Div", [g.Node("Sub", [InputName, g.Floats("mean", norm.Mean, 1, c.Channels, 1, 1)]), g.Floats("std", norm.Std, 1, c.Channels, 1, 1)]);

        // eq. 1: patches projected by a strided convolution, (N, D, g, g) -> (N, g², D); class token; + E_pos.
        x = g.Node("Conv", [x, g.Weight("patch_embed.proj.weight", p), g.Weight("patch_embed.proj.bias", p)], OnnxGraph.Ints("kernel_shape", patch, patch),
            OnnxGraph.Ints("strides", patch, patch));
        x = g.Node("Transpose", [g.Node("Reshape", [x, g.Int64s("shape_ND_", 0, d, -1)])], OnnxGraph.Ints("perm", 0, 2, 1));
        if (model.ClsToken is not null)
        {
            var batch = g.Node("Shape", [InputName], OnnxGraph.Int("start", 0), OnnxGraph.Int("end", 1));             // [N]
            var shape = g.Node("Concat", [batch, g.Int64s("one_D", 1, d)], OnnxGraph.Int("axis", 0));                // [N, 1, D]
            x = g.Node("Concat", [g.Node("Expand", [g.Weight("cls_token", p), shape]), x], OnnxGraph.Int("axis", 1)); // (N, 1 + g², D)
        }
        x = g.Node("Add", [x, g.Weight("pos_embed", p)]);

        // eq. 2-3 per block, pre-norm.
        var qkvShape = g.Int64s("qkv_shape", 0, 0, 3, heads, dh);
        var tokensShape = g.Int64s("tokens_shape", 0, 0, d);
        var scale = g.Floats("attention_scale", [(float)(1 / Math.Sqrt(dh))]);
        for (int i = 0; i < c.Depth; i++)
        {
            string b = $"blocks.{i}.";
            var h = LayerNorm(g, x, p, b + "norm1", c.LayerNormEps);
            var qkv = g.Node("Transpose", [g.Node("Reshape", [Linear(g, h, p, b + "attn.qkv"), qkvShape])], OnnxGraph.Ints("perm", 2, 0, 3, 1, 4));  // (3, N, H, T, Dh)
            string Part(long k) => g.Node("Gather", [qkv, g.Int64Scalar(k)], OnnxGraph.Int("axis", 0));                                           // (N, H, T, Dh)
            var q = g.Node("Mul", [Part(0), scale]);
            var kT = g.Node("Transpose", [Part(1)], OnnxGraph.Ints("perm", 0, 1, 3, 2));
            var attn = g.Node("Softmax", [g.Node("MatMul", [q, kT])], OnnxGraph.Int("axis", -1));                                                 // (N, H, T, T)
            var o = g.Node("MatMul", [attn, Part(2)]);                                                                                             // (N, H, T, Dh)
            o = g.Node("Reshape", [g.Node("Transpose", [o], OnnxGraph.Ints("perm", 0, 2, 1, 3)), tokensShape]);                                  // (N, T, D)
            x = g.Node("Add", [x, Linear(g, o, p, b + "attn.proj")]);                                                                              // eq. 2
            h = Linear(g, LayerNorm(g, x, p, b + "norm2", c.LayerNormEps), p, b + "mlp.fc1");
            x = g.Node("Add", [x, Linear(g, Gelu(g, h), p, b + "mlp.fc2")]);                                                                      // eq. 3
        }

        // eq. 4: the final norm, pooling, the head.
        if (model.Norm is not null) x = LayerNorm(g, x, p, "norm", c.LayerNormEps);
        if (c.Pooling == VitPooling.ClassToken)
        {
            x = g.Node("Gather", [x, g.Int64Scalar(0)], OnnxGraph.Int("axis", 1));                                               // (N, D)
        }
        else
        {
            if (model.ClsToken is not null)
                x = g.Node("Slice", [x, g.Int64s("after_class_token", 1), g.Int64s("to_end", long.MaxValue), g.Int64s("token_axis", 1)]);
            x = g.Node("ReduceMean", [x], OnnxGraph.Ints("axes", 1), OnnxGraph.Int("keepdims", 0));                              // (N, D)
        }
        if (model.FcNorm is not null) x = LayerNorm(g, x, p, "fc_norm", c.LayerNormEps);
        g.Node("Gemm", [x, g.Weight("head.weight", p), g.Weight("head.bias", p)], LogitsName, OnnxGraph.Int("transB", 1));        // (N, K)
        g.Node("Softmax", [LogitsName], ScoreName, OnnxGraph.Int("axis", 1));
        g.Output(LogitsName, "N", c.NumClasses);
        g.Output(ScoreName, "N", c.NumClasses);

        var onnx = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "Vit for .NET",
            ProducerVersion = typeof(OnnxExport).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0",
            DocString = $"Vision Transformer (Dosovitskiy et al. 2020): {c.Dim}-d, {c.Depth} blocks, {c.Heads} heads, patch {c.PatchSize} at {c.ImageSize}px, {c.NumClasses} classes",
            Graph = g.Graph,
        };
        onnx.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        foreach (var (key, value) in metadata) onnx.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        weights = g.Weights;
        return onnx;
    }

    /// <summary>LayerNormalization over the last axis with the parameters <paramref name="name"/>.weight and .bias.</summary>
    private static string LayerNorm(OnnxGraph g, string x, IReadOnlyDictionary<string, Tensor> p, string name, double eps) =>
        g.Node("LayerNormalization", [x, g.Weight(name + ".weight", p), g.Weight(name + ".bias", p)], OnnxGraph.Int("axis", -1),
            OnnxGraph.Float("epsilon", (float)eps));

    /// <summary>x Wᵀ + b as MatMul with Wᵀ stored (for inputs of any rank) and Add.</summary>
    private static string Linear(OnnxGraph g, string x, IReadOnlyDictionary<string, Tensor> p, string name)
    {
        var y = g.Node("MatMul", [x, g.Transposed(name + ".weight", p)]);
        return p.ContainsKey(name + ".bias") ? g.Node("Add", [y, g.Weight(name + ".bias", p)]) : y;
    }

    /// <summary>Exact GELU, x · ½ (1 + erf(x / √2)) (opset 17 has no Gelu operator).</summary>
    private static string Gelu(OnnxGraph g, string x)
    {
        var erf = g.Node("Erf", [g.Node("Div", [x, g.Floats("sqrt2", [MathF.Sqrt(2)])])]);
        return g.Node("Mul", [g.Node("Mul", [x, g.Floats("half", [0.5f])]), g.Node("Add", [erf, g.Floats("one", [1f])])]);
    }
}

/// <summary>Builds an ONNX graph: nodes with generated output names, initializers, typed inputs and outputs.</summary>
internal sealed class OnnxGraph
{
    private readonly HashSet<string> initializers = new(StringComparer.Ordinal);
    private int nodes;

    public GraphProto Graph { get; } = new() { Name = "vit" };

    /// <summary>The float initializers (the weights), which can move to an external data file.</summary>
    public OnnxWeights Weights { get; } = new();

    /// <summary>Adds a node and returns the name of its (single) output.</summary>
    public string Node(string op, string[] inputs, params AttributeProto[] attributes) => Node(op, inputs, null, attributes);

    /// <summary>Adds a node whose output is <paramref name="output"/> (a generated name when null).</summary>
    public string Node(string op, string[] inputs, string? output, params AttributeProto[] attributes)
    {
        var name = $"{op}_{nodes++}";
        var node = new NodeProto { OpType = op, Name = name };
        node.Input.AddRange(inputs);
        node.Output.Add(output ?? name);
        node.Attribute.AddRange(attributes);
        Graph.Node.Add(node);
        return output ?? name;
    }

    /// <summary>A float32 tensor input or output; a string dimension is symbolic (the batch).</summary>
    public void Input(string name, params object[] dims) => Graph.Input.Add(Value(name, dims));

    /// <inheritdoc cref="Input"/>
    public void Output(string name, params object[] dims) => Graph.Output.Add(Value(name, dims));

    private static ValueInfoProto Value(string name, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is string s ? new TensorShapeProto.Types.Dimension { DimParam = s } : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d) });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }

    /// <summary>A parameter as a float32 initializer under its own name.</summary>
    public string Weight(string name, IReadOnlyDictionary<string, Tensor> p) => Add(name, p[name]);

    /// <summary>A weight matrix (out, in) stored transposed (in, out), for MatMul.</summary>
    public string Transposed(string name, IReadOnlyDictionary<string, Tensor> p) => Add(name + ".T", p[name].Transpose(0, 1));

    private string Add(string name, Tensor t)
    {
        if (initializers.Contains(name)) return name;
        using var f = t.To(DType.Float32).Contiguous();
        var bytes = new byte[f.NumElements * 4];
        f.CopyBytesTo(bytes);
        Add(name, TensorProto.Types.DataType.Float, f.Shape, bytes);
        Weights.Add(Graph.Initializer[^1]);
        return name;
    }

    /// <summary>A float32 constant.</summary>
    public string Floats(string name, float[] values, params long[] dims)
    {
        if (initializers.Contains(name)) return name;
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return Add(name, TensorProto.Types.DataType.Float, dims.Length == 0 ? [] : dims, bytes);
    }

    /// <summary>An int64 vector constant (shapes, axes).</summary>
    public string Int64s(string name, params long[] values) => Int64(name, values, [values.Length]);

    /// <summary>An int64 scalar constant (a Gather index).</summary>
    public string Int64Scalar(long value) => Int64($"index_{value}", [value], []);

    private string Int64(string name, long[] values, long[] dims)
    {
        if (initializers.Contains(name)) return name;
        var bytes = new byte[values.Length * 8];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return Add(name, TensorProto.Types.DataType.Int64, dims, bytes);
    }

    private string Add(string name, TensorProto.Types.DataType type, long[] dims, byte[] littleEndian)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX raw_data is little-endian; this machine is big-endian");
        var t = new TensorProto { Name = name, DataType = (int)type, RawData = UnsafeByteOperations.UnsafeWrap(littleEndian) };
        t.Dims.AddRange(dims);
        Graph.Initializer.Add(t);
        initializers.Add(name);
        return name;
    }

    public static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Float(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }
}

/// <summary>
/// The weight initializers of a graph, and their move to ONNX external data: each tensor's bytes go to one file, at a
/// 4 KB-aligned offset, and the initializer says where (data_location EXTERNAL, external_data location/offset/length).
/// </summary>
internal sealed class OnnxWeights
{
    private const int Alignment = 4096;
    private readonly List<TensorProto> tensors = new();

    /// <summary>Bytes of all the weights.</summary>
    public long Bytes { get; private set; }

    public void Add(TensorProto t)
    {
        tensors.Add(t);
        Bytes += t.RawData.Length;
    }

    /// <summary>Points every initializer at <paramref name="fileName"/> (a name relative to the model file) and returns
    /// the writer of that file.</summary>
    public Action<FileStream> MoveOut(string fileName)
    {
        var moved = new List<(ByteString Data, long Offset)>();
        long offset = 0;
        foreach (var t in tensors)
        {
            offset = (offset + Alignment - 1) / Alignment * Alignment;
            moved.Add((t.RawData, offset));
            t.DataLocation = TensorProto.Types.DataLocation.External;
            t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = fileName });
            t.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            t.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = t.RawData.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            t.ClearRawData();
            offset += moved[^1].Data.Length;
        }
        return fs =>
        {
            foreach (var (data, at) in moved)
            {
                fs.SetLength(at);
                fs.Position = at;
                data.WriteTo(fs);
            }
        };
    }
}
