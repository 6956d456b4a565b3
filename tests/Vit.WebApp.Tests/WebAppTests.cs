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
            var scores = json["scores"]!.AsObject();
            CollectionAssert.AreEqual(WebFixtures.Classes, scores.Select(kv => kv.Key).ToArray());
            var want = expected[file];
            for (int c = 0; c < WebFixtures.Classes.Length; c++)
                Assert.AreEqual(want[c], (float)scores[WebFixtures.Classes[c]]!, 1e-6f, file);
            int best = Array.IndexOf(want, want.Max());
            Assert.AreEqual(WebFixtures.Classes[best], (string)json["predictedLabel"]!);
            Assert.AreEqual(want[best], (float)json["probability"]!, 1e-6f);
            Assert.AreEqual(1, (long)json["modelVersion"]!);
            Assert.IsGreaterThan(0.0, (double)json["elapsedMs"]!);
        }
        var withMap = JsonNode.Parse(await (await client.PostAsync("/api/classify?attention=true", Upload(File.ReadAllBytes(WebFixtures.Files[0])))).Content.ReadAsStringAsync())!;
        var map = withMap["attention"]!;
        Assert.AreEqual(2, (int)map["rows"]!);
        Assert.AreEqual(1.0, map["values"]!.AsArray().Sum(v => (double)v!), 1e-5, "the rollout over the 2x2 patches sums to 1");

        var health = JsonNode.Parse(await client.GetStringAsync("/health"))!;
        Assert.AreEqual("ok", (string)health["status"]!);
        StringAssert.Contains(await client.GetStringAsync("/"), "imageFile");
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
                            version = (long)j["modelVersion"]!;
                            s = WebFixtures.Classes.Select(c => (float)j["scores"]![c]!).ToArray();
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
                   && !(await client.GetStringAsync("/health")).Contains("\"modelVersion\":2", StringComparison.Ordinal))
                await Task.Delay(50);
            await Task.Delay(3000);
            stop.Cancel();
            var results = await load;
            double seconds = clock.Elapsed.TotalSeconds;
            long rssAfter = RssKb(server.Id);

            var failed = results.Where(r => r.Status != HttpStatusCode.OK).ToList();
            Assert.IsEmpty(failed, $"{failed.Count} failed requests, e.g. {failed.FirstOrDefault().Status}");
            var versions = results.Select(r => r.Version).Distinct().Order().ToArray();
            CollectionAssert.AreEqual(new long[] { 1, 2 }, versions, "modelVersion switches from 1 to 2 during the load");
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
