import * as tf from '@tensorflow/tfjs';
import { stopGradient } from './engine.js';

/**
 * Layer normalisation without affine parameters (paper §5, REFERENCE 2):
 * μ = E[x], var = E[x²] − μ², y = (x − μ)/√(var + ε), over `axes`.
 */
export function layerNorm(x: tf.Tensor, axes: number | number[], epsilon = 1e-5): tf.Tensor {
  return tf.tidy(() => {
    const mean = tf.mean(x, axes, true);
    const variance = tf.sub(tf.mean(tf.square(x), axes, true), tf.square(mean));
    return tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, epsilon)));
  });
}

/** x / √max(Σx², ε) along `axis` (REFERENCE 3.2: ε = 1e-12). */
export function l2Normalize(x: tf.Tensor, axis = -1, epsilon = 1e-12): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.rsqrt(tf.maximum(tf.sum(tf.square(x), axis, true), epsilon))));
}

/**
 * Per-row softmax cross-entropy −Σ_k labels_k · log softmax(logits)_k over the last axis:
 * `[N, K]` → `[N]`. `labels` are probabilities (one-hot for classification).
 */
export function softmaxCrossEntropy(labels: tf.Tensor, logits: tf.Tensor): tf.Tensor {
  if (labels.shape.join() !== logits.shape.join()) {
    throw new Error(
      `softmaxCrossEntropy: labels shape [${labels.shape}] must equal logits shape [${logits.shape}] ` +
        '(one-hot encode integer labels with tf.oneHot)',
    );
  }
  return tf.tidy(() => tf.neg(tf.sum(tf.mul(labels, tf.logSoftmax(logits)), -1)));
}

/**
 * The ops forward-mode code is written with. Inside `jvp` every tfjs op is differentiated at the
 * kernel level, so these are the tfjs functions themselves (same names and signatures), plus
 * what tfjs lacks: `layerNorm`, `l2Normalize`, `softmaxCrossEntropy`, `stopGradient`. All of
 * them take plain tensors and work under `tf.grad` as well.
 */
export const ops = {
  matMul: tf.matMul,
  add: tf.add,
  sub: tf.sub,
  mul: tf.mul,
  div: tf.div,
  neg: tf.neg,
  square: tf.square,
  sqrt: tf.sqrt,
  rsqrt: tf.rsqrt,
  exp: tf.exp,
  log: tf.log,
  tanh: tf.tanh,
  sigmoid: tf.sigmoid,
  relu: tf.relu,
  maximum: tf.maximum,
  minimum: tf.minimum,
  reshape: tf.reshape,
  transpose: tf.transpose,
  expandDims: tf.expandDims,
  squeeze: tf.squeeze,
  slice: tf.slice,
  concat: tf.concat,
  stack: tf.stack,
  tile: tf.tile,
  broadcastTo: tf.broadcastTo,
  sum: tf.sum,
  mean: tf.mean,
  max: tf.max,
  min: tf.min,
  logSumExp: tf.logSumExp,
  softmax: tf.softmax,
  logSoftmax: tf.logSoftmax,
  where: tf.where,
  layerNorm,
  l2Normalize,
  softmaxCrossEntropy,
  stopGradient,
};
