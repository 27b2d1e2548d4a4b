import { type LabSweep, labEstimators, runVarianceLab, type VarianceRow } from '@fwdgrad/perturbation';
import { varianceFigure } from '@fwdgrad/plot';
import { round } from '../stats.js';
import { fields, markdownTable, type Row } from '../table.js';
import type { Budget, Figures, RowSpec, Suite, SuitePlan } from '../types.js';

interface VarianceBudget {
  batchSizes: number[];
  fanIns: number[];
  fanOuts: number[];
  fixedBatch: number;
  baseFanIn: number;
  baseFanOut: number;
  samples: number;
  dataSize: number;
}

const pow2 = (max: number) => Array.from({ length: Math.log2(max) + 1 }, (_, i) => 2 ** i);
const base = { fixedBatch: 4, baseFanIn: 4, baseFanOut: 4 };

// Appendix 10: N from 1 to 4096, p and q from 1 to 256 at N = 4, 5000 samples.
const APPENDIX_10: VarianceBudget = {
  ...base,
  batchSizes: pow2(4096),
  fanIns: pow2(256),
  fanOuts: pow2(256),
  samples: 5000,
  dataSize: 5000,
};

const BUDGETS: Record<Budget, VarianceBudget> = {
  smoke: {
    ...base,
    batchSizes: [1, 4, 16],
    fanIns: [1, 4, 16],
    fanOuts: [1, 4, 16],
    samples: 200,
    dataSize: 200,
  },
  small: {
    ...base,
    batchSizes: pow2(1024),
    fanIns: pow2(256),
    fanOuts: pow2(256),
    samples: 2000,
    dataSize: 2000,
  },
  medium: APPENDIX_10,
  paper: APPENDIX_10,
};

const SEED = 0;

/** The (N, p, q) points of Figure 8's three sweeps, each with the sweeps it belongs to. */
export function variancePoints(b: VarianceBudget): { N: number; p: number; q: number; sweeps: LabSweep[] }[] {
  const points = new Map<string, { N: number; p: number; q: number; sweeps: LabSweep[] }>();
  const add = (N: number, p: number, q: number, sweep: LabSweep) => {
    const key = `${N},${p},${q}`;
    const point = points.get(key) ?? { N, p, q, sweeps: [] };
    if (!point.sweeps.includes(sweep)) point.sweeps.push(sweep);
    points.set(key, point);
  };
  for (const N of b.batchSizes) add(N, b.baseFanIn, b.baseFanOut, 'batch');
  for (const p of b.fanIns) add(b.fixedBatch, p, b.baseFanOut, 'fan-in');
  for (const q of b.fanOuts) add(b.fixedBatch, b.baseFanIn, q, 'fan-out');
  return [...points.values()];
}

function plan(budget: Budget): SuitePlan {
  const b = BUDGETS[budget];
  const rows: RowSpec[] = variancePoints(b).map((pt) => ({
    key: `N=${pt.N},p=${pt.p},q=${pt.q}`,
    run(): Figures[] {
      // The perturbation package's lab, one point at a time (so a long run can resume): a sweep of
      // one value is exactly that point of the full sweep (the draws depend on seed, N, p, q only).
      const lab = runVarianceLab({
        batchSizes: [pt.N],
        fanIns: [pt.p],
        fanOuts: [pt.q],
        fixedBatch: pt.N,
        baseFanIn: pt.p,
        baseFanOut: pt.q,
        samples: b.samples,
        dataSize: b.dataSize,
        seed: SEED,
      });
      return lab.map((r) => {
        // Backprop's theory (V/N) is the paper's only for the batch sweep (appendix 10).
        const theory = r.estimator === 'backprop' && !pt.sweeps.includes('batch') ? null : r.theory;
        return {
          key: r.estimator,
          estimator: r.estimator,
          N: r.N,
          p: r.p,
          q: r.q,
          sweeps: pt.sweeps,
          empirical: r.empirical,
          theory,
          ratio: theory !== null && theory > 0 ? round(r.empirical / theory, 4) : null,
          V: r.V,
          S: r.S,
        };
      });
    },
  }));
  return {
    config: { ...b, seed: SEED, noise: 'gaussian' },
    seeds: [SEED],
    rows,
    notes: [
      "Appendix 10 / Figure 8: a p → q (tanh) → 1 network with squared error; estimators of the first layer's " +
        "weights; empirical dimension-wise average variance over `samples` draws vs Table 1's prediction from the " +
        "problem's V and S (perturbation package `runVarianceLab`, one point per row).",
      `Budget: N ∈ {${b.batchSizes.join(', ')}} at p = q = ${b.baseFanIn}; p and q ∈ {${b.fanIns.join(', ')}} at N = ` +
        `${b.fixedBatch}; ${b.samples} samples per point, data sets of ${b.dataSize} examples.`,
    ],
  };
}

function report(rows: Row[]) {
  const ok = rows.filter((r) => r.error === undefined && typeof r.empirical === 'number');
  const byEstimator = new Map<string, number[]>();
  for (const r of ok) {
    if (typeof r.ratio !== 'number') continue;
    const list = byEstimator.get(String(r.estimator)) ?? [];
    list.push(r.ratio);
    byEstimator.set(String(r.estimator), list);
  }
  const agreement = [...byEstimator.entries()].map(([estimator, ratios]) => ({
    estimator,
    points: ratios.length,
    min_ratio: Math.min(...ratios),
    max_ratio: Math.max(...ratios),
    max_relative_error: round(Math.max(...ratios.map((x) => Math.abs(x - 1))), 4),
  }));
  const sweepTable = (sweep: LabSweep, axis: 'N' | 'p' | 'q') => {
    const mine = ok.filter((r) => (r.sweeps as string[]).includes(sweep));
    const values = [...new Set(mine.map((r) => Number(r[axis])))].sort((a, b) => a - b);
    const estimators = [...new Set(mine.map((r) => String(r.estimator)))];
    return markdownTable(
      [axis, ...estimators.flatMap((e) => [`${e} emp.`, `${e} theory`])],
      values.map((v) => [
        String(v),
        ...estimators.flatMap((e) => {
          const r = mine.find((x) => Number(x[axis]) === v && x.estimator === e);
          const f = (x: unknown) => (typeof x === 'number' ? x.toPrecision(3) : '—');
          return [f(r?.empirical), f(r?.theory)];
        }),
      ]),
    );
  };
  const markdown = [
    'Agreement with Table 1 (empirical / theory over all points):',
    '',
    markdownTable(
      ['estimator', 'points', 'min ratio', 'max ratio', 'max |ratio − 1|'],
      agreement.map((a) => [
        a.estimator,
        String(a.points),
        a.min_ratio.toFixed(3),
        a.max_ratio.toFixed(3),
        String(a.max_relative_error),
      ]),
    ),
    '### Batch-size sweep',
    '',
    sweepTable('batch', 'N'),
    '### Fan-in sweep',
    '',
    sweepTable('fan-in', 'p'),
    '### Fan-out sweep',
    '',
    sweepTable('fan-out', 'q'),
  ].join('\n');
  const labRows: VarianceRow[] = ok.map((r) => ({
    estimator: r.estimator as VarianceRow['estimator'],
    N: Number(r.N),
    p: Number(r.p),
    q: Number(r.q),
    empirical: Number(r.empirical),
    theory: typeof r.theory === 'number' ? r.theory : null,
    sweeps: r.sweeps as LabSweep[],
    V: Number(r.V),
    S: Number(r.S),
  }));
  const plots =
    labRows.length > 0
      ? [
          {
            name: 'figure8',
            title: 'Figure 8: empirical (solid) vs theoretical (dashed) variance',
            svg: varianceFigure(labRows, {
              estimators: labEstimators,
              title: 'Figure 8: gradient-estimator variance, empirical vs Table 1',
            }),
          },
        ]
      : [];
  return { markdown, plots, summary: { agreement } };
}

/** Table 1 / Figure 8: the variance lab, empirical vs theory. */
export const varianceSuite: Suite = {
  name: 'variance',
  title: 'Table 1 / Figure 8: forward-gradient variance, empirical vs theory',
  plan,
  columns: [...fields('estimator', 'N', 'p', 'q', 'empirical', 'theory', 'ratio', 'error')],
  report: (rows) => report(rows),
};
