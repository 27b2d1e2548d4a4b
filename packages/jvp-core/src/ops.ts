import * as tf from '@tensorflow/tfjs';
import { customJvp, jvpActive, stopGradient } from './engine.js';

/**
 * Optional fused kernels a backend may register (`@fwdgrad/native` does, on tfjs's cpu backend):
 * `FwdgradLayerNorm` (inputs {x}, attrs {epsilon}) → [y, r] over the last axis, r = 1/√(var + ε) of
 * shape [..., 1]; `FwdgradLayerNormJvp` (inputs {t, y, r}) → r·((t − E[t]) − y·E[y·t]), t possibly
 * stacked [k, ...y.shape]. jvp-core has JVP rules for both (rules.ts), so nested jvp levels see
 * through them; under a recording tape `layerNorm` uses a kernel only if a gradient is registered
 * for it (@fwdgrad/native registers one for the forward kernel).
 */
export const FUSED_LAYER_NORM = 'FwdgradLayerNorm';
export const FUSED_LAYER_NORM_JVP = 'FwdgradLayerNormJvp';

function tapeRecording(): boolean {
  return (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn();
}

/**
 * Whether the fused kernel `name` serves a layer norm of x over `axes`: the backend registered it,
 * the axis is the last one, and a recording tape (if any) has a gradient to use for it.
 */
function fusedKernel(name: string, x: tf.Tensor, axes: number[]): boolean {
  return (
    x.dtype === 'float32' &&
    axes.length === 1 &&
    axes[0] === x.rank - 1 &&
    tf.getKernel(name, tf.getBackend()) !== undefined &&
    (!tapeRecording() || tf.getGradient(name) !== undefined)
  );
}

function fusedLayerNorm(x: tf.Tensor, epsilon: number): { y: tf.Tensor; r: tf.Tensor } {
  const [y, r] = tf.engine().runKernel(FUSED_LAYER_NORM, { x }, { epsilon }) as tf.Tensor[];
  return { y, r };
}

function normalizedAxes(axes: number | number[], rank: number): number[] {
  return (Array.isArray(axes) ? axes : [axes]).map((a) => (a < 0 ? a + rank : a));
}

/**
 * Layer normalisation without affine parameters (paper §5, REFERENCE 2):
 * μ = E[x], var = E[x²] − μ², y = (x − μ)/√(var + ε), over `axes`.
 *
 * Inside `jvp` it has a fused rule, dy = r·(dx − E[dx] − y·E[y·dx]) with r = 1/√(var + ε),
 * reusing the forward pass's r: about half the work of differentiating its kernels one by one.
 */
export function layerNorm(x: tf.Tensor, axes: number | number[], epsilon = 1e-5): tf.Tensor {
  const ax = normalizedAxes(axes, x.rank);
  const forward = (xi: tf.Tensor) =>
    fusedKernel(FUSED_LAYER_NORM, xi, ax) ? fusedLayerNorm(xi, epsilon) : layerNormWithScale(xi, ax, epsilon);
  if (!jvpActive()) return tf.tidy(() => forward(x).y);
  let scale: tf.Tensor | null = null;
  const op = customJvp(
    (xi: tf.Tensor) =>
      tf.tidy(() => {
        const { y, r } = forward(xi);
        scale = tf.keep(r);
        return y;
      }),
    ({ tangents: [dx], output: y, batched }) => {
      const t = dx as tf.Tensor;
      if (fusedKernel(FUSED_LAYER_NORM_JVP, y, ax)) {
        return tf.engine().runKernel(FUSED_LAYER_NORM_JVP, { t, y, r: scale as tf.Tensor }) as tf.Tensor;
      }
      const tAxes = batched ? ax.map((a) => a + 1) : ax;
      const centred = tf.sub(t, tf.mean(t, tAxes, true));
      const proj = tf.mean(tf.mul(y, t), tAxes, true);
      return tf.mul(tf.sub(centred, tf.mul(y, proj)), scale as tf.Tensor);
    },
  );
  try {
    return op(x);
  } finally {
    (scale as tf.Tensor | null)?.dispose();
  }
}

function layerNormWithScale(x: tf.Tensor, axes: number[], epsilon: number): { y: tf.Tensor; r: tf.Tensor } {
  const mean = tf.mean(x, axes, true);
  const variance = tf.sub(tf.mean(tf.square(x), axes, true), tf.square(mean));
  const r = tf.rsqrt(tf.add(variance, epsilon));
  return { y: tf.mul(tf.sub(x, mean), r), r };
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
