import { ALGORITHM_IDS, PRESETS } from '@fwdgrad/trainer';
import { TABLE3_MNIST, paperErrors } from '../paper.js';
import { barPlot, learningCurves } from '@fwdgrad/plot';
import { field, fields, markdownTable, pct, type Row } from '../table.js';
import { meanStd, pctMeanStd, trainRow } from '../training.js';
import type { Budget, RowSpec, Suite, SuiteOptions, SuitePlan } from '../types.js';

/** The two MNIST networks of Table 3 and their trainer presets (appendix 11: batch 128, SGD 0.01/0.9, linear decay). */
export const TABLE3_MODELS = [
  { model: 'S/1/1', preset: 'mnist-s11' },
  { model: 'M/1/16', preset: 'mnist-m116' },
] as const;

interface Table3Budget {
  epochs: number;
  limitTrain?: number;
  limitTest?: number;
  seeds: number;
  describe: string;
}

const BUDGETS: Record<Budget, Table3Budget> = {
  smoke: {
    epochs: 1,
    limitTrain: 256,
    limitTest: 256,
    seeds: 1,
    describe: '256 training examples, 1 epoch, 256 test examples, 1 seed',
  },
  small: {
    epochs: 1,
    limitTrain: 10000,
    seeds: 3,
    describe: 'the first 10 000 training examples, 1 epoch, full test set, 3 seeds',
  },
  medium: { epochs: 1, seeds: 3, describe: 'the full training set, 1 epoch, 3 seeds' },
  paper: {
    epochs: PRESETS['mnist-s11'].epochs,
    seeds: 3,
    describe: `the preset's ${PRESETS['mnist-s11'].epochs} epochs on the full training set, 3 seeds`,
  },
};

function plan(budget: Budget, options: SuiteOptions): SuitePlan {
  const b = BUDGETS[budget];
  const nSeeds = options.seeds ?? b.seeds;
  const seeds = Array.from({ length: nSeeds }, (_, i) => i);
  const rows: RowSpec[] = [];
  for (const { model, preset } of TABLE3_MODELS) {
    for (const algo of ALGORITHM_IDS) {
      for (const seed of seeds) {
        const key = `${model}|${algo}|seed${seed}`;
        const paper = paperPair(model, algo);
        rows.push({
          key,
          run: async (ctx) => ({
            model,
            ...(await trainRow(ctx, key, {
              preset,
              overrides: { epochs: b.epochs },
              algorithm: algo,
              seed,
              limitTrain: b.limitTrain,
              limitTest: b.limitTest,
            })),
            ...paperErrors(paper),
          }),
        });
      }
    }
  }
  const notes = [
    `Budget ${budget}: ${b.describe}${options.seeds ? ` (seeds set to ${nSeeds} by --seeds)` : ''}. ` +
      'The paper trains 1000 epochs on the full set (appendix 11), so errors at smaller budgets are higher.',
    "Errors are the final classifier's (1 − accuracy) after the last epoch, in percent, mean ± std over seeds. " +
      '`readout` (a linear classifier on the frozen random backbone) is the control: it has no paper number.',
    'Paper numbers: Table 3, MNIST columns (test / train error %).',
  ];
  return {
    config: { ...b, models: TABLE3_MODELS, algorithms: ALGORITHM_IDS },
    seeds,
    rows,
    notes,
  };
}

/** The paper's Table 3 MNIST pair (test, train %) of a model and rule, or null. */
export function paperPair(model: string, algo: string) {
  return (TABLE3_MNIST as Record<string, Record<string, readonly [number, number]>>)[model]?.[algo] ?? null;
}

function report(rows: Row[]) {
  const models = TABLE3_MODELS.map((m) => m.model).filter((m) =>
    rows.some((r) => String(r.key).startsWith(`${m}|`)),
  );
  const algos = ALGORITHM_IDS.filter((a) => rows.some((r) => r.algo === a));
  const groupOf = (model: string, algo: string) =>
    rows.filter((r) => String(r.key).startsWith(`${model}|${algo}|`));
  const cells: string[][] = [];
  const summary: Record<string, unknown>[] = [];
  for (const model of models) {
    for (const algo of algos) {
      const g = groupOf(model, algo);
      if (g.length === 0) continue;
      const ok = g.filter((r) => r.error === undefined && r.skipped === undefined);
      const test = meanStd(ok, 'test_error');
      const trainErr = meanStd(ok, 'train_error');
      const paper = paperPair(model, algo);
      const problems = g
        .map((r) => (r.error ? `error: ${r.error}` : r.skipped ? `skipped: ${r.skipped}` : null))
        .filter(Boolean);
      cells.push([
        model,
        algo,
        pctMeanStd(test),
        pctMeanStd(trainErr),
        paper ? paper[0].toFixed(2) : '—',
        paper ? paper[1].toFixed(2) : '—',
        String(ok.length),
        problems.join('; '),
      ]);
      summary.push({
        model,
        algo,
        test_error_mean: test?.mean ?? null,
        test_error_std: test?.std ?? null,
        train_error_mean: trainErr?.mean ?? null,
        train_error_std: trainErr?.std ?? null,
        seeds: ok.length,
        ...paperErrors(paper),
      });
    }
  }
  const markdown = markdownTable(
    [
      'model',
      'algo',
      'test err % (ours)',
      'train err % (ours)',
      'test err % (paper)',
      'train err % (paper)',
      'seeds',
      'problems',
    ],
    cells,
  );
  const find = (model: string, algo: string) => summary.find((s) => s.model === model && s.algo === algo);
  const series = models.flatMap((model) => [
    {
      name: `${model} ours`,
      values: algos.map((a) => {
        const s = find(model, a);
        return typeof s?.test_error_mean === 'number' ? 100 * s.test_error_mean : null;
      }),
      errors: algos.map((a) => {
        const s = find(model, a);
        return typeof s?.test_error_std === 'number' ? 100 * s.test_error_std : null;
      }),
    },
    { name: `${model} paper`, values: algos.map((a) => paperPair(model, a)?.[0] ?? null) },
  ]);
  const plots = [
    {
      name: 'test-error',
      title: 'Table 3 (MNIST): test error, ours vs the paper',
      svg: barPlot({
        title: "MNIST test error (%): ours (mean ± std) and the paper's Table 3",
        yLabel: 'test error %',
        categories: algos,
        series,
      }),
    },
  ];
  const curves = rows.filter(
    (r) => Array.isArray(r.curve) && (r.curve as unknown[]).length > 1 && r.seed === 0,
  );
  for (const model of models) {
    const mine = curves.filter((r) => String(r.key).startsWith(`${model}|`));
    if (mine.length === 0) continue;
    plots.push({
      name: `curves-${model.replace(/\//g, '')}`,
      title: `Learning curves, ${model} (seed 0)`,
      svg: learningCurves({
        title: `MNIST ${model}: test error per epoch (seed 0)`,
        yLabel: 'test error %',
        curves: mine.map((r) => ({
          name: String(r.algo),
          points: (r.curve as { epoch: number; test_error: number }[]).map(
            (c) => [c.epoch, 100 * c.test_error] as [number, number],
          ),
        })),
      }),
    });
  }
  return { markdown, plots, summary: { table: summary } };
}

/** Table 3's MNIST columns: every algorithm on S/1/1 and M/1/16, several seeds, beside the paper. */
export const table3Suite: Suite = {
  name: 'table3-mnist',
  title: 'Table 3 (MNIST): supervised test / train error of every algorithm',
  plan,
  columns: [
    ...fields('model', 'algo', 'seed'),
    { header: 'test_err_%', value: (r) => pct(r.test_error) },
    { header: 'train_err_%', value: (r) => pct(r.train_error) },
    { header: 'paper_test_%', value: (r) => pct(r.paper_test_error) },
    { header: 'paper_train_%', value: (r) => pct(r.paper_train_error) },
    field('seconds'),
    { header: 'error', value: (r) => r.error ?? r.skipped ?? null },
  ],
  report: (rows) => report(rows),
};
