import * as tf from '@tensorflow/tfjs';

import { type LocalMixerOptions, type ModelName, patchify, resolveConfig } from '@fwdgrad/localmixer';
import { type AlgorithmId, createAlgorithm, createModel } from '@fwdgrad/trainer';
import { type BackendName, selectBackend } from '@fwdgrad/trainer/node';
import { barPlot } from '@fwdgrad/plot';
import { failureText, randomLabels } from '../measure.js';
import { median, quantile, round } from '../stats.js';
import { columnsTable, field, fields, type Row } from '../table.js';
import type { Budget, RowSpec, Suite, SuitePlan } from '../types.js';
import { createRandom } from '@fwdgrad/random';

/**
 * The same training step on two backends in one process, timed in turns: fwdgrad's `native` (tfjs's cpu
 * backend with @fwdgrad/native's kernels) against `node` (@tensorflow/tfjs-node, libtensorflow; see
 * `fwdgrad setup tensorflow`), the backend a tfjs user would pick for speed in Node. Each round runs one
 * step on each backend; the ratio of a round is node's step time ÷ native's, and the row reports the
 * median ratio, so that other load on the machine affects both sides alike.
 */

/** The backends compared, the first one's speed-up over the second reported. */
export const COMPARED_BACKENDS: [BackendName, BackendName] = ['native', 'node'];

interface Case {
  code: ModelName;
  batch: number;
  overrides: LocalMixerOptions;
  repeats: number;
}

interface BackendsBudget {
  cases: Case[];
  algorithms: AlgorithmId[];
  warmup: number;
}

const b128 = (code: ModelName, repeats: number): Case => ({ code, batch: 128, overrides: {}, repeats });

const BUDGETS: Record<Budget, BackendsBudget> = {
  smoke: {
    cases: [{ code: 'M/1/16', batch: 4, overrides: { channels: 32 }, repeats: 2 }],
    algorithms: ['lg-fg-a'],
    warmup: 1,
  },
  // issue 17's goal: LG-FG-A on M/1/16 and M/8/16 at batch 128 (LG-BP beside it for reference)
  small: { cases: [b128('M/1/16', 15), b128('M/8/16', 5)], algorithms: ['lg-fg-a', 'lg-bp'], warmup: 2 },
  medium: { cases: [b128('M/1/16', 30), b128('M/8/16', 10)], algorithms: ['lg-fg-a', 'lg-bp'], warmup: 2 },
  paper: {
    cases: [b128('S/1/1', 30), b128('M/1/16', 30), b128('M/8/16', 10)],
    algorithms: ['lg-fg-a', 'lg-bp', 'fg-w', 'bp'],
    warmup: 2,
  },
};

/** Goal of issue 17: native at least this many times tfjs-node's examples/s (LG-FG-A, batch 128). */
export const NATIVE_OVER_NODE_GOAL = 1.5;

function rowSpec(c: Case, algo: AlgorithmId, b: BackendsBudget): RowSpec {
  const [first, second] = COMPARED_BACKENDS;
  return {
    key: `${c.code}|${algo}|b${c.batch}`,
    async run(ctx) {
      const ident = {
        model: c.code,
        algo,
        batch: c.batch,
        backends: COMPARED_BACKENDS.join(' vs '),
        ...(Object.keys(c.overrides).length ? { overrides: c.overrides } : {}),
      };
      const config = resolveConfig(c.code, c.overrides);
      const sides: {
        name: BackendName;
        model: ReturnType<typeof createModel>;
        algorithm: ReturnType<typeof createAlgorithm>;
        batch: { x: tf.Tensor; labels: tf.Tensor; size: number };
        samples: number[];
        /** CPU time (user + system, all threads) per step: robust to other load on the machine. */
        cpu: number[];
      }[] = [];
      try {
        for (const name of COMPARED_BACKENDS) {
          await selectBackend(name);
          // the same inputs and initial weights on both, made on the backend that runs them
          const model = createModel(config, 0);
          const x = tf.tidy(() => patchify(createRandom(2).normal([c.batch, ...config.imageShape]), config));
          const labels = randomLabels(3, c.batch, config.numClasses);
          sides.push({
            name,
            model,
            algorithm: createAlgorithm(algo, model, {}, createRandom(1)),
            batch: { x, labels, size: c.batch },
            samples: [],
            cpu: [],
          });
        }
        for (let i = 0; i < b.warmup + c.repeats; i++) {
          for (const s of sides) {
            await selectBackend(s.name);
            const cpu0 = process.cpuUsage();
            const t0 = performance.now();
            const result = s.algorithm.step(s.model, s.batch, createRandom(100 + i));
            const grads = [...result.grads.values()];
            grads[grads.length - 1]?.dataSync();
            const ms = performance.now() - t0;
            const cpu = process.cpuUsage(cpu0);
            tf.dispose(grads);
            if (i >= b.warmup) {
              s.samples.push(ms);
              s.cpu.push((cpu.user + cpu.system) / 1000);
            }
          }
        }
      } catch (err) {
        return { ...ident, error: failureText(err) };
      } finally {
        for (const s of sides) {
          await selectBackend(s.name);
          tf.dispose([s.batch.x, s.batch.labels]);
          s.algorithm.dispose();
          s.model.dispose();
        }
        await selectBackend(ctx.selection.name);
      }
      const [a, z] = sides;
      const ratios = a.samples.map((v, i) => z.samples[i] / v);
      const ms = (s: (typeof sides)[number]) => round(median(s.samples));
      return {
        ...ident,
        [`ms_${first}`]: ms(a),
        [`ms_${second}`]: ms(z),
        [`examples_per_second_${first}`]: round((c.batch * 1000) / median(a.samples)),
        [`examples_per_second_${second}`]: round((c.batch * 1000) / median(z.samples)),
        // median over rounds of (second's step time ÷ first's) = first's examples/s ÷ second's
        speedup: round(median(ratios), 3),
        speedup_quartiles: [round(quantile(ratios, 0.25), 3), round(quantile(ratios, 0.75), 3)],
        [`cpu_ms_${first}`]: round(median(a.cpu)),
        [`cpu_ms_${second}`]: round(median(z.cpu)),
        // the same ratio in CPU time (all threads): what each step costs the machine
        cpu_speedup: round(median(a.cpu.map((v, i) => z.cpu[i] / v)), 3),
        threads: {
          FWDGRAD_THREADS: process.env.FWDGRAD_THREADS ?? null,
          TF_NUM_INTRAOP_THREADS: process.env.TF_NUM_INTRAOP_THREADS ?? null,
        },
        repeats: c.repeats,
        warmup: b.warmup,
        [`ms_samples_${first}`]: a.samples.map((v) => round(v)),
        [`ms_samples_${second}`]: z.samples.map((v) => round(v)),
      };
    },
  };
}

function plan(budget: Budget): SuitePlan {
  const b = BUDGETS[budget];
  const [first, second] = COMPARED_BACKENDS;
  return {
    config: { cases: b.cases, algorithms: b.algorithms, warmup: b.warmup, backends: COMPARED_BACKENDS },
    seeds: [0, 1, 2, 3],
    rows: b.cases.flatMap((c) => b.algorithms.map((a) => rowSpec(c, a, b))),
    notes: [
      `One training step (\`createAlgorithm(id, model).step\`, as in the throughput suite) on \`${first}\` and on ` +
        `\`${second}\` in turns in one process (a round: one step on each). \`speedup\` = median over rounds of ` +
        `(${second} step ms ÷ ${first} step ms), i.e. ${first}'s examples/s ÷ ${second}'s; \`speedup_quartiles\` ` +
        'bound the middle half of the per-round ratios; `cpu_speedup` is the same ratio in CPU time (user + ' +
        'system, all threads of the process), which other load on the machine does not inflate. A row whose backend does not load carries the reason ' +
        '(node: run `pnpm fwdgrad setup tensorflow`).',
    ],
  };
}

function report(rows: Row[]) {
  const [first, second] = COMPARED_BACKENDS;
  const cols = [
    ...fields('model', 'algo', 'batch'),
    { header: `${first} ms/step`, value: (r: Row) => r[`ms_${first}`] },
    { header: `${second} ms/step`, value: (r: Row) => r[`ms_${second}`] },
    { header: `${first} examples/s`, value: (r: Row) => r[`examples_per_second_${first}`] },
    { header: `${second} examples/s`, value: (r: Row) => r[`examples_per_second_${second}`] },
    { header: `${first} ÷ ${second}`, value: (r: Row) => r.speedup },
    { header: `${first} CPU ms`, value: (r: Row) => r[`cpu_ms_${first}`] },
    { header: `${second} CPU ms`, value: (r: Row) => r[`cpu_ms_${second}`] },
    { header: `${first} ÷ ${second} (CPU time)`, value: (r: Row) => r.cpu_speedup },
    field('error'),
  ];
  const checks = rows
    .filter((r) => r.algo === 'lg-fg-a' && typeof r.speedup === 'number')
    .map((r) => ({
      model: r.model,
      batch: r.batch,
      speedup: r.speedup as number,
      quartiles: r.speedup_quartiles,
      met: (r.speedup as number) >= NATIVE_OVER_NODE_GOAL,
    }));
  const markdown = [
    columnsTable(rows, cols),
    '',
    `Goal (issue 17): ${first} ≥ ${NATIVE_OVER_NODE_GOAL}× ${second}'s examples/s for LG-FG-A at batch 128.`,
    '',
    ...checks.map(
      (c) =>
        `- ${c.model} batch ${c.batch}: ${first} ÷ ${second} = ${c.speedup} (middle half of the rounds ` +
        `${Array.isArray(c.quartiles) ? c.quartiles.join('–') : '?'}) → ${c.met ? 'met' : 'not met'}`,
    ),
  ].join('\n');
  const measured = rows.filter((r) => r.error === undefined);
  const label = (r: Row) => `${r.model} ${r.algo} b${r.batch}`;
  const plots = [
    {
      name: 'examples-per-second',
      title: `examples/s, ${first} and ${second}`,
      svg: barPlot({
        title: `Training examples per second: ${first} against ${second} (log scale)`,
        yLabel: 'examples/s',
        categories: measured.map(label),
        yLog: true,
        series: COMPARED_BACKENDS.map((name) => ({
          name,
          values: measured.map((r) =>
            typeof r[`examples_per_second_${name}`] === 'number'
              ? (r[`examples_per_second_${name}`] as number)
              : null,
          ),
        })),
      }),
    },
  ];
  return {
    markdown,
    plots,
    summary: { goal: `${first} examples/s >= ${NATIVE_OVER_NODE_GOAL} x ${second} (lg-fg-a)`, checks },
  };
}

/** native against tfjs-node: the same step timed in turns on both backends. */
export const backendsSuite: Suite = {
  name: 'backends',
  title: 'Backends: native against tfjs-node (libtensorflow), the same step timed in turns',
  plan,
  columns: [
    ...fields('model', 'algo', 'batch'),
    { header: `ms_${COMPARED_BACKENDS[0]}`, value: (r) => r[`ms_${COMPARED_BACKENDS[0]}`] },
    { header: `ms_${COMPARED_BACKENDS[1]}`, value: (r) => r[`ms_${COMPARED_BACKENDS[1]}`] },
    ...fields('speedup', 'cpu_speedup', 'error'),
  ],
  report: (rows) => report(rows),
};
