import * as tf from '@tensorflow/tfjs';
import { type Dataset, hashSeed } from '@fwdgrad/datasets';
import { loadDataset } from '@fwdgrad/datasets/node';
import { createRandom } from '@fwdgrad/jvp-core';
import type { LocalMixerConfig, LocalMixerOptions } from '@fwdgrad/localmixer';
import { alignmentAngles } from './alignment.js';
import { createAlgorithm } from './algorithms/registry.js';
import type { Algorithm, AlgorithmId, AlgorithmOptions, StepResult } from './algorithms/types.js';
import { appendMetrics, saveCheckpoint, writeConfig } from './checkpoint.js';
import { evaluateError, modelConfigFor } from './evaluate.js';
import { checkFinite } from './guard.js';
import { createModel, type Model } from './model.js';
import { createOptimizer, type Optimizer } from './optim.js';
import { namedParams, type ParamEntry } from './params.js';
import { type ExperimentConfig, experimentSchedule } from './presets.js';
import { createProgress, type ProgressStream } from './progress.js';
import { trainReadout } from './readout.js';
import { claimRunDir, type ResumePoint, type RunConfig, resumeRun } from './run.js';
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
  limitTrain?: number;
  progressStream?: ProgressStream | null;
}

/** Sums over the optimiser steps of one epoch. */
interface EpochTotals {
  loss: number;
  /** Null when the rule has no local losses. */
  localLoss: number | null;
  accuracy: number;
  /** Seconds spent in steps (data preparation excluded). */
  seconds: number;
  /** The learning rate of the epoch's last step. */
  lr: number;
}

/** Runs the optimiser steps of one epoch; `at.step` advances with each. */
function trainEpoch(ctx: EpochContext, epoch: number, at: ResumePoint): EpochTotals {
  const { exp, model, algorithm, optimizer, seed } = ctx;
  const progress =
    ctx.progressStream === null
      ? null
      : createProgress({
          total: ctx.stepsPerEpoch * exp.batchSize,
          label: `epoch ${epoch + 1}/${exp.epochs}`,
          stream: ctx.progressStream,
        });
  const totals: EpochTotals = {
    loss: 0,
    localLoss: null,
    accuracy: 0,
    seconds: 0,
    lr: ctx.schedule(at.step),
  };
  for (const batch of stepBatches(exp, ctx.ds, ctx.config, { seed, epoch, limit: ctx.limitTrain })) {
    const started = performance.now();
    totals.lr = ctx.schedule(at.step);
    const result: StepResult = algorithm.step(model, batch, createRandom(hashSeed(seed, 2, at.step)));
    try {
      const guard = { step: at.step, epoch, checkpoint: at.checkpoint };
      checkFinite(result.loss, guard);
      if (result.localLoss !== undefined) checkFinite(result.localLoss, { ...guard, what: 'local loss' });
      optimizer.apply(ctx.entries, result.grads, totals.lr);
    } finally {
      tf.dispose([...result.grads.values(), batch.x, batch.labels]);
    }
    totals.seconds += (performance.now() - started) / 1000;
    at.step++;
    totals.loss += result.loss;
    totals.accuracy += result.accuracy ?? 0;
    if (result.localLoss !== undefined) totals.localLoss = (totals.localLoss ?? 0) + result.localLoss;
    progress?.tick(batch.size, { loss: result.loss, acc: result.accuracy });
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

/**
 * Trains a LocalMixer with one learning rule and writes the run folder. Returns the summary of
 * the last epoch. Resuming (same run folder, same settings) continues exactly: data order, noise
 * and feedback matrices are derived from the seed, and the optimiser state is restored.
 */
export async function train(options: TrainOptions): Promise<TrainSummary> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const exp = options.experiment;
  const seed = options.seed ?? 0;
  const ds = options.dataset ?? loadDataset(exp.dataset, { dataDir: options.dataDir });
  const config = modelConfigFor(exp, ds, options.modelOverrides);
  const runConfig: RunConfig = {
    experiment: exp,
    algorithm: options.algorithm,
    algorithmOptions: options.algorithmOptions ?? {},
    modelOverrides: options.modelOverrides ?? {},
    model: config,
    seed,
    limitTrain: options.limitTrain ?? null,
    limitTest: options.limitTest ?? null,
  };

  claimRunDir(options.runDir, options.resume === true);
  const model = createModel(config, seed);
  const algorithm: Algorithm = createAlgorithm(
    options.algorithm,
    model,
    options.algorithmOptions,
    createRandom(hashSeed(seed, 1)),
  );
  const optimizer: Optimizer = createOptimizer(exp.optimizer, {
    momentum: exp.momentum,
    weightDecay: exp.weightDecay,
    headLr: exp.headLr,
    lastLayerLr: exp.lastLayerLr,
  });
  const trainable = new Set(algorithm.trainable(model));

  const trainCount = options.limitTrain ?? ds.train.count;
  const stepsPerEpoch = Math.floor(trainCount / exp.batchSize);
  if (stepsPerEpoch < 1) {
    throw new Error(
      `batch size ${exp.batchSize} is larger than the ${trainCount} training examples; lower --batch-size or raise --limit-train`,
    );
  }
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
    limitTrain: options.limitTrain,
    progressStream: options.progressStream,
  };

  const at: ResumePoint = options.resume
    ? resumeRun(options.runDir, runConfig, model, optimizer, log)
    : { epoch: 0, step: 0, checkpoint: null };
  writeConfig(options.runDir, runConfig);
  const backend = options.backend ?? tf.getBackend();
  log(
    `training ${options.algorithm} (${algorithm.description}) on ${ds.name}, LocalMixer ${exp.model}, ` +
      `${trainCount} examples, batch ${exp.batchSize}, ${exp.epochs} epochs, backend ${backend}`,
  );

  const wallStart = performance.now();
  let summary: TrainSummary | null = null;
  try {
    for (let epoch = at.epoch; epoch < exp.epochs; epoch++) {
      const totals = trainEpoch(ctx, epoch, at);
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
      const row: EpochMetrics = {
        epoch: epoch + 1,
        step: at.step,
        loss: totals.loss / stepsPerEpoch,
        local_loss: totals.localLoss === null ? null : totals.localLoss / stepsPerEpoch,
        readout_loss: readoutLoss,
        alignment_deg: alignment,
        train_batch_accuracy: totals.accuracy / stepsPerEpoch,
        test_error: testError,
        train_error: trainError,
        lr: totals.lr,
        seconds: totals.seconds,
        examples_per_second: (stepsPerEpoch * exp.batchSize) / totals.seconds,
        live_tensors: tf.memory().numTensors,
      };
      appendMetrics(options.runDir, row as unknown as Record<string, unknown>);
      at.checkpoint = saveCheckpoint(options.runDir, {
        epoch: epoch + 1,
        step: at.step,
        params: namedParams(model.entries),
        optimizer: optimizer.state(),
        extra: { seed },
      });
      at.epoch = epoch + 1;
      log(
        `epoch ${epoch + 1}/${exp.epochs}: loss ${row.loss.toFixed(4)}` +
          (row.local_loss === null ? '' : ` local ${row.local_loss.toFixed(4)}`) +
          ` test error ${(100 * testError).toFixed(2)}% train error ${(100 * trainError).toFixed(2)}%` +
          ` ${row.examples_per_second.toFixed(0)} ex/s live tensors ${row.live_tensors}`,
      );
      summary = {
        algo: options.algorithm,
        model: exp.model,
        dataset: ds.name,
        objective: exp.objective,
        epochs: epoch + 1,
        test_error: testError,
        train_error: trainError,
        examples_per_second: row.examples_per_second,
        seconds: (performance.now() - wallStart) / 1000,
        backend,
        run_dir: options.runDir,
      };
    }
  } finally {
    algorithm.dispose();
    optimizer.dispose();
    model.dispose();
  }
  if (summary === null) {
    throw new Error(`nothing to train: the run in ${options.runDir} already completed ${exp.epochs} epochs`);
  }
  return summary;
}
