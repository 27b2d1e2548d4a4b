import { jvp } from '@fwdgrad/jvp-core';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { poolFeatures, replicatedFeatures } from './aggregate.js';
import { expectClose, maxAbs, randn } from './testing.test-util.js';

const [N, P, G, Cg] = [2, 3, 4, 2];

describe('replicatedFeatures (paper eq. 4–5)', () => {
  it('every replica holds the ordinary pooled feature mean_P(x)', () => {
    tf.tidy(() => {
      const x = randn([N, P, G, Cg], 201);
      const pooled = tf.reshape(poolFeatures(x), [N, 1, 1, G * Cg]);
      const cases: [boolean, boolean, number[]][] = [
        [true, true, [N, P, G, G * Cg]],
        [true, false, [N, P, 1, G * Cg]],
        [false, true, [N, 1, G, G * Cg]],
        [false, false, [N, 1, 1, G * Cg]],
      ];
      for (const [patchwise, groupwise, shape] of cases) {
        const f = replicatedFeatures(x, { patchwise, groupwise });
        expect(f.shape).toEqual(shape);
        expectClose(f, tf.broadcastTo(pooled, shape), 1e-6);
      }
    });
  });

  it('tangent of replica (p, g) is dx[n, p, h, :]/P for h = g and 0 for other groups (closed form)', () => {
    tf.tidy(() => {
      const x = randn([N, P, G, Cg], 202);
      const dx = randn([N, P, G, Cg], 203);
      const [, t] = jvp((v) => replicatedFeatures(v), [x], [dx]);
      // expected[n,p,g,h,c] = δ(g,h)·dx[n,p,h,c]/P
      const eye = tf.reshape(tf.eye(G), [1, 1, G, G, 1]);
      const expected = tf.reshape(tf.mul(tf.expandDims(tf.div(dx, P), 2), eye), [N, P, G, G * Cg]);
      expectClose(t, expected, 1e-6);
      // Without patchwise: the ordinary mean of the own group (all patches), still group-masked.
      const [, tg] = jvp((v) => replicatedFeatures(v, { patchwise: false }), [x], [dx]);
      const expectedG = tf.reshape(tf.mul(tf.expandDims(tf.mean(dx, 1, true), 2), eye), [N, 1, G, G * Cg]);
      expectClose(tg, expectedG, 1e-6);
    });
  });

  it('reverse mode: the gradient reaching x[n, p, g] is the cotangent of replica (p, g), group block g, over P', () => {
    tf.tidy(() => {
      const x = randn([N, P, G, Cg], 204);
      const cot = randn([N, P, G, G * Cg], 205);
      const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(replicatedFeatures(v), cot)))(x);
      // Pick the diagonal blocks cot[n,p,g,g·C′:(g+1)·C′].
      const diag = tf.sum(
        tf.mul(tf.reshape(cot, [N, P, G, G, Cg]), tf.reshape(tf.eye(G), [1, 1, G, G, 1])),
        3,
      );
      expectClose(g, tf.div(diag, P), 1e-6);
      expect(maxAbs(g)).toBeGreaterThan(0);
    });
  });

  it('rejects a non-rank-4 input with the fix', () => {
    expect(() => replicatedFeatures(tf.zeros([2, 3, 4]))).toThrow(/\[N, P, G, C′\].*reshape/);
  });
});
