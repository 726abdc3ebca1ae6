#!/usr/bin/env node
// bench_ort.js — ONNX Runtime's evaluation speed on a model exported by ddqc, on the images of its
// check file (nn/onnx.h), in batches: images/s of the forward passes alone (the median of --reps
// timed passes over the images, after one untimed pass).
//
//   node scripts/bench_ort.js MODEL.onnx CHECK.bin [--batch=64] [--threads=2] [--reps=3] [--images=N]
// Prints `RESULT bench_ort model=... batch=... threads=... img_s=...`.
'use strict';
const fs = require('fs');

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const opts = Object.fromEntries(process.argv.slice(2).filter((a) => a.startsWith('--')).map((a) => a.slice(2).split('=')));
if (args.length !== 2) {
  process.stderr.write('usage: node scripts/bench_ort.js MODEL.onnx CHECK.bin [--batch=64] [--threads=2] [--reps=3]\n');
  process.exit(2);
}
let ort;
try {
  ort = require('onnxruntime-node');
} catch (e) {
  process.stderr.write('bench_ort: error: the npm package onnxruntime-node is missing: run scripts/ensure-deps.sh onnxruntime\n');
  process.exit(2);
}

async function main() {
  const [model, check] = args;
  const buf = fs.readFileSync(check);
  const [n, h, w, c] = [8, 12, 16, 20].map((o) => buf.readInt32LE(o));
  const img = h * w * c, x = new Float32Array(buf.buffer.slice(buf.byteOffset + 32, buf.byteOffset + 32 + 4 * n * img));
  const batch = Number(opts.batch || 64), threads = Number(opts.threads || 2), reps = Number(opts.reps || 3);
  const use = Math.min(n, Number(opts.images || n));
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
    logSeverityLevel: 3,
  });
  const batches = [];
  for (let i = 0; i + batch <= use; i += batch) batches.push(new ort.Tensor('float32', x.slice(i * img, (i + batch) * img), [batch, h, w, c]));
  const speeds = [];
  for (let r = 0; r <= reps; r++) {
    const t0 = process.hrtime.bigint();
    for (const b of batches) await session.run({ input: b });
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r > 0) speeds.push((batches.length * batch) / s);  // pass 0 warms up
  }
  speeds.sort((a, b) => a - b);
  console.log(`RESULT bench_ort model=${model} batch=${batch} threads=${threads} images=${batches.length * batch} img_s=${speeds[Math.floor(speeds.length / 2)].toFixed(0)}`);
}

main().catch((e) => {
  process.stderr.write(`bench_ort: error: ${e.message}\n`);
  process.exit(2);
});
