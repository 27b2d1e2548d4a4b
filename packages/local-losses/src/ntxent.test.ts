import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { ntXent, poolFeatures, replicatedInfoNce } from './index.js';

describe('ntXent on stacked projections', () => {
  const N = 3;
  const x = tf.randomNormal([N, 2, 2, 3], 0, 1, 'float32', 1);
  const y = tf.randomNormal([N, 2, 2, 3], 0, 1, 'float32', 2);
  const w = tf.randomNormal([6, 4], 0, 1, 'float32', 3);
  const b = tf.randomNormal([4], 0, 1, 'float32', 4);
  const project = (v: tf.Tensor, ww: tf.Tensor) => tf.add(tf.matMul(poolFeatures(v), ww), b);

  it('equals the pooled replicated InfoNCE, values and gradients', () => {
    const pooled = replicatedInfoNce(x, y, w, b, { patchwise: false, groupwise: false });
    const plain = ntXent(tf.concat([project(x, w), project(y, w)], 0));
    const diff = tf.max(tf.abs(tf.sub(tf.reshape(pooled, [2 * N]), plain))).dataSync()[0];
    expect(diff).toBeLessThan(1e-5);
    const g1 = tf.grad((ww: tf.Tensor) =>
      tf.sum(replicatedInfoNce(x, y, ww, b, { patchwise: false, groupwise: false })),
    )(w);
    const g2 = tf.grad((ww: tf.Tensor) => tf.sum(ntXent(tf.concat([project(x, ww), project(y, ww)], 0))))(w);
    expect(tf.max(tf.abs(tf.sub(g1, g2))).dataSync()[0]).toBeLessThan(1e-4);
  });

  it('keys are constants: a row differentiates only through its own projection', () => {
    const u = tf.randomNormal([2 * N, 4], 0, 1, 'float32', 9);
    const g = tf.grad((v: tf.Tensor) => tf.slice(ntXent(v), [0], [1]).sum())(u);
    const rows = g.arraySync() as number[][];
    expect(rows[0].some((v) => Math.abs(v) > 1e-6)).toBe(true);
    for (const r of rows.slice(1)) for (const v of r) expect(v).toBe(0);
  });

  it('rejects an odd number of rows', () => {
    expect(() => ntXent(tf.zeros([3, 4]))).toThrow(/\[2N, D\]/);
  });
});
