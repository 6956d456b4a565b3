using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;

namespace Vit.WebApp.Tests;

/// <summary>
/// The web app: the API in-process on a test server (answers equal to a plain engine's, every error status), a real
/// Chromium uploading a file and reading the label off the page, and a load test against the app in its own
/// process with the model file replaced midway.
/// </summary>
[TestClass]
public sealed class WebAppTests
{
    private static MultipartFormDataContent Upload(byte[] bytes, string field = "imageFile", string name = "x.png")
    {
        var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(bytes);
        file.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        form.Add(file, field, name);
        return form;
    }

    private static async Task<WebApplication> TestApp(string model, params string[] extra)
    {
        var app = ClassifierApp.Build(["--model", model, .. extra], b => b.WebHost.UseTestServer());
        await app.StartAsync();
        return app;
    }

    /// <summary>The probabilities of a response's <c>top</c> list (best first, each class once) in the order of
    /// <see cref="WebFixtures.Classes"/>.</summary>
    private static float[] Scores(JsonNode response)
    {
        var top = response["top"]!.AsArray();
        Assert.HasCount(WebFixtures.Classes.Length, top, "a 3-class model's top list holds every class");
        var p = top.Select(t => (float)t!["probability"]!).ToArray();
        for (int i = 1; i < p.Length; i++) Assert.IsGreaterThanOrEqualTo(p[i], p[i - 1], "top is best first");
        var labels = top.Select(t => (string)t!["label"]!).ToArray();
        CollectionAssert.AreEquivalent(WebFixtures.Classes, labels);
        return WebFixtures.Classes.Select(c => p[Array.IndexOf(labels, c)]).ToArray();
    }

    [TestMethod]
    public async Task ClassifyAnswersAsAPlainEngineAndReportsTheVersion()
    {
        var expected = WebFixtures.Expected(WebFixtures.ModelA);
        await using var app = await TestApp(WebFixtures.ModelA);
        using var client = app.GetTestClient();
        foreach (var file in WebFixtures.Files.Where((_, i) => i % 5 == 0))
        {
            using var response = await client.PostAsync("/api/classify", Upload(File.ReadAllBytes(file)));
            Assert.AreEqual(HttpStatusCode.OK, response.StatusCode, await response.Content.ReadAsStringAsync());
            var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            var scores = Scores(json);
            var want = expected[file];
            for (int c = 0; c < WebFixtures.Classes.Length; c++)
                Assert.AreEqual(want[c], scores[c], 1e-6f, file);
            int best = Array.IndexOf(want, want.Max());
            Assert.AreEqual(WebFixtures.Classes[best], (string)json["predicted_label"]!);
            Assert.AreEqual((string)json["top"]![0]!["label"]!, (string)json["predicted_label"]!);
            Assert.AreEqual(want[best], (float)json["probability"]!, 1e-6f);
            Assert.AreEqual(1, (long)json["model_version"]!);
            Assert.IsGreaterThan(0.0, (double)json["elapsed_ms"]!);
            Assert.IsNull(json["attention"], "no attention map unless asked for");
        }
        var withMap = JsonNode.Parse(await (await client.PostAsync("/api/classify?attention=true", Upload(File.ReadAllBytes(WebFixtures.Files[0])))).Content.ReadAsStringAsync())!;
        var map = withMap["attention"]!;
        Assert.AreEqual(2, (int)map["rows"]!);
        Assert.AreEqual(2, (int)map["columns"]!);
        Assert.HasCount(4, map["values"]!.AsArray());
        Assert.AreEqual(1.0, map["values"]!.AsArray().Sum(v => (double)v!), 1e-5, "the rollout over the 2x2 patches sums to 1");
        CollectionAssert.AreEqual(expected[WebFixtures.Files[0]], Scores(withMap), new Tolerance(1e-6f), "the scores come with the map");

        var health = JsonNode.Parse(await client.GetStringAsync("/health"))!;
        Assert.AreEqual("ok", (string)health["status"]!);
        Assert.AreEqual(1, (long)health["model_version"]!);
        StringAssert.Contains(await client.GetStringAsync("/"), "imageFile");
    }

    /// <summary>Compares floats within a tolerance (for CollectionAssert).</summary>
    private sealed class Tolerance(float tolerance) : System.Collections.IComparer
    {
        public int Compare(object? x, object? y) => Math.Abs((float)x! - (float)y!) <= tolerance ? 0 : 1;
    }

    [TestMethod]
    public async Task UploadsOfOtherSizesAndFormatsScoreAsTheModelsOwnLoadImagesReadsTheSameFile()
    {
        // Not the model's size and not PNG only: the app decodes the upload (SkiaSharp) and the model's ResizeImages step
        // brings it to 16x16; ML.NET's model, loaded with ml.Model.Load and reading the same file by path through its
        // LoadImages step, must give the same probabilities.
        var dir = Directory.CreateDirectory(Path.Combine(WebFixtures.Root, "other-sizes")).FullName;
        var rng = new Random(11);
        var files = new List<string>();
        foreach (var (w, h, format) in new[] { (40, 28, "png"), (23, 37, "jpg"), (64, 64, "bmp"), (30, 30, "webp"), (16, 16, "jpg") })
        {
            var px = new byte[w * h * 3];
            int hot = files.Count % 3;
            for (int p = 0; p < w * h; p++)
                for (int ch = 0; ch < 3; ch++) px[p * 3 + ch] = (byte)(ch == hot ? rng.Next(150, 256) : rng.Next(0, 110));
            using var img = Vit.Torch.Imaging.Image.FromPixels(px, w, h, 3);
            var file = Path.Combine(dir, $"{w}x{h}.{format}");
            File.WriteAllBytes(file, format switch
            {
                "png" => img.EncodePng(), "jpg" => img.EncodeJpeg(), "bmp" => img.EncodeBmp(), _ => img.EncodeWebP(lossless: true),
            });
            files.Add(file);
        }
        var expected = WebFixtures.Expected(WebFixtures.ModelA, files);
        await using var app = await TestApp(WebFixtures.ModelA);
        using var client = app.GetTestClient();
        foreach (var file in files)
        {
            using var response = await client.PostAsync("/api/classify", Upload(File.ReadAllBytes(file), name: Path.GetFileName(file)));
            var body = await response.Content.ReadAsStringAsync();
            Assert.AreEqual(HttpStatusCode.OK, response.StatusCode, $"{file}: {body}");
            var json = JsonNode.Parse(body)!;
            var scores = Scores(json);
            var want = expected[file];
            for (int c = 0; c < WebFixtures.Classes.Length; c++)
                Assert.AreEqual(want[c], scores[c], 1e-5f, $"{file}, {WebFixtures.Classes[c]}");
            Assert.AreEqual(WebFixtures.Classes[Array.IndexOf(want, want.Max())], (string)json["predicted_label"]!, file);
        }
    }

    /// <summary>A PNG of a few hundred bytes whose header (IHDR) says <paramref name="width"/> x <paramref name="height"/>
    /// RGB pixels, followed by the start of its pixel data and the end chunk; valid CRCs, so decoders read the header.</summary>
    private static byte[] PngClaiming(int width, int height)
    {
        static uint Crc(ReadOnlySpan<byte> bytes)
        {
            uint c = 0xFFFFFFFF;
            foreach (var b in bytes)
            {
                c ^= b;
                for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
            }
            return ~c;
        }
        var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        void Chunk(string type, byte[] data)
        {
            var be = new byte[4];
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(be, data.Length);
            png.Write(be);
            var typed = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
            png.Write(typed);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(be, Crc(typed));
            png.Write(be);
        }
        var ihdr = new byte[13];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8;  // bit depth
        ihdr[9] = 2;  // RGB; compression, filter and interlace 0
        Chunk("IHDR", ihdr);
        var idat = new MemoryStream();
        using (var z = new System.IO.Compression.ZLibStream(idat, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true))
            z.Write(new byte[4096]);  // the first rows, all zero
        Chunk("IDAT", idat.ToArray());
        Chunk("IEND", []);
        return png.ToArray();
    }

    [TestMethod]
    public async Task ASmallFileClaimingAHugeImageIsRefusedWith413BeforeDecoding()
    {
        // 20000 x 20000 = 400 million pixels (1.6 GB decoded) in a file of a few hundred bytes, far under the upload limit:
        // the header check refuses it against maxPixels (default 50 million) before any pixel memory is taken; were it
        // decoded, the answer would be an image's (200) or an undecodable one's (415), not 413.
        var bomb = PngClaiming(20000, 20000);
        Assert.IsLessThan(1000, bomb.Length);
        using (var codec = SkiaSharp.SKCodec.Create(new MemoryStream(bomb)))
        {
            Assert.IsNotNull(codec, "the crafted PNG's header is readable");
            Assert.AreEqual(20000, codec.Info.Width);
        }
        await using (var app = await TestApp(WebFixtures.ModelA))
        {
            using var client = app.GetTestClient();
            using var r = await client.PostAsync("/api/classify", Upload(bomb));
            var body = await r.Content.ReadAsStringAsync();
            Assert.AreEqual(HttpStatusCode.RequestEntityTooLarge, r.StatusCode, body);
            var error = (string)JsonNode.Parse(body)!["error"]!;
            StringAssert.Contains(error, "20000x20000");
            StringAssert.Contains(error, "50000000 pixels");
            using var ok = await client.PostAsync("/api/classify", Upload(File.ReadAllBytes(WebFixtures.Files[0])));
            Assert.AreEqual(HttpStatusCode.OK, ok.StatusCode, "and the app still serves");
        }
        // maxPixels is the app's setting: at 255 a real 16x16 image (256 pixels) is refused, at 256 it is scored.
        await using (var app = await TestApp(WebFixtures.ModelA, "--maxPixels", "255"))
        {
            using var client = app.GetTestClient();
            using var r = await client.PostAsync("/api/classify", Upload(File.ReadAllBytes(WebFixtures.Files[0])));
            var body = await r.Content.ReadAsStringAsync();
            Assert.AreEqual(HttpStatusCode.RequestEntityTooLarge, r.StatusCode, body);
            StringAssert.Contains((string)JsonNode.Parse(body)!["error"]!, "16x16, over the limit of 255 pixels");
        }
        await using (var app = await TestApp(WebFixtures.ModelA, "--maxPixels", "256"))
        {
            using var client = app.GetTestClient();
            using var r = await client.PostAsync("/api/classify", Upload(File.ReadAllBytes(WebFixtures.Files[0])));
            Assert.AreEqual(HttpStatusCode.OK, r.StatusCode, await r.Content.ReadAsStringAsync());
        }
    }

    [TestMethod]
    public async Task BadUploadsGet400415And413WithAMessage()
    {
        await using var app = await TestApp(WebFixtures.ModelA, "--maxUploadBytes", "2000");
        using var client = app.GetTestClient();
        async Task Expect(HttpStatusCode status, HttpContent content, string words)
        {
            using var r = await client.PostAsync("/api/classify", content);
            var body = await r.Content.ReadAsStringAsync();
            Assert.AreEqual(status, r.StatusCode, body);
            StringAssert.Contains((string)JsonNode.Parse(body)!["error"]!, words);
        }
        await Expect(HttpStatusCode.BadRequest, Upload([]), "no image");
        await Expect(HttpStatusCode.BadRequest, Upload(File.ReadAllBytes(WebFixtures.Files[0]), field: "other"), "imageFile");
        await Expect(HttpStatusCode.BadRequest, new StringContent("hello"), "multipart");
        await Expect(HttpStatusCode.UnsupportedMediaType, Upload("just some text"u8.ToArray()), "not a JPEG");
        await Expect(HttpStatusCode.UnsupportedMediaType, Upload([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3, 4]), "cannot be decoded");
        var big = new byte[3000];
        File.ReadAllBytes(WebFixtures.Files[0]).CopyTo(big, 0);
        await Expect(HttpStatusCode.RequestEntityTooLarge, Upload(big), "limit");
        // And the app still serves.
        using var ok = await client.PostAsync("/api/classify", Upload(File.ReadAllBytes(WebFixtures.Files[0])));
        Assert.AreEqual(HttpStatusCode.OK, ok.StatusCode);
    }

    [TestMethod]
    public async Task ChromiumUploadsAnImageAndReadsTheLabelOffThePage()
    {
        if (!File.Exists("/usr/bin/chromium")) Assert.Inconclusive("Debian's chromium is not installed (eng/install-deps.sh installs it)");
        await using var app = ClassifierApp.Build(["--model", WebFixtures.ModelA, "--urls", "http://127.0.0.1:0"]);
        await app.StartAsync();
        var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var red = Directory.GetFiles(Path.Combine(WebFixtures.Images, "red")).Order(StringComparer.Ordinal).First();
        var expected = WebFixtures.Expected(WebFixtures.ModelA)[red];

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = "/usr/bin/chromium", Headless = true });
        var page = await browser.NewPageAsync();
        await page.GotoAsync(url);
        await page.SetInputFilesAsync("#file", red);
        var label = page.Locator("#label");
        await Assertions.Expect(label).Not.ToBeEmptyAsync(new() { Timeout = 30000 });
        Assert.AreEqual(WebFixtures.Classes[Array.IndexOf(expected, expected.Max())], (await label.TextContentAsync())!.Trim());
        Assert.AreEqual(3, await page.Locator("#bars .bar").CountAsync(), "top-5 bars of a 3-class model: 3");
        StringAssert.Contains(await page.Locator("#meta").TextContentAsync(), "model version 1");
        Assert.AreEqual("", (await page.Locator("#error").TextContentAsync())!.Trim());
    }

    private static long RssKb(int pid) =>
        long.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);

    [TestMethod]
    public async Task UnderLoadFromAnotherProcessTheModelIsReplacedWithNoFailedRequest()
    {
        var dll = Path.Combine(WebFixtures.Repo, "examples", "WebApp", "bin", "Release", "net10.0", "WebApp.dll");
        Assert.IsTrue(File.Exists(dll), dll);
        var dir = Directory.CreateTempSubdirectory("vit-web-load-").FullName;
        var served = Path.Combine(dir, "model.zip");
        // VIT_WEB_LOAD_MODEL=<model.zip> measures another model (served as both versions), e.g. a ViT-Ti/16 at 224.
        var (first, second) = Environment.GetEnvironmentVariable("VIT_WEB_LOAD_MODEL") is { Length: > 0 } other ? (other, other) : (WebFixtures.ModelA, WebFixtures.ModelB);
        File.Copy(first, served);
        var expected = new Dictionary<long, Dictionary<string, float[]>> { [1] = WebFixtures.Expected(first), [2] = WebFixtures.Expected(second) };
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { dll, "--model", served, "--urls", $"http://127.0.0.1:{port}", "--Logging:LogLevel:Default", "Warning" }) psi.ArgumentList.Add(a);
        using var server = Process.Start(psi)!;
        var serverErr = server.StandardError.ReadToEndAsync();
        _ = server.StandardOutput.ReadToEndAsync();
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            var up = Stopwatch.StartNew();
            while (true)
            {
                Assert.IsFalse(server.HasExited, $"the web app stopped: {(server.HasExited ? await serverErr : "")}");
                Assert.IsLessThan(TimeSpan.FromSeconds(60), up.Elapsed, "the web app did not come up within 60 s");
                try
                {
                    if ((await client.GetAsync("/health")).IsSuccessStatusCode) break;
                }
                catch (HttpRequestException)
                {
                }
                await Task.Delay(100);
            }
            var files = WebFixtures.Files;
            var bytes = files.ToDictionary(f => f, File.ReadAllBytes);
            // Requests from `concurrency` clients at once until `stop` is cancelled (or `requests` are made).
            async Task<List<(string File, HttpStatusCode Status, long Version, float[] Scores, double Ms)>> Run(int requests, int concurrency, CancellationToken stop = default)
            {
                var results = new List<(string, HttpStatusCode, long, float[], double)>();
                int next = -1;
                await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
                {
                    int i;
                    while (!stop.IsCancellationRequested && (i = Interlocked.Increment(ref next)) < requests)
                    {
                        var f = files[i % files.Length];
                        var clock = Stopwatch.StartNew();
                        using var r = await client.PostAsync("/api/classify", Upload(bytes[f]));
                        var body = await r.Content.ReadAsStringAsync();
                        double ms = clock.Elapsed.TotalMilliseconds;
                        long version = 0;
                        float[] s = [];
                        if (r.IsSuccessStatusCode)
                        {
                            var j = JsonNode.Parse(body)!;
                            version = (long)j["model_version"]!;
                            s = Scores(j);
                        }
                        lock (results) results.Add((f, r.StatusCode, version, s, ms));
                    }
                }));
                return results;
            }
            await Run(100, 4);  // warm-up
            long rssBefore = RssKb(server.Id);
            using var stop = new CancellationTokenSource();
            var clock = Stopwatch.StartNew();
            var load = Run(int.MaxValue, 8, stop.Token);
            await Task.Delay(3000);
            File.Copy(second, served + ".tmp");
            File.Move(served + ".tmp", served, overwrite: true);  // replaced as deployments do, mid-load
            while (!load.IsCompleted && clock.Elapsed < TimeSpan.FromSeconds(60)
                   && !(await client.GetStringAsync("/health")).Contains("\"model_version\":2", StringComparison.Ordinal))
                await Task.Delay(50);
            await Task.Delay(3000);
            stop.Cancel();
            var results = await load;
            double seconds = clock.Elapsed.TotalSeconds;
            long rssAfter = RssKb(server.Id);

            var failed = results.Where(r => r.Status != HttpStatusCode.OK).ToList();
            Assert.IsEmpty(failed, $"{failed.Count} failed requests, e.g. {failed.FirstOrDefault().Status}");
            var versions = results.Select(r => r.Version).Distinct().Order().ToArray();
            CollectionAssert.AreEqual(new long[] { 1, 2 }, versions, "model_version switches from 1 to 2 during the load");
            foreach (var r in results)
                for (int c = 0; c < 3; c++)
                    Assert.AreEqual(expected[r.Version][r.File][c], r.Scores[c], 1e-6f, $"version {r.Version}, {r.File}");
            var ms = results.Select(r => r.Ms).Order().ToArray();
            double p50 = ms[ms.Length / 2], p99 = ms[(int)(ms.Length * 0.99)];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"web load: {results.Count} requests in {seconds:F1} s ({results.Count / seconds:F0}/s), 8 clients at once, 0 errors; p50 {p50:F1} ms, p99 {p99:F1} ms; RSS {rssBefore / 1024.0:F0} -> {rssAfter / 1024.0:F0} MB; versions {results.Count(r => r.Version == 1)} x v1, {results.Count(r => r.Version == 2)} x v2"));
            Assert.IsLessThan(rssBefore * 1.25 + 40 * 1024, (double)rssAfter, "RSS stays flat across the load and the swap");
        }
        finally
        {
            if (!server.HasExited) server.Kill(entireProcessTree: true);
            server.WaitForExit();
            Directory.Delete(dir, recursive: true);
        }
        StringAssert.DoesNotMatch(await serverErr, new System.Text.RegularExpressions.Regex("fail|Unhandled"));
    }
}
