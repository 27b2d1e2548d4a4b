import { stopGradient } from '@fwdgrad/jvp-core';
import * as tf from '@tensorflow/tfjs';
import type { ReplicationOptions } from './types.js';
import { resolveReplication } from './validate.js';

/**
 * The replicated feature aggregator of paper Figure 3B, written literally (eq. 4–5).
 *
 * From a block output x `[N, P, G, C′]` it returns the pooled features of every replica,
 * `[N, P′, G′, G·C′]` (P′ = P if patchwise else 1, G′ = G if groupwise else 1). Every replica holds the
 * value of the ordinary pooled feature mean_P(x) (flattened over groups), but only its own patch p and
 * group g carry derivatives (tangents under `jvp`, gradients under `tf.grad`); the rest is
 * stop-gradiented. Patchwise, the live part has coefficient 1/P (eq. 5); without patchwise a replica
 * sees all patches through the ordinary mean; without groupwise it sees all groups.
 *
 * This materialises G copies of the features per patch, O(N·P·G·G·C′) memory: it is the naive form,
 * used for tests and for the memory benchmark. The fused losses never call it.
 *
 * @param x block output `[N, P, G, C′]`.
 * @param options which replication to apply (default: both on).
 * @returns `[N, P′, G′, G·C′]`, owned by the caller.
 */
export function replicatedFeatures(x: tf.Tensor, options: ReplicationOptions = {}): tf.Tensor {
  if (x.rank !== 4) {
    throw new Error(
      `replicatedFeatures: x must be a block output [N, P, G, C′] (rank 4), got shape [${x.shape.join(', ')}]; ` +
        'reshape it to [N, P, G, C/G].',
    );
  }
  const { patchwise, groupwise } = resolveReplication(options);
  const [N, P, G, Cg] = x.shape as [number, number, number, number];
  return tf.tidy(() => {
    let pooled: tf.Tensor; // [N, P′, G, C′]
    if (patchwise) {
      // eq. 5 as in paper Algorithm 1: x/P + StopGrad(mean_P(x) − x/P): value mean_P(x), derivative 1/P
      // through the own patch only.
      const own = tf.div(x, P);
      pooled = tf.add(own, stopGradient(tf.sub(tf.mean(x, 1, true), own)));
    } else {
      pooled = tf.mean(x, 1, true);
    }
    const P2 = pooled.shape[1] as number;
    if (!groupwise) return tf.reshape(pooled, [N, P2, 1, G * Cg]);
    // eq. 4: copy g sees group h live iff h = g; every other group is stop-gradiented.
    // The copies come from broadcasting in the masked products (tfjs has no Tile gradient above rank 4).
    const copies = tf.expandDims(pooled, 2); // [N, P′, 1, G, C′]
    const eye = tf.reshape(tf.eye(G), [1, 1, G, G, 1]);
    const live = tf.mul(copies, eye);
    const dead = tf.mul(stopGradient(copies), tf.sub(1, eye));
    return tf.reshape(tf.add(live, dead), [N, P2, G, G * Cg]);
  });
}

/** mean_P(x) flattened over groups: `[N, P, G, C′]` → `[N, G·C′]` (the ordinary pooled feature x̄). */
export function poolFeatures(x: tf.Tensor): tf.Tensor2D {
  const [N, , G, Cg] = x.shape as [number, number, number, number];
  return tf.tidy(() => tf.reshape(tf.mean(x, 1), [N, G * Cg]) as tf.Tensor2D);
}

/**
 * A linear head on every replica (naive form): the {@link replicatedFeatures} `[N, P′, G′, F]` of x
 * times w `[F, D]` plus b, as `[N, P′, G′, D]`, owned by the caller.
 */
export function replicatedLinear(
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor,
  options: ReplicationOptions = {},
): tf.Tensor {
  return tf.tidy(() => {
    const feats = replicatedFeatures(x, options);
    const [N, P2, G2, F] = feats.shape as [number, number, number, number];
    return tf.add(tf.reshape(tf.matMul(tf.reshape(feats, [-1, F]), w), [N, P2, G2, w.shape[1] as number]), b);
  });
}
