import * as tf from '@tensorflow/tfjs';
import { customJvp, jvpActive, stopGradient, suspended } from './engine.js';
import { groupedMatMul, kernelUsable } from './grouped.js';
import { FUSED_LAYER_NORM, FUSED_LAYER_NORM_JVP } from './kernel-names.js';

/**
 * The fused layer-norm kernels (kernel-names.ts) serve `layerNorm` where a backend registered them;
 * jvp-core has JVP rules for both (rules/nn.ts), so nested jvp levels see through them; under a
 * recording tape `layerNorm` uses a kernel only if a gradient is registered for it (@fwdgrad/native
 * registers one for the forward kernel).
 */
export { FUSED_LAYER_NORM, FUSED_LAYER_NORM_JVP };

/**
 * Whether the fused kernel `name` serves a layer norm of x over `axes`: the backend registered it, the
 * norm is over a single axis, and a recording tape (if any) has a gradient to use for it.
 */
function fusedKernel(name: string, x: tf.Tensor, axes: number[]): boolean {
  return x.dtype === 'float32' && axes.length === 1 && x.rank > 0 && kernelUsable(name);
}

function fusedLayerNorm(x: tf.Tensor, axis: number, epsilon: number): { y: tf.Tensor; r: tf.Tensor } {
  const [y, r] = tf.engine().runKernel(FUSED_LAYER_NORM, { x }, { epsilon, axis }) as tf.Tensor[];
  if (r.rank !== x.rank || r.shape[axis] !== 1) {
    // a backend whose kernel predates the axis attribute normalises the last axis whatever it is told
    tf.dispose([y, r]);
    throw new Error(
      `layerNorm: the backend's ${FUSED_LAYER_NORM} kernel returned r [${r.shape}] for x [${x.shape}] over ` +
        `axis ${axis}; it does not support the axis attribute: update @fwdgrad/native`,
    );
  }
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
  const { y, r } = layerNormWithScale(x, normalizedAxes(axes, x.rank), epsilon);
  r.dispose();
  return y;
}

/**
 * A function's value at a point together with its exact VJP there, computed from what the forward pass
 * kept (no second forward pass, unlike `tf.grad`).
 */
export interface Linearization {
  /** f(x); inside `jvp` it carries its tangent like any output. Owned by the caller. */
  y: tf.Tensor;
  /** gᵀ·∂f/∂x at x for a cotangent g of y's shape: a new tensor, owned by the caller. */
  vjp(g: tf.Tensor): tf.Tensor;
  /** Frees what `vjp` keeps (not `y`). */
  dispose(): void;
}

/**
 * A function of one tensor that can also {@link Linearization linearise} itself at a point. Plain
 * functions are `Linearizable` too (the method is optional): callers fall back to `tf.grad`.
 */
export interface Linearizable {
  (x: tf.Tensor): tf.Tensor;
  linearize?: (x: tf.Tensor) => Linearization;
}

/**
 * {@link layerNorm} at x with its exact VJP, which reuses the forward pass's y and r = 1/√(var + ε):
 * the Jacobian r·(I − 11ᵀ/n − y yᵀ/n) is symmetric, so the VJP is the JVP formula (one
 * `FwdgradLayerNormJvp` kernel where the backend has it). Works inside and outside `jvp`.
 *
 * @example
 * const lin = layerNormLinearized(z, -1);
 * const gz = lin.vjp(gy); // = tf.grad((t) => layerNorm(t, -1))(z, gy), without re-running the norm
 * lin.dispose();
 */
export function layerNormLinearized(x: tf.Tensor, axes: number | number[], epsilon = 1e-5): Linearization {
  const ax = normalizedAxes(axes, x.rank);
  const { y, r } = layerNormWithScale(x, ax, epsilon);
  // our own handle on y's primal value (a reshape aliases the data; no tangent under suspension)
  const yp = suspended(() => tf.keep(tf.reshape(y, y.shape)));
  return {
    y,
    vjp: (g: tf.Tensor) => {
      if (g.shape.join() !== y.shape.join()) {
        throw new Error(
          `layerNormLinearized: the cotangent has shape [${g.shape}] but the output has [${y.shape}]`,
        );
      }
      return tf.tidy(() => layerNormTangent(g, yp, r, ax, false));
    },
    dispose: () => tf.dispose([yp, r]),
  };
}

/** `(x) => layerNorm(x, axes, epsilon)` that can also linearise itself ({@link layerNormLinearized}). */
export function layerNormFunction(axes: number | number[], epsilon = 1e-5): Linearizable {
  return Object.assign((x: tf.Tensor) => layerNorm(x, axes, epsilon), {
    linearize: (x: tf.Tensor) => layerNormLinearized(x, axes, epsilon),
  });
}

/**
 * r·((t − E[t]) − y·E[y·t]) over `axes` of y: the layer norm's JVP, and (the Jacobian being
 * symmetric) its VJP. `t` may carry a leading stacked axis (`batched`).
 */
function layerNormTangent(
  t: tf.Tensor,
  y: tf.Tensor,
  r: tf.Tensor,
  ax: number[],
  batched: boolean,
): tf.Tensor {
  if (fusedKernel(FUSED_LAYER_NORM_JVP, y, ax)) {
    return tf.engine().runKernel(FUSED_LAYER_NORM_JVP, { t, y, r }, { axis: ax[0] }) as tf.Tensor;
  }
  const tAxes = batched ? ax.map((a) => a + 1) : ax;
  const centred = tf.sub(t, tf.mean(t, tAxes, true));
  const proj = tf.mean(tf.mul(y, t), tAxes, true);
  return tf.mul(tf.sub(centred, tf.mul(y, proj)), r);
}

/** The layer norm's output y and its r = 1/√(var + ε) (kept: the caller disposes it). */
function layerNormWithScale(x: tf.Tensor, ax: number[], epsilon: number): { y: tf.Tensor; r: tf.Tensor } {
  const forward = (xi: tf.Tensor) =>
    fusedKernel(FUSED_LAYER_NORM, xi, ax)
      ? fusedLayerNorm(xi, ax[0], epsilon)
      : layerNormStats(xi, ax, epsilon);
  if (!jvpActive()) {
    const out = tf.tidy(() => forward(x));
    return { y: out.y, r: tf.keep(out.r) };
  }
  let scale: tf.Tensor | null = null;
  const op = customJvp(
    (xi: tf.Tensor) =>
      tf.tidy(() => {
        const { y, r } = forward(xi);
        scale = tf.keep(r);
        return y;
      }),
    ({ tangents: [dx], output: y, batched }) =>
      layerNormTangent(dx as tf.Tensor, y, scale as tf.Tensor, ax, batched),
  );
  try {
    return { y: op(x), r: scale as unknown as tf.Tensor };
  } catch (e) {
    (scale as tf.Tensor | null)?.dispose();
    throw e;
  }
}

function layerNormStats(x: tf.Tensor, axes: number[], epsilon: number): { y: tf.Tensor; r: tf.Tensor } {
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
 * The ops forward-mode code needs beyond tfjs's own (which `jvp` differentiates at the kernel level, so
 * plain `tf.*` calls are the ops for everything else): `layerNorm`, `l2Normalize`, `softmaxCrossEntropy`,
 * `stopGradient`, `groupedMatMul`. All of them take plain tensors and work under `tf.grad` as well.
 */
export const ops = {
  layerNorm,
  l2Normalize,
  softmaxCrossEntropy,
  stopGradient,
  groupedMatMul,
};
