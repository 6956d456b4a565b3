using System.Text;

namespace Vit.Torch.Data;

/// <summary>One record of a delimited text file.</summary>
/// <param name="Line">The line the record starts on (1-based, counting blank lines, as an editor shows it).</param>
/// <param name="Text">The record as written in the file, without its final line break (for messages).</param>
/// <param name="Fields">The fields, unquoted.</param>
public sealed record CsvRecord(int Line, string Text, IReadOnlyList<string> Fields);

/// <summary>
/// The one reader of CSV and TSV files (<see cref="ImageDataset.FromCsv"/> and Vit.MLNet's <c>LoadFromTextFile</c>),
/// quoting as RFC 4180:
/// <list type="bullet">
/// <item>records end at a line break (<c>\n</c>, <c>\r\n</c> or <c>\r</c>) outside quotes; records holding only
/// blanks are skipped, but their lines still count;</item>
/// <item>a field whose first non-blank character is <c>"</c> is quoted: it ends at the next lone <c>"</c>; <c>""</c>
/// inside stands for one <c>"</c>; separators and line breaks inside are part of the field (line breaks as written
/// in the file); its text is kept as is, spaces included; only blanks may follow the closing quote;</item>
/// <item>an unquoted field is trimmed of surrounding blanks, and a <c>"</c> inside it is an ordinary character (a
/// lenient reading of what RFC 4180 forbids, as Python's csv module does);</item>
/// <item>a quote left open at the end of the file, or text after a closing quote, is an
/// <see cref="InvalidDataException"/> naming the file and the line.</item>
/// </list>
/// </summary>
public static class Csv
{
    /// <summary>Reads every record of <paramref name="path"/> (UTF-8, or the encoding its byte order mark names).</summary>
    /// <param name="path">The file.</param>
    /// <param name="separator">The field separator: ',' for CSV, '\t' for TSV.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The quoting is broken; the message names the file and the line.</exception>
    public static IReadOnlyList<CsvRecord> ReadFile(string path, char separator = ',')
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"file not found: {path}", path);
        return Parse(File.ReadAllText(path), separator, path);
    }

    /// <summary>Splits <paramref name="text"/> into records; <paramref name="source"/> names it in error messages.</summary>
    /// <param name="text">The whole text.</param>
    /// <param name="separator">The field separator (not a quote or a line break).</param>
    /// <param name="source">What the text is (a file name), for messages.</param>
    /// <exception cref="InvalidDataException">The quoting is broken; the message names the source and the line.</exception>
    public static IReadOnlyList<CsvRecord> Parse(string text, char separator, string source)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(source);
        if (separator is '"' or '\r' or '\n')
            throw new ArgumentException($"a separator cannot be a quote or a line break, got {(int)separator:x4}", nameof(separator));
        var records = new List<CsvRecord>();
        int pos = 0, line = 1;
        while (pos < text.Length)
        {
            int start = pos, startLine = line;
            var fields = new List<string>();
            while (true)
            {
                int p = pos;
                while (p < text.Length && IsBlank(text[p], separator)) p++;
                if (p < text.Length && text[p] == '"')
                {
                    int openLine = line;
                    var field = new StringBuilder();
                    for (p++; ; p++)
                    {
                        if (p == text.Length)
                            throw new InvalidDataException(
                                $"{source}, line {openLine}: field {fields.Count + 1} opens a quote that is never closed (a \" inside a quoted field is written \"\")");
                        char c = text[p];
                        if (c == '"')
                        {
                            if (p + 1 < text.Length && text[p + 1] == '"') p++;  // "" is one quote
                            else break;
                        }
                        else if (c == '\n' || (c == '\r' && (p + 1 == text.Length || text[p + 1] != '\n'))) line++;
                        field.Append(c);
                    }
                    for (p++; p < text.Length && IsBlank(text[p], separator); p++) { }
                    if (p < text.Length && text[p] != separator && !IsLineBreak(text[p]))
                        throw new InvalidDataException(
                            $"{source}, line {line}: field {fields.Count + 1} has text after its closing quote; quote the whole field and write a \" inside it as \"\"");
                    fields.Add(field.ToString());
                }
                else
                {
                    int end = p;
                    while (end < text.Length && text[end] != separator && !IsLineBreak(text[end])) end++;
                    fields.Add(text[p..end].TrimEnd());
                    p = end;
                }
                pos = p;
                if (pos < text.Length && text[pos] == separator) pos++;
                else break;  // a line break or the end of the text ends the record
            }
            var recordText = text[start..pos];
            if (pos < text.Length)
            {
                pos += text[pos] == '\r' && pos + 1 < text.Length && text[pos + 1] == '\n' ? 2 : 1;
                line++;
            }
            if (!string.IsNullOrWhiteSpace(recordText)) records.Add(new CsvRecord(startLine, recordText, fields));
        }
        return records;
    }

    private static bool IsLineBreak(char c) => c is '\r' or '\n';

    private static bool IsBlank(char c, char separator) => c != separator && !IsLineBreak(c) && char.IsWhiteSpace(c);
}
