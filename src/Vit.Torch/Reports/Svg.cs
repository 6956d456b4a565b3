// Usage (internal): using (var svg = Svg.Begin(stream, width, height, "title")) { svg.Rect(...); svg.Text(...); }
// The pictures of Vit.Torch.Reports are SVG: text generated here through XmlWriter, so escaping and well-formedness
// come from System.Xml, and a browser, GitHub or an editor draws them. No image encoder is involved.
using System.Globalization;
using System.Text;
using System.Xml;

namespace Vit.Torch.Reports;

/// <summary>
/// A thin SVG writer over <see cref="XmlWriter"/>: elements with attributes given as name/value pairs (a null
/// value leaves the attribute out), numbers written with invariant culture and at most 2 decimals.
/// </summary>
internal sealed class Svg : IDisposable
{
    private const string Ns = "http://www.w3.org/2000/svg";
    private const string XlinkNs = "http://www.w3.org/1999/xlink";

    /// <summary>A font stack that every platform has some member of.</summary>
    public const string FontFamily = "DejaVu Sans, Helvetica, Arial, sans-serif";

    private readonly XmlWriter xml;

    private Svg(Stream stream)
    {
        var settings = new XmlWriterSettings
        {
            Encoding = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false),
            Indent = true,
            IndentChars = " ",
            CloseOutput = false,
        };
        xml = XmlWriter.Create(stream, settings);
    }

    /// <summary>Starts a document of <paramref name="width"/> × <paramref name="height"/> user units (= CSS pixels)
    /// on a white background, with a document title.</summary>
    public static Svg Begin(Stream stream, double width, double height, string title)
    {
        var svg = new Svg(stream);
        var x = svg.xml;
        x.WriteStartDocument();
        x.WriteStartElement("svg", Ns);
        x.WriteAttributeString("xmlns", "xlink", null, XlinkNs);
        x.WriteAttributeString("version", "1.1");
        x.WriteAttributeString("width", Num(width));
        x.WriteAttributeString("height", Num(height));
        x.WriteAttributeString("viewBox", $"0 0 {Num(width)} {Num(height)}");
        x.WriteAttributeString("font-family", FontFamily);
        svg.Title(title);
        svg.Empty("rect", ("x", "0"), ("y", "0"), ("width", Num(width)), ("height", Num(height)), ("fill", "#ffffff"));
        return svg;
    }

    /// <summary>A number as SVG wants it: invariant culture, at most 2 decimals, no exponent.</summary>
    public static string Num(double v) => Math.Round(v, 2).ToString("0.##", CultureInfo.InvariantCulture);

    /// <summary>Opens an element; close it with <see cref="End"/>.</summary>
    public void Start(string name, params (string Name, string? Value)[] attributes)
    {
        xml.WriteStartElement(name, Ns);
        foreach (var (n, v) in attributes)
            if (v is not null) xml.WriteAttributeString(n, v);
    }

    /// <summary>Closes the innermost open element.</summary>
    public void End() => xml.WriteEndElement();

    /// <summary>An element without content.</summary>
    public void Empty(string name, params (string Name, string? Value)[] attributes)
    {
        Start(name, attributes);
        End();
    }

    /// <summary>A <c>&lt;title&gt;</c> child: the tooltip of the enclosing element (and its accessible name).</summary>
    public void Title(string text)
    {
        xml.WriteStartElement("title", Ns);
        xml.WriteString(Clean(text));
        xml.WriteEndElement();
    }

    /// <summary>A line from (x1, y1) to (x2, y2).</summary>
    public void Line(double x1, double y1, double x2, double y2, string stroke, double width = 1, string? dash = null, string? cssClass = null) =>
        Empty("line", ("class", cssClass), ("x1", Num(x1)), ("y1", Num(y1)), ("x2", Num(x2)), ("y2", Num(y2)),
            ("stroke", stroke), ("stroke-width", Num(width)), ("stroke-dasharray", dash));

    /// <summary>
    /// A text element at (x, y) (the baseline, aligned by <paramref name="anchor"/>: start, middle or end),
    /// optionally rotated by <paramref name="rotate"/> degrees about (x, y), with an optional tooltip.
    /// </summary>
    public void Text(double x, double y, string text, double size, string anchor = "start", string fill = "#222222",
        string? weight = null, double rotate = 0, string? cssClass = null, string? title = null,
        params (string Name, string? Value)[] extra)
    {
        var attributes = new List<(string, string?)>
        {
            ("class", cssClass), ("x", Num(x)), ("y", Num(y)), ("font-size", Num(size)),
            ("text-anchor", anchor == "start" ? null : anchor), ("fill", fill), ("font-weight", weight),
            ("transform", rotate == 0 ? null : $"rotate({Num(rotate)} {Num(x)} {Num(y)})"),
        };
        attributes.AddRange(extra);
        Start("text", attributes.ToArray());
        xml.WriteString(Clean(text));
        if (title is not null) Title(title);
        End();
    }

    /// <summary>A PNG embedded as a data URI (so the SVG stays one self-contained file).</summary>
    public void Png(double x, double y, double width, double height, byte[] png, params (string Name, string? Value)[] extra)
    {
        xml.WriteStartElement("image", Ns);
        xml.WriteAttributeString("x", Num(x));
        xml.WriteAttributeString("y", Num(y));
        xml.WriteAttributeString("width", Num(width));
        xml.WriteAttributeString("height", Num(height));
        foreach (var (n, v) in extra)
            if (v is not null) xml.WriteAttributeString(n, v);
        // xlink:href rather than SVG 2's plain href: every viewer (also librsvg and older editors) reads it.
        xml.WriteAttributeString("xlink", "href", XlinkNs, "data:image/png;base64," + Convert.ToBase64String(png));
        xml.WriteEndElement();
    }

    /// <summary>Closes the document and flushes it to the stream.</summary>
    public void Dispose()
    {
        xml.WriteEndDocument();
        xml.Flush();
        xml.Dispose();
    }

    /// <summary>
    /// Text as XML can carry it: characters XML 1.0 forbids (control characters, lone surrogates) become U+FFFD,
    /// so a label read from a folder name cannot break the document.
    /// </summary>
    internal static string Clean(string text)
    {
        StringBuilder? sb = null;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            bool ok = XmlConvert.IsXmlChar(c);
            if (!ok && char.IsHighSurrogate(c) && i + 1 < text.Length && XmlConvert.IsXmlSurrogatePair(text[i + 1], c))
            {
                sb?.Append(c).Append(text[i + 1]);
                i++;
                continue;
            }
            if (ok)
            {
                sb?.Append(c);
                continue;
            }
            sb ??= new StringBuilder(text, 0, i, text.Length);
            sb.Append('\uFFFD');
        }
        return sb?.ToString() ?? text;
    }

    /// <summary>
    /// <paramref name="text"/> cut to at most <paramref name="maxChars"/> characters, ending in an ellipsis when cut
    /// (surrogate pairs kept whole).
    /// </summary>
    internal static string Truncate(string text, int maxChars)
    {
        if (text.Length <= maxChars) return text;
        int keep = Math.Max(1, maxChars - 1);
        if (char.IsHighSurrogate(text[keep - 1])) keep--;
        return text[..keep] + "…";
    }
}
