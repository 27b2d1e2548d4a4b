import * as tf from '@tensorflow/tfjs';
import { expect, inject } from 'vitest';
import { jvp } from './index.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The tfjs backend a browser test instance runs on (vitest.browser.config.ts); absent in Node. */
    backend?: string;
  }
}

/**
 * The backend the tests run on: `webgl` or `webgpu` in the browser runs; in Node the one the shared vitest
 * setup activated from FWDGRAD_TEST_BACKEND (`cpu`, also for `native`, or `tensorflow`).
 */
export function testBackend(): string {
  return inject('backend') ?? tf.getBackend();
}

/** Deterministic pseudo-random tensor in (lo, hi), from a small LCG (tests only). */
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

function dot(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.sum(tf.mul(a, b)).dataSync()[0]);
}

function norm(a: tf.Tensor): number {
  return tf.tidy(() => tf.sqrt(tf.sum(tf.square(a))).dataSync()[0]);
}

/**
 * Checks the JVP of a single-output f at primals against tfjs reverse mode (w·(J u) = (Jᵀ w)·u,
 * relative `tol`) and a central finite difference (relative `fdTol`), for random u and w.
 */
export function checkJvp(
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  primals: tf.Tensor[],
  {
    seed = 1,
    tol = 1e-4,
    fdTol = 2e-2,
    h = 1e-2,
    reference = f,
    reverse = true,
  }: {
    seed?: number;
    tol?: number;
    fdTol?: number;
    h?: number;
    /** The same function written with ops whose tfjs gradients exist (tfjs lacks some). */
    reference?: (...xs: tf.Tensor[]) => tf.Tensor;
    /** Compare with reverse mode (false only where tfjs has no gradient at all). */
    reverse?: boolean;
  } = {},
): void {
  tf.tidy(() => {
    const us = primals.map((p, i) => rand(p.shape, seed * 31 + i));
    const [y, dy] = jvp(f, primals, us) as [tf.Tensor, tf.Tensor];
    expect(dy.shape).toEqual(y.shape);
    const w = rand(y.shape, seed * 17 + 7);
    if (reverse) {
      const forward = dot(w, dy);
      const grads = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(reference(...xs), w)))(primals);
      const back = grads.reduce((acc, g, i) => acc + dot(g, us[i]), 0);
      const scale = Math.max(1e-3, Math.abs(back), norm(dy) * norm(w) * 1e-3);
      expect(Math.abs(forward - back) / scale).toBeLessThan(tol);
    }
    // central finite difference along u
    const plus = f(...primals.map((p, i) => tf.add(p, tf.mul(h, us[i]))));
    const minus = f(...primals.map((p, i) => tf.sub(p, tf.mul(h, us[i]))));
    const fd = tf.div(tf.sub(plus, minus), 2 * h);
    const err = norm(tf.sub(fd, dy));
    expect(err / Math.max(norm(dy), 1e-2)).toBeLessThan(fdTol);
  });
}

/** Batched tangents [K, ...] give the same output tangents as K separate jvp calls. */
export function checkBatched(
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  primals: tf.Tensor[],
  k = 3,
  seed = 5,
): void {
  tf.tidy(() => {
    const us = primals.map((p, i) => rand([k, ...p.shape], seed * 13 + i));
    const [, dyBatched] = jvp(f, primals, us, { batched: true }) as [tf.Tensor, tf.Tensor];
    const singles = Array.from({ length: k }, (_, j) => {
      const uj = us.map((u) => tf.squeeze(tf.slice(u, [j], [1]), [0]));
      return (jvp(f, primals, uj) as [tf.Tensor, tf.Tensor])[1];
    });
    const expected = tf.stack(singles);
    expect(dyBatched.shape).toEqual(expected.shape);
    const err = norm(tf.sub(dyBatched, expected));
    expect(err / Math.max(norm(expected), 1e-6)).toBeLessThan(1e-5);
  });
}
