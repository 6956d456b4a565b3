using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Vit.Cli;

/// <summary>
/// Where a command writes: results on stdout (tables for people, or one JSON document with <c>--json</c>), progress and
/// notes on stderr, so that <c>vit predict ... --json &gt; out.json</c> holds only the JSON.
/// </summary>
internal sealed class CliOutput
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public CliOutput(TextWriter stdout, TextWriter stderr)
    {
        Out = stdout;
        Error = stderr;
        bool console = ReferenceEquals(stdout, Console.Out);
        Console_ = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(stdout),
            Ansi = console && !Console.IsOutputRedirected ? AnsiSupport.Detect : AnsiSupport.No,
            Interactive = console && !Console.IsOutputRedirected ? InteractionSupport.Detect : InteractionSupport.No,
            ColorSystem = console && !Console.IsOutputRedirected ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        });
        if (!console || Console.IsOutputRedirected) Console_.Profile.Width = 160;
    }

    public TextWriter Out { get; }

    public TextWriter Error { get; }

    /// <summary>Spectre's console over stdout: tables and live progress (progress only when stdout is a terminal).</summary>
    public IAnsiConsole Console_ { get; }

    /// <summary>True when stdout is a terminal that can redraw a progress bar.</summary>
    public bool Interactive => Console_.Profile.Capabilities.Interactive;

    public void Note(string line) => Error.WriteLine(line);

    public void Json(JsonNode node) => Out.WriteLine(node.ToJsonString(Indented));

    public void Table(Table table) => Console_.Write(table);

    public static string F(double x, string format = "F4") => x.ToString(format, CultureInfo.InvariantCulture);

    public static string P(double x) => x.ToString("P2", CultureInfo.InvariantCulture);

    /// <summary>A finite number for JSON (NaN and infinities, which JSON cannot hold, become null).</summary>
    public static JsonNode? Num(double x) => double.IsFinite(x) ? JsonValue.Create(x) : null;
}
