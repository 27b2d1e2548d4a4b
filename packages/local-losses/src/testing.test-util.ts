import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';

/** Seeded normal tensor (tfjs's own seeded generator; same seed, same numbers). */
export function randn(shape: number[], seed: number, scale = 1): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.randomNormal(shape, 0, 1, 'float32', seed), scale));
}

/** max|a − b| / max|b|: relative error in the max norm (b is the reference). */
export function relErr(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  return tf.tidy(() => {
    const num = tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] as number;
    const den = tf.max(tf.abs(b)).dataSync()[0] as number;
    return num / Math.max(den, 1e-30);
  });
}

/** Asserts a ≈ b to a relative (max-norm) tolerance, and that b is not trivially zero. */
export function expectClose(a: tf.Tensor, b: tf.Tensor, tol = 1e-5): void {
  const bMax = tf.tidy(() => tf.max(tf.abs(b)).dataSync()[0] as number);
  expect(bMax).toBeGreaterThan(0);
  expect(relErr(a, b)).toBeLessThanOrEqual(tol);
}

/** Max |t|. */
export function maxAbs(t: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(t)).dataSync()[0] as number);
}

/** Nested array → flat number[][] helpers for the loop-based references. */
export function toArray4(t: tf.Tensor): number[][][][] {
  return t.arraySync() as number[][][][];
}

/** mean over patches, flattened over groups: x[n][p][g][c] → xbar[n][g·C′ + c] (float64). */
export function poolLoops(x: number[][][][]): number[][] {
  return x.map((xn) => {
    const P = xn.length;
    const G = xn[0]?.length ?? 0;
    const Cg = xn[0]?.[0]?.length ?? 0;
    const out = new Array<number>(G * Cg).fill(0);
    for (let p = 0; p < P; p++)
      for (let g = 0; g < G; g++)
        for (let c = 0; c < Cg; c++)
          out[g * Cg + c] = (out[g * Cg + c] as number) + (xn[p]?.[g]?.[c] as number) / P;
    return out;
  });
}

/** u = xbar·w + b with explicit loops (float64). */
export function linearLoops(xbar: number[][], w: number[][], b: number[]): number[][] {
  return xbar.map((row) =>
    b.map((bk, k) => {
      let s = bk;
      for (let c = 0; c < row.length; c++) s += (row[c] as number) * (w[c]?.[k] as number);
      return s;
    }),
  );
}

/** log Σ exp, stable (float64). */
export function logSumExp(v: number[]): number {
  const m = Math.max(...v);
  return m + Math.log(v.reduce((s, a) => s + Math.exp(a - m), 0));
}
