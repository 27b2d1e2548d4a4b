import type * as tf from '@tensorflow/tfjs';
import type { Random } from '@fwdgrad/random';

/**
 * The distribution of a perturbation direction's entries: both are zero-mean with unit variance, which is all
 * that unbiasedness needs (paper appendix 8). They differ in the fourth moment κ = E[v⁴] (3 for Gaussian, 1 for
 * Rademacher), which enters the variance (appendix 9; see {@link noiseFourthMoment}).
 */
export type NoiseKind = 'gaussian' | 'rademacher';

/** The noise kinds, for validating user input. */
export const noiseKinds: readonly NoiseKind[] = ['gaussian', 'rademacher'];

/** Throws a clear error unless `kind` is a {@link NoiseKind}. */
export function checkNoiseKind(where: string, kind: unknown): asserts kind is NoiseKind {
  if (!noiseKinds.includes(kind as NoiseKind)) {
    throw new Error(`${where}: noise must be 'gaussian' or 'rademacher', got ${JSON.stringify(kind)}`);
  }
}

/**
 * A float32 tensor of independent zero-mean, unit-variance draws from `random` (the caller owns it): N(0, 1)
 * for `'gaussian'`, ±1 with probability ½ each for `'rademacher'`.
 */
export function sampleNoise(random: Random, shape: number[], kind: NoiseKind = 'gaussian'): tf.Tensor {
  checkNoiseKind('sampleNoise', kind);
  return kind === 'gaussian' ? random.normal(shape) : random.rademacher(shape);
}

/**
 * κ = E[v⁴] of a noise kind. With Gaussian noise (κ = 3) the variances of Table 1 hold; for general κ the
 * same derivation (appendix 9, eq. 43–48 and 68–70 with E[v⁴] = κ) gives `pq + κ − 1` and `pq + κ − 2` in place
 * of `pq + 2` and `pq + 1` (see `labTheory`).
 */
export function noiseFourthMoment(kind: NoiseKind): number {
  checkNoiseKind('noiseFourthMoment', kind);
  return kind === 'gaussian' ? 3 : 1;
}
