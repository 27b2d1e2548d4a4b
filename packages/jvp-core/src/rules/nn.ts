import * as tf from '@tensorflow/tfjs';
import { FUSED_LAYER_NORM, FUSED_LAYER_NORM_JVP } from '../kernel-names.js';
import { fit, lead, lift, sumTerms } from './helpers.js';
import type { RuleTable } from './registry.js';

/** Normalisation kernels: tfjs's batch norm (BatchNormalization, LayerNormalization) and the fused
 * layer-norm kernels a backend may provide (ops.ts), written with tfjs ops so that nested jvp levels and
 * tapes see through them. */

function normAxis(axis: unknown, rank: number): number {
  const a = axis === undefined || axis === null ? -1 : (axis as number);
  return a < 0 ? a + rank : a;
}

export const nnRules: RuleTable = {
  // y = (x − μ)·r·γ + β, r = 1/√(σ² + ε) (every parameter broadcast against x):
  // dy = γr(dx − dμ) − ½γ·x̂·r²·dσ² + x̂·dγ + dβ, x̂ = (x − μ)·r
  [tf.FusedBatchNorm]: (c) => {
    const { x, mean, variance, scale } = c.inputs;
    const { x: dx, mean: dm, variance: dv } = c.tangents;
    const ds = c.tangents.scale ?? null;
    const db = c.tangents.offset ?? null;
    const rank = c.outputs[0].rank;
    const r = tf.rsqrt(tf.add(variance, c.attrs.varianceEpsilon as number));
    const gr = scale ? tf.mul(scale, r) : r;
    const xhat = dv !== null || ds !== null ? tf.mul(tf.sub(x, mean), r) : null;
    const l = (t: tf.Tensor) => lift(c, t, rank);
    return sumTerms(c, [
      dx && tf.mul(l(dx), gr),
      dm && tf.neg(tf.mul(l(dm), gr)),
      dv && xhat && tf.mul(l(dv), tf.mul(-0.5, tf.mul(tf.mul(gr, r), xhat))),
      ds && xhat && tf.mul(l(ds), xhat),
      db,
    ]);
  },
  // y = (x − μ)·r, r = 1/√(var + ε): dy = r·(dx − E[dx] − y·E[y·dx]), dr = −r²·E[y·dx]
  [FUSED_LAYER_NORM]: (c) => {
    const dx = c.tangents.x;
    if (dx === null) return null;
    const [y, r] = c.outputs;
    const ax = normAxis(c.attrs.axis, y.rank) + lead(c); // in dx's coordinates
    const proj = tf.mean(tf.mul(y, dx), ax, true);
    const dy = tf.mul(tf.sub(tf.sub(dx, tf.mean(dx, ax, true)), tf.mul(y, proj)), r);
    const dr = tf.neg(tf.mul(tf.square(r), proj));
    return [dy, dr];
  },
  // out = r·(t − E[t] − y·E[y·t]); t may stack copies over leading axes of y's shape
  [FUSED_LAYER_NORM_JVP]: (c) => {
    const { t, y, r } = c.inputs;
    const rank = t.rank;
    const ax = normAxis(c.attrs.axis, y.rank) + (rank - y.rank); // in t's coordinates
    const axT = ax + lead(c); // in the lifted tangents' coordinates
    const mean = (v: tf.Tensor, a: number) => tf.mean(v, a, true);
    const dt = c.tangents.t === null ? null : lift(c, c.tangents.t, rank);
    const dy = c.tangents.y === null ? null : lift(c, c.tangents.y, rank);
    const dr = c.tangents.r === null ? null : lift(c, c.tangents.r, rank);
    const yt = mean(tf.mul(y, t), ax);
    const terms: tf.Tensor[] = [];
    if (dt !== null) terms.push(tf.sub(tf.sub(dt, mean(dt, axT)), tf.mul(y, mean(tf.mul(y, dt), axT))));
    if (dy !== null) terms.push(tf.neg(tf.add(tf.mul(dy, yt), tf.mul(y, mean(tf.mul(dy, t), axT)))));
    let out: tf.Tensor | null =
      terms.length === 0
        ? null
        : tf.mul(
            terms.reduce((a, b) => tf.add(a, b)),
            r,
          );
    if (dr !== null) {
      const base = tf.sub(tf.sub(t, mean(t, ax)), tf.mul(y, yt));
      const fromR = tf.mul(dr, base);
      out = out === null ? fromR : tf.add(out, fromR);
    }
    return out === null ? null : fit(c, out);
  },
};
