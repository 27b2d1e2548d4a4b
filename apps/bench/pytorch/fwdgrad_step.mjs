// fwdgrad (TypeScript, tfjs) side of the PyTorch comparison: times one LG-FG-A / LG-BP training
// step (gradients + SGD-momentum update) of a LocalMixer preset, times a 4096×512×512 matMul, or
// exports a tiny model's LG-BP gradients for localmixer_step.py --ts-ref. Run from apps/bench/pytorch
// (node resolves @fwdgrad/* through apps/bench, which depends on every package; they must be built).
//
//   node fwdgrad_step.mjs time M/8/16 32 lg-fg-a [reps=5] [warmup=2] [backend=wasm]
//   node fwdgrad_step.mjs matmul [backend=wasm]
//   node fwdgrad_step.mjs profile M/8/16 32 lg-fg-a [backend=wasm]   (time per tfjs kernel)
//   node fwdgrad_step.mjs export-tiny out.json [backend=cpu]
//
// Prints one JSON object on stdout. A failure inside a step (e.g. the wasm heap running out of
// memory) is reported as { error } instead of a time.
import { readFileSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { createRandom } from '@fwdgrad/jvp-core';
import { resolveConfig } from '@fwdgrad/localmixer';
import { createAlgorithm, createModel, createOptimizer } from '@fwdgrad/trainer';
import { selectBackend } from '@fwdgrad/trainer/node';

const [mode = 'time', ...rest] = process.argv.slice(2);
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const wasmHeapBytes = () => {
  const wasm = tf.backend()?.wasm;
  return wasm?.HEAPU8 ? wasm.HEAPU8.length : null;
};

function randomBatch(config, B, seed) {
  // random patches [B, P, D_in] and one-hot labels, like packages/trainer/scratch/step2.mjs
  const [h, w, c] = config.imageShape;
  const np = config.patchesPerSide;
  const dIn = (h / np) * (w / np) * c;
  return tf.tidy(() => ({
    x: tf.keep(tf.randomNormal([B, np * np, dIn], 0, 1, 'float32', seed)),
    labels: tf.keep(
      tf.oneHot(tf.randomUniform([B], 0, config.numClasses, 'int32', seed + 1), config.numClasses).toFloat(),
    ),
    size: B,
  }));
}

async function timeStep([code, batch, algo, reps = '5', warmup = '2', backend = 'wasm']) {
  const sel = await selectBackend(backend);
  const shape = code.includes('/1/') ? [28, 28, 1] : [32, 32, 3];
  const config = resolveConfig(code, { imageShape: shape, numClasses: 10 });
  const model = createModel(config, 0);
  const B = Number(batch);
  const data = randomBatch(config, B, 0);
  const algorithm = createAlgorithm(algo, model);
  const opt = createOptimizer('sgd', { momentum: 0.9 });
  const out = {
    framework: 'fwdgrad',
    backend: sel.tfjsBackend,
    kernelPatches: sel.kernelPatches,
    code,
    batch: B,
    algo,
    // tfjs-backend-wasm is single-threaded under Node (WASM_HAS_MULTITHREAD_SUPPORT is false there);
    // the native kernels use FWDGRAD_THREADS (BLAS and large elementwise loops)
    threads: sel.name === 'native' ? sel.native.threads : 1,
    fwdgrad_backend: sel.name,
    blas: sel.name === 'native' ? sel.native.blas : null,
    load_before: loadavg(),
  };
  const stepMs = [];
  const totalMs = [];
  try {
    for (let i = 0; i < Number(warmup) + Number(reps); i++) {
      const t0 = performance.now();
      const res = algorithm.step(model, data, createRandom(i));
      for (const g of res.grads.values()) g.dataSync();
      const t1 = performance.now();
      opt.apply(
        model.entries.filter((e) => res.grads.has(e.name)),
        res.grads,
        0.01,
      );
      model.entries[0].variable.dataSync();
      const t2 = performance.now();
      tf.dispose([...res.grads.values()]);
      if (i >= Number(warmup)) {
        stepMs.push(t1 - t0);
        totalMs.push(t2 - t0);
      }
    }
    const med = median(totalMs);
    Object.assign(out, {
      ms_median: med,
      ms_grads_median: median(stepMs),
      ms_all: totalMs,
      examples_per_s: (B / med) * 1e3,
    });
  } catch (err) {
    out.error = String(err?.message ?? err).split('\n')[0];
    out.steps_done = totalMs.length;
  }
  out.load_after = loadavg();
  out.wasm_heap_bytes = wasmHeapBytes();
  out.tensors = tf.memory().numTensors;
  console.log(JSON.stringify(out));
}

async function timeMatmul([backend = 'wasm']) {
  const sel = await selectBackend(backend);
  const a = tf.randomNormal([4096, 512], 0, 1, 'float32', 0);
  const b = tf.randomNormal([512, 512], 0, 1, 'float32', 1);
  const ts = [];
  for (let i = 0; i < 13; i++) {
    const t0 = performance.now();
    const c = tf.matMul(a, b);
    c.dataSync();
    if (i >= 3) ts.push(performance.now() - t0);
    c.dispose();
  }
  const med = median(ts);
  console.log(
    JSON.stringify({
      framework: 'fwdgrad',
      backend: sel.tfjsBackend,
      threads: sel.name === 'native' ? sel.native.threads : 1,
      fwdgrad_backend: sel.name,
      shape: '4096x512x512',
      ms_median: med,
      gflops: (2 * 4096 * 512 * 512) / (med / 1e3) / 1e9,
    }),
  );
}

async function exportTiny([file, backend = 'cpu']) {
  // The tiny config of localmixer_step.py (TINY): 4×4×2 images, 2×2 patches, 2 blocks, C = 8, G = 2, K = 3.
  await selectBackend(backend);
  const config = resolveConfig({
    imageShape: [4, 4, 2],
    numClasses: 3,
    blocks: 2,
    patchesPerSide: 2,
    channels: 8,
    groups: 2,
  });
  const model = createModel(config, 1);
  // a non-zero final classifier, so that its gradient is not trivially zero-initialised
  model.entry('classifier.w').variable.assign(tf.randomNormal([8, 3], 0, 0.3, 'float32', 2));
  const data = randomBatch(config, 3, 3);
  const dump = (m) =>
    Object.fromEntries([...m].map(([k, t]) => [k, { shape: t.shape, data: Array.from(t.dataSync()) }]));
  const params = new Map(model.entries.map((e) => [e.name, e.variable]));
  const grads = {};
  for (const id of ['lg-bp', 'lg-fg-a']) {
    // localmixer_step.py follows REFERENCE.md's update literally: each local head learns from the sum of
    // its P·G replicas; fwdgrad's default ('pooled', what the authors' code applies) divides that by P·G
    const res = createAlgorithm(id, model, { headGradient: 'replicas' }).step(model, data, createRandom(0));
    grads[id] = dump(res.grads);
    tf.dispose([...res.grads.values()]);
  }
  writeFileSync(
    file,
    JSON.stringify({
      config,
      params: dump(params),
      x: { shape: data.x.shape, data: Array.from(data.x.dataSync()) },
      labels: { shape: data.labels.shape, data: Array.from(data.labels.dataSync()) },
      grads,
    }),
  );
  console.log(JSON.stringify({ wrote: file, backend: tf.getBackend() }));
}

async function profileStep([code, batch, algo, backend = 'wasm']) {
  // Exclusive wall time per tfjs kernel over one step (after one warm-up step), by wrapping the
  // engine's kernel dispatch (the same hook as packages/trainer/scratch/kprof.mjs).
  const sel = await selectBackend(backend);
  const shape = code.includes('/1/') ? [28, 28, 1] : [32, 32, 3];
  const config = resolveConfig(code, { imageShape: shape, numClasses: 10 });
  const model = createModel(config, 0);
  const data = randomBatch(config, Number(batch), 0);
  const algorithm = createAlgorithm(algo, model);
  const run = (i) => {
    const res = algorithm.step(model, data, createRandom(i));
    for (const g of res.grads.values()) g.dataSync();
    tf.dispose([...res.grads.values()]);
  };
  run(0);
  const proto = Object.getPrototypeOf(tf.engine());
  const orig = proto.runKernelFunc;
  const agg = new Map();
  const stack = [];
  proto.runKernelFunc = function (p) {
    if (!p.kernelName) return orig.call(this, p);
    const s = performance.now();
    stack.push(0);
    try {
      return orig.call(this, p);
    } finally {
      const child = stack.pop();
      const ms = performance.now() - s;
      if (stack.length > 0) stack[stack.length - 1] += ms;
      const v = agg.get(p.kernelName) ?? { calls: 0, ms: 0 };
      v.calls++;
      v.ms += ms - child;
      agg.set(p.kernelName, v);
    }
  };
  const t0 = performance.now();
  run(1);
  const total = performance.now() - t0;
  proto.runKernelFunc = orig;
  const kernels = [...agg.entries()].sort((a, b) => b[1].ms - a[1].ms).map(([name, v]) => ({ name, ...v }));
  console.log(
    JSON.stringify({
      framework: 'fwdgrad',
      backend: sel.tfjsBackend,
      code,
      batch: Number(batch),
      algo,
      total_ms: total,
      kernels,
    }),
  );
}

const modes = { profile: profileStep, time: timeStep, matmul: timeMatmul, 'export-tiny': exportTiny };
if (!(mode in modes)) {
  console.error(`unknown mode '${mode}'; use one of ${Object.keys(modes).join(', ')}`);
  process.exit(2);
}
await modes[mode](rest);
