using System.Text.Json;
using System.Text.Json.Nodes;

namespace Vit.Torch.Checkpoints;

/// <summary>
/// Typed reads of JSON fields from untrusted files (config.json, preprocessor_config.json, our metadata): every
/// missing or mistyped field is an <see cref="InvalidDataException"/> that names the file and the field.
/// </summary>
internal static class JsonFields
{
    /// <summary>Longest JSON document read from a checkpoint (configs are a few KB; id2label of 22k classes ~1 MB).</summary>
    public const int MaxBytes = 16 << 20;

    /// <summary>Parses a JSON object from a file of at most <see cref="MaxBytes"/> bytes.</summary>
    public static JsonObject ReadFile(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"'{path}' does not exist", path);
        if (info.Length > MaxBytes) throw new InvalidDataException($"'{path}' is {info.Length} bytes, more than a configuration file can be ({MaxBytes})");
        using var fs = File.OpenRead(path);
        return Parse(fs, path);
    }

    /// <summary>Reads every string of the tree once, so that one that cannot become text fails at parsing.</summary>
    private static void CheckStrings(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (key, value) in o)
                {
                    _ = key.Length;
                    CheckStrings(value);
                }
                break;
            case JsonArray a:
                foreach (var item in a) CheckStrings(item);
                break;
            case JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.String:
                _ = v.GetValue<string>();
                break;
        }
    }

    /// <summary>Reads every string and property name of a parsed document once, as <see cref="CheckStrings(JsonNode?)"/>
    /// does for a tree: an escape that is no character throws <see cref="InvalidOperationException"/> here.</summary>
    public static void CheckStrings(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var p in element.EnumerateObject())
                {
                    _ = p.Name;
                    CheckStrings(p.Value);
                }
                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray()) CheckStrings(item);
                break;
            case JsonValueKind.String:
                _ = element.GetString();
                break;
        }
    }

    /// <summary>Parses a JSON object from a stream, reading at most <see cref="MaxBytes"/> bytes whatever the stream claims.</summary>
    public static JsonObject Parse(Stream stream, string source)
    {
        var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        while ((n = stream.Read(chunk)) > 0)
        {
            if (buffer.Length + n > MaxBytes) throw new InvalidDataException($"{source} is larger than a configuration can be ({MaxBytes} bytes)");
            buffer.Write(chunk, 0, n);
        }
        var bytes = buffer.GetBuffer().AsSpan(0, (int)buffer.Length);
        if (!System.Text.Unicode.Utf8.IsValid(bytes)) throw new InvalidDataException($"{source} is not valid UTF-8 text");
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(bytes, documentOptions: new JsonDocumentOptions { MaxDepth = 64, AllowDuplicateProperties = false });
            CheckStrings(node);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source} is not valid JSON ({e.Message})", e);
        }
        catch (InvalidOperationException e)
        {
            // An escape that is no character (a lone surrogate, \ud800): found here, not in whichever field reads it.
            throw new InvalidDataException($"{source} holds a string that is not valid text ({e.Message})", e);
        }
        return node as JsonObject ?? throw new InvalidDataException($"{source} is not a JSON object");
    }

    /// <summary>Parses a JSON value held in a string (e.g. safetensors metadata).</summary>
    public static JsonNode ParseValue(string text, string source)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { MaxDepth = 64, AllowDuplicateProperties = false });
            CheckStrings(node);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source} is not valid JSON ({e.Message})", e);
        }
        catch (InvalidOperationException e)
        {
            // Valid text outside can escape what is no character inside ("\\ud800" in a safetensors metadata string).
            throw new InvalidDataException($"{source} holds a string that is not valid text ({e.Message})", e);
        }
        return node ?? throw new InvalidDataException($"{source} is JSON null");
    }

    public static JsonObject Object(JsonNode? node, string source) =>
        node as JsonObject ?? throw new InvalidDataException($"{source} is not a JSON object");

    private static JsonValue Value(JsonObject o, string key, string source, string kind) =>
        o[key] as JsonValue ?? throw new InvalidDataException(o.ContainsKey(key)
            ? $"{source}: '{key}' is not a {kind}"
            : $"{source} lacks '{key}'");

    public static bool Has(JsonObject o, string key) => o[key] is not null;

    public static int Int(JsonObject o, string key, string source) =>
        Value(o, key, source, "number") is var v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<int>(out var i)
            ? i
            : throw new InvalidDataException($"{source}: '{key}' is not a 32-bit integer ({o[key]!.ToJsonString()})");

    public static int? OptInt(JsonObject o, string key, string source) => Has(o, key) ? Int(o, key, source) : null;

    public static double Double(JsonObject o, string key, string source) =>
        Value(o, key, source, "number") is var v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<double>(out var d) && double.IsFinite(d)
            ? d
            : throw new InvalidDataException($"{source}: '{key}' is not a finite number ({o[key]!.ToJsonString()})");

    public static double? OptDouble(JsonObject o, string key, string source) => Has(o, key) ? Double(o, key, source) : null;

    public static bool Bool(JsonObject o, string key, string source) =>
        Value(o, key, source, "boolean") is var v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False
            ? v.GetValue<bool>()
            : throw new InvalidDataException($"{source}: '{key}' is not true or false ({o[key]!.ToJsonString()})");

    public static bool? OptBool(JsonObject o, string key, string source) => Has(o, key) ? Bool(o, key, source) : null;

    public static string String(JsonObject o, string key, string source) =>
        Value(o, key, source, "string") is var v && v.GetValueKind() == JsonValueKind.String
            ? v.GetValue<string>()
            : throw new InvalidDataException($"{source}: '{key}' is not a string ({o[key]!.ToJsonString()})");

    public static string? OptString(JsonObject o, string key, string source) => Has(o, key) ? String(o, key, source) : null;

    /// <summary>An array of numbers (e.g. image_mean), or a single number given as one value.</summary>
    public static float[] Floats(JsonObject o, string key, string source)
    {
        var node = o[key] ?? throw new InvalidDataException($"{source} lacks '{key}'");
        if (node is JsonValue)
        {
            return [(float)Double(o, key, source)];
        }
        if (node is not JsonArray a || a.Count is 0 or > 4)
            throw new InvalidDataException($"{source}: '{key}' is not an array of 1 to 4 numbers ({node.ToJsonString()})");
        var result = new float[a.Count];
        for (int i = 0; i < a.Count; i++)
        {
            if (a[i] is not JsonValue v || v.GetValueKind() != JsonValueKind.Number || !v.TryGetValue<double>(out var d) || !float.IsFinite((float)d))
                throw new InvalidDataException($"{source}: '{key}'[{i}] is not a finite number");
            result[i] = (float)d;
        }
        return result;
    }

    /// <summary>An array of strings.</summary>
    public static List<string> Strings(JsonNode? node, string what, string source)
    {
        if (node is not JsonArray a) throw new InvalidDataException($"{source}: {what} is not an array of strings");
        var result = new List<string>(a.Count);
        for (int i = 0; i < a.Count; i++)
        {
            if (a[i] is not JsonValue v || v.GetValueKind() != JsonValueKind.String)
                throw new InvalidDataException($"{source}: {what}[{i}] is not a string");
            result.Add(v.GetValue<string>());
        }
        return result;
    }

    /// <summary>How our JSON writes an enum value: its name in snake_case, as every key is (<c>ClassToken</c> → <c>class_token</c>).</summary>
    public static string EnumName<TEnum>(TEnum value) where TEnum : struct, Enum =>
        JsonNamingPolicy.SnakeCaseLower.ConvertName(value.ToString());

    /// <summary>An enum value written by name: in snake_case (<see cref="EnumName"/>), or as files written before that
    /// convention have it, in the .NET name (<c>ClassToken</c>).</summary>
    public static TEnum Enum<TEnum>(JsonObject o, string key, string source) where TEnum : struct, Enum
    {
        var s = String(o, key, source);
        foreach (var v in System.Enum.GetValues<TEnum>())
            if (s == EnumName(v) || s == v.ToString()) return v;
        throw new InvalidDataException($"{source}: '{key}' is '{s}', not one of {string.Join(", ", System.Enum.GetValues<TEnum>().Select(v => EnumName(v)))}");
    }
}
