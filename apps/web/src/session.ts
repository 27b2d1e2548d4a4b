import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '@fwdgrad/datasets';

import {
  type AlgorithmId,
  checkFinite,
  createAlgorithm,
  createModel,
  evaluateError,
  experimentOptimizer,
  experimentSchedule,
  modelConfigFor,
  resolveExperiment,
  stepBatches,
} from '@fwdgrad/trainer';
import { MODELS, type RunOptions } from './options.js';
import { createRandom, hashSeed } from '@fwdgrad/random';

/** What one finished run reports: the fields of `fwdgrad train --json`, errors as fractions. */
export interface RunResult {
  algo: AlgorithmId;
  model: string;
  dataset: string;
  backend: string;
  epochs: number;
  test_error: number;
  train_error: number;
  examples_per_second: number;
  seconds: number;
}

/** Progress of a run, for the live plots. */
export type RunEvent =
  | { kind: 'step'; step: number; epoch: number; loss: number; examplesPerSecond: number }
  | { kind: 'eval'; step: number; testError: number };

/** Lets the page draw between steps (tfjs GPU backends queue work; the UI thread needs its turns). */
const yieldToPage = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/**
 * Trains one rule in the page, as `fwdgrad train` does (same presets, data order, noise streams, optimiser and
 * schedule), reporting every step and evaluating the test error a few times per epoch.
 */
export async function trainInPage(
  ds: Dataset,
  algo: AlgorithmId,
  o: RunOptions,
  backend: string,
  onEvent: (e: RunEvent) => void,
  cancelled: () => boolean = () => false,
): Promise<RunResult> {
  const choice = MODELS[o.model];
  const exp = resolveExperiment(choice.preset, {
    model: choice.model,
    epochs: o.epochs,
    batchSize: o.batchSize,
    ...(o.lr === null ? {} : { lr: o.lr }),
  });
  const config = modelConfigFor(exp, ds, choice.overrides);
  const model = createModel(config, o.seed);
  const algorithm = createAlgorithm(algo, model, {}, createRandom(hashSeed(o.seed, 1)));
  const optimizer = experimentOptimizer(exp);
  const trainable = new Set(algorithm.trainable(model));
  const entries = model.entries.filter((e) => trainable.has(e.name));
  const limitTrain = Math.min(o.limitTrain, ds.train.count);
  const stepsPerEpoch = Math.floor(limitTrain / exp.batchSize);
  const schedule = experimentSchedule(exp, stepsPerEpoch);
  const evalEvery = Math.max(1, Math.floor(stepsPerEpoch / 4));
  const started = performance.now();
  let stepSeconds = 0;
  let step = 0;
  try {
    for (let epoch = 0; epoch < exp.epochs; epoch++) {
      for (const batch of stepBatches(exp, ds, config, { seed: o.seed, epoch, limit: limitTrain })) {
        if (cancelled()) throw new Error('stopped');
        const t0 = performance.now();
        const result = algorithm.step(model, batch, createRandom(hashSeed(o.seed, 2, step)));
        try {
          checkFinite(result.loss, { step, epoch, checkpoint: null });
          optimizer.apply(entries, result.grads, schedule(step));
        } finally {
          tf.dispose([...result.grads.values(), batch.x, batch.labels]);
        }
        stepSeconds += (performance.now() - t0) / 1000;
        step++;
        onEvent({
          kind: 'step',
          step,
          epoch,
          loss: result.loss,
          examplesPerSecond: (step * exp.batchSize) / stepSeconds,
        });
        if (step % evalEvery === 0 || step === stepsPerEpoch * exp.epochs) {
          onEvent({ kind: 'eval', step, testError: evaluateError(model, ds, ds.test, o.limitTest) });
        }
        await yieldToPage();
      }
    }
    return {
      algo,
      model: o.model,
      dataset: ds.name,
      backend,
      epochs: exp.epochs,
      test_error: evaluateError(model, ds, ds.test, o.limitTest),
      train_error: evaluateError(model, ds, ds.train, limitTrain),
      examples_per_second: (step * exp.batchSize) / stepSeconds,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    algorithm.dispose();
    optimizer.dispose();
    model.dispose();
  }
}
