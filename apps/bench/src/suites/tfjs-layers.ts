import * as tf from '@tensorflow/tfjs';

import { batches, type Dataset } from '@fwdgrad/datasets';
import { forwardVariableGrads } from '@fwdgrad/perturbation';
import { barPlot } from '@fwdgrad/plot';
import { createRandom, type Random } from '@fwdgrad/random';
import { measureInterleaved, peakBytesOf, peakStorageBytesOf } from '../measure.js';
import { round } from '../stats.js';
import { columnsTable, field, fields, numbersOf, type Row } from '../table.js';
import { mnist } from '../training.js';
import type { Budget, RowSpec, Suite, SuitePlan } from '../types.js';

/**
 * Forward gradients for plain tf.layers models (issue 18): a tf.sequential CNN and an MLP on MNIST,
 * trained with `@fwdgrad/perturbation`'s `forwardVariableGrads` (FG-W, FG-A) against `tf.variableGrads`
 * (BP), with the same `tf.train` optimizer. Two kinds of rows: `train|<rule>` trains the CNN side by side
 * (the runnable example) and reports test accuracy; `step|<model>` times one training step of each rule
 * in turns and profiles its peak memory.
 */

export type LayersRule = 'bp' | 'fg-w' | 'fg-a';
export const LAYERS_RULES: readonly LayersRule[] = ['bp', 'fg-w', 'fg-a'];

/** The CNN of the example: two 3×3 convolutions with ReLU and 2×2 max pooling, then a dense classifier. */
export function mnistCnn(seed = 0, filters: [number, number] = [8, 16]): tf.Sequential {
  const init = (s: number) => tf.initializers.heNormal({ seed: seed * 10 + s });
  return tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [28, 28, 1],
        filters: filters[0],
        kernelSize: 3,
        activation: 'relu',
        kernelInitializer: init(1),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({
        filters: filters[1],
        kernelSize: 3,
        activation: 'relu',
        kernelInitializer: init(2),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      // small logits at the start (loss ≈ ln 10), for every rule alike
      tf.layers.dense({
        units: 10,
        kernelInitializer: tf.initializers.randomNormal({ stddev: 0.01, seed: seed * 10 + 3 }),
      }),
    ],
  });
}

/** The MLP of the step rows: 784 → 256 → 256 → 10 with ReLU. */
export function mnistMlp(seed = 0): tf.Sequential {
  const init = (s: number) => tf.initializers.heNormal({ seed: seed * 10 + s });
  return tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [28, 28, 1] }),
      tf.layers.dense({ units: 256, activation: 'relu', kernelInitializer: init(1) }),
      tf.layers.dense({ units: 256, activation: 'relu', kernelInitializer: init(2) }),
      tf.layers.dense({
        units: 10,
        kernelInitializer: tf.initializers.glorotNormal({ seed: seed * 10 + 3 }),
      }),
    ],
  });
}

/** Per-example softmax cross-entropy losses [N] of `model` on a batch (one-hot labels). */
function perExampleLoss(model: tf.LayersModel, images: tf.Tensor, onehot: tf.Tensor): () => tf.Tensor {
  return () =>
    tf.losses.softmaxCrossEntropy(
      onehot,
      model.apply(images, { training: true }) as tf.Tensor,
      undefined,
      undefined,
      tf.Reduction.NONE,
    );
}

/**
 * One training step of `rule` on a batch: gradients (tf.variableGrads for BP, forwardVariableGrads for
 * FG-W / FG-A, per-example losses so that FG-A uses each example's directional derivative) and the
 * optimizer's update. Returns the batch's mean loss.
 */
export function trainStep(
  rule: LayersRule,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
  images: tf.Tensor,
  labels: tf.Tensor,
  random: Random,
  samples = 1,
): number {
  const { value, grads } = gradients(rule, model, images, labels, random, samples);
  optimizer.applyGradients(grads);
  const v = value.dataSync()[0];
  tf.dispose([value, ...Object.values(grads)]);
  return v;
}

/** The gradients of one step of `rule` (no update): `tf.variableGrads`' result. The caller owns them. */
export function gradients(
  rule: LayersRule,
  model: tf.LayersModel,
  images: tf.Tensor,
  labels: tf.Tensor,
  random: Random,
  samples = 1,
): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  const onehot = tf.oneHot(labels as tf.Tensor1D, 10);
  try {
    const loss = perExampleLoss(model, images, onehot);
    return rule === 'bp'
      ? tf.variableGrads(() => tf.mean(loss()) as tf.Scalar)
      : forwardVariableGrads(loss, undefined, {
          perturb: rule === 'fg-w' ? 'weight' : 'activity',
          samples,
          random,
        });
  } finally {
    onehot.dispose();
  }
}

/** Accuracy of `model` on the first `limit` test images. */
export function testAccuracy(model: tf.LayersModel, dataset: Dataset, limit: number): number {
  let correct = 0;
  let seen = 0;
  for (const b of batches(dataset.test, { batchSize: 500, shuffle: false, limit, normalize: dataset })) {
    correct += tf.tidy(() => {
      const logits = model.predict(b.images) as tf.Tensor;
      return tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), b.labels), 'int32')).dataSync()[0];
    });
    seen += b.labels.shape[0];
    tf.dispose([b.images, b.labels]);
  }
  return correct / seen;
}

/** Options of {@link trainMnistCnn}. */
export interface TrainCnnOptions {
  rule: LayersRule;
  dataset: Dataset;
  steps: number;
  batchSize: number;
  learningRate: number;
  /** Test images evaluated at the end. */
  testLimit: number;
  seed?: number;
  samples?: number;
  /** The CNN's filters per convolution (default [8, 16]). */
  filters?: [number, number];
}

/**
 * The example: trains {@link mnistCnn} on MNIST with one rule and Adam, the same data order, initial
 * weights and optimizer for every rule. Returns the losses per step and the final test accuracy.
 */
export function trainMnistCnn(o: TrainCnnOptions): { losses: number[]; accuracy: number; ms: number } {
  const seed = o.seed ?? 0;
  const model = mnistCnn(seed, o.filters);
  const optimizer = tf.train.adam(o.learningRate);
  const random = createRandom(seed + 1);
  const losses: number[] = [];
  const t0 = performance.now();
  try {
    let epoch = 0;
    while (losses.length < o.steps) {
      for (const b of batches(o.dataset.train, {
        batchSize: o.batchSize,
        seed,
        epoch,
        dropLast: true,
        normalize: o.dataset,
      })) {
        if (losses.length < o.steps)
          losses.push(trainStep(o.rule, model, optimizer, b.images, b.labels, random, o.samples));
        tf.dispose([b.images, b.labels]);
      }
      epoch++;
    }
    const ms = performance.now() - t0;
    return { losses, accuracy: testAccuracy(model, o.dataset, o.testLimit), ms };
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}

interface LayersBudget {
  train: { steps: number; batchSize: number; testLimit: number };
  /** Repeats of the CNN step (a BP step takes seconds); the MLP's are `mlpRepeats`. */
  step: { batchSize: number; repeats: number; mlpRepeats: number };
}

const BUDGETS: Record<Budget, LayersBudget> = {
  smoke: {
    train: { steps: 6, batchSize: 8, testLimit: 100 },
    step: { batchSize: 4, repeats: 2, mlpRepeats: 2 },
  },
  // tfjs's cpu Conv2DBackpropFilter makes a BP step of this CNN take seconds on a 2-core machine: small
  // trains 150 steps (4800 examples) and medium one epoch
  small: {
    train: { steps: 150, batchSize: 32, testLimit: 2000 },
    step: { batchSize: 32, repeats: 7, mlpRepeats: 41 },
  },
  medium: {
    train: { steps: 1875, batchSize: 32, testLimit: 10000 },
    step: { batchSize: 128, repeats: 15, mlpRepeats: 61 },
  },
  paper: {
    train: { steps: 18750, batchSize: 32, testLimit: 10000 },
    step: { batchSize: 128, repeats: 25, mlpRepeats: 101 },
  },
};

const LEARNING_RATE = 1e-3;

/**
 * Untimed rounds before the MLP's timed ones. After one warm-up round V8 is still optimising the
 * forward-gradient path (more JavaScript per step than BP's) for tens of steps: at batch 32, FG-A / BP
 * measured 1.10–1.28 over 41 rounds after one warm-up round and 1.10–1.12 after ten (native backend),
 * while a training run is thousands of steps.
 */
const MLP_WARMUP = 20;

function trainRow(rule: LayersRule, b: LayersBudget['train']): RowSpec {
  return {
    key: `train|${rule}`,
    run(ctx) {
      const { losses, accuracy, ms } = trainMnistCnn({
        rule,
        dataset: mnist(ctx.options.dataDir),
        steps: b.steps,
        batchSize: b.batchSize,
        learningRate: LEARNING_RATE,
        testLimit: b.testLimit,
      });
      const head = losses.slice(0, Math.min(10, losses.length));
      const tail = losses.slice(-Math.min(10, losses.length));
      const avg = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
      return {
        kind: 'train',
        model: 'cnn',
        rule,
        steps: b.steps,
        batch: b.batchSize,
        first_loss: round(avg(head), 4),
        last_loss: round(avg(tail), 4),
        test_accuracy: round(accuracy, 4),
        test_images: b.testLimit,
        ms_per_step: round(ms / b.steps, 2),
      };
    },
  };
}

function stepRow(model: 'cnn' | 'mlp', budget: LayersBudget['step']): RowSpec {
  const b = {
    batchSize: budget.batchSize,
    repeats: model === 'cnn' ? budget.repeats : budget.mlpRepeats,
    warmup: model === 'cnn' ? 1 : MLP_WARMUP,
  };
  return {
    key: `step|${model}`,
    async run(ctx) {
      const ds = mnist(ctx.options.dataDir);
      const it = batches(ds.train, { batchSize: b.batchSize, seed: 3, normalize: ds });
      const batch = it.next().value as { images: tf.Tensor; labels: tf.Tensor };
      it.return(undefined);
      const net = model === 'cnn' ? mnistCnn(0) : mnistMlp(0);
      // plain SGD with a tiny rate: every rule updates the same model, so its weights barely move
      const optimizer = tf.train.sgd(1e-6);
      // one stream per rule, as in a training loop of that rule alone (the rules' noise requests do not
      // shift each other's stream, so a sampler's draw-ahead for a rule's next step stays valid)
      const randoms = Object.fromEntries(LAYERS_RULES.map((r) => [r, createRandom(5).derive(r)])) as Record<
        LayersRule,
        Random
      >;
      const step = (rule: LayersRule) => () => {
        trainStep(rule, net, optimizer, batch.images, batch.labels, randoms[rule]);
        return [];
      };
      try {
        const m = await measureInterleaved(
          { bp: step('bp'), 'fg-w': step('fg-w'), 'fg-a': step('fg-a') },
          b.repeats,
          b.warmup,
        );
        // memory: the gradient computation alone (the optimizer's update is the same for every rule), in
        // tfjs's tally (every tensor's bytes) and as storage (each region of memory once: reshapes are free)
        const storage: Partial<Record<LayersRule, number | null>> = {};
        for (const r of LAYERS_RULES) {
          const grads = () => {
            const { value, grads } = gradients(r, net, batch.images, batch.labels, randoms[r]);
            return [value, ...Object.values(grads)];
          };
          m[r].bytes = await peakBytesOf(grads);
          storage[r] = peakStorageBytesOf(grads);
        }
        const storageRatio = (r: LayersRule) => {
          const a = storage[r];
          const base = storage.bp;
          return typeof a === 'number' && typeof base === 'number' && base > 0 ? round(a / base, 3) : null;
        };
        const ratio = (r: LayersRule) => {
          const a = m[r].ms;
          const base = m.bp.ms;
          return a !== null && base !== null && base > 0 ? round(a / base, 3) : null;
        };
        const bytesRatio = (r: LayersRule) => {
          const a = m[r].bytes;
          const base = m.bp.bytes;
          return a !== null && base !== null && base > 0 ? round(a / base, 3) : null;
        };
        const errors = LAYERS_RULES.map((r) => m[r].error && `${r}: ${m[r].error}`).filter(Boolean);
        return {
          kind: 'step',
          model,
          backend: ctx.selection.name,
          batch: b.batchSize,
          params: net.countParams(),
          bp_ms: m.bp.ms,
          fg_w_ms: m['fg-w'].ms,
          fg_a_ms: m['fg-a'].ms,
          fg_w_ratio: ratio('fg-w'),
          fg_a_ratio: ratio('fg-a'),
          bp_bytes: m.bp.bytes,
          fg_w_bytes: m['fg-w'].bytes,
          fg_a_bytes: m['fg-a'].bytes,
          fg_w_bytes_ratio: bytesRatio('fg-w'),
          fg_a_bytes_ratio: bytesRatio('fg-a'),
          bp_storage_bytes: storage.bp ?? null,
          fg_w_storage_bytes: storage['fg-w'] ?? null,
          fg_a_storage_bytes: storage['fg-a'] ?? null,
          fg_w_storage_ratio: storageRatio('fg-w'),
          fg_a_storage_ratio: storageRatio('fg-a'),
          repeats: b.repeats,
          warmup: b.warmup,
          bp_ms_samples: m.bp.samples,
          fg_w_ms_samples: m['fg-w'].samples,
          fg_a_ms_samples: m['fg-a'].samples,
          ...(errors.length ? { error: errors.join('; ') } : {}),
        };
      } finally {
        tf.dispose([batch.images, batch.labels]);
        optimizer.dispose();
        net.dispose();
      }
    },
  };
}

function plan(budget: Budget): SuitePlan {
  const b = BUDGETS[budget];
  return {
    config: { ...b, learning_rate: LEARNING_RATE, optimizer: 'adam', samples: 1 },
    seeds: [0],
    rows: [...LAYERS_RULES.map((r) => trainRow(r, b.train)), stepRow('cnn', b.step), stepRow('mlp', b.step)],
    notes: [
      'train rows: the tf.sequential CNN (conv 8 3×3 relu → maxpool 2 → conv 16 3×3 relu → maxpool 2 → dense 10) ' +
        `trained from the same initial weights and data order with Adam (lr ${LEARNING_RATE}), one noise sample per ` +
        'step; BP = tf.variableGrads, FG-W / FG-A = forwardVariableGrads with per-example losses.',
      'step rows: one step (gradient + optimizer update) of each rule on one batch, timed in turns (bp, fg-w, fg-a, ' +
        `bp, ...) after ${MLP_WARMUP} untimed rounds (the CNN: 1), one random stream per rule, median ms; bytes = ` +
        'peak tfjs engine bytes of the gradient computation alone (tf.profile; the ' +
        "optimizer's update is the same for every rule), the gradients included; storage = the same peak with " +
        "each region of memory behind the cpu backend's tensors counted once (tfjs's tally counts a reshape of a " +
        "tensor again); neither counts a native sampler's draw-ahead buffers.",
    ],
  };
}

function report(rows: Row[]) {
  const train = rows.filter((r) => r.kind === 'train');
  const steps = rows.filter((r) => r.kind === 'step');
  const trainCols = [
    field('rule'),
    { header: 'steps × batch', value: (r: Row) => `${r.steps} × ${r.batch}` },
    { header: 'loss first 10 → last 10', value: (r: Row) => `${r.first_loss} → ${r.last_loss}` },
    field('test_accuracy', 'test accuracy'),
    field('ms_per_step', 'ms / step'),
  ];
  const stepCols = [
    ...fields('model', 'backend', 'batch'),
    field('bp_ms', 'BP ms'),
    field('fg_w_ms', 'FG-W ms'),
    field('fg_a_ms', 'FG-A ms'),
    field('fg_w_ratio', 'FG-W / BP'),
    field('fg_a_ratio', 'FG-A / BP'),
    field('bp_bytes', 'BP bytes'),
    field('fg_w_bytes', 'FG-W bytes'),
    field('fg_a_bytes', 'FG-A bytes'),
    field('fg_w_bytes_ratio', 'FG-W / BP bytes'),
    field('fg_a_bytes_ratio', 'FG-A / BP bytes'),
    field('fg_w_storage_ratio', 'FG-W / BP storage'),
    field('fg_a_storage_ratio', 'FG-A / BP storage'),
  ];
  const checks = steps.map((r) => ({
    model: r.model,
    fg_w_ratio: r.fg_w_ratio,
    fg_a_ratio: r.fg_a_ratio,
    fg_w_met: typeof r.fg_w_ratio === 'number' && r.fg_w_ratio <= 1,
    fg_a_met: typeof r.fg_a_ratio === 'number' && r.fg_a_ratio <= 1.2,
    memory_met:
      typeof r.fg_w_bytes_ratio === 'number' &&
      typeof r.fg_a_bytes_ratio === 'number' &&
      r.fg_w_bytes_ratio < 1 &&
      r.fg_a_bytes_ratio < 1,
    storage_met:
      typeof r.fg_w_storage_ratio === 'number' &&
      typeof r.fg_a_storage_ratio === 'number' &&
      r.fg_w_storage_ratio < 1 &&
      r.fg_a_storage_ratio < 1,
  }));
  const met = (b: boolean) => (b ? 'met' : 'not met');
  const markdown = [
    columnsTable(train, trainCols),
    '',
    columnsTable(steps, stepCols),
    '',
    'Goals (issue 18, same backend, one run): FG-W step ≤ BP step, FG-A step ≤ 1.2 × BP step, forward-gradient step memory below BP.',
    '',
    ...checks.map(
      (c) =>
        `- ${c.model}: FG-W/BP = ${c.fg_w_ratio} → ${met(c.fg_w_met)}; FG-A/BP = ${c.fg_a_ratio} → ${met(c.fg_a_met)}; ` +
        `memory below BP → ${met(c.memory_met)} in tfjs's tally, ${met(c.storage_met)} in storage`,
    ),
  ].join('\n');
  const plots = [
    {
      name: 'step-ratios',
      title: 'Step time relative to BP (tf.variableGrads)',
      svg: barPlot({
        title: 'Step time relative to tf.variableGrads',
        yLabel: 'time / time(BP)',
        categories: steps.map((r) => String(r.model)),
        series: [
          { name: 'FG-W / BP', values: numbersOf(steps, 'fg_w_ratio') },
          { name: 'FG-A / BP', values: numbersOf(steps, 'fg_a_ratio') },
        ],
        reference: { value: 1, label: 'BP' },
      }),
    },
  ];
  return { markdown, plots, summary: { goal: 'FG-W <= BP, FG-A <= 1.2 BP, FG memory < BP', checks } };
}

/** tf.layers models trained with forward gradients against tf.variableGrads. */
export const tfjsLayersSuite: Suite = {
  name: 'tfjs-layers',
  title: 'Forward gradients for tf.layers models: MNIST CNN (FG-A vs BP) and step cost vs tf.variableGrads',
  plan,
  columns: [
    ...fields('kind', 'model', 'rule'),
    field('test_accuracy', 'test_acc'),
    field('bp_ms'),
    field('fg_w_ratio', 'fg_w/bp'),
    field('fg_a_ratio', 'fg_a/bp'),
    field('fg_w_bytes_ratio', 'fg_w_bytes/bp'),
    field('fg_a_bytes_ratio', 'fg_a_bytes/bp'),
    field('fg_w_storage_ratio', 'fg_w_storage/bp'),
    field('fg_a_storage_ratio', 'fg_a_storage/bp'),
    field('error'),
  ],
  report: (rows) => report(rows),
};
