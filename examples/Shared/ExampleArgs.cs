using System.Globalization;

/// <summary>The examples' command-line options: <c>--name value</c> pairs with defaults.</summary>
internal sealed class ExampleArgs(string[] args)
{
    /// <summary>Whether the flag is present.</summary>
    public bool Has(string name) => args.Contains(name);

    /// <summary>The text after <paramref name="name"/>, or <paramref name="fallback"/>.</summary>
    public string Text(string name, string fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    /// <summary>The integer after <paramref name="name"/>, or <paramref name="fallback"/>.</summary>
    public int Int(string name, int fallback) => Text(name, "") is { Length: > 0 } s ? int.Parse(s, CultureInfo.InvariantCulture) : fallback;

    /// <summary>The number after <paramref name="name"/>, or <paramref name="fallback"/>.</summary>
    public double Double(string name, double fallback) => Text(name, "") is { Length: > 0 } s ? double.Parse(s, CultureInfo.InvariantCulture) : fallback;
}
