import * as tf from '@tensorflow/tfjs';
import type { Random } from '@fwdgrad/random';

/** Initialisation schemes of the authors' code (REFERENCE 0). */
export type InitScheme = 'kaiming' | 'lecun';

/**
 * The standard deviation the authors' code gives a weight of `shape` (REFERENCE 0): kaiming
 * min(2/√fan_in, 0.1), lecun min(1/√fan_in, 0.1), with fan_in = shape[-2] (C′ for grouped layers) unless given.
 */
export function initScale(shape: readonly number[], scheme: InitScheme = 'kaiming', fanIn?: number): number {
  if (scheme !== 'kaiming' && scheme !== 'lecun') {
    throw new Error(`initScale: unknown scheme '${String(scheme)}'; use 'kaiming' or 'lecun'.`);
  }
  const fan = fanIn ?? shape[shape.length - 2];
  if (fan === undefined || !Number.isInteger(fan) || fan < 1) {
    throw new Error(
      `initScale: cannot take fan_in = shape[-2] of shape [${shape.join(',')}]; give a weight of rank ≥ 2 ` +
        `or pass fanIn (a positive integer).`,
    );
  }
  return Math.min((scheme === 'kaiming' ? 2 : 1) / Math.sqrt(fan), 0.1);
}

/**
 * A weight drawn with the scheme from `random`: {@link initScale}(shape, scheme, fanIn) · N(0, 1). Forward
 * weights (LocalMixer) and the fixed feedback matrices of the FA rules are drawn with this function.
 */
export function initWeight(shape: number[], scheme: InitScheme, random: Random, fanIn?: number): tf.Tensor {
  const scale = initScale(shape, scheme, fanIn);
  return tf.tidy(() => tf.mul(random.normal(shape), scale));
}
