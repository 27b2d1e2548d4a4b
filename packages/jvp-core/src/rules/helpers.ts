import * as tf from '@tensorflow/tfjs';
import type { JvpRule, JvpRuleContext } from './registry.js';

/**
 * 1[x > 0] as float32, ReLU's derivative: tfjs's Step where it is one kernel (greater + cast took three
 * times as long on wasm); Greater + Cast on tfjs-node, whose Step runs IsNan, Greater, Fill and two Selects
 * (1.0 against 0.25 ms for [32, 26, 26, 8], measured with the machine busy).
 */
export function positive(x: tf.Tensor): tf.Tensor {
  return tf.getBackend() === 'tensorflow' ? tf.cast(tf.greater(x, 0), 'float32') : tf.step(x);
}

/**
 * Helpers that let one rule body serve single and batched ([K, ...]) tangents. The K axis is handled
 * here, in one place: `lift`/`fit`/`sumTerms` broadcast tangents against primal-shaped factors,
 * `axisOf`/`axesOf` shift attributes past K, `foldBatch` merges K into the examples axis of kernels on
 * images, `perSample` maps over K where nothing else works, and `defLinear` builds the rule of a kernel
 * that is linear in one input (JAX's `deflinear`) from the kernel's own op.
 */

/** Number of leading tangent axes (0 or 1). */
export function lead(c: JvpRuleContext): number {
  return c.batched ? 1 : 0;
}

/** The shape of a tangent of a tensor of shape `shape` ([K, ...shape] when batched). */
export function tangentShape(c: JvpRuleContext, shape: readonly number[]): number[] {
  return c.batched ? [c.k, ...shape] : [...shape];
}

/**
 * A tangent of a tensor of rank r, lifted so that it broadcasts against primal-shaped factors of an
 * output of rank `rank`: batched [K, ...s] → [K, 1, …, 1, ...s] (rank + 1 axes).
 */
export function lift(c: JvpRuleContext, t: tf.Tensor, rank: number): tf.Tensor {
  if (!c.batched) return t;
  const inner = t.shape.slice(1);
  if (inner.length === rank) return t;
  return tf.reshape(t, [t.shape[0], ...new Array(rank - inner.length).fill(1), ...inner]);
}

/** Broadcasts a tangent to the full shape of output i (adding K in batched mode). */
export function fit(c: JvpRuleContext, t: tf.Tensor, i = 0): tf.Tensor {
  const shape = tangentShape(c, c.outputs[i].shape);
  if (t.shape.length === shape.length && t.shape.every((d, j) => d === shape[j])) return t;
  return tf.broadcastTo(lift(c, t, c.outputs[i].rank), shape);
}

/** Normalises an axis (or axes) of a primal of rank `rank`, shifted past the K axis. */
export function axesOf(c: JvpRuleContext, axis: unknown, rank: number): number[] {
  const list =
    axis === null || axis === undefined
      ? Array.from({ length: rank }, (_, i) => i)
      : Array.isArray(axis)
        ? (axis as number[])
        : [axis as number];
  return list.map((a) => (a < 0 ? a + rank : a) + lead(c));
}

export function axisOf(c: JvpRuleContext, axis: number, rank: number): number {
  return (axis < 0 ? axis + rank : axis) + lead(c);
}

/** Sums the tangent terms that are present; null when all are absent (zero tangent). */
export function sumTerms(c: JvpRuleContext, terms: (tf.Tensor | null)[], i = 0): tf.Tensor | null {
  const present = terms.filter((t): t is tf.Tensor => t !== null);
  if (present.length === 0) return null;
  const rank = c.outputs[i].rank;
  let acc = lift(c, present[0], rank);
  for (const t of present.slice(1)) acc = tf.add(acc, lift(c, t, rank));
  return fit(c, acc, i);
}

/** d·f′(x) for unary elementwise kernels: the rule gives f′ from x and the output y. */
export function unary(
  deriv: (x: tf.Tensor, y: tf.Tensor, attrs: Record<string, unknown>) => tf.Tensor,
): JvpRule {
  return (c) => {
    const dx = c.tangents.x;
    if (dx === null) return null;
    return tf.mul(dx, deriv(c.inputs.x, c.outputs[0], c.attrs));
  };
}

/** Applies `op` to each of the K tangents and stacks the results (the fallback batching). */
export function perSample(
  c: JvpRuleContext,
  t: tf.Tensor,
  op: (t: tf.Tensor) => tf.Tensor | tf.Tensor[],
): tf.Tensor | tf.Tensor[] {
  if (!c.batched) return op(t);
  const results = tf.unstack(t).map(op);
  if (!Array.isArray(results[0])) return tf.stack(results as tf.Tensor[]);
  return (results[0] as tf.Tensor[]).map((_, j) => tf.stack(results.map((r) => (r as tf.Tensor[])[j])));
}

/**
 * Applies an op on examples (axis 0: NHWC images, rows) to a batched tangent [K, N, ...] as one call on
 * K·N examples, and splits K off again: [K, N', ...] out.
 */
export function foldBatch(c: JvpRuleContext, t: tf.Tensor, op: (t: tf.Tensor) => tf.Tensor): tf.Tensor {
  if (!c.batched) return op(t);
  const [k, n, ...rest] = t.shape;
  const out = op(tf.reshape(t, [k * n, ...rest]));
  return tf.reshape(out, [k, out.shape[0] / k, ...out.shape.slice(1)]);
}

/** How a {@link defLinear} rule handles K: the op sees it (`lead`), K·N examples (`fold`), or a loop (`map`). */
export type Batching = 'lead' | 'fold' | 'map';

/**
 * The rule of a kernel linear in its input `input` (JAX's `deflinear`): the tangent is the kernel's own
 * op applied to the input's tangent. With `lead` the op receives the [K, ...] tangent and shifts its
 * axes itself (`axisOf`, `tangentShape`); with `fold` it sees K·N examples; with `map` one direction
 * at a time.
 */
export function defLinear(
  input: string,
  op: (t: tf.Tensor, c: JvpRuleContext) => tf.Tensor | tf.Tensor[],
  batching: Batching = 'lead',
): JvpRule {
  return (c) => {
    const t = c.tangents[input];
    if (t === null || t === undefined) return null;
    if (!c.batched || batching === 'lead') return op(t, c);
    if (batching === 'fold') return foldBatch(c, t, (u) => op(u, c) as tf.Tensor);
    return perSample(c, t, (u) => op(u, c));
  };
}

/** The rule of a kernel whose outputs are locally constant (or not differentiable): zero tangents. */
export const zeroRule: JvpRule = () => null;

/**
 * The output tangent of a linear kernel (matmul, convolution) from its linear terms: their sum, plus the
 * activity perturbation the running jvp put at this kernel (`c.perturbation`), through the kernel's
 * fused activation (`attrs.activation` of `_FusedMatMul`, `FusedConv2D`, `FusedDepthwiseConv2D`).
 * `preActivation()` recomputes z = linear part + bias for the activations whose derivative needs it
 * (prelu, leakyrelu); the others read it off the output y.
 */
export function linearOutput(
  c: JvpRuleContext,
  terms: (tf.Tensor | null)[],
  preActivation: () => tf.Tensor = () => {
    throw new Error('jvp: this kernel has no fused activation');
  },
): tf.Tensor | null {
  const dz = sumTerms(c, [...terms, c.perturbation]);
  const activation = (c.attrs.activation as string | undefined) ?? 'linear';
  if (dz === null && !(activation === 'prelu' && c.tangents.preluActivationWeights)) return null;
  const y = c.outputs[0];
  const r = y.rank;
  const times = (m: tf.Tensor) => (dz === null ? null : tf.mul(dz, m));
  switch (activation) {
    case 'linear':
      return dz;
    case 'relu':
      return times(positive(y));
    case 'relu6':
      return times(tf.cast(tf.logicalAnd(tf.greater(y, 0), tf.less(y, 6)), 'float32'));
    case 'elu':
      return times(tf.where(tf.greater(y, 0), tf.onesLike(y), tf.add(y, 1)));
    case 'sigmoid':
      return times(tf.mul(y, tf.sub(1, y)));
    case 'leakyrelu': {
      const z = preActivation();
      const alpha = (c.attrs.leakyreluAlpha as number | undefined) ?? 0.2;
      return times(tf.where(tf.greater(z, 0), tf.onesLike(z), tf.fill(z.shape, alpha)));
    }
    case 'prelu': {
      const z = preActivation();
      const alpha = c.inputs.preluActivationWeights;
      const pos = tf.cast(tf.greater(z, 0), 'float32');
      const da = c.tangents.preluActivationWeights;
      return sumTerms(c, [
        dz && tf.mul(dz, tf.add(pos, tf.mul(tf.sub(1, pos), alpha))),
        da && tf.mul(lift(c, da, r), tf.minimum(z, 0)),
      ]);
    }
    default:
      throw new Error(
        `jvp: fused activation '${activation}' has no JVP rule; apply the activation as a separate op, ` +
          'or register a rule for the kernel with registerJvpRule',
      );
  }
}

/** z = linear + bias, for {@link linearOutput}'s activations that need the pre-activation. */
export function withBias(linear: tf.Tensor, c: JvpRuleContext): tf.Tensor {
  return c.inputs.bias ? tf.add(linear, c.inputs.bias) : linear;
}
