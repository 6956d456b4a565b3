using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Vit.Tests;

/// <summary>
/// Runs ONNX models in the real ONNX Runtime, in this process: its C# API, the NuGet package Microsoft.ML.OnnxRuntime
/// 1.32.0 (which carries the CPU libonnxruntime), on the CPU execution provider with every graph optimization on, as
/// a consumer of the exported file would run it.
/// </summary>
internal static class OnnxRuntime
{
    /// <summary>
    /// Feeds <paramref name="input"/> of shape <paramref name="dims"/> to the model's (first) input; returns every
    /// output by name, with its shape and its float32 values in row-major order.
    /// </summary>
    public static Dictionary<string, (long[] Shape, float[] Values)> Run(string model, float[] input, params long[] dims)
    {
        // A wrong count would be read past (or short of) by the native side: say so here instead.
        Assert.AreEqual(dims.Aggregate(1L, (a, b) => a * b), input.LongLength, $"input values for shape [{string.Join(", ", dims)}]");
        // No provider appended: the CPU one is ONNX Runtime's default, and the only one this package has on Linux.
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        // From the path, not from bytes, so that external data (model.onnx.data beside the file) is found.
        using var session = new InferenceSession(model, options);
        // Wraps the array without copying it (pinned while the value lives).
        using var tensor = OrtValue.CreateTensorValueFromMemory(input, dims);
        using var runOptions = new RunOptions();
        var names = session.OutputNames;
        using var outputs = session.Run(runOptions, [session.InputNames[0]], [tensor], names);
        var result = new Dictionary<string, (long[], float[])>();
        for (int i = 0; i < names.Count; i++)
        {
            var info = outputs[i].GetTensorTypeAndShape();
            // Our exports return float32 only; anything else would be a different file than the tests mean.
            Assert.AreEqual(TensorElementType.Float, info.ElementDataType, $"element type of output '{names[i]}' of {model}");
            result[names[i]] = (info.Shape, outputs[i].GetTensorDataAsSpan<float>().ToArray());
        }
        return result;
    }
}
