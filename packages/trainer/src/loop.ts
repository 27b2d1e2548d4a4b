import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '@fwdgrad/datasets';
import { loadDataset } from '@fwdgrad/datasets/node';
import type { LocalMixerConfig, LocalMixerOptions } from '@fwdgrad/localmixer';
import { createRandom, hashSeed } from '@fwdgrad/random';
import { alignmentAngles } from './alignment.js';
import { createAlgorithm } from './algorithms/registry.js';
import type { Algorithm, AlgorithmId, AlgorithmOptions, StepResult } from './algorithms/types.js';
import { appendMetrics, saveCheckpoint, writeConfig } from './checkpoint.js';
import { evaluateError, modelConfigFor } from './evaluate.js';
import { checkFinite } from './guard.js';
import { createModel, type Model } from './model.js';
import type { Optimizer } from './optim.js';
import { namedParams, type ParamEntry } from './params.js';
import { type ExperimentConfig, experimentOptimizer, experimentSchedule } from './presets.js';
import { createProgress, type ProgressStream } from './progress.js';
import { trainReadout } from './readout.js';
import { writeLearningCurves } from './plots.js';
import {
  type CheckpointExtra,
  claimRunDir,
  type DataSource,
  type PartialEpoch,
  type ResumePoint,
  type RunConfig,
  resumeRun,
  STEPS_FILE,
} from './run.js';
import type { Schedule } from './schedule.js';
import { firstStepBatch, stepBatches } from './step-batches.js';

/** Everything a training run needs. */
export interface TrainOptions {
  experiment: ExperimentConfig;
  algorithm: AlgorithmId;
  algorithmOptions?: Partial<AlgorithmOptions>;
  /** Overrides of the LocalMixer configuration (custom sizes, normalisation). */
  modelOverrides?: LocalMixerOptions;
  /** A loaded dataset; otherwise `experiment.dataset` is loaded (from `dataDir` if given). */
  dataset?: Dataset;
  dataDir?: string;
  seed?: number;
  /** Train on the first N training examples only. */
  limitTrain?: number;
  /** Evaluate on the first N test examples only. */
  limitTest?: number;
  /** Run folder: config.json, metrics.jsonl, checkpoints. */
  runDir: string;
  /** Continue from the newest checkpoint in `runDir`. */
  resume?: boolean;
  /** The backend in use (recorded in the summary); selection is the caller's. */
  backend?: string;
  /** Progress output (a bar on terminals, plain lines otherwise); default stderr. */
  progressStream?: ProgressStream | null;
  /** One line per epoch and start-up messages; default writes to stderr. */
  log?: (line: string) => void;
  /** Examples per evaluation batch. */
  evalBatchSize?: number;
  /**
   * Where the data comes from, recorded in the run's settings (so `eval --run` and resume use the
   * same data). Default: `experiment.dataset` from `dataDir` (null for a `dataset` passed in).
   */
  data?: DataSource;
  /** On resume, accept a learning rate different from the run's (recorded in config.json "history"). */
  changeLr?: boolean;
  /**
   * Ends training early: after the current step a checkpoint is written (resumable exactly) and
   * `train` rejects with a {@link TrainingInterruptedError}. The CLI aborts it on SIGINT/SIGTERM.
   */
  signal?: AbortSignal;
  /** Append a row to `steps.jsonl` every N optimiser steps (0 or absent: none). */
  logEvery?: number;
  /** Write learning curves (`loss.svg`, `error.svg`) into the run folder after every epoch (default true). */
  plots?: boolean;
}

/** One row of steps.jsonl (`logEvery`). */
export interface StepMetrics {
  step: number;
  epoch: number;
  loss: number;
  local_loss: number | null;
  train_batch_accuracy: number | null;
  lr: number;
}

/** Settings of a run that cannot work with its data (a usage error: nothing was written). */
export class TrainSettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainSettingsError';
  }
}

/** Training stopped on request (`signal`) after a step; a checkpoint to resume from was written. */
export class TrainingInterruptedError extends Error {
  /** The abort reason when it is a string (the CLI passes the signal name, e.g. `SIGINT`). */
  readonly reason: string | null;
  readonly checkpoint: string;
  readonly step: number;
  constructor(reason: unknown, checkpoint: string, step: number, runDir: string) {
    const why = typeof reason === 'string' ? reason : null;
    super(
      `training interrupted${why ? ` by ${why}` : ''} after step ${step}; wrote ${checkpoint}. ` +
        `Continue with --resume --run-dir ${runDir}`,
    );
    this.name = 'TrainingInterruptedError';
    this.reason = why;
    this.checkpoint = checkpoint;
    this.step = step;
  }
}

/** One row of metrics.jsonl. */
export interface EpochMetrics {
  epoch: number;
  step: number;
  loss: number;
  local_loss: number | null;
  /** Contrastive: mean loss of the linear readout epoch. */
  readout_loss: number | null;
  /**
   * Approximate rules (FA, DFA, forward gradient): angle in degrees between the rule's update
   * and the exact gradient of its backprop counterpart, per backbone weight, on one batch.
   */
  alignment_deg: Record<string, number> | null;
  train_batch_accuracy: number;
  test_error: number;
  train_error: number;
  lr: number;
  seconds: number;
  examples_per_second: number;
  live_tensors: number;
}

/** What `fwdgrad train --json` prints (errors as fractions). */
export interface TrainSummary {
  algo: AlgorithmId;
  model: string;
  dataset: string;
  objective: string;
  epochs: number;
  test_error: number;
  train_error: number;
  examples_per_second: number;
  seconds: number;
  backend: string;
  run_dir: string;
}

/**
 * The metrics row of a finished epoch (index `epoch`, 0-based) from its totals over `steps` steps of
 * `batchSize` examples and what was measured after it.
 */
export function epochRow(
  epoch: number,
  step: number,
  totals: PartialEpoch,
  steps: number,
  batchSize: number,
  after: Pick<EpochMetrics, 'test_error' | 'train_error' | 'lr' | 'readout_loss' | 'alignment_deg'>,
): EpochMetrics {
  return {
    epoch: epoch + 1,
    step,
    loss: totals.loss / steps,
    local_loss: totals.localLoss === null ? null : totals.localLoss / steps,
    readout_loss: after.readout_loss,
    alignment_deg: after.alignment_deg,
    train_batch_accuracy: totals.accuracy / steps,
    test_error: after.test_error,
    train_error: after.train_error,
    lr: after.lr,
    seconds: totals.seconds,
    examples_per_second: (steps * batchSize) / totals.seconds,
    live_tensors: tf.memory().numTensors,
  };
}

/** The progress line of a finished epoch (the caller appends what only it knows). */
export function epochLine(row: EpochMetrics, epochs: number): string {
  return (
    `epoch ${row.epoch}/${epochs}: loss ${row.loss.toFixed(4)}` +
    (row.local_loss === null ? '' : ` local ${row.local_loss.toFixed(4)}`) +
    ` test error ${(100 * row.test_error).toFixed(2)}% train error ${(100 * row.train_error).toFixed(2)}%` +
    ` ${row.examples_per_second.toFixed(0)} ex/s`
  );
}

/** The run's summary after the epoch of `row`, `seconds` after it started. */
export function trainSummary(
  options: TrainOptions,
  ds: Dataset,
  row: EpochMetrics,
  seconds: number,
  backend: string,
): TrainSummary {
  return {
    algo: options.algorithm,
    model: options.experiment.model,
    dataset: ds.name,
    objective: options.experiment.objective,
    epochs: row.epoch,
    test_error: row.test_error,
    train_error: row.train_error,
    examples_per_second: row.examples_per_second,
    seconds,
    backend,
    run_dir: options.runDir,
  };
}

/** What one epoch of training needs, fixed for the whole run. */
interface EpochContext {
  exp: ExperimentConfig;
  ds: Dataset;
  config: LocalMixerConfig;
  model: Model;
  algorithm: Algorithm;
  optimizer: Optimizer;
  /** The parameters the rule updates. */
  entries: ParamEntry[];
  schedule: Schedule;
  seed: number;
  stepsPerEpoch: number;
  runDir: string;
  limitTrain?: number;
  progressStream?: ProgressStream | null;
  signal?: AbortSignal;
  logEvery: number;
}

/** Sums over the optimiser steps of one epoch so far; `lr` is the learning rate of the last step. */
interface EpochTotals extends PartialEpoch {
  lr: number;
  /** True when `signal` stopped the epoch early. */
  interrupted: boolean;
}

/**
 * Runs the optimiser steps of one epoch; `at.step` advances with each. An epoch interrupted
 * before (`at.partial`) continues after the steps it had taken, with its sums.
 */
async function trainEpoch(ctx: EpochContext, epoch: number, at: ResumePoint): Promise<EpochTotals> {
  const { exp, model, algorithm, optimizer, seed } = ctx;
  const done = at.partial;
  at.partial = undefined;
  const progress =
    ctx.progressStream === null
      ? null
      : createProgress({
          total: (ctx.stepsPerEpoch - (done?.steps ?? 0)) * exp.batchSize,
          label: `epoch ${epoch + 1}/${exp.epochs}`,
          stream: ctx.progressStream,
        });
  const totals: EpochTotals = {
    steps: 0,
    loss: 0,
    localLoss: null,
    accuracy: 0,
    seconds: 0,
    ...done,
    lr: ctx.schedule(at.step),
    interrupted: false,
  };
  let index = 0;
  for (const batch of stepBatches(exp, ctx.ds, ctx.config, { seed, epoch, limit: ctx.limitTrain })) {
    if (index++ < (done?.steps ?? 0)) {
      // taken before the interruption: the data order (and augmentation) is replayed, not the step
      tf.dispose([batch.x, batch.labels]);
      continue;
    }
    const started = performance.now();
    totals.lr = ctx.schedule(at.step);
    const result: StepResult = algorithm.step(model, batch, createRandom(hashSeed(seed, 2, at.step)));
    try {
      const guard = { step: at.step, epoch: epoch + 1, checkpoint: at.checkpoint, lr: exp.lr };
      checkFinite(result.loss, guard);
      if (result.localLoss !== undefined) checkFinite(result.localLoss, { ...guard, what: 'local loss' });
      optimizer.apply(ctx.entries, result.grads, totals.lr);
    } finally {
      tf.dispose([...result.grads.values(), batch.x, batch.labels]);
    }
    totals.seconds += (performance.now() - started) / 1000;
    at.step++;
    totals.steps++;
    totals.loss += result.loss;
    totals.accuracy += result.accuracy ?? 0;
    if (result.localLoss !== undefined) totals.localLoss = (totals.localLoss ?? 0) + result.localLoss;
    progress?.tick(batch.size, { loss: result.loss, acc: result.accuracy });
    if (ctx.logEvery > 0 && at.step % ctx.logEvery === 0) {
      const row: StepMetrics = {
        step: at.step,
        epoch: epoch + 1,
        loss: result.loss,
        local_loss: result.localLoss ?? null,
        train_batch_accuracy: result.accuracy ?? null,
        lr: totals.lr,
      };
      appendMetrics(ctx.runDir, row as unknown as Record<string, unknown>, STEPS_FILE);
    }
    if (ctx.signal !== undefined) {
      // let signal handlers run (the steps are synchronous), then stop if asked to
      await new Promise((resolve) => setImmediate(resolve));
      if (ctx.signal.aborted && totals.steps < ctx.stepsPerEpoch) {
        totals.interrupted = true;
        break;
      }
    }
  }
  progress?.done();
  return totals;
}

/** Alignment angles of the rule on the epoch's first batch (null for exact rules). */
function epochAlignment(ctx: EpochContext, epoch: number): Record<string, number> | null {
  const first = firstStepBatch(ctx.exp, ctx.ds, ctx.config, { seed: ctx.seed, epoch, limit: ctx.limitTrain });
  if (first === null) return null;
  try {
    return alignmentAngles(ctx.model, ctx.algorithm, first, hashSeed(ctx.seed, 4, epoch));
  } finally {
    tf.dispose([first.x, first.labels]);
  }
}

/** The settings a run records (config.json and every checkpoint), before any resume history. */
export function runConfigOf(options: TrainOptions, ds: Dataset, model: LocalMixerConfig): RunConfig {
  const data: DataSource =
    options.data ??
    (options.dataset === undefined
      ? { loader: options.experiment.dataset, dir: options.dataDir ?? null }
      : { loader: ds.name, dir: null });
  return {
    experiment: options.experiment,
    algorithm: options.algorithm,
    algorithmOptions: options.algorithmOptions ?? {},
    modelOverrides: options.modelOverrides ?? {},
    model,
    data,
    seed: options.seed ?? 0,
    limitTrain: options.limitTrain ?? null,
    limitTest: options.limitTest ?? null,
    history: [],
  };
}

export { STEPS_FILE } from './run.js';

/**
 * Checks the settings of a run against its data before anything is written; returns the optimiser
 * steps per epoch. Throws a {@link TrainSettingsError} naming the setting and the fix.
 */
export function checkTrainSettings(options: TrainOptions, ds: Dataset): number {
  const exp = options.experiment;
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed)) {
    throw new TrainSettingsError(`--seed ${seed} is not an integer between -2^53 and 2^53`);
  }
  if (ds.train.count === 0 || ds.test.count === 0) {
    throw new TrainSettingsError(
      `the dataset ${ds.name} has ${ds.train.count} training and ${ds.test.count} test examples; both splits need examples`,
    );
  }
  for (const [flag, limit, count, split] of [
    ['--limit-train', options.limitTrain, ds.train.count, 'training'],
    ['--limit-test', options.limitTest, ds.test.count, 'test'],
  ] as const) {
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) {
      throw new TrainSettingsError(`${flag} ${limit} is not a positive integer`);
    }
    if (limit !== undefined && limit > count) {
      throw new TrainSettingsError(
        `${flag} ${limit} is more than the ${count} ${split} examples of ${ds.name}; use at most ${count}`,
      );
    }
  }
  if (options.logEvery !== undefined && (!Number.isSafeInteger(options.logEvery) || options.logEvery < 0)) {
    throw new TrainSettingsError(`--log-every ${options.logEvery} is not a whole number ≥ 0`);
  }
  const trainCount = options.limitTrain ?? ds.train.count;
  const stepsPerEpoch = Math.floor(trainCount / exp.batchSize);
  if (stepsPerEpoch < 1) {
    throw new TrainSettingsError(
      `batch size ${exp.batchSize} is larger than the ${trainCount} training examples; lower --batch-size or raise --limit-train`,
    );
  }
  return stepsPerEpoch;
}

/**
 * Trains a LocalMixer with one learning rule and writes the run folder. Returns the summary of
 * the last epoch. Resuming (same run folder, same settings) continues exactly: data order, noise
 * and feedback matrices are derived from the seed, and the optimiser state is restored. The run
 * folder is locked while training (`run.lock`).
 */
export async function train(options: TrainOptions): Promise<TrainSummary> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const exp = options.experiment;
  const seed = options.seed ?? 0;
  const ds = options.dataset ?? loadDataset(exp.dataset, { dataDir: options.dataDir });
  const config = modelConfigFor(exp, ds, options.modelOverrides);
  let runConfig = runConfigOf(options, ds, config);
  // every check that can fail on the settings comes before the run folder is touched
  const stepsPerEpoch = checkTrainSettings(options, ds);

  const lock = claimRunDir(options.runDir, options.resume === true);
  const model = createModel(config, seed);
  const algorithm: Algorithm = createAlgorithm(
    options.algorithm,
    model,
    options.algorithmOptions,
    createRandom(hashSeed(seed, 1)),
  );
  const optimizer: Optimizer = experimentOptimizer(exp);
  const trainable = new Set(algorithm.trainable(model));
  const ctx: EpochContext = {
    exp,
    ds,
    config,
    model,
    algorithm,
    optimizer,
    entries: model.entries.filter((e) => trainable.has(e.name)),
    schedule: experimentSchedule(exp, stepsPerEpoch),
    seed,
    stepsPerEpoch,
    runDir: options.runDir,
    limitTrain: options.limitTrain,
    progressStream: options.progressStream,
    signal: options.signal,
    logEvery: options.logEvery ?? 0,
  };
  const save = (at: ResumePoint, partial?: PartialEpoch) => {
    const extra: CheckpointExtra = { seed, run: runConfig, ...(partial ? { partial } : {}) };
    return saveCheckpoint(options.runDir, {
      epoch: at.epoch,
      step: at.step,
      params: namedParams(model.entries),
      optimizer: optimizer.state(),
      extra,
    });
  };

  const wallStart = performance.now();
  let summary: TrainSummary | null = null;
  try {
    let at: ResumePoint = { epoch: 0, step: 0, checkpoint: null };
    if (options.resume) {
      const resumed = resumeRun(options.runDir, runConfig, model, optimizer, log, {
        changeLr: options.changeLr,
      });
      at = resumed.at;
      runConfig = resumed.runConfig;
    }
    writeConfig(options.runDir, runConfig);
    const backend = options.backend ?? tf.getBackend();
    log(
      `training ${options.algorithm} (${algorithm.description}) on ${ds.name}, LocalMixer ${exp.model}, ` +
        `${options.limitTrain ?? ds.train.count} examples, batch ${exp.batchSize}, ${exp.epochs} epochs, backend ${backend}`,
    );
    for (let epoch = at.epoch; epoch < exp.epochs; epoch++) {
      const totals = await trainEpoch(ctx, epoch, at);
      if (totals.interrupted) {
        const { lr: _lr, interrupted: _i, ...partial } = totals;
        const file = save(at, partial);
        throw new TrainingInterruptedError(options.signal?.reason, file, at.step, options.runDir);
      }
      const readoutLoss =
        exp.objective === 'contrastive'
          ? trainReadout(model, ds, {
              seed: hashSeed(seed, 3),
              epoch,
              limit: options.limitTrain,
              batchSize: exp.batchSize,
            })
          : null;
      const alignment = epochAlignment(ctx, epoch);
      const testError = evaluateError(model, ds, ds.test, options.limitTest, options.evalBatchSize);
      const trainError = evaluateError(model, ds, ds.train, options.limitTrain, options.evalBatchSize);
      const row = epochRow(epoch, at.step, totals, stepsPerEpoch, exp.batchSize, {
        test_error: testError,
        train_error: trainError,
        lr: totals.lr,
        readout_loss: readoutLoss,
        alignment_deg: alignment,
      });
      appendMetrics(options.runDir, row as unknown as Record<string, unknown>);
      at.epoch = epoch + 1;
      at.checkpoint = save(at);
      if (options.plots !== false) writeLearningCurves(options.runDir, [options.runDir]);
      log(`${epochLine(row, exp.epochs)} live tensors ${row.live_tensors}`);
      summary = trainSummary(options, ds, row, (performance.now() - wallStart) / 1000, backend);
      if (options.signal?.aborted && epoch + 1 < exp.epochs) {
        throw new TrainingInterruptedError(options.signal.reason, at.checkpoint, at.step, options.runDir);
      }
    }
  } finally {
    algorithm.dispose();
    optimizer.dispose();
    model.dispose();
    lock.release();
  }
  if (summary === null) {
    throw new Error(`nothing to train: the run in ${options.runDir} already completed ${exp.epochs} epochs`);
  }
  return summary;
}
