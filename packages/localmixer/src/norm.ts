import type * as tf from '@tensorflow/tfjs';
import { type Linearizable, layerNorm, layerNormLinearized } from '@fwdgrad/jvp-core';
import type { NormKind } from './config.js';

/**
 * The normalisation of one site, for an activation of rank `rank` whose "local" axes (the channels of one
 * patch, or of one group of one patch; the channels of one token for token mixing) are `localAxes`.
 * All kinds use the same parameter-free formula (REFERENCE 2): μ = E[x], var = E[x²] − μ², ε = 1e-5,
 * y = (x − μ)/√(var + ε); they differ only in the axes the statistics are taken over:
 * local-layer → `localAxes`; layer → all non-batch axes; batch → the batch axis 0 (current-batch statistics).
 */
export function normAxes(kind: NormKind, rank: number, localAxes: number[]): number[] {
  if (kind === 'local-layer') return localAxes.map((a) => (a < 0 ? a + rank : a));
  if (kind === 'layer') return Array.from({ length: rank - 1 }, (_, i) => i + 1);
  return [0];
}

/** Normalises `x` with the statistics of {@link normAxes} (`layerNorm` of jvp-core: forward- and reverse-mode). */
export function normalizeWith(kind: NormKind, x: tf.Tensor, localAxes: number[]): tf.Tensor {
  return layerNorm(x, normAxes(kind, x.rank, localAxes));
}

/**
 * `(x) => normalizeWith(kind, x, localAxes)` that can also linearise itself (jvp-core's `Linearizable`): an
 * activity estimate then gets the exact VJP of this normalisation from the forward pass instead of running it
 * again under `tf.grad`.
 */
export function normalizer(kind: NormKind, localAxes: number[]): Linearizable {
  return Object.assign((x: tf.Tensor) => normalizeWith(kind, x, localAxes), {
    linearize: (x: tf.Tensor) => layerNormLinearized(x, normAxes(kind, x.rank, localAxes)),
  });
}
