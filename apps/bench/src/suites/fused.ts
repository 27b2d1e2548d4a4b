import * as tf from '@tensorflow/tfjs';
import { jvp } from '@fwdgrad/jvp-core';
import {
  CONTRASTIVE_PROJECTION_WIDTH,
  type LossImpl,
  replicatedCrossEntropy,
  replicatedInfoNce,
} from '@fwdgrad/local-losses';
import { createRandom } from '@fwdgrad/random';
import { type Measured, measure, randn, randomLabels } from '../measure.js';
import { round } from '../stats.js';
import { linePlot } from '@fwdgrad/plot';
import { columnsTable, field, fields, formatBytes, type Row } from '../table.js';
import type { Budget, RowSpec, Suite, SuitePlan } from '../types.js';

/** The paper's M/8/16 replicated-loss shape (Figure 5): N=128 examples, P=64 patches, G=16 groups, C′=32, K=10. */
export const M816_SHAPE = { n: 128, p: 64, g: 16, c: 32, k: 10 } as const;

interface FusedBudget {
  n: number;
  p: number;
  c: number;
  k: number;
  groups: number[];
  repeats: number;
  /** InfoNCE rows at the largest G (projection width 128). */
  infoNce: boolean;
}

const BUDGETS: Record<Budget, FusedBudget> = {
  smoke: { n: 4, p: 4, c: 4, k: 10, groups: [1, 2, 4], repeats: 2, infoNce: true },
  small: { n: 32, p: 64, c: 32, k: 10, groups: [1, 2, 4, 8, 16], repeats: 3, infoNce: true },
  medium: { n: 64, p: 64, c: 32, k: 10, groups: [1, 2, 4, 8, 16], repeats: 5, infoNce: true },
  paper: { n: 128, p: 64, c: 32, k: 10, groups: [1, 2, 4, 8, 16], repeats: 5, infoNce: true },
};

type Op = 'jvp' | 'grad';
type Loss = 'cross-entropy' | 'infonce';

function shapeText(s: { n: number; p: number; g: number; c: number; k: number }): string {
  return `N=${s.n} P=${s.p} G=${s.g} C'=${s.c} K=${s.k}`;
}

/**
 * The computation being measured: the replicated loss of a block output x [N, P, G, C′] through a
 * head, either its JVP with a random tangent on x (what the forward-gradient rules run, jvp-core
 * `jvp`) or its gradient with respect to x, w and b (what LG-BP runs, `tf.grads` of the sum).
 */
function computation(
  loss: Loss,
  op: Op,
  impl: LossImpl,
  shape: { n: number; p: number; g: number; c: number; k: number },
  seed: number,
) {
  const r = createRandom(seed);
  const { n, p, g, c } = shape;
  const k = loss === 'infonce' ? CONTRASTIVE_PROJECTION_WIDTH : shape.k;
  const x = randn(r, [n, p, g, c]);
  const y = loss === 'infonce' ? randn(r, [n, p, g, c]) : null;
  const w = randn(r, [g * c, k], 1 / Math.sqrt(g * c));
  const b = tf.zeros([k]);
  const labels = loss === 'cross-entropy' ? randomLabels(seed + 1, n, k) : null;
  const dx = randn(r, [n, p, g, c]);
  const dy = loss === 'infonce' ? randn(r, [n, p, g, c]) : null;
  const tensors = [x, y, w, b, labels, dx, dy].filter((t): t is tf.Tensor => t !== null);
  let run: () => tf.TensorContainer;
  if (loss === 'cross-entropy') {
    const f = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
      replicatedCrossEntropy(xi, wi, bi, labels!, { impl });
    run =
      op === 'jvp'
        ? () => jvp((xi: tf.Tensor) => f(xi, w, b), [x], [dx])
        : () => tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => tf.sum(f(xi, wi, bi)))([x, w, b]);
  } else {
    const f = (xi: tf.Tensor, yi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
      replicatedInfoNce(xi, yi, wi, bi, { impl });
    run =
      op === 'jvp'
        ? () => jvp((xi: tf.Tensor, yi: tf.Tensor) => f(xi, yi, w, b), [x, y!], [dx, dy!])
        : () =>
            tf.grads((xi: tf.Tensor, yi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
              tf.sum(f(xi, yi, wi, bi)),
            )([x, y!, w, b]);
  }
  return { run, dispose: () => tf.dispose(tensors) };
}

function ratio(a: number | null, b: number | null): number | null {
  return a !== null && b !== null && b > 0 ? round(a / b, 3) : null;
}

function rowSpec(loss: Loss, op: Op, g: number, b: FusedBudget, budget: Budget): RowSpec {
  const shape = { n: b.n, p: b.p, g, c: b.c, k: loss === 'infonce' ? CONTRASTIVE_PROJECTION_WIDTH : b.k };
  const key = `${loss}|G=${g}|${op}`;
  return {
    key,
    async run() {
      const seed = 1000 + g;
      // Fused first: if the naive form exhausts memory (a WebAssembly abort leaves the backend
      // unusable), the fused figures are already measured and the row records the failure.
      const measureForm = async (form: LossImpl): Promise<Measured> => {
        const c = computation(loss, op, form, shape, seed);
        try {
          return await measure(c.run, b.repeats);
        } finally {
          c.dispose();
        }
      };
      const fused = await measureForm('fused');
      const naive = await measureForm('naive');
      const atPaperShape =
        b.n === M816_SHAPE.n && b.p === M816_SHAPE.p && g === M816_SHAPE.g && b.c === M816_SHAPE.c;
      const sameBase = b.n === M816_SHAPE.n && b.p === M816_SHAPE.p && b.c === M816_SHAPE.c;
      const reduced = sameBase
        ? null
        : `reduced at budget ${budget}: N=${b.n} P=${b.p} C'=${b.c} instead of the paper's M/8/16 N=${M816_SHAPE.n} ` +
          `P=${M816_SHAPE.p} C'=${M816_SHAPE.c}`;
      return {
        loss,
        op,
        shape: shapeText(shape),
        n: shape.n,
        p: shape.p,
        g: shape.g,
        c: shape.c,
        k: shape.k,
        m816: atPaperShape,
        naive_bytes: naive.bytes,
        fused_bytes: fused.bytes,
        naive_ms: naive.ms,
        fused_ms: fused.ms,
        memory_ratio: ratio(naive.bytes, fused.bytes),
        time_ratio: ratio(naive.ms, fused.ms),
        naive_ms_samples: naive.samples,
        fused_ms_samples: fused.samples,
        repeats: b.repeats,
        ...(naive.error ? { naive_error: naive.error } : {}),
        ...(fused.error ? { fused_error: fused.error } : {}),
        ...(reduced ? { note: reduced } : {}),
      };
    },
  };
}

function plan(budget: Budget): SuitePlan {
  const b = BUDGETS[budget];
  const rows: RowSpec[] = [];
  for (const op of ['jvp', 'grad'] as const) {
    for (const g of b.groups) rows.push(rowSpec('cross-entropy', op, g, b, budget));
  }
  if (b.infoNce) {
    const g = b.groups[b.groups.length - 1];
    for (const op of ['jvp', 'grad'] as const) rows.push(rowSpec('infonce', op, g, b, budget));
  }
  const notes = [
    'Memory: peak tfjs engine bytes above the inputs while one call runs (`tf.profile().peakBytes`); ' +
      'time: median wall-clock ms of the call (results read back) after one warm-up.',
    '`jvp`: jvp-core `jvp` of the replicated losses with a random tangent on the block output x (and on the second ' +
      'view for InfoNCE); `grad`: `tf.grads` of their sum with respect to x (both views), w and b.',
  ];
  if (b.n !== M816_SHAPE.n || b.p !== M816_SHAPE.p || b.c !== M816_SHAPE.c) {
    notes.push(
      `At budget ${budget} the shape is reduced to N=${b.n} P=${b.p} C'=${b.c} (the paper's M/8/16 shape is N=128 P=64 ` +
        `C'=32; the naive form materialises ` +
        `[N, P, G, G·C′] replicas: ${((128 * 64 * 16 * 512 * 4) / 2 ** 20).toFixed(0)} MiB per copy at N=128); ` +
        'budget paper runs the full shape and records an out-of-memory failure in the row.',
    );
  }
  return {
    config: { ...b, m816_shape: M816_SHAPE, infonce_projection: CONTRASTIVE_PROJECTION_WIDTH },
    seeds: b.groups.map((g) => 1000 + g),
    rows,
    notes,
  };
}

const MiB = 2 ** 20;

function report(rows: Row[]) {
  const ok = rows.filter((r) => r.error === undefined);
  const cols = [
    ...fields('loss', 'op', 'shape'),
    {
      header: 'naive peak',
      value: (r: Row) =>
        typeof r.naive_bytes === 'number' ? formatBytes(r.naive_bytes) : (r.naive_error ?? null),
    },
    {
      header: 'fused peak',
      value: (r: Row) => (typeof r.fused_bytes === 'number' ? formatBytes(r.fused_bytes) : null),
    },
    field('memory_ratio', 'memory ×'),
    field('naive_ms', 'naive ms'),
    field('fused_ms', 'fused ms'),
    field('time_ratio', 'time ×'),
    field('error'),
  ];
  const top = ok.filter((r) => r.loss === 'cross-entropy');
  const largestG = Math.max(...top.map((r) => Number(r.g)));
  const goalRows = top.filter((r) => r.g === largestG);
  const goals = goalRows.map((r) => ({
    op: r.op,
    shape: r.shape,
    m816: r.m816,
    memory_ratio: r.memory_ratio,
    time_ratio: r.time_ratio,
    met:
      typeof r.memory_ratio === 'number' &&
      typeof r.time_ratio === 'number' &&
      r.memory_ratio >= 10 &&
      r.time_ratio >= 10,
  }));
  const goalLines = goals.map(
    (g) =>
      `- ${g.op} at ${g.shape}${g.m816 ? ' (the M/8/16 shape)' : ' (reduced shape)'}: memory ×${g.memory_ratio ?? '—'}, ` +
      `time ×${g.time_ratio ?? '—'} → ${g.met ? 'met' : 'not met'}`,
  );
  const markdown = [
    columnsTable(rows, cols),
    '',
    'Goal (issue 9): fused replicated losses use ≥ 10× less memory and time than naive at M/8/16.',
    '',
    ...goalLines,
  ].join('\n');
  const plots = [];
  const series = (op: Op, field: 'naive_bytes' | 'fused_bytes' | 'naive_ms' | 'fused_ms', scale = 1) =>
    top
      .filter((r) => r.op === op && typeof r[field] === 'number')
      .map((r) => [Number(r.g), Number(r[field]) / scale] as [number, number]);
  const gValues = [...new Set(top.map((r) => Number(r.g)))].sort((a, b) => a - b);
  if (top.length > 0) {
    plots.push({
      name: 'memory',
      title: 'Peak memory of replicated cross-entropy vs groups G (log-log)',
      svg: linePlot({
        title: `Replicated CE: peak memory (${String(top[0].shape).replace(/G=\d+ /, '')})`,
        xLabel: 'groups G',
        yLabel: 'peak MiB',
        xLog: true,
        yLog: true,
        xTicks: gValues,
        series: [
          { name: 'naive jvp', points: series('jvp', 'naive_bytes', MiB) },
          { name: 'fused jvp', points: series('jvp', 'fused_bytes', MiB) },
          { name: 'naive grad', points: series('grad', 'naive_bytes', MiB), dashed: true },
          { name: 'fused grad', points: series('grad', 'fused_bytes', MiB), dashed: true },
        ],
      }),
    });
    plots.push({
      name: 'time',
      title: 'Time of replicated cross-entropy vs groups G (log-log)',
      svg: linePlot({
        title: 'Replicated CE: median time per call',
        xLabel: 'groups G',
        yLabel: 'ms',
        xLog: true,
        yLog: true,
        xTicks: gValues,
        series: [
          { name: 'naive jvp', points: series('jvp', 'naive_ms') },
          { name: 'fused jvp', points: series('jvp', 'fused_ms') },
          { name: 'naive grad', points: series('grad', 'naive_ms'), dashed: true },
          { name: 'fused grad', points: series('grad', 'fused_ms'), dashed: true },
        ],
      }),
    });
  }
  return {
    markdown,
    plots,
    summary: { goal: 'fused >= 10x less memory and time than naive at M/8/16', checks: goals },
  };
}

/** Figure 5: naive vs fused replicated losses, peak memory and time, per JVP and per gradient. */
export const fusedSuite: Suite = {
  name: 'fused',
  title: 'Figure 5: naive vs fused replicated losses (memory and time)',
  plan,
  columns: [
    ...fields('loss', 'op', 'shape'),
    { header: 'naive_bytes', value: (r) => r.naive_bytes ?? r.naive_error ?? null },
    field('fused_bytes'),
    field('memory_ratio', 'mem×'),
    ...fields('naive_ms', 'fused_ms'),
    field('time_ratio', 'time×'),
    field('error'),
  ],
  report: (rows) => report(rows),
};
