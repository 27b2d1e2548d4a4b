import { ops, stopGradient } from '@fwdgrad/jvp-core';
import * as tf from '@tensorflow/tfjs';
import { poolFeatures, replicatedLinear } from './aggregate.js';
import { type FusedGeometry, fusedHeadLoss, type HeadGradientOut, naiveHeadGradient } from './fused.js';
import type { ReplicatedInfoNceOptions } from './types.js';
import { checkHeadShapes, checkImpl, resolveReplication, type Replication } from './validate.js';

const FN = 'replicatedInfoNce';

/** NT-Xent temperature of the reference configs (REFERENCE 3.2, 4). */
export const DEFAULT_TEMPERATURE = 0.5;
/** Projection width of the contrastive local heads and the final projection (REFERENCE 0, 3.2). */
export const CONTRASTIVE_PROJECTION_WIDTH = 128;
/** ε of the L2 normalisation: v / sqrt(max(Σv², ε)) (REFERENCE 3.2). */
const NORM_EPS = 1e-12;
/** Additive mask removing the self-similarity from the same-view logits (REFERENCE 3.2). */
const SELF_MASK = 1e9;

/**
 * Replicated contrastive InfoNCE / NT-Xent with stop-gradient on the keys (paper eq. 6; REFERENCE 3.2).
 *
 * For view 1: x̂ = l2norm(mean_P(x)·w + b), likewise ŷ for view 2; logits_ab = x̂ŷᵀ/T,
 * logits_aa = x̂x̂ᵀ/T − 1e9·I; loss_a[n] = CE([logits_ab | logits_aa]_n, positive = column n of ab);
 * loss_b likewise with the views swapped. Every key is a constant (stop-gradient): loss_a
 * differentiates only through its query x̂_n (so through x, w, b), loss_b only through ŷ_n (y, w, b).
 * The output concat(loss_a, loss_b) [2N] is replicated to [2N, P′, G′] with the semantics of
 * `replicatedCrossEntropy`: replica (n, p, g) differentiates only through its own patch and group of
 * its own view, coefficient 1/P.
 *
 * @param x view 1 block output [N, P, G, C′].
 * @param y view 2 block output [N, P, G, C′].
 * @param w projection head [G·C′, D] (D = 128 in the paper).
 * @param b projection bias [D].
 * @param options `impl` ('fused' default | 'naive'), `patchwise`, `groupwise` (default true),
 *   `temperature` (default 0.5).
 * @returns [2N, P′, G′]: rows :N are loss_a (view 1 queries), rows N: loss_b; owned by the caller.
 */
export function replicatedInfoNce(
  x: tf.Tensor,
  y: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor,
  options: ReplicatedInfoNceOptions = {},
): tf.Tensor {
  return infoNceReplicas(x, y, w, b, options);
}

/**
 * {@link replicatedInfoNce}; with `head`, also the exact gradient of Σ(replicas) with respect to w and b
 * from the same head pass (fused) or `tf.grads` (naive). Internal to the package (`LocalLoss` exposes it).
 */
export function infoNceReplicas(
  x: tf.Tensor,
  y: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor,
  options: ReplicatedInfoNceOptions,
  head?: HeadGradientOut,
): tf.Tensor {
  const impl = checkImpl(FN, options.impl);
  const sx = checkHeadShapes(FN, x, w, b, 'x (view 1)');
  checkHeadShapes(FN, y, w, b, 'y (view 2)');
  if (x.shape.some((d, i) => d !== y.shape[i])) {
    throw new Error(
      `${FN}: the two views must have the same shape, got x [${x.shape.join(', ')}] and y [${y.shape.join(', ')}]; ` +
        'pass the same examples under two augmentations.',
    );
  }
  if (sx.N < 1) throw new Error(`${FN}: need at least one example per view, got N = ${sx.N}.`);
  const T = options.temperature ?? DEFAULT_TEMPERATURE;
  if (!(T > 0) || !Number.isFinite(T)) {
    throw new Error(`${FN}: temperature must be a finite number > 0, got ${T}; the reference uses 0.5.`);
  }
  const replication = resolveReplication(options);
  if (impl === 'fused') return fusedInfoNce(x, y, w, b, T, replication, head);
  const out = naiveInfoNce(x, y, w, b, T, replication);
  if (head !== undefined)
    naiveHeadGradient((wi, bi) => naiveInfoNce(x, y, wi, bi, T, replication), w, b, head);
  return out;
}

/** Literal replicas: queries [N, P′, G′, D] per view, constant keys, logits [N, P′, G′, 2N]. */
function naiveInfoNce(
  x: tf.Tensor,
  y: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor,
  T: number,
  replication: Replication,
): tf.Tensor {
  const N = x.shape[0] as number;
  const D = w.shape[1] as number;
  return tf.tidy(() => {
    const queries = (v: tf.Tensor) => ops.l2Normalize(replicatedLinear(v, w, b, replication), -1, NORM_EPS);
    // eq. 6: keys are StopGrad(W x̄) of the ordinary pooled features.
    const keys = (v: tf.Tensor) =>
      stopGradient(ops.l2Normalize(tf.add(tf.matMul(poolFeatures(v), w), b), -1, NORM_EPS));
    const qx = queries(x);
    const qy = queries(y);
    const kx = keys(x);
    const ky = keys(y);
    const [, P2, G2] = qx.shape as number[];
    const eye = tf.reshape(tf.eye(N), [N, 1, 1, N]);
    const side = (q: tf.Tensor, kOther: tf.Tensor, kSame: tf.Tensor) => {
      const sim = (k: tf.Tensor) =>
        tf.div(
          tf.reshape(tf.matMul(tf.reshape(q, [-1, D]), k, false, true), [N, P2 as number, G2 as number, N]),
          T,
        );
      const ab = sim(kOther);
      const aa = tf.sub(sim(kSame), tf.mul(eye, SELF_MASK));
      const logits = tf.concat([ab, aa], -1); // [N, P′, G′, 2N]
      const positive = tf.sum(tf.mul(ab, eye), -1); // column n of ab
      return tf.sub(tf.logSumExp(logits, -1), positive);
    };
    return tf.concat([side(qx, ky, kx), side(qy, kx, ky)], 0);
  });
}

/**
 * NT-Xent head on the stacked rows u [2N, D] (rows :N view 1): loss_i and r_i = ∂loss_i/∂u_i with all
 * keys constant. sim = q·qᵀ/T − 1e9·I over the 2N normalised rows; the positive of row i is row
 * (i + N) mod 2N (same example, other view); column order does not change the CE.
 * ∂loss_i/∂q_i = (softmax(sim_i) − onehot(pos_i))·q / T, then through q = u / sqrt(max(Σu², ε)).
 */
function ntXentHead(x: tf.Tensor, y: tf.Tensor, w: tf.Tensor, b: tf.Tensor, T: number) {
  const N = x.shape[0] as number;
  const R = 2 * N;
  // Pool each view, then stack the small [N, G·C′] rows (never the [N, P, G, C′] features).
  const xbar = tf.concat([poolFeatures(x), poolFeatures(y)], 0);
  const u = tf.add(tf.matMul(xbar, w), b);
  const s = tf.sum(tf.square(u), 1, true);
  const denom = tf.sqrt(tf.maximum(s, NORM_EPS));
  const q = tf.div(u, denom);
  const sim = tf.sub(tf.div(tf.matMul(q, q, false, true), T), tf.mul(tf.eye(R), SELF_MASK));
  const posIdx = tf.tensor1d(
    Array.from({ length: R }, (_, i) => (i + N) % R),
    'int32',
  );
  const pos = tf.oneHot(posIdx, R);
  const logp = tf.logSoftmax(sim);
  const loss = tf.neg(tf.sum(tf.mul(pos, logp), 1));
  const gq = tf.div(tf.matMul(tf.sub(tf.exp(logp), pos), q), T);
  // Through the normalisation; tf.maximum passes the derivative only where Σu² ≥ ε.
  const live = tf.cast(tf.greaterEqual(s, NORM_EPS), 'float32');
  const r = tf.div(tf.sub(gq, tf.mul(q, tf.mul(tf.sum(tf.mul(q, gq), 1, true), live))), denom);
  return { xbar, loss, r };
}

/** One similarity matrix, no P·G copies; customJvp ∘ customGrad with the rules of REFERENCE 3.1 ({@link fusedHeadLoss}). */
function fusedInfoNce(
  x: tf.Tensor,
  y: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor,
  T: number,
  replication: Replication,
  head?: HeadGradientOut,
): tf.Tensor {
  const [N, P, G, Cg] = x.shape as [number, number, number, number];
  const geometry: FusedGeometry = { xShape: [2 * N, P, G, Cg], ...replication };
  return fusedHeadLoss(
    geometry,
    [x, y],
    w,
    b,
    ([xi, yi], wi, bi) => ntXentHead(xi as tf.Tensor, yi as tf.Tensor, wi, bi, T),
    head,
  );
}

/**
 * NT-Xent on projections with stop-gradient keys (paper eq. 6; REFERENCE 3.2), for one pair of
 * views whose projections are stacked as rows `u` [2N, D] (rows :N view 1, rows N: view 2):
 * q = l2norm(u); loss_i = CE([q_i·kᵀ/T with the self-similarity masked], positive = row (i+N) mod 2N)
 * where the keys k are constants. Differentiates only through each row's own query. Returns the
 * per-row losses [2N] (caller owns). The final contrastive loss of LocalMixer and the feedback
 * alignment heads use it; `replicatedInfoNce` with `patchwise` and `groupwise` off gives the same
 * values from block features and a projection head.
 */
export function ntXent(u: tf.Tensor, temperature = DEFAULT_TEMPERATURE): tf.Tensor {
  if (u.rank !== 2 || (u.shape[0] as number) % 2 !== 0 || (u.shape[0] as number) < 2) {
    throw new Error(
      `ntXent: projections must be [2N, D] with both views stacked (view 1 first), got [${u.shape.join(', ')}].`,
    );
  }
  if (!(temperature > 0) || !Number.isFinite(temperature)) {
    throw new Error(`ntXent: temperature must be a finite number > 0, got ${temperature}.`);
  }
  const R = u.shape[0] as number;
  const N = R / 2;
  return tf.tidy(() => {
    const q = ops.l2Normalize(u, -1, NORM_EPS);
    const sim = tf.sub(
      tf.div(tf.matMul(q, stopGradient(q), false, true), temperature),
      tf.mul(tf.eye(R), SELF_MASK),
    );
    const positives = tf.oneHot(
      tf.tensor1d(
        Array.from({ length: R }, (_, i) => (i + N) % R),
        'int32',
      ),
      R,
    );
    return tf.neg(tf.sum(tf.mul(positives, tf.logSoftmax(sim)), 1));
  });
}
