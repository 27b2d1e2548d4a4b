import { rmSync } from 'node:fs';
import type { Dataset } from '@fwdgrad/datasets';
import { loadDataset } from '@fwdgrad/datasets/node';
import {
  type MeanStd,
  pctMeanStd,
  runDirOf,
  runJob,
  type SweepJob,
  meanStd as sweepMeanStd,
} from '@fwdgrad/sweep/node';
import type { LocalMixerOptions } from '@fwdgrad/localmixer';
import {
  type AlgorithmId,
  type AlgorithmOptions,
  type ExperimentOverrides,
  resolveExperiment,
} from '@fwdgrad/trainer';
import { readMetrics, train } from '@fwdgrad/trainer/node';
import { round } from './stats.js';
import type { Row } from './table.js';
import type { Figures, RowContext } from './types.js';

const datasets = new Map<string, Dataset>();

/** MNIST, loaded once per process (the bundled copy, or `dataDir`). */
export function mnist(dataDir?: string): Dataset {
  const key = dataDir ?? '(bundled)';
  let ds = datasets.get(key);
  if (ds === undefined) {
    ds = loadDataset('mnist', { dataDir });
    datasets.set(key, ds);
  }
  return ds;
}

/** One training run of a suite. */
export interface TrainRun {
  /** Trainer experiment preset (paper appendix 11), e.g. `mnist-s11`. */
  preset: string;
  overrides: ExperimentOverrides;
  algorithm: AlgorithmId;
  algorithmOptions?: Partial<AlgorithmOptions>;
  modelOverrides?: LocalMixerOptions;
  seed: number;
  limitTrain?: number;
  limitTest?: number;
  /** The row's `model` when `modelOverrides` make it another network than the preset's (e.g. `mixer-b2-p4-c128-g16`). */
  modelLabel?: string;
}

/** A short name of a LocalMixer given by overrides: `mixer-b<blocks>-p<patches per side>-c<channels>-g<groups>`. */
export function mixerLabel(o: LocalMixerOptions): string {
  return `mixer-b${o.blocks}-p${o.patchesPerSide}-c${o.channels}-g${o.groups}`;
}

/** The fields every training row carries, so failed rows still say what they were. */
export function runIdentity(run: TrainRun): Figures {
  return {
    algo: run.algorithm,
    seed: run.seed,
    epochs: run.overrides.epochs ?? null,
    batch: run.overrides.batchSize ?? null,
    limit_train: run.limitTrain ?? null,
    limit_test: run.limitTest ?? null,
    ...(run.algorithmOptions && Object.keys(run.algorithmOptions).length
      ? { algorithm_options: run.algorithmOptions }
      : {}),
    ...(run.modelOverrides && Object.keys(run.modelOverrides).length
      ? { model_overrides: run.modelOverrides }
      : {}),
  };
}

/** True for the trainer's "not supported yet" refusals (recorded as skipped rows, not failures). */
export function isUnsupported(message: string): boolean {
  return /not supported|no implementation/i.test(message);
}

/**
 * Trains one run through the sweep runner (`@fwdgrad/sweep`'s `runJob`, the engine of `fwdgrad
 * sweep run`), in this process with the trainer's `train()`, in a run folder under the suite's
 * work folder; returns its final errors and per-epoch curve. With `--resume` an interrupted run
 * continues from its newest checkpoint (a finished one is read back). The run folder is removed
 * once the row is recorded. Errors are returned in the row (`error`, or `skipped` when the trainer
 * does not support the setting yet).
 */
export async function trainRow(ctx: RowContext, key: string, run: TrainRun): Promise<Figures> {
  const ident = runIdentity(run);
  const job: SweepJob = {
    name: key.replace(/[^A-Za-z0-9._=+-]+/g, '_'),
    values: { preset: run.preset, algo: run.algorithm, seed: run.seed },
    axes: {},
    args: [],
  };
  const runDir = runDirOf(ctx.workDir, job);
  if (!ctx.resume) rmSync(runDir, { recursive: true, force: true });
  const outcome = await runJob(job, {
    root: ctx.workDir,
    execute: async (_job, attempt) => {
      const summary = await train({
        experiment: resolveExperiment(run.preset, run.overrides),
        algorithm: run.algorithm,
        algorithmOptions: run.algorithmOptions,
        modelOverrides: run.modelOverrides,
        dataset: mnist(ctx.options.dataDir),
        seed: run.seed,
        limitTrain: run.limitTrain,
        limitTest: run.limitTest,
        runDir: attempt.runDir,
        resume: attempt.resume,
        backend: ctx.selection.name,
        progressStream: ctx.progress ? process.stderr : null,
        log: (line) => {
          attempt.log(line);
          ctx.log(`    ${line}`);
        },
      });
      return { ...summary };
    },
  });
  const summary = outcome.result;
  if (summary === null) {
    rmSync(runDir, { recursive: true, force: true });
    const message = outcome.error ?? 'no result';
    return isUnsupported(message) ? { ...ident, skipped: message } : { ...ident, error: message };
  }
  const curve = readMetrics<{ epoch: number; test_error: number; train_error: number; loss: number }>(
    runDir,
  ).map((m) => ({
    epoch: m.epoch,
    test_error: round(m.test_error, 5),
    train_error: round(m.train_error, 5),
    loss: round(m.loss, 5),
  }));
  rmSync(runDir, { recursive: true, force: true });
  const num = (x: unknown) => round(Number(x), 5);
  return {
    ...ident,
    model: run.modelLabel ?? String(summary.model),
    dataset: String(summary.dataset),
    objective: String(summary.objective),
    backend: String(summary.backend),
    test_error: num(summary.test_error),
    train_error: num(summary.train_error),
    seconds: round(Number(summary.seconds), 4),
    examples_per_second: round(Number(summary.examples_per_second), 4),
    curve,
  };
}

/** Mean ± std (over seeds) of a row field, as fractions; null when no row has it. */
export function meanStd(rows: Row[], field: string): MeanStd | null {
  return sweepMeanStd(rows.map((r) => r[field]));
}

export { pctMeanStd };
