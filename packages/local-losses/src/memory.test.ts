import { jvp } from '@fwdgrad/jvp-core';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { replicatedCrossEntropy } from './cross-entropy.js';
import { replicatedInfoNce } from './info-nce.js';
import { randn } from './testing.test-util.js';
import type { LossImpl } from './types.js';

// DESIGN principle 4 / REFERENCE 3.1 cost: the fused forms never build [N, P, G, G·C′] features or
// [N, P, G, K] logits. Measured as engine bytes (tf.profile peakBytes above the starting point), not time.
const [N, P, G, Cg, K] = [2, 16, 32, 2, 64];
const F32 = 4;
const replicaFeatures = N * P * G * G * Cg * F32; // 256 KiB (x itself: 8 KiB)
const replicaLogits = N * P * G * K * F32; // 256 KiB

async function peakAbove(f: () => tf.TensorContainer): Promise<number> {
  const start = tf.memory().numBytes;
  const info = await tf.profile(() => {
    tf.dispose(f());
  });
  return info.peakBytes - start;
}

describe('memory: fused does not materialise the replicas', () => {
  it('replicatedCrossEntropy: jvp and grad peak below one replica tensor (naive peaks above)', async () => {
    const x = randn([N, P, G, Cg], 401);
    const w = randn([G * Cg, K], 402);
    const b = tf.zeros([K]);
    const labels = tf.oneHot(tf.tensor1d([3, 7], 'int32'), K).toFloat();
    const ts = [randn([N, P, G, Cg], 403), randn([G * Cg, K], 404), randn([K], 405)];
    const f = (impl: LossImpl) => (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
      replicatedCrossEntropy(xi, wi, bi, labels, { impl });
    const limit = Math.min(replicaFeatures, replicaLogits);
    const fusedJvp = await peakAbove(() => jvp(f('fused'), [x, w, b], ts));
    const fusedGrad = await peakAbove(() =>
      tf.grads((...a: tf.Tensor[]) =>
        tf.sum(f('fused')(a[0] as tf.Tensor, a[1] as tf.Tensor, a[2] as tf.Tensor)),
      )([x, w, b]),
    );
    const naiveJvp = await peakAbove(() => jvp(f('naive'), [x, w, b], ts));
    expect(fusedJvp).toBeLessThan(limit);
    expect(fusedGrad).toBeLessThan(limit);
    expect(naiveJvp).toBeGreaterThan(replicaLogits);
    tf.dispose([x, w, b, labels, ...ts]);
  });

  it('replicatedInfoNce: jvp and grad peak below one replica tensor (naive peaks above)', async () => {
    const x = randn([N, P, G, Cg], 411);
    const y = randn([N, P, G, Cg], 412);
    const w = randn([G * Cg, K], 413);
    const b = tf.zeros([K]);
    const ts = [
      randn([N, P, G, Cg], 414),
      randn([N, P, G, Cg], 415),
      randn([G * Cg, K], 416),
      randn([K], 417),
    ];
    const f = (impl: LossImpl) => (xi: tf.Tensor, yi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
      replicatedInfoNce(xi, yi, wi, bi, { impl });
    const limit = replicaFeatures; // one view's replicated features
    const fusedJvp = await peakAbove(() => jvp(f('fused'), [x, y, w, b], ts));
    const fusedGrad = await peakAbove(() =>
      tf.grads((...a: tf.Tensor[]) =>
        tf.sum(f('fused')(a[0] as tf.Tensor, a[1] as tf.Tensor, a[2] as tf.Tensor, a[3] as tf.Tensor)),
      )([x, y, w, b]),
    );
    const naiveJvp = await peakAbove(() => jvp(f('naive'), [x, y, w, b], ts));
    expect(fusedJvp).toBeLessThan(limit);
    expect(fusedGrad).toBeLessThan(limit);
    expect(naiveJvp).toBeGreaterThan(limit);
    tf.dispose([x, y, w, b, ...ts]);
  });
});
