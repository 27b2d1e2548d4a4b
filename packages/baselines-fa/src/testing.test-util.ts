// Helpers shared by the tests (not exported from the package).
import * as tf from '@tensorflow/tfjs';
import { applyLinear, type LinearLayout } from '@fwdgrad/linear';
import { createRandom } from '@fwdgrad/random';

/**
 * Two concentric classes in 2-D, not linearly separable and touching (no margin, so the loss never
 * saturates to an exactly-zero gradient): class 0 uniform in the disc of radius 0.6, class 1 uniform in
 * the ring 0.6–1. Returns x [n, 2] and one-hot y [n, 2].
 */
export function circles(n: number, seed: number): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const random = createRandom(seed);
  const rand = () => random.uniform();
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 0; i < n; i++) {
    const cls = i % 2;
    const r = cls === 0 ? 0.6 * Math.sqrt(rand()) : Math.sqrt(0.36 + 0.64 * rand());
    const a = 2 * Math.PI * rand();
    xs.push(r * Math.cos(a), r * Math.sin(a));
    ys.push(cls === 0 ? 1 : 0, cls === 0 ? 0 : 1);
  }
  return { x: tf.tensor2d(xs, [n, 2]), y: tf.tensor2d(ys, [n, 2]) };
}

/** Max |a − b| over all entries (shapes must match). */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  if (a.shape.join(',') !== b.shape.join(',')) {
    throw new Error(`shape mismatch [${a.shape}] vs [${b.shape}]`);
  }
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/** Fraction of rows where argmax(logits) = argmax(y). */
export function accuracy(logits: tf.Tensor, y: tf.Tensor): number {
  return tf.tidy(
    () => tf.mean(tf.cast(tf.equal(tf.argMax(logits, -1), tf.argMax(y, -1)), 'float32')).dataSync()[0],
  );
}

/** Batch-mean softmax cross-entropy with one-hot labels. */
export function meanCrossEntropy(logits: tf.Tensor, y: tf.Tensor): tf.Scalar {
  return tf.neg(tf.mean(tf.sum(tf.mul(y, tf.logSoftmax(logits)), -1))) as tf.Scalar;
}

/** The plain linear layer with feedbackLinear's argument order (x, W, b, layout): what backprop uses. */
export function linear(
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor | null,
  layout: LinearLayout = 'dense',
): tf.Tensor {
  return applyLinear(layout, x, w, b);
}
