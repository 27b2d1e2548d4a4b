import * as tf from '@tensorflow/tfjs';
import { checkLayout, type LinearLayout, linearParamGradients } from '@fwdgrad/linear';
import { sameShape, shapeString } from './util.js';

/** Input of {@link activityWeightGradient}: what one perturbed linear layer recorded, plus its loss tangent. */
export interface ActivityWeightGradientInput {
  /** The layer's name, for error messages. */
  name?: string;
  /** How the layer contracts its input. */
  layout: LinearLayout;
  /** The linear's input: dense `[..., in]`, grouped `[..., G, in/G]`, token `[N, C, P]`. */
  pre: tf.Tensor;
  /** The linear's output before normalisation: dense `[..., out]`, grouped `[..., G, out/G]`, token `[N, C, P]`. */
  prenorm: tf.Tensor;
  /** The activation after the ReLU (and residual), prenorm's shape; needed when `reluMask` is on. */
  post?: tf.Tensor;
  /** The noise u injected after the normalisation: `[K, ...prenorm.shape]`, or prenorm's shape for K = 1. */
  noise: tf.Tensor;
  /**
   * The loss tangent that reaches each unit (REFERENCE 1.6 step 1), broadcastable to `noise`: same rank as
   * `noise`, each axis equal or 1 — or, on the last axis only, G dividing the units: one tangent per group
   * of units/G consecutive units (a dense layer whose outputs feed G groups). Global FG-A: per-example tangents `[K, N, 1, …]`; local losses: the
   * model's mapping of t_k (e.g. {@link expandGroupTangent}).
   */
  unitTangent: tf.Tensor;
  /** The parameter-free normalisation applied to `prenorm` in the forward pass (none when absent). */
  normalize?: (z: tf.Tensor) => tf.Tensor;
  /**
   * The exact VJP of `normalize` at `prenorm`, if the forward pass kept one (the activity recorder does for
   * a linearisable normalisation, e.g. jvp-core's `layerNormFunction`); used instead of re-running
   * `normalize` under `tf.grad`, which gives the same numbers at the cost of a second normalisation.
   */
  normalizeVjp?: (g: tf.Tensor) => tf.Tensor;
  /**
   * Back-propagate through `normalize` with its exact VJP at `prenorm` (REFERENCE 1.6 step 3) — the one,
   * local, documented reverse-mode pass of the activity estimator. `false` is the paper's "NG" variant (§3.6).
   * Default true.
   */
  normGradient?: boolean;
  /** Zero the estimate where `post` ≤ 0 (paper §3.6: inactive units have zero gradient). Default true. */
  reluMask?: boolean;
  /** 1[post > 0] when the caller already has it (the activity recorder does); else computed from `post`. */
  active?: tf.Tensor;
  /** Optional: the layer's weight and bias shapes, checked against the estimate's. */
  weightShape?: number[];
  biasShape?: number[];
}

function layerName(name: string | undefined): string {
  return name === undefined ? 'activityWeightGradient' : `activityWeightGradient (layer '${name}')`;
}

function checkPrePrenorm(where: string, layout: LinearLayout, pre: tf.Tensor, prenorm: tf.Tensor): void {
  const bad = (expected: string) => {
    throw new Error(
      `${where}: pre ${shapeString(pre.shape)} and prenorm ${shapeString(prenorm.shape)} do not fit a ${layout} ` +
        `layer; expected ${expected}`,
    );
  };
  if (layout === 'token') {
    if (pre.rank !== 3 || !sameShape(pre.shape, prenorm.shape)) bad('both [N, C, P]');
  } else if (layout === 'grouped') {
    if (
      pre.rank < 3 ||
      pre.rank !== prenorm.rank ||
      !sameShape(pre.shape.slice(0, -1), prenorm.shape.slice(0, -1))
    ) {
      bad('pre [..., G, in/G] and prenorm [..., G, out/G] with the same leading axes');
    }
  } else if (
    pre.rank < 2 ||
    pre.rank !== prenorm.rank ||
    !sameShape(pre.shape.slice(0, -1), prenorm.shape.slice(0, -1))
  ) {
    bad('pre [..., in] and prenorm [..., out] with the same leading axes');
  }
}

/**
 * The VJP of the layer's normalisation at `prenorm` applied to `g`: the one kept from the forward pass if
 * any, else `tf.grad` of `normalize` (re-running it), else (no normalisation) `g` itself.
 */
function normalizationVjp(input: ActivityWeightGradientInput, g: tf.Tensor): tf.Tensor {
  const { normalize, normalizeVjp, prenorm } = input;
  if (normalizeVjp !== undefined) return normalizeVjp(g);
  if (normalize === undefined) return g;
  return tf.grad((z: tf.Tensor) => {
    const y = normalize(z);
    // an identity "normalisation" (placements without a post-linear norm) returns z itself, which
    // tf.grad cannot differentiate: its VJP is the cotangent
    return y === z ? tf.mul(z, 1) : y;
  })(prenorm, g);
}

/**
 * The activity-perturbed weight estimate of one linear layer (paper eq. 3, REFERENCE 1.6 steps 2–4):
 * ĝ_z = mean_K(unitTangent ⊙ noise) ⊙ 1[post > 0]; ĝ_pre = VJP of `normalize` at `prenorm` applied to ĝ_z (or
 * ĝ_z itself with `normGradient: false` or no normalisation); dW = Σ pre ⊗ ĝ_pre per layout, db = Σ ĝ_pre.
 * Averaging over K first is exact: everything after the product is linear in ĝ_z.
 *
 * Model-agnostic: the caller supplies the recorded tensors (see `createActivityRecorder`) and the tangent
 * per unit. Returns `{ dw, db }` (caller owns): dense `[in, out]`/`[out]`, grouped `[G, in/G, out/G]`/
 * `[G, out/G]`, token `[P, P]`/`[P]`. Every shape is checked; errors name the layer and both shapes.
 */
export function activityWeightGradient(input: ActivityWeightGradientInput): { dw: tf.Tensor; db: tf.Tensor } {
  const where = layerName(input.name);
  const { layout, pre, prenorm, post, noise, unitTangent } = input;
  checkLayout(where, layout);
  checkPrePrenorm(where, layout, pre, prenorm);
  const batchedNoise = noise.rank === prenorm.rank + 1;
  if (
    !(batchedNoise ? sameShape(noise.shape.slice(1), prenorm.shape) : sameShape(noise.shape, prenorm.shape))
  ) {
    throw new Error(
      `${where}: noise has shape ${shapeString(noise.shape)} but the layer's activation is ` +
        `${shapeString(prenorm.shape)}; pass noise of shape [K, ${prenorm.shape.join(', ')}] (or the activation's ` +
        'shape for K = 1)',
    );
  }
  const k = batchedNoise ? noise.shape[0] : 1;
  const noiseShape = [k, ...prenorm.shape];
  const tRank = unitTangent.rank;
  const tShape = tRank === prenorm.rank && !batchedNoise ? [1, ...unitTangent.shape] : unitTangent.shape;
  const last = noiseShape.length - 1;
  // The last axis may also hold one tangent per group of consecutive units (G dividing the units):
  // the units of group g share t[..., g] (REFERENCE 1.6 step 1, dense layers), without repeating it.
  const groupsOnLast =
    tShape.length === noiseShape.length && tShape[last] > 1 && tShape[last] !== noiseShape[last];
  const broadcastable =
    tShape.length === noiseShape.length &&
    tShape.every((d, i) => d === 1 || d === noiseShape[i] || (i === last && noiseShape[i] % d === 0));
  if (!broadcastable) {
    throw new Error(
      `${where}: unitTangent has shape ${shapeString(unitTangent.shape)}, which does not broadcast to the noise ` +
        `${shapeString(noiseShape)}; give it the noise's rank with each axis equal or 1 (e.g. per-example ` +
        `tangents as [K, N${', 1'.repeat(prenorm.rank - 1)}]), or one tangent per group of units on the last axis`,
    );
  }
  const reluMask = input.reluMask ?? true;
  const { active } = input;
  if (reluMask) {
    if (post === undefined && active === undefined) {
      throw new Error(
        `${where}: reluMask needs post (the activation after the ReLU); pass it or reluMask: false`,
      );
    }
    for (const [what, t] of [
      ['post', post],
      ['active', active],
    ] as const) {
      if (t !== undefined && !sameShape(t.shape, prenorm.shape)) {
        throw new Error(
          `${where}: ${what} has shape ${shapeString(t.shape)} but prenorm has ${shapeString(prenorm.shape)}; ` +
            'they must match',
        );
      }
    }
  }
  const result = tf.tidy(() => {
    const u = tf.reshape(noise, noiseShape);
    const t = tf.reshape(unitTangent, tShape);
    // REFERENCE 1.6 step 2, averaged over the K samples.
    let gz: tf.Tensor;
    if (groupsOnLast) {
      const g = tShape[last];
      const split = (shape: number[], tail: number[]) => [...shape.slice(0, last), ...tail];
      const product = tf.mul(
        tf.reshape(t, split(tShape, [g, 1])),
        tf.reshape(u, split(noiseShape, [g, noiseShape[last] / g])),
      );
      gz = tf.reshape(k === 1 ? product : tf.mean(product, 0), prenorm.shape);
    } else {
      const product = tf.mul(t, u);
      gz = k === 1 ? tf.reshape(product, prenorm.shape) : tf.mean(product, 0);
    }
    // 1[post > 0] as one Step kernel (greater + cast costs three times more on wasm)
    if (reluMask) gz = tf.mul(gz, active ?? tf.step(post as tf.Tensor));
    // Step 3: the exact VJP of the parameter-free normalisation at prenorm (skipped for "NG").
    const gPre = (input.normGradient ?? true) ? normalizationVjp(input, gz) : gz;
    // Step 4.
    return linearParamGradients(layout, pre, gPre);
  });
  const check = (what: string, got: tf.Tensor, expected: number[] | undefined) => {
    if (expected !== undefined && !sameShape(got.shape, expected)) {
      tf.dispose([result.dw, result.db]);
      throw new Error(
        `${where}: the ${what} estimate has shape ${shapeString(got.shape)} but the layer's ${what} is ` +
          `${shapeString(expected)}; pre/prenorm do not belong to this layer`,
      );
    }
  };
  check('weight', result.dw, input.weightShape);
  check('bias', result.db, input.biasShape);
  return result;
}

/**
 * Repeats a per-group tangent over the units of each group: `[..., G]` → `[..., G·unitsPerGroup]`, unit
 * c of group g getting t[..., g] (REFERENCE 1.6 step 1 for a dense channel layer whose output is split into G
 * groups of `unitsPerGroup` consecutive units). For grouped layouts reshape to `[..., G, 1]` instead.
 */
export function expandGroupTangent(t: tf.Tensor, unitsPerGroup: number): tf.Tensor {
  if (!Number.isInteger(unitsPerGroup) || unitsPerGroup < 1) {
    throw new Error(`expandGroupTangent: unitsPerGroup must be an integer ≥ 1, got ${unitsPerGroup}`);
  }
  if (t.rank < 1) throw new Error('expandGroupTangent: t must have a trailing group axis [..., G]');
  return tf.tidy(() => {
    const g = t.shape[t.rank - 1];
    const lead = t.shape.slice(0, -1);
    return tf.reshape(tf.tile(tf.expandDims(t, -1), [...t.shape.map(() => 1), unitsPerGroup]), [
      ...lead,
      g * unitsPerGroup,
    ]);
  });
}

/** Input of {@link weightPerturbationGroupedEstimate}. */
export interface GroupedWeightEstimateInput {
  /** The layer's name, for error messages. */
  name?: string;
  /** How the layer contracts its input (fixes the shapes of its weight). */
  layout: LinearLayout;
  /**
   * s_g: per-group sums of the local-loss tangents over examples and patches, `[G]` or `[K, G]`
   * (REFERENCE 1.5: s_g = Σ_{n,p} t_k[n, p, g]).
   */
  groupTangents: tf.Tensor;
  /** The weight's direction dW: the weight's shape, or `[K, ...]` when groupTangents is `[K, G]`. */
  weightNoise: tf.Tensor;
  /** The bias's direction db, likewise (optional). */
  biasNoise?: tf.Tensor;
}

/**
 * Weight-perturbed estimate with per-group directional derivatives (LG-FG-W, REFERENCE 1.5): each group's
 * local tangent s_g multiplies only the directions of the weights that produce group g's outputs — dense
 * W[in, out] viewed as [in, G, out/G]: column block g gets s_g·dW[:, g, :]; grouped: gW[g] = s_g·dW[g]; token
 * mixing (every token feeds every group): gW = (Σ_g s_g)·dW; biases likewise. Averaged over K. Returns
 * `{ dw, db }` (db only with `biasNoise`); the caller owns them.
 */
export function weightPerturbationGroupedEstimate(input: GroupedWeightEstimateInput): {
  dw: tf.Tensor;
  db?: tf.Tensor;
} {
  const where =
    input.name === undefined
      ? 'weightPerturbationGroupedEstimate'
      : `weightPerturbationGroupedEstimate (layer '${input.name}')`;
  const { layout, groupTangents: s, weightNoise, biasNoise } = input;
  checkLayout(where, layout);
  if (s.rank !== 1 && s.rank !== 2) {
    throw new Error(`${where}: groupTangents has shape ${shapeString(s.shape)}; expected [G] or [K, G]`);
  }
  const batched = s.rank === 2;
  const k = batched ? s.shape[0] : 1;
  const g = s.shape[s.rank - 1];
  const baseRank = layout === 'grouped' ? 3 : 2;
  const bad = (what: string, t: tf.Tensor, expected: string) => {
    throw new Error(
      `${where}: ${what} has shape ${shapeString(t.shape)} but groupTangents ${shapeString(s.shape)} needs ` +
        `${expected}`,
    );
  };
  const lead = batched ? `[${k}, ` : '[';
  if (weightNoise.rank !== baseRank + (batched ? 1 : 0) || (batched && weightNoise.shape[0] !== k)) {
    const dims = layout === 'grouped' ? 'G, in/G, out/G' : layout === 'token' ? 'P, P' : 'in, out';
    bad('weightNoise', weightNoise, `${lead}${dims}]`);
  }
  const wShape = batched ? weightNoise.shape.slice(1) : weightNoise.shape;
  if (layout === 'grouped' && wShape[0] !== g) bad('weightNoise', weightNoise, `${lead}${g}, in/G, out/G]`);
  if (layout === 'dense' && wShape[1] % g !== 0) {
    bad('weightNoise', weightNoise, `${lead}in, out] with out divisible by G = ${g}`);
  }
  if (layout === 'token' && wShape[0] !== wShape[1]) bad('weightNoise', weightNoise, `${lead}P, P]`);
  const bShape = layout === 'grouped' ? [wShape[0], wShape[2]] : [wShape[1]];
  if (biasNoise !== undefined) {
    const expected = batched ? [k, ...bShape] : bShape;
    if (!sameShape(biasNoise.shape, expected)) bad('biasNoise', biasNoise, shapeString(expected));
  }
  return tf.tidy(() => {
    const sk = tf.reshape(s, [k, g]);
    const dW = tf.reshape(weightNoise, [k, ...wShape]);
    const dB = biasNoise === undefined ? undefined : tf.reshape(biasNoise, [k, ...bShape]);
    let dw: tf.Tensor;
    let db: tf.Tensor | undefined;
    if (layout === 'token') {
      const total = tf.sum(sk, 1); // [K]
      dw = tf.mean(tf.mul(tf.reshape(total, [k, 1, 1]), dW), 0);
      db = dB && tf.mean(tf.mul(tf.reshape(total, [k, 1]), dB), 0);
    } else if (layout === 'grouped') {
      dw = tf.mean(tf.mul(tf.reshape(sk, [k, g, 1, 1]), dW), 0);
      db = dB && tf.mean(tf.mul(tf.reshape(sk, [k, g, 1]), dB), 0);
    } else {
      const [inDim, outDim] = wShape;
      const blocks = tf.reshape(dW, [k, inDim, g, outDim / g]);
      dw = tf.reshape(tf.mean(tf.mul(tf.reshape(sk, [k, 1, g, 1]), blocks), 0), wShape);
      db =
        dB &&
        tf.reshape(tf.mean(tf.mul(tf.reshape(sk, [k, g, 1]), tf.reshape(dB, [k, g, outDim / g])), 0), bShape);
    }
    return db === undefined ? { dw } : { dw, db };
  });
}
