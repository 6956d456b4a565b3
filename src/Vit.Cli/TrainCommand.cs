using System.CommandLine;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Spectre.Console;
using Vit.MLNet;
using Vit.Torch;
using Vit.Torch.Checkpoints;
using Vit.Torch.Distributed;
using Vit.Torch.Model;
using Vit.Torch.Training;

namespace Vit.Cli;

/// <summary><c>vit train &lt;folder|csv&gt; --out model.zip</c>: a ViT from scratch or from a checkpoint, through the pipeline
/// (LoadImages, ResizeImages, VitEstimator), with live progress and checkpoints that <c>--resume</c> continues.</summary>
internal static class TrainCommand
{
    /// <summary>The --arch names and the presets they stand for.</summary>
    public static readonly IReadOnlyDictionary<string, VitArchitecture> Architectures = new Dictionary<string, VitArchitecture>
    {
        ["ti16"] = VitArchitecture.TinyPatch16, ["ti32"] = VitArchitecture.TinyPatch32,
        ["s16"] = VitArchitecture.SmallPatch16, ["s32"] = VitArchitecture.SmallPatch32,
        ["b16"] = VitArchitecture.BasePatch16, ["b32"] = VitArchitecture.BasePatch32,
        ["l16"] = VitArchitecture.LargePatch16, ["l32"] = VitArchitecture.LargePatch32,
    };

    public static Command Create(CliOutput io)
    {
        var data = new Argument<string>("data") { Description = "An image folder (one subfolder per class) or a CSV/TSV file with ImagePath and Label columns." };
        var output = new Option<string>("--out", "-o") { Description = "The model file to write (a zip).", Required = true };
        var arch = new Option<string?>("--arch") { Description = $"Architecture when training from scratch: {string.Join(", ", Architectures.Keys)} (default ti16), or custom with --dim, --depth, --heads, --patch." };
        arch.AcceptOnlyFromAmong([.. Architectures.Keys, "custom"]);
        var dim = new Option<int?>("--dim") { Description = "With --arch custom: the token width D." };
        var depth = new Option<int?>("--depth") { Description = "With --arch custom: the number of encoder blocks." };
        var heads = new Option<int?>("--heads") { Description = "With --arch custom: attention heads (D must divide by it)." };
        var patch = new Option<int?>("--patch") { Description = "With --arch custom: the patch side in pixels (the image side must divide by it)." };
        var mlp = new Option<int?>("--mlp") { Description = "With --arch custom: the MLP's hidden width (default 4 x D)." };
        var from = new Option<string?>("--from") { Description = "Start from a checkpoint: a model zip, a Hugging Face folder, a timm/torchvision .pth or .safetensors file." };
        var headOnly = new Option<bool>("--head-only") { Description = "With --from: freeze the backbone and train only a new head." };
        var epochs = new Option<int?>("--epochs") { Description = $"Epochs (default: from the data's size, enough for {VitEstimator.Options.Defaults.MinimumSteps} steps, at least {VitEstimator.Options.Defaults.Epochs})." };
        var batch = new Option<int>("--batch-size") { Description = "Images per step.", DefaultValueFactory = _ => VitEstimator.Options.Defaults.BatchSize };
        var lr = new Option<double?>("--lr")
        {
            Description = $"Peak learning rate (default {VitEstimator.Options.Defaults.LearningRate} from scratch, {VitEstimator.Options.Defaults.FineTuneLearningRate} fine-tuning).",
        };
        var imageSize = new Option<int?>("--image-size") { Description = "Image side in pixels (default: the checkpoint's with --from, else 224)." };
        var precision = VitCli.PrecisionOption("Arithmetic of training and of the saved model's scoring");
        var validation = new Option<double?>("--validation-fraction") { Description = "Share of the data held out to report accuracy on each epoch (default 0.1 with at least 10 images per class, else 0)." };
        var checkpointDir = new Option<string?>("--checkpoint-dir") { Description = "Where checkpoints go (default: <out>.checkpoints beside the model file)." };
        var resume = new Option<bool>("--resume") { Description = "Continue from the checkpoint folder's last checkpoint, as if never interrupted." };
        var seed = new Option<int>("--seed") { Description = "Random seed.", DefaultValueFactory = _ => VitEstimator.Options.Defaults.Seed };
        var command = new Command("train", "Train an image classifier and save it as a model file. Ctrl+C saves a checkpoint and exits 130.")
        {
            data, output, arch, dim, depth, heads, patch, mlp, from, headOnly, epochs, batch, lr, imageSize, precision, validation, checkpointDir, resume, seed,
        };
        var launch = new Launcher.Options();
        launch.AddTo(command);
        command.SetAction(r =>
        {
            var settings = new Settings(r.GetValue(data)!, r.GetValue(output)!, r.GetValue(arch),
                (r.GetValue(dim), r.GetValue(depth), r.GetValue(heads), r.GetValue(patch), r.GetValue(mlp)), r.GetValue(from), r.GetValue(headOnly),
                r.GetValue(epochs), r.GetValue(batch), r.GetValue(lr), r.GetValue(imageSize), MixedPrecision.Parse(r.GetValue(precision)!),
                r.GetValue(validation), r.GetValue(checkpointDir), r.GetValue(resume), r.GetValue(seed));
            var spread = launch.Read(r);
            if (Launcher.IsWorker || spread.WorldSize == 1) return RunWorker(io, settings, spread);
            Check(settings);  // bad options fail once, here, not in every worker
            return Launcher.Run(io, spread, VitCli.Arguments);
        });
        return command;
    }

    /// <summary>One process's part: alone, or one rank of a group (a launcher's worker, or torchrun's variables).</summary>
    private static int RunWorker(CliOutput io, Settings settings, LaunchSettings spread)
    {
        var group = Launcher.Join(spread);
        if (group is null) return Run(io, settings);
        // Only rank 0 speaks and saves; the others' errors still reach stderr (VitCli reports them).
        int code = Run(group.Rank == 0 ? io : new CliOutput(TextWriter.Null, TextWriter.Null), settings, group);
        group.Dispose();  // after a failure the group is left as it is: its connections may hang on a dead peer
        return code;
    }

    /// <summary>The options of one run.</summary>
    public sealed record Settings(string Data, string Out, string? Arch, (int? Dim, int? Depth, int? Heads, int? Patch, int? Mlp) Custom, string? From, bool HeadOnly, int? Epochs, int BatchSize,
        double? LearningRate, int? ImageSize, Precision Precision, double? ValidationFraction, string? CheckpointDir, bool Resume, int Seed);

    /// <summary>Refuses bad options (a <see cref="UsageException"/> naming the first).</summary>
    private static void Check(Settings s)
    {
        if (s.Arch is not null && s.From is not null) throw new UsageException("--arch and --from exclude each other: a checkpoint brings its own architecture");
        var c = s.Custom;
        bool anyCustom = c.Dim is not null || c.Depth is not null || c.Heads is not null || c.Patch is not null || c.Mlp is not null;
        if (anyCustom && s.Arch != "custom") throw new UsageException("--dim, --depth, --heads, --patch and --mlp go with --arch custom");
        if (s.Arch == "custom" && (c.Dim is null || c.Depth is null || c.Heads is null || c.Patch is null))
            throw new UsageException("--arch custom needs --dim, --depth, --heads and --patch");
        if (s.HeadOnly && s.From is null) throw new UsageException("--head-only needs --from (the checkpoint whose backbone stays frozen)");
        if (s.Epochs < 1) throw new UsageException($"--epochs must be at least 1, got {s.Epochs}");
        if (s.BatchSize < 1) throw new UsageException($"--batch-size must be at least 1, got {s.BatchSize}");
        if (s.ImageSize is < 1 or > 4096) throw new UsageException($"--image-size must be in 1..4096, got {s.ImageSize}");
        if (s.ValidationFraction is { } vf && !(vf >= 0 && vf < 1)) throw new UsageException($"--validation-fraction must be in [0, 1), got {vf}");
        var outDir = Path.GetDirectoryName(Path.GetFullPath(s.Out))!;
        if (!Directory.Exists(outDir)) throw new UsageException($"the folder of --out does not exist: {outDir}");
        if (s.From is not null && !File.Exists(s.From) && !Directory.Exists(s.From)) throw new UsageException($"--from: no such file or folder: {s.From}");
    }

    /// <summary>Trains (alone, or as one rank of <paramref name="group"/>) and saves the model (rank 0).</summary>
    public static int Run(CliOutput io, Settings s, ProcessGroup? group = null)
    {
        Check(s);
        var c = s.Custom;

        var ml = new MLContext(seed: s.Seed);
        ml.Log += (_, e) => { if (e.Kind >= Microsoft.ML.Runtime.ChannelMessageKind.Warning && e.Source == "VitEstimator") io.Note($"warning: {e.Message}"); };
        var data = CliData.Labelled(ml, s.Data, "training data");
        var labels = ml.Data.CreateEnumerable<VitCatalog.ImageFolderRow>(data, reuseRowObject: false).Select(r => r.Label).ToList();
        int classes = labels.Distinct().Count();
        double validation = s.ValidationFraction ?? (labels.Count >= 10 * Math.Max(classes, 1) ? 0.1 : 0);
        int size = s.ImageSize ?? (s.From is null ? 224 : CheckpointImageSize(s.From));
        VitConfig? custom = null;
        if (s.Arch == "custom")
        {
            try
            {
                custom = new VitConfig
                {
                    ImageSize = size, PatchSize = c.Patch!.Value, Dim = c.Dim!.Value, Depth = c.Depth!.Value, Heads = c.Heads!.Value,
                    MlpDim = c.Mlp ?? 4 * c.Dim.Value,
                }.Validate();
            }
            catch (ArgumentException e)
            {
                throw new UsageException($"--arch custom: {e.Message}");
            }
        }
        var checkpoints = s.CheckpointDir ?? Path.ChangeExtension(Path.GetFullPath(s.Out), null) + ".checkpoints";
        io.Note($"training on {labels.Count} images, {classes} classes ({s.Data}); {(s.From is null ? $"architecture {s.Arch ?? "ti16"} from scratch" : $"from {s.From}{(s.HeadOnly ? ", head only" : "")}")}, " +
                $"{size}x{size}, {(s.Epochs is { } n ? $"{n} epochs" : "epochs from the data's size")}, batch {s.BatchSize}, precision {MixedPrecision.Resolve(s.Precision, Device.Cpu)}, " +
                (validation > 0 ? $"validation {validation:P0}" : "no validation set") + $"; checkpoints in {checkpoints}");

        // Ctrl+C stops training (with a checkpoint) while it runs; afterwards the default applies again (saving is atomic).
        TransformerChain<VitTransformer> model;
        using (var interrupt = new VitCli.Interrupt())
        {
            var reporter = new ProgressReporter(io);
            var options = new VitEstimator.Options
            {
                Architecture = s.Arch is null ? VitEstimator.Options.Defaults.Architecture : custom is not null ? VitArchitecture.Custom : Architectures[s.Arch],
                CustomConfig = custom,
                StartFrom = s.From, FineTune = s.HeadOnly ? FineTuneMode.HeadOnly : FineTuneMode.Full,
                Epochs = s.Epochs, BatchSize = s.BatchSize, LearningRate = s.LearningRate, Precision = s.Precision,
                ValidationFraction = validation, CheckpointDirectory = checkpoints, Resume = s.Resume, Seed = s.Seed,
                Progress = reporter, CancellationToken = interrupt.Token, Distributed = group,
            };
            // Labels stay text (no MapValueToKey): the saved model then scores rows that hold only an image path.
            var pipeline = ml.Transforms.LoadImages(CliData.Image, imageFolder: null, inputColumnName: CliData.ImagePath)
                .Append(ml.Transforms.ResizeImages(CliData.Image, size, size))
                .Append(ml.MulticlassClassification.Trainers.Vit(options));
            if (io.Interactive)
                model = io.Console_.Progress().AutoClear(false)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                    .Start(live =>
                    {
                        reporter.Live = live.AddTask("training", maxValue: 1);
                        return pipeline.Fit(data);
                    });
            else
                model = pipeline.Fit(data);
        }
        using (model)
        {
            var vit = model.LastTransformer;
            var history = vit.History!.Result;
            EpochTable(io, history);
            if (history.Cancelled)
            {
                io.Note($"interrupted: the last checkpoint is in {checkpoints}; continue with the same command and --resume");
                return ExitCodes.Interrupted;
            }
            if (group is { Rank: > 0 }) return ExitCodes.Ok;  // rank 0 saves the model
            ml.Model.SaveAtomic(model, CliData.Paths(ml, []).Schema, s.Out);
            var last = history.Epochs.LastOrDefault();
            io.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"saved {s.Out}: {vit.Labels.Count} classes, {vit.Model.ParameterCount():N0} parameters")
                + (last?.Evaluation is { } ev ? string.Create(CultureInfo.InvariantCulture, $", validation accuracy {ev.Accuracy:P2}") : "")
                + (vit.History.SkippedImages > 0 ? $", {vit.History.SkippedImages} unreadable images skipped" : ""));
            return ExitCodes.Ok;
        }
    }

    /// <summary>The image size a checkpoint was made for (its preprocessing's).</summary>
    private static int CheckpointImageSize(string path)
    {
        using var pretrained = PretrainedVit.Load(path);
        return pretrained.Preprocessing.ImageSize;
    }

    private static void EpochTable(CliOutput io, TrainingResult history)
    {
        if (history.Epochs.Count == 0) return;
        var table = new Table().AddColumns("epoch", "train loss", "train acc", "val loss", "val acc", "images/s", "elapsed");
        foreach (var e in history.Epochs)
            table.AddRow(e.Epoch.ToString(CultureInfo.InvariantCulture), CliOutput.F(e.TrainLoss), CliOutput.P(e.TrainAccuracy),
                e.Evaluation is { } v ? CliOutput.F(v.Loss) : "-", e.Evaluation is { } w ? CliOutput.P(w.Accuracy) : "-",
                CliOutput.F(e.ImagesPerSecond, "F1"), e.Elapsed.ToString(@"hh\:mm\:ss", CultureInfo.InvariantCulture));
        io.Table(table);
    }

    /// <summary>Shows the trainer's per-step progress: a live bar on a terminal, else a line per epoch and every 30 seconds
    /// (on stderr, so a redirected stdout keeps only the results).</summary>
    private sealed class ProgressReporter(CliOutput io) : IProgress<VitTrainingProgress>
    {
        private DateTime lastLine = DateTime.UtcNow;

        public ProgressTask? Live { get; set; }

        public void Report(VitTrainingProgress p)
        {
            string text = string.Create(CultureInfo.InvariantCulture,
                $"epoch {p.Epoch}/{p.Epochs}  step {p.Step}/{p.TotalSteps}  loss {p.Loss:F4}  acc {p.Accuracy:P1}  {p.ImagesPerSecond:F1} img/s  " +
                $"elapsed {p.Elapsed:hh\\:mm\\:ss}  ETA {p.Eta:hh\\:mm\\:ss}");
            if (Live is { } task)
            {
                task.Description = Markup.Escape(text);
                task.Value = p.TotalSteps == 0 ? 1 : (double)p.Step / p.TotalSteps;
                return;
            }
            bool epochEnd = p.Step == p.TotalSteps || (p.TotalSteps > 0 && p.Step % Math.Max(1, p.TotalSteps / p.Epochs) == 0);
            if (epochEnd || DateTime.UtcNow - lastLine > TimeSpan.FromSeconds(30))
            {
                io.Note(text);
                lastLine = DateTime.UtcNow;
            }
        }
    }
}
