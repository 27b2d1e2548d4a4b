import * as tf from '@tensorflow/tfjs';
import { groupedMatMul } from '@fwdgrad/jvp-core';

/**
 * How a linear layer contracts its input (the three LocalMixer layouts of REFERENCE 0, useful beyond it):
 * - `'dense'`: x[..., in]·W[in, out] + b[out] (patch embedding, dense channel mixing);
 * - `'grouped'`: x[..., G, in/G] × W[G, in/G, out/G] + b[G, out/G], each group its own map
 *   (`'npgc,gcd->npgd'`, LocalMixer's grouped channel mixing);
 * - `'token'`: token mixing, x[N, C, P]·W[P, P] + b[P]: one dense map over the last (token) axis shared by all
 *   channels. Arithmetically it is `'dense'` with a square weight; it is a layout of its own so that shapes are
 *   checked and errors speak of tokens.
 */
export type LinearLayout = 'dense' | 'grouped' | 'token';

/** The layouts, in the order of {@link LinearLayout}. */
export const linearLayouts: readonly LinearLayout[] = ['dense', 'grouped', 'token'];

function fmt(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Throws unless `layout` is a {@link LinearLayout}; `where` names the caller in the message. */
export function checkLayout(where: string, layout: unknown): asserts layout is LinearLayout {
  if (!linearLayouts.includes(layout as LinearLayout)) {
    throw new Error(
      `${where}: unknown layout ${JSON.stringify(layout)}; layout must be 'dense', 'grouped' or 'token'`,
    );
  }
}

/**
 * Checks that x, W (and b) fit `layout`; throws an error that names `where`, the layout, both shapes and the
 * fix otherwise. Shapes: see {@link LinearLayout}.
 */
export function checkLinearShapes(
  where: string,
  layout: LinearLayout,
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor | null = null,
): void {
  checkLayout(where, layout);
  const xs = x.shape;
  const ws = w.shape;
  const at = `${where} (${layout} layer)`;
  if (layout === 'dense') {
    if (w.rank !== 2) {
      throw new Error(
        `${at}: W must be [in, out] but has shape ${fmt(ws)}; use layout 'grouped' for [G, c, d].`,
      );
    }
    if (x.rank < 2 || xs[xs.length - 1] !== ws[0]) {
      throw new Error(
        `${at}: x has shape ${fmt(xs)} but W has shape ${fmt(ws)}; x must be [..., in] with a leading (example) ` +
          `axis and its last axis equal to W's first (${ws[0]}). Reshape x to [..., ${ws[0]}] or transpose W.`,
      );
    }
  } else if (layout === 'grouped') {
    if (w.rank !== 3) throw new Error(`${at}: W must be [G, in/G, out/G] but has shape ${fmt(ws)}.`);
    if (x.rank < 3 || xs[xs.length - 2] !== ws[0] || xs[xs.length - 1] !== ws[1]) {
      throw new Error(
        `${at}: x has shape ${fmt(xs)} but W has shape ${fmt(ws)}; x must be [..., G, in/G] = ` +
          `[..., ${ws[0]}, ${ws[1]}] with a leading (example) axis. Reshape x to [N, ..., ${ws[0]}, ${ws[1]}].`,
      );
    }
  } else {
    if (w.rank !== 2 || ws[0] !== ws[1]) {
      throw new Error(`${at}: W must be a square token-mixing weight [P, P] but has shape ${fmt(ws)}.`);
    }
    if (x.rank !== 3 || xs[2] !== ws[0]) {
      throw new Error(
        `${at}: x has shape ${fmt(xs)} but W has shape ${fmt(ws)}; x must be channel-major [N, C, P] ` +
          `with P = ${ws[0]}. Transpose [N, P, C] inputs to [N, C, P] first.`,
      );
    }
  }
  if (b !== null) {
    const expected = (layout === 'grouped' ? [ws[0], ws[2]] : [ws[ws.length - 1]]) as number[];
    if (!sameShape(b.shape, expected)) {
      throw new Error(
        `${at}: b has shape ${fmt(b.shape)} but W has shape ${fmt(ws)}; b must be ${fmt(expected)}.`,
      );
    }
  }
}

/**
 * The plain linear map of a layout (see {@link LinearLayout}); `b` may be null (no bias); checks the shapes
 * first (`where` names the layer in errors). Written with reshape/matMul and jvp-core's `groupedMatMul` (the
 * wasm backend has no Einsum kernel; the grouped product runs as transpose → matMul → transpose there, and as
 * one strided kernel where `@fwdgrad/native` registered it), so tfjs autodiff and jvp-core differentiate it.
 */
export function applyLinear(
  layout: LinearLayout,
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor | null = null,
  where = 'applyLinear',
): tf.Tensor {
  checkLinearShapes(where, layout, x, w, b);
  return tf.tidy(() => {
    let y: tf.Tensor;
    if (layout === 'grouped') {
      y = groupedMatMul(x, w, 'nn'); // [..., G, out/G]
    } else {
      const lead = x.shape.slice(0, -1);
      const inDim = x.shape[x.rank - 1];
      y = tf.reshape(tf.matMul(tf.reshape(x, [-1, inDim]), w), [...lead, w.shape[1] as number]);
    }
    return b === null ? y : tf.add(y, b);
  });
}

/**
 * The weight and bias gradients of a linear layer given the cotangent `gOut` of its output (shape of
 * `applyLinear(layout, pre, w)`): dense/token dW = Σ_lead pre ⊗ gOut, grouped dW[g] = Σ_lead pre[.., g, :] ⊗
 * gOut[.., g, :] (REFERENCE 1.6 step 4); db the matching sums. Plain contractions, no reverse-mode pass.
 */
export function linearParamGradients(
  layout: LinearLayout,
  pre: tf.Tensor,
  gOut: tf.Tensor,
): { dw: tf.Tensor; db: tf.Tensor } {
  return tf.tidy(() => {
    if (layout === 'grouped') {
      const g = pre.shape[pre.rank - 2] as number;
      const co = gOut.shape[gOut.rank - 1] as number;
      return {
        dw: groupedMatMul(pre, gOut, 'tn'), // Σ_M pre[M, g]ᵀ·gOut[M, g]: [G, in/G, out/G]
        db: tf.sum(tf.reshape(gOut, [-1, g, co]), 0), // [G, out/G]
      };
    }
    const inDim = pre.shape[pre.rank - 1];
    const outDim = gOut.shape[gOut.rank - 1];
    const out2 = tf.reshape(gOut, [-1, outDim]);
    return { dw: tf.matMul(tf.reshape(pre, [-1, inDim]), out2, true, false), db: tf.sum(out2, 0) };
  });
}

/**
 * The cotangent of a linear layer's input given its output's cotangent `gOut`, through the matrix `backward`
 * of W's shape: gOut·backwardᵀ per layout (grouped: per group). With backward = W it is the exact VJP; feedback
 * alignment passes its fixed matrix B instead. Returns a tensor of the input's shape `inputShape`.
 */
export function linearInputCotangent(
  layout: LinearLayout,
  gOut: tf.Tensor,
  backward: tf.Tensor,
  inputShape: number[],
): tf.Tensor {
  return tf.tidy(() => {
    if (layout === 'grouped') return tf.reshape(groupedMatMul(gOut, backward, 'nt'), inputShape);
    const out = backward.shape[1] as number;
    return tf.reshape(tf.matMul(tf.reshape(gOut, [-1, out]), backward, false, true), inputShape);
  });
}
