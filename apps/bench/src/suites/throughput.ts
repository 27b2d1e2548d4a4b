import * as tf from '@tensorflow/tfjs';
import { type LocalMixerOptions, type ModelName, patchify, resolveConfig } from '@fwdgrad/localmixer';
import { ALGORITHM_IDS, type AlgorithmId, createAlgorithm, createModel } from '@fwdgrad/trainer';
import { createRandom } from '@fwdgrad/random';
import { failureText, randomLabels } from '../measure.js';
import { median, quantile, round } from '../stats.js';
import { barPlot } from '@fwdgrad/plot';
import { columnsTable, field, fields, type Row } from '../table.js';
import type { Budget, RowSpec, Suite, SuitePlan } from '../types.js';

/** The models of the issue: the MNIST ones and the CIFAR-10 one (paper Table 2). */
export const THROUGHPUT_MODELS: ModelName[] = ['S/1/1', 'M/1/16', 'M/8/16'];
/** The batch size of the paper's MNIST and CIFAR-10 supervised runs (appendix 11). */
export const PAPER_BATCH = 128;

interface ModelRun {
  code: ModelName;
  batch: number;
  overrides: LocalMixerOptions;
  /** Timed steps (more for the fast models: a median of many short steps resists other load on the machine). */
  repeats?: number;
}

interface ThroughputBudget {
  models: ModelRun[];
  warmup: number;
  repeats: number;
}

const full = (code: ModelName, batch = PAPER_BATCH, repeats?: number): ModelRun => ({
  code,
  batch,
  overrides: {},
  repeats,
});

const BUDGETS: Record<Budget, ThroughputBudget> = {
  // Seconds even on the pure-JS cpu backend (CI): narrow models, batch 4, M/8/16 with 2 blocks.
  smoke: {
    models: [
      { code: 'S/1/1', batch: 4, overrides: { channels: 32 } },
      { code: 'M/1/16', batch: 4, overrides: { channels: 32 } },
      { code: 'M/8/16', batch: 4, overrides: { channels: 16, blocks: 2 } },
    ],
    warmup: 1,
    repeats: 2,
  },
  // M/8/16 at batch 128 costs seconds per step here and LG-BP exhausts the WebAssembly heap; the
  // small and medium budgets run it at a smaller batch and say so.
  small: {
    models: [full('S/1/1', 128, 40), full('M/1/16', 128, 40), full('M/8/16', 8, 12)],
    warmup: 2,
    repeats: 5,
  },
  medium: {
    models: [full('S/1/1', 128, 60), full('M/1/16', 128, 60), full('M/8/16', 32, 9)],
    warmup: 2,
    repeats: 5,
  },
  paper: { models: [full('S/1/1', 128, 30), full('M/1/16', 128, 30), full('M/8/16')], warmup: 2, repeats: 5 },
};

/** The LG-BP reference first, so every later row of the model can carry its ratio. */
export function algorithmOrder(): AlgorithmId[] {
  return ['lg-bp', ...ALGORITHM_IDS.filter((a) => a !== 'lg-bp')];
}

function rowKey(m: ModelRun, algo: string): string {
  return `${m.code}|${algo}|b${m.batch}`;
}

function rowSpec(m: ModelRun, algo: AlgorithmId, b: ThroughputBudget, budget: Budget): RowSpec {
  return {
    key: rowKey(m, algo),
    run(ctx) {
      const backend = ctx.selection.name;
      const notes: string[] = [];
      if (m.batch !== PAPER_BATCH)
        notes.push(`batch ${m.batch} instead of ${PAPER_BATCH} at budget ${budget}`);
      if (Object.keys(m.overrides).length > 0)
        notes.push(`sizes ${JSON.stringify(m.overrides)} at budget ${budget}`);
      const ident = {
        model: m.code,
        algo,
        batch: m.batch,
        backend,
        ...(Object.keys(m.overrides).length ? { overrides: m.overrides } : {}),
        ...(notes.length ? { note: notes.join('; ') } : {}),
      };
      const config = resolveConfig(m.code, m.overrides);
      const labels = randomLabels(3, m.batch, config.numClasses);
      const x = tf.tidy(() => {
        const images = createRandom(2).normal([m.batch, ...config.imageShape]);
        return patchify(images, config);
      });
      const batch = { x, labels, size: m.batch };
      // Every other rule is timed in turns with LG-BP (rule step, LG-BP step, ...) on its own copy of
      // the model, so that other load on the machine affects both alike and the ratio stays fair.
      // Not when LG-BP itself failed (e.g. out of memory at this batch).
      const ref = ctx.done.get(rowKey(m, 'lg-bp'));
      const paired = algo !== 'lg-bp' && ref !== undefined && ref.error === undefined;
      const runners = [algo, ...(paired ? ['lg-bp' as const] : [])].map((id) => {
        const model = createModel(config, 0);
        return { model, algorithm: createAlgorithm(id, model, {}, createRandom(1)), samples: [] as number[] };
      });
      const repeats = m.repeats ?? b.repeats;
      let leaked = 0;
      try {
        let before = tf.memory().numTensors;
        for (let i = 0; i < b.warmup + repeats; i++) {
          for (const r of runners) {
            const t0 = performance.now();
            const result = r.algorithm.step(r.model, batch, createRandom(100 + i));
            // Reading the last update waits for the whole step on asynchronous backends.
            const grads = [...result.grads.values()];
            grads[grads.length - 1]?.dataSync();
            const ms = performance.now() - t0;
            tf.dispose(grads);
            if (i >= b.warmup) r.samples.push(ms);
          }
          if (i === b.warmup - 1) before = tf.memory().numTensors;
        }
        leaked = tf.memory().numTensors - before;
      } catch (err) {
        return { ...ident, ms_per_step: null, examples_per_second: null, error: failureText(err) };
      } finally {
        tf.dispose([x, labels]);
        for (const r of runners) {
          r.algorithm.dispose();
          r.model.dispose();
        }
      }
      const samples = runners[0].samples;
      const ms = round(median(samples));
      const refMs = algo === 'lg-bp' ? ms : paired ? round(median(runners[1].samples)) : null;
      // One ratio per round (this rule's step ÷ the LG-BP step timed right after it): load that drifts
      // over the row affects both steps of a round alike, so the median of these is the fair ratio.
      const ratios = paired ? samples.map((v, i) => v / runners[1].samples[i]) : [];
      const ratio = algo === 'lg-bp' ? 1 : paired ? round(median(ratios), 3) : null;
      return {
        ...ident,
        ms_per_step: ms,
        examples_per_second: round((m.batch * 1000) / ms),
        ratio_to_lg_bp: ratio,
        // the middle half of the per-round ratios (how far other load moved them)
        ratio_quartiles: paired ? [round(quantile(ratios, 0.25), 3), round(quantile(ratios, 0.75), 3)] : null,
        // LG-BP's median over the steps timed in turns with this rule.
        lg_bp_ms_paired: paired ? refMs : null,
        repeats,
        warmup: b.warmup,
        ms_samples: samples.map((v) => round(v)),
        // Tensors left alive per timed round (0 when the rules free everything they make).
        leaked_tensors_per_step: round(leaked / Math.max(1, repeats), 3),
      };
    },
  };
}

function plan(budget: Budget): SuitePlan {
  const b = BUDGETS[budget];
  const rows = b.models.flatMap((m) => algorithmOrder().map((a) => rowSpec(m, a, b, budget)));
  const notes = [
    "One training step = `createAlgorithm(id, model).step(model, batch)` on random inputs of the model's image shape " +
      '(the update direction of every parameter; the optimiser is not included). Median wall-clock ms over the timed ' +
      'steps after the warm-up. `ratio_to_lg_bp`: the median over rounds of (rule step ÷ LG-BP step), the two timed ' +
      'in turns in the same row (rule, LG-BP, rule, ...; `lg_bp_ms_paired` is that LG-BP median), on the same ' +
      'backend, model and batch, so that other load on the machine affects both alike; `ratio_quartiles` bound ' +
      'the middle half of the per-round ratios.',
  ];
  for (const m of b.models) {
    if (m.batch !== PAPER_BATCH)
      notes.push(`${m.code} runs at batch ${m.batch} instead of ${PAPER_BATCH} at budget ${budget}.`);
    if (Object.keys(m.overrides).length)
      notes.push(`${m.code} uses ${JSON.stringify(m.overrides)} at budget ${budget}.`);
  }
  return {
    config: { models: b.models, warmup: b.warmup, repeats: b.repeats, algorithms: algorithmOrder() },
    seeds: [0, 1, 2, 3],
    rows,
    notes,
  };
}

function report(rows: Row[]) {
  const cols = [
    ...fields('model', 'algo', 'batch', 'backend'),
    field('ms_per_step', 'ms/step'),
    field('examples_per_second', 'examples/s'),
    field('ratio_to_lg_bp', '÷ LG-BP'),
    field('leaked_tensors_per_step', 'leaked tensors/step'),
    field('error'),
  ];
  const models = [...new Set(rows.map((r) => `${r.model} b${r.batch}`))];
  const algos = algorithmOrder().filter((a) => rows.some((r) => r.algo === a));
  const value = (field: string) => (label: string) =>
    algos.map((a) => {
      const r = rows.find((x) => `${x.model} b${x.batch}` === label && x.algo === a);
      return typeof r?.[field] === 'number' ? (r[field] as number) : null;
    });
  const checks = rows
    .filter((r) => r.algo === 'lg-fg-a' && typeof r.ratio_to_lg_bp === 'number')
    .map((r) => ({
      model: r.model,
      batch: r.batch,
      backend: r.backend,
      ratio: r.ratio_to_lg_bp,
      quartiles: r.ratio_quartiles,
      met: (r.ratio_to_lg_bp as number) <= 1,
    }));
  const markdown = [
    columnsTable(rows, cols),
    '',
    'Goal (issue 9): LG-FG-A step time ≤ LG-BP step time on the same backend and model.',
    '',
    ...checks.map((c) => {
      const q = Array.isArray(c.quartiles)
        ? ` (middle half of the per-round ratios ${c.quartiles.join('–')})`
        : '';
      return `- ${c.model} batch ${c.batch} (${c.backend}): LG-FG-A / LG-BP = ${c.ratio}${q} → ${c.met ? 'met' : 'not met'}`;
    }),
  ].join('\n');
  const plots = [
    {
      name: 'step-time',
      title: 'ms per training step',
      svg: barPlot({
        title: 'Training step time per algorithm (log scale)',
        yLabel: 'ms per step',
        categories: algos,
        yLog: true,
        series: models.map((label) => ({ name: label, values: value('ms_per_step')(label) })),
      }),
    },
    {
      name: 'ratio',
      title: 'step time relative to LG-BP',
      svg: barPlot({
        title: 'Step time ÷ LG-BP step time',
        yLabel: 'ratio',
        categories: algos,
        series: models.map((label) => ({ name: label, values: value('ratio_to_lg_bp')(label) })),
        reference: { value: 1, label: 'LG-BP' },
      }),
    },
  ];
  return { markdown, plots, summary: { goal: 'lg-fg-a step time <= lg-bp step time', checks } };
}

/** Time per training step of every learning rule on S/1/1, M/1/16 and M/8/16. */
export const throughputSuite: Suite = {
  name: 'throughput',
  title: 'Throughput: one training step of every algorithm',
  plan,
  columns: [
    ...fields(
      'model',
      'algo',
      'batch',
      'backend',
      'ms_per_step',
      'examples_per_second',
      'ratio_to_lg_bp',
      'error',
    ),
  ],
  report: (rows) => report(rows),
};
