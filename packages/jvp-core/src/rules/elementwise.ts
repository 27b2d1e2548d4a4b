import * as tf from '@tensorflow/tfjs';
import { fit, lift, positive, sumTerms, unary, zeroRule } from './helpers.js';
import type { JvpRuleContext, RuleTable } from './registry.js';

/** Elementwise kernels: binary (with broadcasting), unary, and the activations tf.layers runs. */

function selectBranch(c: JvpRuleContext, pickA: tf.Tensor): tf.Tensor | null {
  // pickA: 1 where the output is a, 0 where it is b (broadcast to the output's shape).
  const { a: da, b: db } = c.tangents;
  const r = c.outputs[0].rank;
  const maskA = tf.cast(pickA, 'float32');
  return sumTerms(c, [da && tf.mul(lift(c, da, r), maskA), db && tf.mul(lift(c, db, r), tf.sub(1, maskA))]);
}

const mask = (cond: tf.Tensor) => tf.cast(cond, 'float32');

// tfjs's SELU constants (tfjs-core selu_util)
const SELU_SCALE = 1.0507009873554805;
const SELU_SCALEALPHA = 1.7580993408473768;

export const elementwiseRules: RuleTable = {
  [tf.Add]: (c) => sumTerms(c, [c.tangents.a, c.tangents.b]),
  [tf.AddN]: (c) =>
    sumTerms(
      c,
      Object.keys(c.inputs).map((key) => c.tangents[key]),
    ),
  [tf.Sub]: (c) => {
    const { a: da, b: db } = c.tangents;
    if (da === null || db === null) return sumTerms(c, [da, db && tf.neg(db)]);
    const r = c.outputs[0].rank;
    return fit(c, tf.sub(lift(c, da, r), lift(c, db, r))); // one kernel, not neg + add
  },
  [tf.Multiply]: (c) => {
    const { a, b } = c.inputs;
    const { a: da, b: db } = c.tangents;
    const r = c.outputs[0].rank;
    return sumTerms(c, [da && tf.mul(lift(c, da, r), b), db && tf.mul(a, lift(c, db, r))]);
  },
  [tf.RealDiv]: (c) => {
    // d(a/b) = (da − db·(a/b)) / b
    const { b } = c.inputs;
    const { a: da, b: db } = c.tangents;
    const y = c.outputs[0];
    const r = y.rank;
    return sumTerms(c, [da && tf.div(lift(c, da, r), b), db && tf.neg(tf.div(tf.mul(lift(c, db, r), y), b))]);
  },
  [tf.SquaredDifference]: (c) => {
    // d(a − b)² = 2(a − b)(da − db)
    const { a, b } = c.inputs;
    const diff = sumTerms(c, [c.tangents.a, c.tangents.b && tf.neg(c.tangents.b)]);
    return diff && tf.mul(diff, tf.mul(2, tf.sub(a, b)));
  },
  // Ties follow tfjs's gradients: Maximum sends them to a (a >= b), Minimum to a (a <= b).
  [tf.Maximum]: (c) => selectBranch(c, tf.greaterEqual(c.inputs.a, c.inputs.b)),
  [tf.Minimum]: (c) => selectBranch(c, tf.lessEqual(c.inputs.a, c.inputs.b)),
  [tf.Pow]: (c) => {
    // d(a^b) = da·b·a^(b−1) + db·a^b·log(a) (the second term only where a > 0, as tfjs).
    const { a, b } = c.inputs;
    const { a: da, b: db } = c.tangents;
    const y = c.outputs[0];
    const r = y.rank;
    const logA = db && tf.where(tf.greater(a, 0), tf.log(a), tf.zerosLike(a));
    return sumTerms(c, [
      da && tf.mul(lift(c, da, r), tf.mul(b, tf.pow(a, tf.sub(b, 1)))),
      db && logA && tf.mul(lift(c, db, r), tf.mul(y, logA)),
    ]);
  },
  [tf.Prelu]: (c) => {
    // y = x (x > 0), α·x otherwise: dy = dx·(x > 0 ? 1 : α) + dα·min(x, 0)
    const { x, alpha } = c.inputs;
    const { x: dx, alpha: da } = c.tangents;
    const r = c.outputs[0].rank;
    const pos = mask(tf.greater(x, 0));
    return sumTerms(c, [
      dx && tf.mul(lift(c, dx, r), tf.add(pos, tf.mul(tf.sub(1, pos), alpha))),
      da && tf.mul(lift(c, da, r), tf.minimum(x, 0)),
    ]);
  },
  [tf.Select]: (c) => {
    const { condition } = c.inputs;
    const { t: dt, e: de } = c.tangents;
    const r = c.outputs[0].rank;
    const m = mask(condition);
    const mk = m.rank < r ? tf.reshape(m, [...m.shape, ...new Array(r - m.rank).fill(1)]) : m;
    return sumTerms(c, [dt && tf.mul(lift(c, dt, r), mk), de && tf.mul(lift(c, de, r), tf.sub(1, mk))]);
  },

  // Unary kernels.
  [tf.Identity]: (c) => c.tangents.x,
  [tf.Cast]: (c) => (c.outputs[0].dtype === 'float32' ? c.tangents.x : null), // int/bool casts: no tangent
  [tf.Neg]: (c) => c.tangents.x && tf.neg(c.tangents.x),
  [tf.Square]: unary((x) => tf.mul(2, x)),
  [tf.Sqrt]: unary((_x, y) => tf.div(0.5, y)),
  [tf.Rsqrt]: unary((_x, y) => tf.mul(-0.5, tf.pow(y, 3))),
  [tf.Reciprocal]: unary((_x, y) => tf.neg(tf.square(y))),
  [tf.Exp]: unary((_x, y) => y),
  [tf.Expm1]: unary((_x, y) => tf.add(y, 1)),
  [tf.Log]: (c) => c.tangents.x && tf.div(c.tangents.x, c.inputs.x), // dx / x: one kernel
  [tf.Log1p]: unary((x) => tf.reciprocal(tf.add(x, 1))),
  [tf.Tanh]: unary((_x, y) => tf.sub(1, tf.square(y))),
  [tf.Sigmoid]: unary((_x, y) => tf.mul(y, tf.sub(1, y))),
  [tf.Softplus]: unary((x) => tf.sigmoid(x)),
  [tf.Relu]: unary((x) => positive(x)), // 1[x > 0]
  [tf.Relu6]: unary((x) => mask(tf.logicalAnd(tf.greater(x, 0), tf.less(x, 6)))),
  [tf.Elu]: unary((x, y) => tf.where(tf.greater(x, 0), tf.onesLike(x), tf.add(y, 1))),
  [tf.Selu]: unary((x, y) =>
    tf.where(tf.greater(x, 0), tf.fill(x.shape, SELU_SCALE), tf.add(y, SELU_SCALEALPHA)),
  ),
  [tf.LeakyRelu]: unary((x, _y, attrs) =>
    tf.where(tf.greater(x, 0), tf.onesLike(x), tf.fill(x.shape, attrs.alpha as number)),
  ),
  [tf.Abs]: unary((x) => tf.sign(x)),
  [tf.Sin]: unary((x) => tf.cos(x)),
  [tf.Cos]: unary((x) => tf.neg(tf.sin(x))),
  [tf.Erf]: unary((x) => tf.mul(2 / Math.sqrt(Math.PI), tf.exp(tf.neg(tf.square(x))))),
  [tf.ClipByValue]: unary((x, _y, attrs) =>
    mask(
      tf.logicalAnd(
        tf.greaterEqual(x, attrs.clipValueMin as number),
        tf.lessEqual(x, attrs.clipValueMax as number),
      ),
    ),
  ),
  [tf.Sign]: zeroRule,
  [tf.Floor]: zeroRule,
  [tf.Ceil]: zeroRule,
  [tf.Round]: zeroRule,
  [tf.Step]: zeroRule,
  [tf.ZerosLike]: zeroRule,
  [tf.OnesLike]: zeroRule,
  [tf.Fill]: zeroRule,
};
