import * as tf from '@tensorflow/tfjs';
import { groupedMatMul } from '@fwdgrad/jvp-core';
import { shapeString } from './util.js';

/**
 * How a linear layer contracts its input (the three LocalMixer layouts of REFERENCE 0, useful beyond it):
 * - `'dense'`: x[..., in]·W[in, out] + b[out];
 * - `'grouped'`: x[..., G, in/G] × W[G, in/G, out/G] + b[G, out/G], each group its own map
 *   (`'npgc,gcd->npgd'`);
 * - `'token'`: token mixing, x[N, C, P]·W[P, P] + b[P]: one dense map over the last (token) axis shared by all
 *   channels. Arithmetically it is `'dense'` with a square weight; it is a layout of its own so that shapes are
 *   checked and errors speak of tokens.
 */
export type LinearLayout = 'dense' | 'grouped' | 'token';

const layouts: readonly LinearLayout[] = ['dense', 'grouped', 'token'];

/** Throws unless `layout` is a {@link LinearLayout}. */
export function checkLayout(where: string, layout: unknown): asserts layout is LinearLayout {
  if (!layouts.includes(layout as LinearLayout)) {
    throw new Error(`${where}: layout must be 'dense', 'grouped' or 'token', got ${JSON.stringify(layout)}`);
  }
}

function fail(
  where: string,
  layout: LinearLayout,
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor | null,
  expected: string,
) {
  const bias = b === null ? '' : ` and bias ${shapeString(b.shape)}`;
  throw new Error(
    `${where}: ${layout} layer with input ${shapeString(x.shape)}, weight ${shapeString(w.shape)}${bias} ` +
      `do not fit; expected ${expected}`,
  );
}

/** Checks that x, w (and b) fit `layout`; `where` names the layer in the message. */
export function checkLinearShapes(
  where: string,
  layout: LinearLayout,
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor | null,
): void {
  checkLayout(where, layout);
  if (layout === 'grouped') {
    const [g, ci] = x.shape.slice(-2);
    if (x.rank < 3 || w.rank !== 3 || w.shape[0] !== g || w.shape[1] !== ci) {
      fail(where, layout, x, w, b, 'x[..., G, in/G] and w[G, in/G, out/G]');
    }
    if (b !== null && (b.rank !== 2 || b.shape[0] !== g || b.shape[1] !== w.shape[2])) {
      fail(where, layout, x, w, b, 'b[G, out/G]');
    }
    return;
  }
  if (layout === 'token' && (x.rank !== 3 || w.rank !== 2 || w.shape[0] !== w.shape[1])) {
    fail(where, layout, x, w, b, 'x[N, C, P] and a square token-mixing weight w[P, P]');
  }
  if (w.rank !== 2 || x.rank < 2 || x.shape[x.rank - 1] !== w.shape[0]) {
    fail(where, layout, x, w, b, 'x[..., in] and w[in, out]');
  }
  if (b !== null && (b.rank !== 1 || b.shape[0] !== w.shape[1])) fail(where, layout, x, w, b, 'b[out]');
}

/**
 * The plain linear map of a layout (see {@link LinearLayout}); `b` may be null (no bias). Written with
 * reshape/matMul and jvp-core's `groupedMatMul` (the wasm backend has no Einsum kernel; the grouped product
 * runs as transpose → matMul → transpose there, and as one strided kernel where `@fwdgrad/native` registered
 * it), so jvp-core differentiates it.
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
