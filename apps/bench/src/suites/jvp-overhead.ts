import * as tf from '@tensorflow/tfjs';
import { jvp, layerNorm, softmaxCrossEntropy } from '@fwdgrad/jvp-core';
import { applyLinear } from '@fwdgrad/linear';
import { type BackendName, selectBackend } from '@fwdgrad/trainer/node';
import { type Measured, measureInterleaved, randn, randomLabels } from '../measure.js';
import { round } from '../stats.js';
import { barPlot } from '@fwdgrad/plot';
import { createRandom } from '@fwdgrad/random';
import { columnsTable, field, fields, numbersOf, type Row } from '../table.js';
import type { Budget, RowSpec, Suite, SuiteOptions, SuitePlan } from '../types.js';

/** Sizes of the measured block: batch N, patches P, channels C, groups G, classes K. */
export interface BlockShape {
  n: number;
  p: number;
  c: number;
  g: number;
  k: number;
}

/** The M/8/16 block at batch 128 (paper Table 2): P = 64 patches, C = 512 channels, G = 16 groups. */
export const M816_BLOCK: BlockShape = { n: 128, p: 64, c: 512, g: 16, k: 10 };

interface OverheadBudget {
  /** Shape per backend (wasm and native get `fast`, pure-JS cpu gets `cpu`). */
  fast: BlockShape;
  cpu: BlockShape;
  repeats: number;
  cpuRepeats: number;
}

const BUDGETS: Record<Budget, OverheadBudget> = {
  smoke: {
    fast: { n: 4, p: 4, c: 16, g: 4, k: 10 },
    cpu: { n: 4, p: 4, c: 16, g: 4, k: 10 },
    repeats: 2,
    cpuRepeats: 2,
  },
  small: { fast: M816_BLOCK, cpu: { n: 16, p: 16, c: 128, g: 16, k: 10 }, repeats: 10, cpuRepeats: 10 },
  medium: { fast: M816_BLOCK, cpu: { n: 32, p: 64, c: 256, g: 16, k: 10 }, repeats: 20, cpuRepeats: 5 },
  paper: { fast: M816_BLOCK, cpu: M816_BLOCK, repeats: 20, cpuRepeats: 3 },
};

function shapeText(s: BlockShape): string {
  return `N=${s.n} P=${s.p} C=${s.c} G=${s.g} K=${s.k}`;
}

/**
 * A LocalMixer-like block as a function of its parameters (REFERENCE 2, a block k ≥ 1 without token
 * mixing, then the head): dense channel linear → layer norm → ReLU → grouped linear → per-group layer
 * norm → + residual → ReLU → mean over patches → linear head → mean softmax cross-entropy.
 * Written with the same ops the model uses (localmixer `applyLinear`, jvp-core `layerNorm`).
 */
export function localMixerBlockLoss(x: tf.Tensor, labels: tf.Tensor, s: BlockShape) {
  return (
    w1: tf.Tensor,
    b1: tf.Tensor,
    w2: tf.Tensor,
    b2: tf.Tensor,
    wh: tf.Tensor,
    bh: tf.Tensor,
  ): tf.Scalar =>
    tf.tidy(() => {
      const cg = s.c / s.g;
      const h1 = tf.relu(layerNorm(applyLinear('dense', x, w1, b1), -1)); // [N, P, C]
      const z = applyLinear('grouped', tf.reshape(h1, [s.n, s.p, s.g, cg]), w2, b2); // [N, P, G, C′]
      const h2 = tf.relu(tf.add(layerNorm(z, -1), tf.reshape(x, [s.n, s.p, s.g, cg])));
      const pooled = tf.mean(tf.reshape(h2, [s.n, s.p, s.c]), 1); // [N, C]
      const logits = applyLinear('dense', pooled, wh, bh);
      return tf.mean(softmaxCrossEntropy(labels, logits)) as tf.Scalar;
    });
}

function rowSpec(backend: BackendName, shape: BlockShape, repeats: number, budget: Budget): RowSpec {
  return {
    key: `${backend}|${shapeText(shape)}`,
    async run() {
      // One process measures several backends: select this row's (cheap when already active; `native`
      // and `cpu` share tfjs's cpu backend, so comparing tfjs backend names cannot tell them apart).
      await selectBackend(backend);
      const r = createRandom(7);
      const { n, p, c, g, k } = shape;
      const cg = c / g;
      const x = randn(r, [n, p, c]);
      const labels = randomLabels(8, n, k);
      const params = [
        randn(r, [c, c], 1 / Math.sqrt(c)),
        tf.zeros([c]),
        randn(r, [g, cg, cg], 1 / Math.sqrt(cg)),
        tf.zeros([g, cg]),
        randn(r, [c, k], 1 / Math.sqrt(c)),
        tf.zeros([k]),
      ];
      const tangents = params.map((t) => randn(r, t.shape));
      const f = localMixerBlockLoss(x, labels, shape);
      const call = (ps: tf.Tensor[]) => f(ps[0], ps[1], ps[2], ps[3], ps[4], ps[5]);
      let m: Record<string, Measured>;
      try {
        m = await measureInterleaved(
          {
            f: () => call(params),
            jvp: () => jvp((...ps: tf.Tensor[]) => call(ps), params, tangents),
            grad: () => tf.grads((...ps: tf.Tensor[]) => call(ps))(params),
          },
          repeats,
        );
      } finally {
        tf.dispose([x, labels, ...params, ...tangents]);
      }
      const { f: fm, jvp: jm, grad: gm } = m;
      const ratio = (a: Measured) =>
        a.ms !== null && fm.ms !== null && fm.ms > 0 ? round(a.ms / fm.ms, 3) : null;
      const reduced =
        shapeText(shape) === shapeText(M816_BLOCK)
          ? null
          : `reduced at budget ${budget} on ${backend}: ${shapeText(shape)} instead of M/8/16 ${shapeText(M816_BLOCK)}`;
      const errors = [
        fm.error && `f: ${fm.error}`,
        jm.error && `jvp: ${jm.error}`,
        gm.error && `grad: ${gm.error}`,
      ].filter(Boolean);
      return {
        backend,
        shape: shapeText(shape),
        batch: n,
        m816: reduced === null,
        f_ms: fm.ms,
        jvp_ms: jm.ms,
        grad_ms: gm.ms,
        jvp_ratio: ratio(jm),
        grad_ratio: ratio(gm),
        f_bytes: fm.bytes,
        jvp_bytes: jm.bytes,
        grad_bytes: gm.bytes,
        repeats,
        f_ms_samples: fm.samples,
        jvp_ms_samples: jm.samples,
        grad_ms_samples: gm.samples,
        ...(reduced ? { note: reduced } : {}),
        ...(errors.length ? { error: errors.join('; ') } : {}),
      };
    },
  };
}

function plan(budget: Budget, options: SuiteOptions): SuitePlan {
  const b = BUDGETS[budget];
  // `auto` compares the two backends every machine has (issue 9: "on wasm and cpu"); a named
  // backend measures that one only.
  const backends: BackendName[] = options.backend === 'auto' ? ['wasm', 'cpu'] : [options.backend];
  const rows = backends.map((be) =>
    be === 'cpu' ? rowSpec(be, b.cpu, b.cpuRepeats, budget) : rowSpec(be, b.fast, b.repeats, budget),
  );
  const notes = [
    'f: the loss of a LocalMixer-like block (dense linear → LN → ReLU → grouped linear → LN → + residual → ReLU → ' +
      'mean over patches → linear → softmax CE); jvp: jvp-core `jvp` of f with random tangents on all six parameters; ' +
      'grad: `tf.grads` of f over the same parameters. Median wall-clock ms after one warm-up, in one process, the three ' +
      'timed in turns (f, jvp, grad, f, ...) so that other load on the machine affects them alike.',
  ];
  if (backends.includes('cpu') && shapeText(b.cpu) !== shapeText(M816_BLOCK)) {
    notes.push(
      `The pure-JS cpu backend runs a smaller block at budget ${budget} (${shapeText(b.cpu)}); budget paper uses M/8/16.`,
    );
  }
  return {
    config: { backends, fast_shape: b.fast, cpu_shape: b.cpu, repeats: b.repeats, cpu_repeats: b.cpuRepeats },
    seeds: [7, 8],
    rows,
    notes,
  };
}

function report(rows: Row[]) {
  const cols = [
    ...fields('backend', 'shape'),
    field('f_ms', 'f ms'),
    field('jvp_ms', 'jvp ms'),
    field('grad_ms', 'grad ms'),
    field('jvp_ratio', 'jvp / f'),
    field('grad_ratio', 'grads / f'),
    field('error'),
  ];
  const checks = rows
    .filter((r) => typeof r.jvp_ratio === 'number')
    .map((r) => ({
      backend: r.backend,
      shape: r.shape,
      jvp_ratio: r.jvp_ratio,
      met: (r.jvp_ratio as number) <= 2.5,
    }));
  const markdown = [
    columnsTable(rows, cols),
    '',
    'Goal (issue 9): jvp(f) ≤ 2.5 × f.',
    '',
    ...checks.map(
      (c) => `- ${c.backend} at ${c.shape}: jvp/f = ${c.jvp_ratio} → ${c.met ? 'met' : 'not met'}`,
    ),
  ].join('\n');
  const categories = rows.map((r) => `${r.backend} ${r.m816 ? '(M/8/16)' : '(reduced)'}`);
  const plots = [
    {
      name: 'ratios',
      title: 'jvp(f)/f and grads/f per backend',
      svg: barPlot({
        title: 'Cost relative to the forward pass f',
        yLabel: 'time / time(f)',
        categories,
        series: [
          { name: 'jvp / f', values: numbersOf(rows, 'jvp_ratio') },
          { name: 'grads / f', values: numbersOf(rows, 'grad_ratio') },
        ],
        reference: { value: 2.5, label: 'goal: jvp ≤ 2.5 × f' },
      }),
    },
  ];
  return { markdown, plots, summary: { goal: 'jvp(f) <= 2.5 f', checks } };
}

/** jvp(f)/f (and tf.grads/f) for a LocalMixer block, on wasm and cpu. */
export const jvpOverheadSuite: Suite = {
  name: 'jvp-overhead',
  title: 'Forward-mode overhead: jvp(f) / f for a LocalMixer block',
  plan,
  columns: [
    ...fields('backend', 'shape', 'f_ms', 'jvp_ms', 'grad_ms'),
    field('jvp_ratio', 'jvp/f'),
    field('grad_ratio', 'grad/f'),
    field('error'),
  ],
  report: (rows) => report(rows),
};
