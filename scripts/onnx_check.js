#!/usr/bin/env node
// onnx_check.js — run an exported model in ONNX Runtime on the images of a check file written by
// ddqc (nn/onnx.h: onnx_save_check) and compare with ddqc's own logits in it.
//
//   node scripts/onnx_check.js MODEL.onnx CHECK.bin fp32 [--tol=1e-4] [--threads=N]
//       FP32 export: the largest relative logit error over the images (max |ort − ours| over an
//       image's classes, divided by the largest |ours| of that image); fails above --tol.
//   node scripts/onnx_check.js MODEL.onnx CHECK.bin qdq [--min_agree=0.995] [--tol=T] [--median_tol=T] [--threads=N]
//       Quantized export: top-1 agreement with each logits set of the check file (the integer
//       engine's, then fake-quant's); fails below --min_agree on the first set, or where the
//       largest (--tol) or the median (--median_tol) relative logit difference from it is above T.
//
// Also prints the operators of the graph ONNX Runtime actually runs (its optimized model): a
// QDQ model whose convolutions did not become integer ones is a failure, not a success.
// ONNX Runtime comes from the npm package onnxruntime-node, installed next to this script with
//   npm install --prefix scripts --ignore-scripts onnxruntime-node
// Prints `RESULT onnx_check ...` (key=value) and exits 0 when the check holds, 1 when it does not,
// 2 on bad usage or files.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

function die(msg) {
  process.stderr.write(`onnx_check: error: ${msg}\n`);
  process.exit(2);
}

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const opts = Object.fromEntries(process.argv.slice(2).filter((a) => a.startsWith('--')).map((a) => {
  const [k, v] = a.slice(2).split('=');
  return [k, v === undefined ? 'true' : v];
}));
if (args.length !== 3 || !['fp32', 'qdq'].includes(args[2]) || opts.help) {
  process.stderr.write('usage: node scripts/onnx_check.js MODEL.onnx CHECK.bin fp32|qdq [--tol=1e-4] [--min_agree=0.995] [--threads=N]\n');
  process.exit(opts.help ? 0 : 2);
}
const [modelPath, checkPath, mode] = args;

let ort;
try {
  ort = require('onnxruntime-node');
} catch (e) {
  die('the npm package onnxruntime-node is missing: run `npm install --prefix scripts --ignore-scripts onnxruntime-node`');
}

// ------------------------------------------------------------------ the check file
function readCheck(file) {
  let buf;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    die(`${file}: ${e.message}`);
  }
  if (buf.length < 32 || buf.toString('latin1', 0, 7) !== 'DDQCHK1') die(`${file}: not a ddqc check file`);
  const [n, h, w, c, classes, sets] = [8, 12, 16, 20, 24, 28].map((o) => buf.readInt32LE(o));
  const img = h * w * c;
  const want = 32 + 4 * (n * img + sets * n * classes);
  if (n < 1 || img < 1 || classes < 1 || sets < 1 || buf.length !== want) die(`${file}: sizes do not match its ${buf.length} bytes`);
  const floats = new Float32Array(buf.buffer.slice(buf.byteOffset + 32, buf.byteOffset + buf.length));
  const logits = [];
  for (let s = 0; s < sets; s++) logits.push(floats.subarray(n * img + s * n * classes, n * img + (s + 1) * n * classes));
  return { n, h, w, c, classes, x: floats.subarray(0, n * img), logits };
}

// ------------------------------------------------------------------ which operators run
// The optimized model's nodes, by a minimal protobuf walk (ModelProto.graph = 7, GraphProto.node
// = 1, NodeProto.op_type = 4, NodeProto.domain = 7).
function varint(b, at) {
  let v = 0, mul = 1;
  for (;;) {
    const byte = b[at.i++];
    v += (byte & 0x7f) * mul;
    if (!(byte & 0x80)) return v;
    mul *= 128;
  }
}
function fields(b, from, to, fn) {
  const at = { i: from };
  while (at.i < to) {
    const key = varint(b, at), f = Math.floor(key / 8), wire = key % 8;
    if (wire === 0) varint(b, at);
    else if (wire === 1) at.i += 8;
    else if (wire === 5) at.i += 4;
    else if (wire === 2) {
      const len = varint(b, at);
      fn(f, at.i, at.i + len);
      at.i += len;
    } else throw new Error('bad wire type');
  }
}
function operators(file) {
  const b = fs.readFileSync(file), count = {};
  fields(b, 0, b.length, (f, s, e) => {
    if (f !== 7) return;
    fields(b, s, e, (g, ns, ne) => {
      if (g !== 1) return;
      let op = '', domain = '';
      fields(b, ns, ne, (k, ks, ke) => {
        if (k === 4) op = b.toString('utf8', ks, ke);
        if (k === 7) domain = b.toString('utf8', ks, ke);
      });
      const name = domain && domain !== 'ai.onnx' ? `${domain}.${op}` : op;
      count[name] = (count[name] || 0) + 1;
    });
  });
  return count;
}

// ------------------------------------------------------------------ run and compare
async function main() {
  const ck = readCheck(checkPath);
  const optimized = path.join(os.tmpdir(), `onnx_check_${process.pid}.onnx`);
  const so = { graphOptimizationLevel: 'all', optimizedModelFilePath: optimized, executionMode: 'sequential', logSeverityLevel: 3 };
  if (opts.threads) so.intraOpNumThreads = Number(opts.threads);
  let session;
  try {
    session = await ort.InferenceSession.create(modelPath, so);
  } catch (e) {
    die(`${modelPath}: ONNX Runtime cannot load it: ${e.message.split('\n')[0]}`);
  }
  const img = ck.h * ck.w * ck.c, batch = 100, out = new Float32Array(ck.n * ck.classes);
  let seconds = 0;
  for (let i = 0; i < ck.n; i += batch) {
    const k = Math.min(batch, ck.n - i);
    const x = new ort.Tensor('float32', ck.x.slice(i * img, (i + k) * img), [k, ck.h, ck.w, ck.c]);
    const t0 = process.hrtime.bigint();
    const r = await session.run({ input: x });
    seconds += Number(process.hrtime.bigint() - t0) / 1e9;
    out.set(r.logits.data, i * ck.classes);
  }
  const ops = operators(optimized);
  fs.rmSync(optimized, { force: true });
  const opList = Object.entries(ops).map(([k, v]) => `${k}:${v}`).join(',');
  console.log(`operators ONNX Runtime runs: ${opList}`);
  const argmax = (a, i) => {
    let best = 0;
    for (let j = 1; j < ck.classes; j++) if (a[i * ck.classes + j] > a[i * ck.classes + best]) best = j;
    return best;
  };
  const result = [`mode=${mode}`, `images=${ck.n}`, `ort_img_s=${(ck.n / seconds).toFixed(0)}`];
  let ok = true;
  // per image: the largest |ort − ours| over its classes over the largest |ours|
  const rel = [];
  for (let i = 0; i < ck.n; i++) {
    let diff = 0, mag = 0;
    for (let j = 0; j < ck.classes; j++) {
      const a = out[i * ck.classes + j], b = ck.logits[0][i * ck.classes + j];
      diff = Math.max(diff, Math.abs(a - b)), mag = Math.max(mag, Math.abs(b));
    }
    rel.push(diff / Math.max(mag, 1e-30));
  }
  const sorted = rel.slice().sort((a, b) => a - b), worst = sorted[sorted.length - 1];
  if (mode === 'fp32') {
    const tol = Number(opts.tol || 1e-4);
    ok = worst <= tol;
    result.push(`max_rel_err=${worst.toExponential(3)}`, `tol=${tol}`);
  } else {
    result.push(`median_rel_err=${sorted[Math.floor(sorted.length / 2)].toExponential(2)}`, `max_rel_err=${worst.toExponential(2)}`);
    const names = ['integer', 'fakequant'];
    ck.logits.forEach((ref, s) => {
      let agree = 0;
      for (let i = 0; i < ck.n; i++) agree += argmax(out, i) === argmax(ref, i);
      result.push(`agree_${names[s] || s}=${(agree / ck.n).toFixed(4)}`);
      if (s === 0) ok = agree / ck.n >= Number(opts.min_agree || 0.995);
    });
    if (opts.tol) {  // the exact export: the logits themselves, to float rounding
      ok = ok && worst <= Number(opts.tol);
      result.push(`tol=${opts.tol}`);
    }
    if (opts.median_tol) {  // … or most of them, where a rare code may still differ
      ok = ok && sorted[Math.floor(sorted.length / 2)] <= Number(opts.median_tol);
      result.push(`median_tol=${opts.median_tol}`);
    }
    const integerOps = Object.keys(ops).filter((k) => /QLinearConv|ConvInteger|QLinearMatMul|MatMulInteger|QGemm/.test(k));
    if (!integerOps.length) {
      console.log('no integer convolution in the optimized graph: the QDQ model runs in float');
      ok = false;
    }
  }
  result.push(`ok=${ok ? 1 : 0}`);
  console.log(`RESULT onnx_check ${result.join(' ')}`);
  process.exit(ok ? 0 : 1);
}

main().catch((e) => die(e.message));
