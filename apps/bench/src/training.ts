import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type Dataset, loadDataset } from '@fwdgrad/datasets';
import type { LocalMixerOptions } from '@fwdgrad/localmixer';
import {
  type AlgorithmId,
  type AlgorithmOptions,
  type ExperimentOverrides,
  readMetrics,
  resolveExperiment,
  train,
} from '@fwdgrad/trainer';
import { mean, round, std } from './stats.js';
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
 * Trains one run with the trainer's `train()` in a run folder under the suite's work folder and
 * returns its final errors and per-epoch curve. With `--resume` an interrupted run continues from
 * its newest checkpoint. The run folder is removed once the row is recorded. Errors are returned
 * in the row (`error`, or `skipped` when the trainer does not support the setting yet).
 */
export async function trainRow(ctx: RowContext, key: string, run: TrainRun): Promise<Figures> {
  const ident = runIdentity(run);
  const runDir = join(ctx.workDir, key.replace(/[^A-Za-z0-9._=+-]+/g, '_'));
  const resume = ctx.resume && existsSync(runDir);
  if (!resume) rmSync(runDir, { recursive: true, force: true });
  try {
    const experiment = resolveExperiment(run.preset, run.overrides);
    const summary = await train({
      experiment,
      algorithm: run.algorithm,
      algorithmOptions: run.algorithmOptions,
      modelOverrides: run.modelOverrides,
      dataset: mnist(ctx.options.dataDir),
      seed: run.seed,
      limitTrain: run.limitTrain,
      limitTest: run.limitTest,
      runDir,
      resume,
      backend: ctx.selection.name,
      progressStream: ctx.progress ? process.stderr : null,
      log: (line) => ctx.log(`    ${line}`),
    });
    const curve = readMetrics<{ epoch: number; test_error: number; train_error: number; loss: number }>(
      runDir,
    ).map((m) => ({
      epoch: m.epoch,
      test_error: round(m.test_error, 5),
      train_error: round(m.train_error, 5),
      loss: round(m.loss, 5),
    }));
    rmSync(runDir, { recursive: true, force: true });
    return {
      ...ident,
      model: run.modelLabel ?? summary.model,
      dataset: summary.dataset,
      objective: summary.objective,
      backend: summary.backend,
      test_error: round(summary.test_error, 5),
      train_error: round(summary.train_error, 5),
      seconds: round(summary.seconds, 4),
      examples_per_second: round(summary.examples_per_second, 4),
      curve,
    };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    rmSync(runDir, { recursive: true, force: true });
    return isUnsupported(message) ? { ...ident, skipped: message } : { ...ident, error: message };
  }
}

/** Mean ± std (over seeds) of a row field, as fractions; null when no row has it. */
export function meanStd(rows: Row[], field: string): { mean: number; std: number; n: number } | null {
  const v = rows.map((r) => r[field]).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  if (v.length === 0) return null;
  return { mean: mean(v), std: std(v), n: v.length };
}

/** `2.41 ± 0.12` in percent from a fraction's mean/std. */
export function pctMeanStd(s: { mean: number; std: number; n: number } | null): string {
  if (s === null) return '—';
  return s.n > 1 ? `${(100 * s.mean).toFixed(2)} ± ${(100 * s.std).toFixed(2)}` : (100 * s.mean).toFixed(2);
}
