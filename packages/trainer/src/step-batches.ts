import * as tf from '@tensorflow/tfjs';
import {
  type Augment,
  batches,
  byolViewConfigs,
  type Dataset,
  padCropFlipAugment,
  resizedCropFlipAugment,
  viewAugment,
  viewBatches,
} from '@fwdgrad/datasets';
import { type LocalMixerConfig, patchify } from '@fwdgrad/localmixer';
import type { StepBatch } from './algorithms/types.js';
import type { ExperimentConfig } from './presets.js';

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
export function* stepBatches(
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

/** The first training batch of an epoch (the one alignment angles are measured on), or null. */
export function firstStepBatch(
  exp: ExperimentConfig,
  ds: Dataset,
  config: LocalMixerConfig,
  opts: { seed: number; epoch: number; limit?: number },
): StepBatch | null {
  const gen = stepBatches(exp, ds, config, opts);
  const first = gen.next();
  gen.return(undefined);
  return first.done ? null : first.value;
}
