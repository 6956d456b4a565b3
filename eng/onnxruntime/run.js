// Runs an ONNX model in ONNX Runtime (onnxruntime-node, CPU) for the tests and the benchmark.
//
//   node run.js MODEL INPUT.bin N,C,H,W OUTDIR       writes OUTDIR/<output>.bin (float32, little-endian) and
//                                                     OUTDIR/outputs.json ({name: shape}) for every output
//   node run.js --bench MODEL N,C,H,W SECONDS THREADS prints {"images_per_second", "runs", "threads"} for random
//                                                     input of that shape, after one warm-up run
const fs = require("fs");
const path = require("path");
const ort = require("onnxruntime-node");

async function session(model, threads) {
  const options = { executionProviders: ["cpu"], graphOptimizationLevel: "all" };
  if (threads) { options.intraOpNumThreads = threads; options.interOpNumThreads = 1; }
  return ort.InferenceSession.create(model, options);
}

async function run(model, inputPath, dims, outDir) {
  const s = await session(model);
  const raw = fs.readFileSync(inputPath);
  const data = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const feeds = { [s.inputNames[0]]: new ort.Tensor("float32", data, dims) };
  const results = await s.run(feeds);
  const shapes = {};
  for (const name of s.outputNames) {
    const t = results[name];
    fs.writeFileSync(path.join(outDir, name + ".bin"), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    shapes[name] = t.dims;
  }
  fs.writeFileSync(path.join(outDir, "outputs.json"), JSON.stringify(shapes));
}

async function bench(model, dims, seconds, threads) {
  const s = await session(model, threads);
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.random();
  const feeds = { [s.inputNames[0]]: new ort.Tensor("float32", data, dims) };
  await s.run(feeds);  // warm-up
  let runs = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < seconds || runs < 2) {
    await s.run(feeds);
    runs++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  }
  console.log(JSON.stringify({ images_per_second: (runs * dims[0]) / elapsed, runs, threads }));
}

const args = process.argv.slice(2);
const dimsOf = (text) => text.split(",").map(Number);
(args[0] === "--bench"
  ? bench(args[1], dimsOf(args[2]), Number(args[3]), Number(args[4]))
  : run(args[0], args[1], dimsOf(args[2]), args[3])
).catch((e) => { console.error(e.message || e); process.exit(1); });
