import * as tf from '@tensorflow/tfjs';
import { batches, type Dataset, type Split } from '@fwdgrad/datasets';
import {
  exactContext,
  forward,
  type LocalMixerConfig,
  type LocalMixerOptions,
  resolveConfig,
} from '@fwdgrad/localmixer';
import type { Model } from './model.js';
import type { ExperimentConfig } from './presets.js';

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
