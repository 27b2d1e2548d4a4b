import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { createRandom } from '@fwdgrad/jvp-core';
import {
  type Augment,
  batches,
  byolViewConfigs,
  type Dataset,
  hashSeed,
  loadDataset,
  padCropFlipAugment,
  resizedCropFlipAugment,
  type Split,
  viewAugment,
  viewBatches,
} from '@fwdgrad/datasets';
import { alignmentAngle } from '@fwdgrad/baselines-fa';
import { createRandom as createJvpRandom, softmaxCrossEntropy } from '@fwdgrad/jvp-core';
import {
  classify,
  exactContext,
  finalFeatures,
  forward,
  forwardBackbone,
  type LocalMixerConfig,
  type LocalMixerOptions,
  patchify,
  resolveConfig,
} from '@fwdgrad/localmixer';
import { createAlgorithm } from './algorithms/registry.js';
import type { Algorithm, AlgorithmId, AlgorithmOptions, StepBatch } from './algorithms/types.js';
import {
  appendMetrics,
  ensureRunDir,
  listCheckpoints,
  loadLatestCheckpoint,
  readConfig,
  readMetrics,
  saveCheckpoint,
  writeConfig,
  writeMetrics,
} from './checkpoint.js';
import { checkFinite } from './guard.js';
import { createModel, type Model } from './model.js';
import { createOptimizer, type Optimizer } from './optim.js';
import { assignParams, namedParams } from './params.js';
import { type ExperimentConfig, experimentSchedule } from './presets.js';
import { createProgress, type ProgressStream } from './progress.js';

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

/** The exact rule whose gradient an approximate rule estimates (for alignment angles). */
const EXACT_COUNTERPART: Partial<Record<AlgorithmId, AlgorithmId>> = {
  fa: 'bp',
  dfa: 'bp',
  'fg-w': 'bp',
  'fg-a': 'bp',
  'l-fa': 'l-bp',
  'lg-fa': 'lg-bp',
  'lg-fg-w': 'lg-bp',
  'lg-fg-a': 'lg-bp',
};

/**
 * Angles (degrees) between an approximate rule's update and the exact gradient it stands for,
 * per backbone weight, on one batch (paper §6 item 2 for FA/DFA; forward-gradient estimates
 * likewise). `null` for exact rules.
 */
export function alignmentAngles(
  model: Model,
  algorithm: Algorithm,
  batch: StepBatch,
  seed: number,
): Record<string, number> | null {
  const exactId = EXACT_COUNTERPART[algorithm.id];
  if (exactId === undefined) return null;
  const exact = createAlgorithm(exactId, model);
  const approx = algorithm.step(model, batch, createJvpRandom(seed));
  const truth = exact.step(model, batch, createJvpRandom(seed));
  exact.dispose();
  const out: Record<string, number> = {};
  for (const e of model.entries) {
    if (e.group !== 'backbone' || e.kind !== 'weight') continue;
    const a = approx.grads.get(e.name);
    const t = truth.grads.get(e.name);
    if (a !== undefined && t !== undefined) out[e.name] = alignmentAngle(a, t);
  }
  tf.dispose([...approx.grads.values(), ...truth.grads.values()]);
  return out;
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

/** The configuration recorded in config.json; resuming requires the same. */
interface RunConfig {
  experiment: ExperimentConfig;
  algorithm: AlgorithmId;
  algorithmOptions: Partial<AlgorithmOptions>;
  modelOverrides: LocalMixerOptions;
  model: LocalMixerConfig;
  seed: number;
  limitTrain: number | null;
  limitTest: number | null;
}

/** The supervised augmentation of an experiment (REFERENCE 5), or none. */
function supervisedAugment(exp: ExperimentConfig, ds: Dataset): Augment | undefined {
  const a = exp.augmentation;
  if (a.kind === 'pad-crop-flip') return padCropFlipAugment({ pad: a.pad ?? 4 });
  if (a.kind === 'byol') {
    return resizedCropFlipAugment({
      outputSize: [ds.shape[0], ds.shape[1]],
      areaLowerBound: a.areaLowerBound ?? 0.08,
    });
  }
  return undefined;
}

/**
 * The training batches of one epoch as the algorithms see them: supervised, the (augmented)
 * images patchified; contrastive, two BYOL views of each image (REFERENCE 5), patchified and
 * stacked [2B, P, D] (view 1 first). Labels one-hot [B, K]. The caller disposes x and labels.
 */
function* stepBatches(
  exp: ExperimentConfig,
  ds: Dataset,
  config: LocalMixerConfig,
  opts: { seed: number; epoch: number; limit?: number },
): Generator<StepBatch> {
  const common = {
    batchSize: exp.batchSize,
    seed: opts.seed,
    epoch: opts.epoch,
    shuffle: true,
    dropLast: true,
    limit: opts.limit,
    normalize: ds,
  };
  if (exp.objective === 'contrastive') {
    const crop = {
      outputSize: [ds.shape[0], ds.shape[1]] as [number, number],
      areaLowerBound: exp.augmentation.areaLowerBound ?? 0.08,
    };
    const views = byolViewConfigs(exp.augmentation.kind === 'byol' ? crop : null).map(viewAugment);
    for (const b of viewBatches(ds.train, { ...common, views })) {
      const batch = tf.tidy(() => ({
        x: tf.keep(
          tf.concat(
            b.views.map((v) => patchify(v, config)),
            0,
          ),
        ),
        labels: tf.keep(tf.oneHot(b.labels, ds.numClasses).toFloat()),
        size: b.labels.shape[0],
      })) as unknown as StepBatch;
      tf.dispose([...b.views, b.labels]);
      yield batch;
    }
    return;
  }
  for (const b of batches(ds.train, { ...common, augment: supervisedAugment(exp, ds) })) {
    const batch = tf.tidy(() => ({
      x: tf.keep(patchify(b.images, config)),
      labels: tf.keep(tf.oneHot(b.labels, ds.numClasses).toFloat()),
      size: b.labels.shape[0],
    })) as unknown as StepBatch;
    tf.dispose([b.images, b.labels]);
    yield batch;
  }
}

/**
 * The online linear readout of the contrastive protocol (REFERENCE 4): one epoch of plain SGD
 * (lr 0.01) of the final classifier on un-augmented training data, input LN(stopgrad(mean_P(final
 * block))); its state is the classifier, kept across epochs. Returns the mean readout loss.
 */
export function trainReadout(
  model: Model,
  ds: Dataset,
  opts: { seed: number; epoch: number; limit?: number; batchSize: number; lr?: number },
): number {
  const lr = opts.lr ?? 0.01;
  const { w, b } = model.params.classifier;
  let sum = 0;
  let n = 0;
  for (const batch of batches(ds.train, {
    batchSize: opts.batchSize,
    seed: opts.seed,
    epoch: opts.epoch,
    shuffle: true,
    limit: opts.limit,
    normalize: ds,
  })) {
    tf.tidy(() => {
      const blocks = forwardBackbone(model.config, model.params, patchify(batch.images, model.config));
      const features = finalFeatures(model.config, blocks[blocks.length - 1]);
      const labels = tf.oneHot(batch.labels, ds.numClasses).toFloat();
      const { value, grads } = tf.variableGrads(
        () => tf.mean(softmaxCrossEntropy(labels, classify(model.params, features))) as tf.Scalar,
        [w, b],
      );
      sum += value.dataSync()[0];
      n++;
      w.assign(tf.sub(w, tf.mul(lr, grads[w.name])));
      b.assign(tf.sub(b, tf.mul(lr, grads[b.name])));
    });
    tf.dispose([batch.images, batch.labels]);
  }
  return n === 0 ? Number.NaN : sum / n;
}

/** Builds the LocalMixer configuration of an experiment for a dataset. */
export function modelConfigFor(
  exp: ExperimentConfig,
  ds: Dataset,
  overrides: LocalMixerOptions = {},
): LocalMixerConfig {
  return resolveConfig(exp.model, {
    imageShape: ds.shape as [number, number, number],
    numClasses: ds.numClasses,
    objective: exp.objective,
    ...overrides,
  });
}

/**
 * Test or train error of the final classifier (1 − accuracy) over a split, un-augmented, in
 * batches, with the exact forward pass.
 */
export function evaluateError(
  model: Model,
  ds: Dataset,
  split: Split,
  limit?: number,
  batchSize = 500,
): number {
  let correct = 0;
  let total = 0;
  for (const b of batches(split, { batchSize, shuffle: false, limit, normalize: ds })) {
    const hits = tf.tidy(() => {
      const { logits, blocks } = forward(model.config, model.params, b.images, exactContext());
      tf.dispose(blocks);
      return tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), b.labels), 'int32')).dataSync()[0];
    });
    correct += hits;
    total += b.labels.shape[0];
    tf.dispose([b.images, b.labels]);
  }
  return total === 0 ? Number.NaN : 1 - correct / total;
}

function sameRun(a: RunConfig, b: RunConfig): string | null {
  const keys: (keyof RunConfig)[] = ['algorithm', 'seed', 'limitTrain', 'limitTest'];
  for (const k of keys) {
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k]))
      return `${k}: ${JSON.stringify(a[k])} vs ${JSON.stringify(b[k])}`;
  }
  // the number of epochs may grow (continue a finished run); everything else must match
  if (JSON.stringify({ ...a.experiment, epochs: 0 }) !== JSON.stringify({ ...b.experiment, epochs: 0 })) {
    return 'the experiment settings differ';
  }
  if (JSON.stringify(a.model) !== JSON.stringify(b.model)) return 'the model configuration differs';
  if (JSON.stringify(a.algorithmOptions) !== JSON.stringify(b.algorithmOptions))
    return 'the algorithm options differ';
  return null;
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

  // Run folder: never touch an existing run unless asked to resume it.
  ensureRunDir(options.runDir);
  const existing = listCheckpoints(options.runDir);
  if (!options.resume && (existing.length > 0 || existsSync(`${options.runDir}/metrics.jsonl`))) {
    throw new Error(
      `run folder ${options.runDir} already holds a run; pass --resume to continue it or choose another --run-dir`,
    );
  }
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
  const entries = model.entries.filter((e) => trainable.has(e.name));

  const trainCount = options.limitTrain ?? ds.train.count;
  const stepsPerEpoch = Math.floor(trainCount / exp.batchSize);
  if (stepsPerEpoch < 1) {
    throw new Error(
      `batch size ${exp.batchSize} is larger than the ${trainCount} training examples; lower --batch-size or raise --limit-train`,
    );
  }
  const schedule = experimentSchedule(exp, stepsPerEpoch);

  let startEpoch = 0;
  let step = 0;
  let lastCheckpoint: string | null = null;
  if (options.resume) {
    const saved = readConfig<RunConfig>(options.runDir);
    if (saved !== null) {
      const diff = sameRun(saved, runConfig);
      if (diff !== null) {
        throw new Error(
          `cannot resume ${options.runDir}: its settings differ (${diff}); resume with the same flags`,
        );
      }
      if (saved.experiment.epochs !== exp.epochs) {
        log(
          `resuming with ${exp.epochs} epochs instead of ${saved.experiment.epochs}: the learning-rate schedule ` +
            'is recomputed for the new length, so the result differs from a run planned that long',
        );
      }
    }
    const ckpt = loadLatestCheckpoint(options.runDir);
    if (ckpt !== null) {
      assignParams(model.entries, ckpt.params);
      optimizer.loadState(ckpt.optimizer);
      tf.dispose([...Object.values(ckpt.params), ...Object.values(ckpt.optimizer)]);
      startEpoch = ckpt.epoch;
      step = ckpt.step;
      lastCheckpoint = ckpt.file;
      // rows of epochs after the checkpoint (an interrupted epoch's) are redone
      writeMetrics(
        options.runDir,
        readMetrics<{ epoch: number }>(options.runDir).filter((r) => r.epoch <= ckpt.epoch),
      );
      log(`resuming ${options.runDir} after epoch ${startEpoch} (step ${step})`);
    }
  }
  writeConfig(options.runDir, runConfig);
  log(
    `training ${options.algorithm} (${algorithm.description}) on ${ds.name}, LocalMixer ${exp.model}, ` +
      `${trainCount} examples, batch ${exp.batchSize}, ${exp.epochs} epochs, backend ${options.backend ?? tf.getBackend()}`,
  );

  const wallStart = performance.now();
  let summary: TrainSummary | null = null;
  try {
    for (let epoch = startEpoch; epoch < exp.epochs; epoch++) {
      const progress =
        options.progressStream === null
          ? null
          : createProgress({
              total: stepsPerEpoch * exp.batchSize,
              label: `epoch ${epoch + 1}/${exp.epochs}`,
              stream: options.progressStream,
            });
      let lossSum = 0;
      let localSum = 0;
      let hasLocal = false;
      let accSum = 0;
      let trainSeconds = 0;
      let lr = schedule(step);
      for (const batch of stepBatches(exp, ds, config, { seed, epoch, limit: options.limitTrain })) {
        const started = performance.now();
        lr = schedule(step);
        const result = algorithm.step(model, batch, createRandom(hashSeed(seed, 2, step)));
        try {
          checkFinite(result.loss, { step, epoch, checkpoint: lastCheckpoint });
          if (result.localLoss !== undefined) {
            checkFinite(result.localLoss, { step, epoch, what: 'local loss', checkpoint: lastCheckpoint });
          }
          optimizer.apply(entries, result.grads, lr);
        } finally {
          tf.dispose([...result.grads.values(), batch.x, batch.labels]);
        }
        trainSeconds += (performance.now() - started) / 1000;
        step++;
        lossSum += result.loss;
        accSum += result.accuracy ?? 0;
        if (result.localLoss !== undefined) {
          hasLocal = true;
          localSum += result.localLoss;
        }
        progress?.tick(batch.size, { loss: result.loss, acc: result.accuracy });
      }
      progress?.done();
      const readoutLoss =
        exp.objective === 'contrastive'
          ? trainReadout(model, ds, {
              seed: hashSeed(seed, 3),
              epoch,
              limit: options.limitTrain,
              batchSize: exp.batchSize,
            })
          : null;
      const alignment = (() => {
        const gen = stepBatches(exp, ds, config, { seed, epoch, limit: options.limitTrain });
        const first = gen.next();
        gen.return(undefined);
        if (first.done) return null;
        try {
          return alignmentAngles(model, algorithm, first.value, hashSeed(seed, 4, epoch));
        } finally {
          tf.dispose([first.value.x, first.value.labels]);
        }
      })();
      const testError = evaluateError(model, ds, ds.test, options.limitTest, options.evalBatchSize);
      const trainError = evaluateError(model, ds, ds.train, options.limitTrain, options.evalBatchSize);
      const row: EpochMetrics = {
        epoch: epoch + 1,
        step,
        loss: lossSum / stepsPerEpoch,
        local_loss: hasLocal ? localSum / stepsPerEpoch : null,
        readout_loss: readoutLoss,
        alignment_deg: alignment,
        train_batch_accuracy: accSum / stepsPerEpoch,
        test_error: testError,
        train_error: trainError,
        lr,
        seconds: trainSeconds,
        examples_per_second: (stepsPerEpoch * exp.batchSize) / trainSeconds,
        live_tensors: tf.memory().numTensors,
      };
      appendMetrics(options.runDir, row as unknown as Record<string, unknown>);
      lastCheckpoint = saveCheckpoint(options.runDir, {
        epoch: epoch + 1,
        step,
        params: namedParams(model.entries),
        optimizer: optimizer.state(),
        extra: { seed },
      });
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
        backend: options.backend ?? tf.getBackend(),
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
