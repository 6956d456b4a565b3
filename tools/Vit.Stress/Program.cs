// Vit.Stress: the two reliability runs of issue 13, with their figures.
//   save-kill [--trials 100]: a child process saves model files (mlContext.Model.SaveAtomic) and training checkpoints (the
//     Trainer, a checkpoint after every step) over and over; it is SIGKILLed at a random moment of each trial; then
//     the file must load and predict exactly as one complete version did (a model: bit-equal scores to that version's
//     sequential ones; a checkpoint: the weights of a step the child announced).
//   serve [--threads 16] [--predictions 10000] [--seconds-between-swaps 1]: threads predict through the prediction
//     pool while the watched model file is replaced every second; every answer must equal the sequential answer of the
//     version it came from, the pool's reported version must map to one file, no request may fail, and the resident
//     memory after warm-up must stay within 5%.
using System.Globalization;
using Vit.Stress;

var opts = new Dictionary<string, string>();
for (int i = 1; i + 1 < args.Length; i++)
    if (args[i].StartsWith("--", StringComparison.Ordinal)) opts[args[i][2..]] = args[++i];
int Get(string key, int fallback) => opts.TryGetValue(key, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
return args switch
{
    ["save-kill", ..] => SaveKill.Run(Get("trials", 100)),
    ["save-loop", var dir, var what] => SaveKill.Loop(dir, what),
    ["serve", ..] => Serve.Run(Get("threads", 16), Get("predictions", 10_000), Get("seconds-between-swaps", 1)),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: Vit.Stress save-kill [--trials N] | serve [--threads N --predictions N --seconds-between-swaps N]");
    return 2;
}
