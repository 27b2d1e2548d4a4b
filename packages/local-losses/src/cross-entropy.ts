import * as tf from '@tensorflow/tfjs';
import { poolFeatures, replicatedLinear } from './aggregate.js';
import { type FusedGeometry, fusedHeadLoss, type HeadGradientOut, naiveHeadGradient } from './fused.js';
import type { ReplicatedLossOptions } from './types.js';
import { checkHeadShapes, checkImpl, resolveReplication, type Replication, toTargets } from './validate.js';

const FN = 'replicatedCrossEntropy';

/**
 * Replicated supervised cross-entropy (paper section 4, eq. 4–5; REFERENCE 3.1).
 *
 * x̄ = mean_P(x) as [N, G·C′]; logits = x̄·w + b; CE_n = −Σ_k y[n,k]·log softmax(logits_n)_k.
 * The output is CE_n replicated to [N, P′, G′] (P′ = P if patchwise else 1, G′ = G if groupwise else 1);
 * replica (n, p, g) is the pooled loss differentiable only through its own patch p and group g, with
 * coefficient 1/P, and through the head w, b. Forward-mode (`jvp` of `@fwdgrad/jvp-core`, plain or
 * batched tangents) and reverse-mode (`tf.grad`) derivatives both follow these semantics, for both
 * implementations.
 *
 * @param x block output [N, P, G, C′] (float32).
 * @param w head weight [G·C′, K].
 * @param b head bias [K].
 * @param labels one-hot / soft labels [N, K] (float32) or int32 class ids [N]; constants (no tangent).
 * @param options `impl` ('fused' default | 'naive'), `patchwise`, `groupwise` (default true).
 * @returns [N, P′, G′], owned by the caller.
 * @example
 * const loss = replicatedCrossEntropy(x, w, b, labels);            // [N, P, G]
 * const blockObjective = tf.div(tf.sum(loss), N);                   // REFERENCE 1.1
 */
export function replicatedCrossEntropy(
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor,
  labels: tf.Tensor,
  options: ReplicatedLossOptions = {},
): tf.Tensor {
  return crossEntropyReplicas(x, w, b, labels, options);
}

/**
 * {@link replicatedCrossEntropy}; with `head`, also the exact gradient of Σ(replicas) with respect to w and b
 * from the same head pass (fused) or `tf.grads` (naive). Internal to the package (`LocalLoss` exposes it).
 */
export function crossEntropyReplicas(
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor,
  labels: tf.Tensor,
  options: ReplicatedLossOptions,
  head?: HeadGradientOut,
): tf.Tensor {
  const impl = checkImpl(FN, options.impl);
  const { N, K } = checkHeadShapes(FN, x, w, b);
  const replication = resolveReplication(options);
  const y = toTargets(FN, labels, N, K);
  try {
    if (impl === 'fused') return fusedCrossEntropy(x, w, b, y, replication, head);
    const out = naiveCrossEntropy(x, w, b, y, replication);
    if (head !== undefined)
      naiveHeadGradient((wi, bi) => naiveCrossEntropy(x, wi, bi, y, replication), w, b, head);
    return out;
  } finally {
    y.dispose();
  }
}

/** Paper Algorithm 1, naive: literal replicas, logits [N, P′, G′, K]. */
function naiveCrossEntropy(
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor,
  y: tf.Tensor2D,
  replication: Replication,
): tf.Tensor {
  const N = x.shape[0] as number;
  const K = w.shape[1] as number;
  return tf.tidy(() => {
    const logits = replicatedLinear(x, w, b, replication); // [N, P′, G′, K]
    const logp = tf.logSoftmax(logits);
    return tf.neg(tf.sum(tf.mul(logp, tf.reshape(y, [N, 1, 1, K])), -1));
  });
}

/**
 * CE head: loss_n and r_n = ∂loss_n/∂logits_n = softmax·Σ_k y − y (= softmax − y for one-hot rows).
 * Plain tfjs; called where tangent tracking is off (inside customJvp / customGrad).
 */
function ceHead(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, y: tf.Tensor2D) {
  const xbar = poolFeatures(x);
  const logp = tf.logSoftmax(tf.add(tf.matMul(xbar, w), b));
  const loss = tf.neg(tf.sum(tf.mul(y, logp), 1));
  const r = tf.sub(tf.mul(tf.exp(logp), tf.sum(y, 1, true)), y);
  return { xbar, loss, r };
}

/** Paper Algorithm 1, fused: logits once, customJvp ∘ customGrad with the REFERENCE 3.1 rules ({@link fusedHeadLoss}). */
function fusedCrossEntropy(
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor,
  y: tf.Tensor2D,
  replication: Replication,
  head?: HeadGradientOut,
): tf.Tensor {
  const geometry: FusedGeometry = {
    xShape: x.shape as [number, number, number, number],
    ...replication,
  };
  return fusedHeadLoss(geometry, [x], w, b, ([xi], wi, bi) => ceHead(xi as tf.Tensor, wi, bi, y), head);
}
