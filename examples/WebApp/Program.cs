// The web app: dotnet run -c Release --project examples/WebApp -- --model model.zip [--urls http://127.0.0.1:5000]
using Vit.WebApp;

WebApplication app;
try
{
    app = ClassifierApp.Build(args);
}
catch (Exception e) when (e is ArgumentException or FileNotFoundException or InvalidDataException or InvalidOperationException)
{
    Console.Error.WriteLine($"WebApp: {e.Message}");
    return 2;
}
app.Run();
return 0;
