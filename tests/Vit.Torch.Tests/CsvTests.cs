using Vit.Torch.Data;

namespace Vit.Torch.Tests;

/// <summary>
/// <see cref="Csv"/>: RFC 4180 quoting (separators, doubled quotes and line breaks inside quotes), the lenient parts
/// (blanks around fields, a quote inside an unquoted field) and broken quoting, which names the source and the line.
/// </summary>
[TestClass]
public sealed class CsvTests
{
    private static string[][] Fields(string text, char separator = ',') =>
        Csv.Parse(text, separator, "t.csv").Select(r => r.Fields.ToArray()).ToArray();

    private static void AreEqual(string[][] expected, string[][] actual)
    {
        Assert.HasCount(expected.Length, actual, "records");
        for (int i = 0; i < expected.Length; i++) CollectionAssert.AreEqual(expected[i], actual[i], $"record {i}");
    }

    [TestMethod]
    public void QuotedFields_HoldSeparatorsDoubledQuotesAndLineBreaks()
    {
        AreEqual([["a,b.png", "cat"], ["say \"hi\".png", "dog"], ["\"", ""], ["two\nlines.png", "x,y"]],
            Fields("\"a,b.png\",cat\n\"say \"\"hi\"\".png\",dog\n\"\"\"\",\"\"\n\"two\nlines.png\",\"x,y\"\n"));
        // A quoted line break is kept as written; a TSV quotes tabs the same way.
        AreEqual([["a\r\nb", "c"]], Fields("\"a\r\nb\",c\r\n"));
        AreEqual([["a\tb", "c,d"]], Fields("\"a\tb\"\tc,d", '\t'));
    }

    [TestMethod]
    public void Blanks_AreTrimmedOutsideQuotes_KeptInside_BlankLinesSkipped()
    {
        AreEqual([["a.png", "cat"], [" b.png ", "dog"], ["my \"best\".png", "cat"], ["c.png", ""], ["", "", ""]],
            Fields("  a.png ,\tcat \n\n \" b.png \" , \"dog\"  \r\n   \nmy \"best\".png,cat\nc.png,\n,,"));
    }

    [TestMethod]
    public void LineNumbers_AreTheEditorsLines_AfterBlankLinesAndQuotedLineBreaks()
    {
        var records = Csv.Parse("h1,h2\r\n\r\n\"a\nb\nc\",1\n\"x\ry\",2\rlast,3", ',', "t.csv");
        CollectionAssert.AreEqual(new[] { 1, 3, 6, 8 }, records.Select(r => r.Line).ToArray());
        CollectionAssert.AreEqual(new[] { "h1,h2", "\"a\nb\nc\",1", "\"x\ry\",2", "last,3" }, records.Select(r => r.Text).ToArray());
    }

    [TestMethod]
    public void UnclosedQuote_NamesTheSourceAndTheLineItOpensOn()
    {
        var e = Assert.ThrowsExactly<InvalidDataException>(() => Csv.Parse("path,label\na.png,cat\n\nb.png,\"dog\nc.png,cat\n", ',', "list.csv"));
        Assert.AreEqual("list.csv, line 4: field 2 opens a quote that is never closed (a \" inside a quoted field is written \"\")", e.Message);
        // A doubled quote at the very end is a quote inside the field, not its end.
        Assert.Contains("line 1: field 1 opens a quote",
            Assert.ThrowsExactly<InvalidDataException>(() => Csv.Parse("\"abc\"\"", ',', "x.csv")).Message);
    }

    [TestMethod]
    public void TextAfterAClosingQuote_IsAnError()
    {
        var e = Assert.ThrowsExactly<InvalidDataException>(() => Csv.Parse("a,b\n\"x\"y.png,cat\n", ',', "list.csv"));
        Assert.AreEqual("list.csv, line 2: field 1 has text after its closing quote; quote the whole field and write a \" inside it as \"\"", e.Message);
        // The line is where the closing quote is, after the line breaks inside the field.
        Assert.Contains("list.csv, line 2: field 2",
            Assert.ThrowsExactly<InvalidDataException>(() => Csv.Parse("a,\"b\nc\" d", ',', "list.csv")).Message);
    }

    [TestMethod]
    public void ReadFile_MissingFileAndBadSeparator()
    {
        var missing = Path.Combine(Path.GetTempPath(), "vit-no-such-" + Guid.NewGuid().ToString("N") + ".csv");
        Assert.AreEqual(missing, Assert.ThrowsExactly<FileNotFoundException>(() => Csv.ReadFile(missing)).FileName);
        foreach (var sep in new[] { '"', '\n', '\r' })
            Assert.ThrowsExactly<ArgumentException>(() => Csv.Parse("a", sep, "t.csv"));
        Assert.IsEmpty(Csv.Parse("", ',', "t.csv"));
        Assert.IsEmpty(Csv.Parse(" \n\r\n\t\n", ',', "t.csv"));
    }
}
