import * as tf from '@tensorflow/tfjs';
import { FUSED_GROUPED_MATMUL, type GroupedMatMulMode, groupedMatMul } from '../grouped.js';
import { linearOutput, sumTerms, withBias } from './helpers.js';
import type { JvpRuleContext, RuleTable } from './registry.js';

/** Matrix products: bilinear, d(a·b) = da·b + a·db, with K folded into the rows or columns. */

function transposeLast(t: tf.Tensor): tf.Tensor {
  const r = t.rank;
  const perm = Array.from({ length: r }, (_, i) => i);
  perm[r - 2] = r - 1;
  perm[r - 1] = r - 2;
  return tf.transpose(t, perm);
}

/**
 * da·b for a batched tangent da [K, ...batch, M, N] (already untransposed): K is folded into the
 * rows, so the kernel sees the primal's own batch layout — one matmul, no copies of b.
 */
function batchedLeft(da: tf.Tensor, b: tf.Tensor, transposeB: boolean): tf.Tensor {
  const [k, ...rest] = da.shape;
  const m = rest[rest.length - 2];
  const n = rest[rest.length - 1];
  const batch = rest.slice(0, -2);
  const r = rest.length;
  // [K, ...batch, M, N] → [...batch, K, M, N] → [...batch, K·M, N]
  const perm = [...batch.map((_, i) => i + 1), 0, r - 1, r];
  const folded = tf.reshape(tf.transpose(da, perm), [...batch, k * m, n]);
  const prod = tf.matMul(folded, b, false, transposeB);
  const p = prod.shape[prod.rank - 1];
  const outBatch = prod.shape.slice(0, -2);
  const unfolded = tf.reshape(prod, [...outBatch, k, m, p]);
  const br = outBatch.length;
  return tf.transpose(unfolded, [br, ...outBatch.map((_, i) => i), br + 1, br + 2]);
}

/** a·db for a batched tangent db [K, ...batch, N, P] (already untransposed). */
function batchedRight(a: tf.Tensor, db: tf.Tensor, transposeA: boolean): tf.Tensor {
  const [k, ...rest] = db.shape;
  const n = rest[rest.length - 2];
  const p = rest[rest.length - 1];
  const batch = rest.slice(0, -2);
  const r = rest.length;
  // [K, ...batch, N, P] → [...batch, N, K, P] → [...batch, N, K·P]
  const perm = [...batch.map((_, i) => i + 1), r - 1, 0, r];
  const folded = tf.reshape(tf.transpose(db, perm), [...batch, n, k * p]);
  const prod = tf.matMul(a, folded, transposeA, false);
  const m = prod.shape[prod.rank - 2];
  const outBatch = prod.shape.slice(0, -2);
  const unfolded = tf.reshape(prod, [...outBatch, m, k, p]);
  const br = outBatch.length;
  return tf.transpose(unfolded, [br + 1, ...outBatch.map((_, i) => i), br, br + 2]);
}

function matMulTerms(c: JvpRuleContext): (tf.Tensor | null)[] {
  const { a, b } = c.inputs;
  const { a: da, b: db } = c.tangents;
  const transposeA = c.attrs.transposeA as boolean;
  const transposeB = c.attrs.transposeB as boolean;
  const left =
    da &&
    (c.batched
      ? batchedLeft(transposeA ? transposeLast(da) : da, b, transposeB)
      : tf.matMul(da, b, transposeA, transposeB));
  const right =
    db &&
    (c.batched
      ? batchedRight(a, transposeB ? transposeLast(db) : db, transposeA)
      : tf.matMul(a, db, transposeA, transposeB));
  return [left, right];
}

/** [K, ...rest] laid out so that K sits before axis `at` of rest and merges with it. */
function foldK(t: tf.Tensor, at: number): tf.Tensor {
  const rest = t.shape.slice(1);
  const perm = [...rest.map((_, i) => i + 1)];
  perm.splice(at, 0, 0);
  const shape = rest.slice();
  shape[at] *= t.shape[0];
  return tf.reshape(tf.transpose(t, perm), shape);
}

/** The inverse of {@link foldK} on a product whose axis `at` holds K·d: → [K, ...]. */
function unfoldK(p: tf.Tensor, at: number, k: number): tf.Tensor {
  const shape = p.shape.slice();
  shape.splice(at, 1, k, p.shape[at] / k);
  const perm = shape.map((_, i) => i).filter((i) => i !== at);
  return tf.transpose(tf.reshape(p, shape), [at, ...perm]);
}

export const linalgRules: RuleTable = {
  [tf.BatchMatMul]: (c) => linearOutput(c, matMulTerms(c)),
  [tf._FusedMatMul]: (c) =>
    linearOutput(c, [...matMulTerms(c), c.tangents.bias ?? null], () =>
      withBias(
        tf.matMul(c.inputs.a, c.inputs.b, c.attrs.transposeA as boolean, c.attrs.transposeB as boolean),
        c,
      ),
    ),
  [tf.Einsum]: (c) => {
    const equation = c.attrs.equation as string;
    const keys = Object.keys(c.inputs);
    const xs = keys.map((key) => c.inputs[key]);
    const terms = keys.map((key, i) => {
      const t = c.tangents[key];
      if (t === null) return null;
      if (!c.batched) return tf.einsum(equation, ...xs.map((x, j) => (j === i ? t : x)));
      // A fresh index letter carries K through the contraction.
      const [lhs, rhs] = equation.split('->');
      const letter = [...'zyxwvutsrqponmlkjihgfedcba'].find((l) => !equation.includes(l)) as string;
      const ins = lhs.split(',').map((s, j) => (j === i ? letter + s : s));
      return tf.einsum(`${ins.join(',')}->${letter}${rhs}`, ...xs.map((x, j) => (j === i ? t : x)));
    });
    return sumTerms(c, terms);
  },
  // The grouped product a backend may provide (grouped.ts). Bilinear in the same mode; with batched
  // tangents K is folded into an axis the product carries through (M of a for 'nn'/'nt'; ci or co
  // otherwise), so each term is one product.
  [FUSED_GROUPED_MATMUL]: (c) => {
    const { a, b } = c.inputs;
    const mode = (c.attrs.mode as GroupedMatMulMode | undefined) ?? 'nn';
    const { a: da, b: db } = c.tangents;
    let left: tf.Tensor | null = null;
    let right: tf.Tensor | null = null;
    if (da !== null) {
      if (!c.batched || mode !== 'tn')
        left = groupedMatMul(da, b, mode); // K joins M: [K, M, G, ·]
      else left = unfoldK(groupedMatMul(foldK(da, 2), b, 'tn'), 1, c.k); // K·ci
    }
    if (db !== null) {
      if (!c.batched) right = groupedMatMul(a, db, mode);
      else if (mode === 'nn')
        right = unfoldK(groupedMatMul(a, foldK(db, 2), 'nn'), 2, c.k); // K·co
      else if (mode === 'nt')
        right = unfoldK(groupedMatMul(a, foldK(db, 1), 'nt'), 2, c.k); // K·ci
      else right = unfoldK(groupedMatMul(a, foldK(db, 2), 'tn'), 2, c.k); // K·co
    }
    return sumTerms(c, [left, right]);
  },
};
