import * as tf from '@tensorflow/tfjs';

/** Test helpers (not part of the package's API). */

export const values = (t: tf.Tensor): number[] => Array.from(t.dataSync());

/** Deterministic pseudo-random tensor in (lo, hi) from a small LCG. */
export function rand(shape: number[], seed: number, lo = -1, hi = 1): tf.Tensor {
  let s = (seed * 2654435761) >>> 0 || 1;
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    v[i] = lo + ((s >>> 8) / 16777216) * (hi - lo);
  }
  return tf.tensor(v, shape);
}

/** Flattens several tensors into one number array. */
export function flat(ts: tf.Tensor[]): number[] {
  return ts.flatMap(values);
}

export interface UnbiasednessStats {
  /** Largest |mean − truth| / standard error over coordinates. */
  maxZ: number;
  /** Σ z² over coordinates (≈ dims for an unbiased estimator). */
  chi2: number;
  dims: number;
  /** The grand mean per coordinate. */
  mean: number[];
  /** Per-coordinate variance of a single batch mean. */
  variance: number[];
}

/**
 * z-statistics of the grand mean of R independent batch means (each the mean of K estimates) against the
 * truth; the standard error comes from the batch means' own spread, so the tolerance follows the estimator's
 * variance (appendix 8 test).
 */
export function unbiasedness(batchMeans: number[][], truth: number[]): UnbiasednessStats {
  const r = batchMeans.length;
  const dims = truth.length;
  const mean = truth.map((_, i) => batchMeans.reduce((s, b) => s + b[i], 0) / r);
  const variance = truth.map((_, i) => batchMeans.reduce((s, b) => s + (b[i] - mean[i]) ** 2, 0) / (r - 1));
  let maxZ = 0;
  let chi2 = 0;
  truth.forEach((g, i) => {
    const se = Math.sqrt(variance[i] / r);
    const z = se === 0 ? (mean[i] === g ? 0 : Number.POSITIVE_INFINITY) : Math.abs(mean[i] - g) / se;
    maxZ = Math.max(maxZ, z);
    chi2 += z * z;
  });
  return { maxZ, chi2, dims, mean, variance };
}

/**
 * The acceptance rule used by the unbiasedness tests: no coordinate beyond 4.5 standard errors and the
 * aggregate Σz² below dims + 5·√(2·dims) (a chi-square with `dims` degrees of freedom, ≈ 5σ).
 */
export function looksUnbiased(s: UnbiasednessStats): boolean {
  return s.maxZ < 4.5 && s.chi2 < s.dims + 5 * Math.sqrt(2 * s.dims);
}

/** Counts reverse-mode passes (tf.grad, tf.grads, tf.valueAndGrads, … all go through engine.gradients). */
export function countReverseMode<T>(fn: () => T): { result: T; calls: number } {
  const engine = tf.engine() as unknown as Record<string, unknown>;
  const original = engine.gradients as (...args: unknown[]) => unknown;
  let calls = 0;
  engine.gradients = function counted(this: unknown, ...args: unknown[]) {
    calls++;
    return original.apply(this, args);
  };
  try {
    return { result: fn(), calls };
  } finally {
    delete engine.gradients;
  }
}
