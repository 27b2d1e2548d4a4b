import * as tf from '@tensorflow/tfjs';
import { FUSED_GROUPED_MATMUL, type GroupedMatMulMode, groupedMatMul } from './grouped.js';

/**
 * JVP rules, one per tfjs kernel name — the forward-mode counterpart of tfjs's gradient
 * registry (tfjs-core `src/gradients/*_grad.ts`), keyed like JAX's `primitive_jvps`.
 *
 * A rule receives the kernel's inputs, their tangents (`null` = zero), attributes and outputs
 * and returns the outputs' tangents (`null` = zero). With batched tangents every tangent has a
 * leading axis of size K; the helpers below (`lift`, `axisOf`, `fit`) keep rules readable in
 * both modes. Rules run with the current jvp level suspended, inside a `tf.tidy`.
 */
export interface JvpRuleContext {
  inputs: Record<string, tf.Tensor>;
  tangents: Record<string, tf.Tensor | null>;
  attrs: Record<string, unknown>;
  outputs: tf.Tensor[];
  /** Tangents carry a leading axis of size `k`. */
  batched: boolean;
  k: number;
}

export type JvpRule = (ctx: JvpRuleContext) => tf.Tensor | (tf.Tensor | null)[] | null;

const registry = new Map<string, JvpRule>();

/** Registers (or replaces) the JVP rule of a tfjs kernel. */
export function registerJvpRule(kernelName: string, rule: JvpRule): void {
  registry.set(kernelName, rule);
}

export function getRule(kernelName: string): JvpRule | undefined {
  return registry.get(kernelName);
}

/** Kernel names that have a JVP rule, sorted. */
export function supportedKernels(): string[] {
  return [...registry.keys()].sort();
}

// ---------------------------------------------------------------------------------------------
// Helpers for rules that work both unbatched and batched.

/** Number of leading tangent axes (0 or 1). */
function lead(c: JvpRuleContext): number {
  return c.batched ? 1 : 0;
}

/**
 * A tangent of a tensor of rank r, lifted so that it broadcasts against primal-shaped factors
 * of an output of rank `rank`: batched [K, ...s] → [K, 1, …, 1, ...s] (rank + 1 axes).
 */
function lift(c: JvpRuleContext, t: tf.Tensor, rank: number): tf.Tensor {
  if (!c.batched) return t;
  const inner = t.shape.slice(1);
  if (inner.length === rank) return t;
  return tf.reshape(t, [t.shape[0], ...new Array(rank - inner.length).fill(1), ...inner]);
}

/** Broadcasts a tangent to the full shape of output i (adding K in batched mode). */
function fit(c: JvpRuleContext, t: tf.Tensor, i = 0): tf.Tensor {
  const shape = c.batched ? [c.k, ...c.outputs[i].shape] : c.outputs[i].shape;
  if (t.shape.length === shape.length && t.shape.every((d, j) => d === shape[j])) return t;
  return tf.broadcastTo(lift(c, t, c.outputs[i].rank), shape);
}

/** Normalises an axis (or axes) of a primal of rank `rank`, shifted past the K axis. */
function axesOf(c: JvpRuleContext, axis: unknown, rank: number): number[] {
  const list =
    axis === null || axis === undefined
      ? Array.from({ length: rank }, (_, i) => i)
      : Array.isArray(axis)
        ? (axis as number[])
        : [axis as number];
  return list.map((a) => (a < 0 ? a + rank : a) + lead(c));
}

function axisOf(c: JvpRuleContext, axis: number, rank: number): number {
  return (axis < 0 ? axis + rank : axis) + lead(c);
}

/** Sums the tangent terms that are present; null when all are absent (zero tangent). */
function sumTerms(c: JvpRuleContext, terms: (tf.Tensor | null)[], i = 0): tf.Tensor | null {
  const present = terms.filter((t): t is tf.Tensor => t !== null);
  if (present.length === 0) return null;
  const rank = c.outputs[i].rank;
  let acc = lift(c, present[0], rank);
  for (const t of present.slice(1)) acc = tf.add(acc, lift(c, t, rank));
  return fit(c, acc, i);
}

/** d·f′(x) for unary elementwise kernels: the rule gives f′ from x and the output y. */
function unary(deriv: (x: tf.Tensor, y: tf.Tensor, attrs: Record<string, unknown>) => tf.Tensor): JvpRule {
  return (c) => {
    const dx = c.tangents.x;
    if (dx === null) return null;
    return tf.mul(dx, deriv(c.inputs.x, c.outputs[0], c.attrs));
  };
}

/** Kernels linear in x whose op can be applied to each of the K tangents. */
function perSample(c: JvpRuleContext, t: tf.Tensor, op: (t: tf.Tensor) => tf.Tensor): tf.Tensor {
  if (!c.batched) return op(t);
  return tf.stack(tf.unstack(t).map(op));
}

function zeroRule(): null {
  return null;
}

// ---------------------------------------------------------------------------------------------
// Elementwise binary kernels (with broadcasting).

registerJvpRule('Add', (c) => sumTerms(c, [c.tangents.a, c.tangents.b]));
registerJvpRule('AddN', (c) =>
  sumTerms(
    c,
    Object.keys(c.inputs).map((key) => c.tangents[key]),
  ),
);
registerJvpRule('Sub', (c) => {
  const { a: da, b: db } = c.tangents;
  return sumTerms(c, [da, db === null ? null : tf.neg(db)]);
});
registerJvpRule('Multiply', (c) => {
  const { a, b } = c.inputs;
  const { a: da, b: db } = c.tangents;
  const r = c.outputs[0].rank;
  return sumTerms(c, [da && tf.mul(lift(c, da, r), b), db && tf.mul(a, lift(c, db, r))]);
});
registerJvpRule('RealDiv', (c) => {
  // d(a/b) = (da − db·(a/b)) / b
  const { b } = c.inputs;
  const { a: da, b: db } = c.tangents;
  const y = c.outputs[0];
  const r = y.rank;
  return sumTerms(c, [da && tf.div(lift(c, da, r), b), db && tf.neg(tf.div(tf.mul(lift(c, db, r), y), b))]);
});
registerJvpRule('SquaredDifference', (c) => {
  // d(a − b)² = 2(a − b)(da − db)
  const { a, b } = c.inputs;
  const { a: da, b: db } = c.tangents;
  const diff = sumTerms(c, [da, db && tf.neg(db)]);
  return diff && tf.mul(diff, tf.mul(2, tf.sub(a, b)));
});
function selectBranch(c: JvpRuleContext, pickA: tf.Tensor): tf.Tensor | null {
  // pickA: 1 where the output is a, 0 where it is b (broadcast to the output's shape).
  const { a: da, b: db } = c.tangents;
  const r = c.outputs[0].rank;
  const maskA = tf.cast(pickA, 'float32');
  return sumTerms(c, [da && tf.mul(lift(c, da, r), maskA), db && tf.mul(lift(c, db, r), tf.sub(1, maskA))]);
}
// Ties follow tfjs's gradients: Maximum sends them to a (a >= b), Minimum to a (a <= b).
registerJvpRule('Maximum', (c) => selectBranch(c, tf.greaterEqual(c.inputs.a, c.inputs.b)));
registerJvpRule('Minimum', (c) => selectBranch(c, tf.lessEqual(c.inputs.a, c.inputs.b)));
registerJvpRule('Pow', (c) => {
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
});

// ---------------------------------------------------------------------------------------------
// Elementwise unary kernels.

registerJvpRule('Identity', (c) => c.tangents.x);
registerJvpRule(
  'Cast',
  (c) => (c.outputs[0].dtype === 'float32' ? c.tangents.x : null), // int/bool casts: no tangent
);
registerJvpRule('Neg', (c) => c.tangents.x && tf.neg(c.tangents.x));
registerJvpRule(
  'Square',
  unary((x) => tf.mul(2, x)),
);
registerJvpRule(
  'Sqrt',
  unary((_x, y) => tf.div(0.5, y)),
);
registerJvpRule(
  'Rsqrt',
  unary((_x, y) => tf.mul(-0.5, tf.pow(y, 3))),
);
registerJvpRule(
  'Reciprocal',
  unary((_x, y) => tf.neg(tf.square(y))),
);
registerJvpRule(
  'Exp',
  unary((_x, y) => y),
);
registerJvpRule(
  'Expm1',
  unary((_x, y) => tf.add(y, 1)),
);
registerJvpRule(
  'Log',
  unary((x) => tf.reciprocal(x)),
);
registerJvpRule(
  'Log1p',
  unary((x) => tf.reciprocal(tf.add(x, 1))),
);
registerJvpRule(
  'Tanh',
  unary((_x, y) => tf.sub(1, tf.square(y))),
);
registerJvpRule(
  'Sigmoid',
  unary((_x, y) => tf.mul(y, tf.sub(1, y))),
);
registerJvpRule(
  'Softplus',
  unary((x) => tf.sigmoid(x)),
);
registerJvpRule(
  'Relu',
  unary((x) => tf.step(x)), // 1[x > 0], one kernel (greater + cast is three times slower on wasm)
);
registerJvpRule(
  'Relu6',
  unary((x) => tf.cast(tf.logicalAnd(tf.greater(x, 0), tf.less(x, 6)), 'float32')),
);
registerJvpRule(
  'Elu',
  unary((x, y) => tf.where(tf.greater(x, 0), tf.onesLike(x), tf.add(y, 1))),
);
registerJvpRule(
  'LeakyRelu',
  unary((x, _y, attrs) =>
    tf.where(tf.greater(x, 0), tf.onesLike(x), tf.fill(x.shape, attrs.alpha as number)),
  ),
);
registerJvpRule(
  'Abs',
  unary((x) => tf.sign(x)),
);
registerJvpRule(
  'Sin',
  unary((x) => tf.cos(x)),
);
registerJvpRule(
  'Cos',
  unary((x) => tf.neg(tf.sin(x))),
);
registerJvpRule(
  'Erf',
  unary((x) => tf.mul(2 / Math.sqrt(Math.PI), tf.exp(tf.neg(tf.square(x))))),
);
registerJvpRule(
  'ClipByValue',
  unary((x, _y, attrs) =>
    tf.cast(
      tf.logicalAnd(
        tf.greaterEqual(x, attrs.clipValueMin as number),
        tf.lessEqual(x, attrs.clipValueMax as number),
      ),
      'float32',
    ),
  ),
);
for (const name of ['Sign', 'Floor', 'Ceil', 'Round', 'Step', 'ZerosLike', 'OnesLike', 'Fill']) {
  registerJvpRule(name, zeroRule);
}
registerJvpRule('Select', (c) => {
  const { condition } = c.inputs;
  const { t: dt, e: de } = c.tangents;
  const r = c.outputs[0].rank;
  const m = tf.cast(condition, 'float32');
  const mask = m.rank < r ? tf.reshape(m, [...m.shape, ...new Array(r - m.rank).fill(1)]) : m;
  return sumTerms(c, [dt && tf.mul(lift(c, dt, r), mask), de && tf.mul(lift(c, de, r), tf.sub(1, mask))]);
});

// ---------------------------------------------------------------------------------------------
// Shape and data-movement kernels (linear in x).

registerJvpRule('Reshape', (c) => {
  const dx = c.tangents.x;
  return dx && tf.reshape(dx, c.batched ? [c.k, ...c.outputs[0].shape] : c.outputs[0].shape);
});
registerJvpRule('ExpandDims', (c) => {
  const dx = c.tangents.input;
  return dx && tf.reshape(dx, c.batched ? [c.k, ...c.outputs[0].shape] : c.outputs[0].shape);
});
registerJvpRule('Transpose', (c) => {
  const dx = c.tangents.x;
  const perm = c.attrs.perm as number[];
  return dx && tf.transpose(dx, c.batched ? [0, ...perm.map((p) => p + 1)] : perm);
});
registerJvpRule('Slice', (c) => {
  const dx = c.tangents.x;
  if (dx === null) return null;
  const [begin, size] = tf.slice_util.parseSliceParams(
    c.inputs.x,
    c.attrs.begin as number | number[],
    c.attrs.size as number | number[] | undefined,
  );
  return c.batched ? tf.slice(dx, [0, ...begin], [-1, ...size]) : tf.slice(dx, begin, size);
});
registerJvpRule('StridedSlice', (c) => {
  const dx = c.tangents.x;
  if (dx === null) return null;
  const a = c.attrs as Record<string, number | number[]>;
  return perSample(c, dx, (t) =>
    tf.stridedSlice(
      t,
      a.begin as number[],
      a.end as number[],
      a.strides as number[],
      a.beginMask as number,
      a.endMask as number,
      a.ellipsisMask as number,
      a.newAxisMask as number,
      a.shrinkAxisMask as number,
    ),
  );
});
registerJvpRule('Concat', (c) => {
  const keys = Object.keys(c.inputs);
  const rank = c.outputs[0].rank;
  const parts = keys.map(
    (key) => c.tangents[key] ?? tf.zeros(c.batched ? [c.k, ...c.inputs[key].shape] : c.inputs[key].shape),
  );
  return tf.concat(parts, axisOf(c, c.attrs.axis as number, rank));
});
registerJvpRule('Pack', (c) => {
  const keys = Object.keys(c.inputs);
  const parts = keys.map(
    (key) => c.tangents[key] ?? tf.zeros(c.batched ? [c.k, ...c.inputs[key].shape] : c.inputs[key].shape),
  );
  return tf.stack(parts, axisOf(c, c.attrs.axis as number, c.outputs[0].rank));
});
registerJvpRule('Unpack', (c) => {
  const dx = c.tangents.value;
  return dx && tf.unstack(dx, axisOf(c, c.attrs.axis as number, c.inputs.value.rank));
});
registerJvpRule('SplitV', (c) => {
  const dx = c.tangents.x;
  if (dx === null) return null;
  const axis = axisOf(c, c.attrs.axis as number, c.inputs.x.rank);
  return tf.split(
    dx,
    c.outputs.map((o) => o.shape[axis - lead(c)]),
    axis,
  );
});
registerJvpRule('Tile', (c) => {
  const dx = c.tangents.x;
  const reps = c.attrs.reps as number[];
  return dx && tf.tile(dx, c.batched ? [1, ...reps] : reps);
});
registerJvpRule('BroadcastTo', (c) => {
  const dx = c.tangents.x;
  return dx && fit(c, lift(c, dx, c.outputs[0].rank));
});
registerJvpRule('PadV2', (c) => {
  const dx = c.tangents.x;
  const paddings = c.attrs.paddings as [number, number][];
  return dx && tf.pad(dx, c.batched ? [[0, 0], ...paddings] : paddings, 0);
});
registerJvpRule('Reverse', (c) => {
  const dx = c.tangents.x;
  return dx && tf.reverse(dx, axesOf(c, c.attrs.dims, c.inputs.x.rank));
});
registerJvpRule('GatherV2', (c) => {
  const dx = c.tangents.x;
  if (dx === null) return null;
  const axis = c.attrs.axis as number;
  const batchDims = (c.attrs.batchDims as number) ?? 0;
  if (batchDims === 0) return tf.gather(dx, c.inputs.indices, axisOf(c, axis, c.inputs.x.rank));
  return perSample(c, dx, (t) => tf.gather(t, c.inputs.indices, axis, batchDims));
});

// ---------------------------------------------------------------------------------------------
// Reductions.

registerJvpRule('Sum', (c) => {
  const dx = c.tangents.x;
  return dx && tf.sum(dx, axesOf(c, c.attrs.axis, c.inputs.x.rank), c.attrs.keepDims as boolean);
});
registerJvpRule('Mean', (c) => {
  const dx = c.tangents.x;
  return dx && tf.mean(dx, axesOf(c, c.attrs.axis, c.inputs.x.rank), c.attrs.keepDims as boolean);
});
function extremum(axisAttr: string): JvpRule {
  // Consistent with tfjs's gradient of Max/Min: the tangent of every element equal to the
  // extremum flows to the output (ties add up).
  return (c) => {
    const dx = c.tangents.x;
    if (dx === null) return null;
    const x = c.inputs.x;
    const axes = axesOf(c, c.attrs[axisAttr], x.rank).map((a) => a - lead(c));
    const yKeep = tf.reshape(
      c.outputs[0],
      x.shape.map((d, i) => (axes.includes(i) ? 1 : d)),
    );
    const mask = tf.cast(tf.equal(x, yKeep), 'float32');
    return tf.sum(tf.mul(dx, mask), axesOf(c, c.attrs[axisAttr], x.rank), c.attrs.keepDims as boolean);
  };
}
registerJvpRule('Max', extremum('reductionIndices'));
registerJvpRule('Min', extremum('axis'));
registerJvpRule('Softmax', (c) => {
  // dy = y ⊙ (dx − Σ dx ⊙ y)
  const dx = c.tangents.logits;
  if (dx === null) return null;
  const y = c.outputs[0];
  const axis = axisOf(c, c.attrs.dim as number, y.rank);
  const dot = tf.sum(tf.mul(dx, y), axis, true);
  return tf.mul(y, tf.sub(dx, dot));
});

// ---------------------------------------------------------------------------------------------
// Matrix products.

function transposeLast(t: tf.Tensor): tf.Tensor {
  const r = t.rank;
  const perm = Array.from({ length: r }, (_, i) => i);
  perm[r - 2] = r - 1;
  perm[r - 1] = r - 2;
  return tf.transpose(t, perm);
}

/**
 * da·b for a batched tangent da [K, ...batch, M, N] (already untransposed): K is folded into
 * the rows, so the kernel sees the primal's own batch layout — one matmul, no copies of b.
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

function matMulTangent(c: JvpRuleContext, daIn: tf.Tensor | null, dbIn: tf.Tensor | null): tf.Tensor | null {
  const { a, b } = c.inputs;
  const transposeA = c.attrs.transposeA as boolean;
  const transposeB = c.attrs.transposeB as boolean;
  let left: tf.Tensor | null = null;
  let right: tf.Tensor | null = null;
  if (daIn !== null) {
    left = c.batched
      ? batchedLeft(transposeA ? transposeLast(daIn) : daIn, b, transposeB)
      : tf.matMul(daIn, b, transposeA, transposeB);
  }
  if (dbIn !== null) {
    right = c.batched
      ? batchedRight(a, transposeB ? transposeLast(dbIn) : dbIn, transposeA)
      : tf.matMul(a, dbIn, transposeA, transposeB);
  }
  return sumTerms(c, [left, right]);
}

registerJvpRule('BatchMatMul', (c) => matMulTangent(c, c.tangents.a, c.tangents.b));
registerJvpRule('_FusedMatMul', (c) => {
  const activation = (c.attrs.activation as string | undefined) ?? 'linear';
  if (c.tangents.preluActivationWeights) {
    throw new Error("jvp: tf.fused.matMul with a tangent on 'preluActivationWeights' is not supported");
  }
  const dz = sumTerms(c, [matMulTangent(c, c.tangents.a, c.tangents.b), c.tangents.bias ?? null]);
  if (dz === null) return null;
  const y = c.outputs[0];
  switch (activation) {
    case 'linear':
      return dz;
    case 'relu':
      return tf.mul(dz, tf.cast(tf.greater(y, 0), 'float32'));
    default:
      throw new Error(
        `jvp: tf.fused.matMul with activation '${activation}' has no JVP rule; use 'linear' or 'relu', ` +
          'or apply the activation as a separate op',
      );
  }
});
registerJvpRule('Einsum', (c) => {
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
});

// ---------------------------------------------------------------------------------------------
// Fused layer-norm kernels a backend may provide (see ops.ts: FUSED_LAYER_NORM). Written with tfjs
// ops, so that nested jvp levels and tapes see through them. Both normalise over one axis (attribute
// `axis`, default −1), given relative to x (and y).

function normAxis(axis: unknown, rank: number): number {
  const a = axis === undefined || axis === null ? -1 : (axis as number);
  return a < 0 ? a + rank : a;
}

// y = (x − μ)·r, r = 1/√(var + ε): dy = r·(dx − E[dx] − y·E[y·dx]), dr = −r²·E[y·dx]
registerJvpRule('FwdgradLayerNorm', (c) => {
  const dx = c.tangents.x;
  if (dx === null) return null;
  const [y, r] = c.outputs;
  const ax = normAxis(c.attrs.axis, y.rank) + lead(c); // in dx's coordinates
  const proj = tf.mean(tf.mul(y, dx), ax, true);
  const dy = tf.mul(tf.sub(tf.sub(dx, tf.mean(dx, ax, true)), tf.mul(y, proj)), r);
  const dr = tf.neg(tf.mul(tf.square(r), proj));
  return [dy, dr];
});

// out = r·(t − E[t] − y·E[y·t]); t may stack copies over leading axes of y's shape
registerJvpRule('FwdgradLayerNormJvp', (c) => {
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
});

// ---------------------------------------------------------------------------------------------
// The grouped product a backend may provide (grouped.ts: FUSED_GROUPED_MATMUL). Bilinear:
// d(a ⋆ b) = da ⋆ b + a ⋆ db in the same mode. With batched tangents K is folded into an axis the
// product carries through (M of a for 'nn'/'nt'; ci or co otherwise), so each term is one product.

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

registerJvpRule(FUSED_GROUPED_MATMUL, (c) => {
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
});
