import * as tf from '@tensorflow/tfjs';
import { jvp } from '@fwdgrad/jvp-core';
import { describe, expect, it } from 'vitest';
import { localMixerBlockLoss } from './suites/jvp-overhead.js';
import { closeRel, num, smoke } from './testing.test-util.js';

describe('jvp-overhead at --budget smoke', () => {
  it('measures f, jvp(f) and tf.grads on wasm and cpu in one process (auto)', async () => {
    const { file, cleanup } = await smoke('jvp-overhead', { backend: 'auto' });
    expect(file.rows.map((r) => r.backend)).toEqual(['wasm', 'cpu']);
    for (const r of file.rows) {
      expect(r.error).toBeUndefined();
      const f = num(r.f_ms);
      closeRel(r.jvp_ratio, num(r.jvp_ms) / f);
      closeRel(r.grad_ratio, num(r.grad_ms) / f);
      num(r.jvp_bytes);
    }
    cleanup();
    await tf.setBackend('cpu');
  });

  it('the measured block is differentiable forward: jvp equals the directional derivative of tf.grads', () => {
    const s = { n: 2, p: 3, c: 8, g: 2, k: 3 };
    const x = tf.randomNormal([s.n, s.p, s.c], 0, 1, 'float32', 1);
    const labels = tf.oneHot(tf.tensor1d([0, 2], 'int32'), 3).toFloat();
    const shapes = [[8, 8], [8], [2, 4, 4], [2, 4], [8, 3], [3]];
    const params = shapes.map((sh, i) => tf.randomNormal(sh, 0, 0.5, 'float32', 10 + i));
    const tangents = shapes.map((sh, i) => tf.randomNormal(sh, 0, 1, 'float32', 20 + i));
    const f = localMixerBlockLoss(x, labels, s);
    const call = (ps: tf.Tensor[]) => f(ps[0], ps[1], ps[2], ps[3], ps[4], ps[5]);
    const [y, dy] = jvp((...ps: tf.Tensor[]) => call(ps), params, tangents);
    const grads = tf.grads((...ps: tf.Tensor[]) => call(ps))(params);
    const expected = grads.reduce((acc, g, i) => acc + tf.sum(tf.mul(g, tangents[i])).dataSync()[0], 0);
    expect(dy.dataSync()[0]).toBeCloseTo(expected, 4);
    expect(y.dataSync()[0]).toBeGreaterThan(0);
    tf.dispose([x, labels, ...params, ...tangents, y, dy, ...grads]);
  });
});
