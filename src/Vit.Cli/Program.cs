// vit: the command-line face of Vit for .NET. Each command is in its own file; this one wires them into one root
// command, turns parse errors into one line and exit code 2, and maps exceptions to exit codes:
//   0 done; 1 a failure while working (training diverged, a full disk, ...); 2 bad usage or bad input
//   (a missing file, a damaged model, an unknown option); 130 interrupted by Ctrl+C (training saved a checkpoint).
using Vit.Cli;

return VitCli.Run(args, Console.Out, Console.Error);
