import * as tf from '@tensorflow/tfjs';
import { jvp } from '@fwdgrad/jvp-core';
import type { Random } from '@fwdgrad/random';
import { activityWeightGradient } from './layer.js';
import {
  type ActivityRecord,
  type ActivityRecorder,
  createActivityRecorder,
  type NoiseSource,
  type Sites,
} from './sites.js';
import { checkSamples, checkTensors, describeParam, shapeString } from './util.js';
import type { ForwardGradientResult, Reduction } from './weight.js';

/** A model's forward pass written against {@link Sites}: returns per-example losses [N] or a scalar loss. */
export type SitesForward = (params: tf.Tensor[], sites: Sites) => tf.Tensor;

/** The noise and the estimate's switches, shared by {@link activityPerturbedEstimate} and its callers. */
export interface ActivityNoiseOptions {
  /** Source of the noise (required unless `noise` is a function). */
  random?: Random;
  /** K: noise samples averaged per estimate, all in one jvp (batched when K > 1). Default 1. */
  samples?: number;
  /**
   * `'gaussian'` (default) or `'rademacher'`, drawn independently per example and unit; or a function
   * `(site, shape) => noise` with shape `[K, ...activation]` (e.g. one-hot directions, noise shared by the
   * batch for experiments, or the same noise for two views of each example).
   */
  noise?: NoiseSource;
  /** The ReLU mask of §3.6 at ReLU sites. Default true. */
  reluMask?: boolean;
  /** Exact VJP through each site's `normalize` (REFERENCE 1.6 step 3); false = the paper's "NG". Default true. */
  normGradient?: boolean;
}

/** Options of {@link activityPerturbedGradient}. */
export interface ActivityPerturbationOptions extends ActivityNoiseOptions {
  /** Per-example losses are combined by their mean (default) or sum (REFERENCE's global FG-A sums). */
  reduction?: Reduction;
  /** Parameter names for error messages. */
  names?: string[];
}

/** What the forward pass of {@link activityPerturbedEstimate} returns. */
export interface ActivityPass {
  /**
   * The losses whose tangents drive the estimate: per-example losses [N] (or a scalar) of the whole network,
   * or one tensor of local losses per block (e.g. replicated losses [N, P′, G′]).
   */
  losses: tf.Tensor[];
  /**
   * Anything else the caller needs from the same forward pass — block outputs for the next update, exact
   * gradients of local heads computed on detached features — returned as they are (their tangents dropped).
   */
  outputs?: tf.Tensor[];
}

/**
 * Routes the loss tangents to one site's units (REFERENCE 1.6 step 1): given the site's record and the tangent of
 * every loss of the {@link ActivityPass} (each `[K, ...loss shape]`), returns the loss tangent that reaches each
 * unit, broadcastable to the site's noise `[K, ...activation]` as `activityWeightGradient`'s `unitTangent`
 * requires. Tensors it creates are disposed by the estimator.
 */
export type TangentRoute = (record: ActivityRecord, tangents: readonly tf.Tensor[]) => tf.Tensor;

/** Options of {@link activityPerturbedEstimate}. */
export interface ActivityEstimateOptions extends ActivityNoiseOptions {
  /** How the loss tangents reach each site's units. Default {@link perExampleRoute} of the first loss. */
  route?: TangentRoute;
  /** Which `sites.linear` calls to perturb, by weight (default: all); the others run plainly. */
  perturb?: (w: tf.Tensor, name: string) => boolean;
}

/** One perturbed site's weight and bias estimate (the caller owns `dw` and `db`). */
export interface SiteEstimate {
  /** The site's name. */
  name: string;
  /** The weight and bias the site used, when it came through `sites.linear`. */
  weight?: tf.Tensor;
  bias?: tf.Tensor | null;
  dw: tf.Tensor;
  db: tf.Tensor;
}

/** What {@link activityPerturbedEstimate} returns; the caller owns every tensor. */
export interface ActivityEstimate {
  /** The values of the pass's `losses`. */
  losses: tf.Tensor[];
  /** The pass's `outputs`. */
  outputs: tf.Tensor[];
  /** One estimate per perturbed site, in the order the sites ran. */
  sites: SiteEstimate[];
}

/**
 * The default {@link TangentRoute}: the first loss is per-example [N] (example n's own tangent drives its units,
 * which is what makes independent per-example noise cheap, §3.4) or a scalar (one tangent shared by the batch).
 */
export const perExampleRoute: TangentRoute = (record, [tangent]) => {
  const act = record.prenorm.shape;
  const k = tangent.shape[0];
  if (tangent.rank === 1) return tf.reshape(tangent, [k, ...act.map(() => 1)]); // one scalar loss: shared
  if (tangent.rank !== 2 || act[0] !== tangent.shape[1]) {
    throw new Error(
      `activity estimate: the loss returned per-example losses of shape ${shapeString(tangent.shape.slice(1))} ` +
        `but site '${record.name}' has activation ${shapeString(act)} (axis 0 is the example axis); they must ` +
        'have the same number of examples, or return a scalar loss',
    );
  }
  return tf.reshape(tangent, [k, act[0], ...act.slice(1).map(() => 1)]);
};

/**
 * The activity-perturbed forward gradient (paper eq. 3, REFERENCE 1.6) of every perturbed site of one forward
 * pass — the one place the estimate is built; {@link activityPerturbedGradient} (any network written against
 * {@link Sites}) and the trainer's FG-A and LG-FG-A rules call it. One jvp runs `forward(recorder)`: every site
 * adds noise u (K samples, independent per example and unit) as a tangent after its normalisation, so the
 * forward pass itself is clean; the jvp gives the tangents of the pass's `losses`; `route` takes them to each
 * site's units; then per site ĝ = mean_K(t·u) ⊙ 1[post > 0] (the ReLU's own tangent mask), through the
 * normalisation's VJP kept from the forward pass (unless "NG"), dW = Σ pre ⊗ ĝ, db = Σ ĝ. No other
 * reverse-mode pass; the caller's `outputs` (e.g. local heads' exact gradients on detached features, computed
 * from the same evaluation) come back from the same pass.
 */
export function activityPerturbedEstimate(
  forward: (sites: ActivityRecorder) => ActivityPass,
  options: ActivityEstimateOptions = {},
): ActivityEstimate {
  const where = 'activityPerturbedEstimate';
  const k = checkSamples(where, options.samples ?? 1);
  const noise: NoiseSource = options.noise ?? 'gaussian';
  if (typeof noise !== 'function' && options.random === undefined) {
    throw new Error(
      `${where}: pass a seeded random source (options.random = createRandom(seed)) or a noise function`,
    );
  }
  const route = options.route ?? perExampleRoute;
  const recorder = createActivityRecorder({ random: options.random, noise, perturb: options.perturb });
  try {
    let n = 0;
    // The real tangents enter through the noise at the sites (withTangent): no primal carries one.
    const [outs, tans] = jvp(
      () => {
        const pass = forward(recorder);
        const losses = checkTensors(where, pass?.losses, (i) => `loss ${i}`);
        if (losses.length === 0) throw new Error(`${where}: the forward pass returned no losses`);
        n = losses.length;
        return [...losses, ...(pass.outputs ?? [])];
      },
      [],
      [],
      k > 1 ? { batched: true, k } : {},
    );
    tf.dispose(tans.slice(n));
    // every tangent with its leading K axis, also for K = 1 (an unbatched jvp: no K axis to carry)
    const tangents =
      k > 1 ? tans.slice(0, n) : tf.tidy(() => tans.slice(0, n).map((t) => tf.expandDims(t, 0)));
    if (k === 1) tf.dispose(tans.slice(0, n));
    const sites: SiteEstimate[] = [];
    try {
      for (const r of recorder.records) {
        const { dw, db } = tf.tidy(() =>
          activityWeightGradient({
            name: r.name,
            layout: r.layout,
            pre: r.pre,
            prenorm: r.prenorm,
            post: r.post,
            noise: r.noise,
            unitTangent: route(r, tangents),
            normalize: r.normalize,
            normalizeVjp: r.normalizeVjp,
            normGradient: options.normGradient ?? true,
            reluMask: r.relu && (options.reluMask ?? true),
            active: r.active,
            weightShape: r.weight?.shape,
            biasShape: r.bias == null ? undefined : r.bias.shape,
          }),
        );
        sites.push({ name: r.name, weight: r.weight, bias: r.bias, dw, db });
      }
    } catch (e) {
      tf.dispose([...outs, ...sites.flatMap((s) => [s.dw, s.db])]);
      throw e;
    } finally {
      tf.dispose(tangents);
    }
    return { losses: outs.slice(0, n), outputs: outs.slice(n), sites };
  } finally {
    recorder.dispose();
  }
}

/**
 * Activity-perturbed forward gradient (FG-A, paper eq. 3; REFERENCE 1.6, global form), for any network written
 * against {@link Sites}: {@link activityPerturbedEstimate} of `forward(params, sites)`, where every `sites.linear`
 * whose weight is in `params` adds noise u ~ N(0, I) — independent per example, unit and sample — after its
 * normalisation, and the estimates are collected per parameter.
 *
 * If `forward` returns per-example losses [N] (recommended), example n's own tangent drives its units, which
 * is what makes independent per-example noise cheap and divides the variance by N (Table 1); a scalar loss
 * shares one tangent across the batch. The estimate is unbiased for the gradient of the (reduced) loss when
 * `normGradient` is on and examples do not interact (no batch statistics).
 *
 * Every parameter must be the weight or bias of some `sites.linear` call; other parameters are an error. Sites
 * whose weight is not in `params` run unperturbed. The only reverse-mode pass is the local normalisation VJP.
 */
export function activityPerturbedGradient(
  forward: SitesForward,
  params: tf.Tensor[],
  options: ActivityPerturbationOptions = {},
): ForwardGradientResult {
  const where = 'activityPerturbedGradient';
  const ps = checkTensors(where, params, (i) => `parameter ${i}`);
  if (ps.length === 0) throw new Error(`${where}: params is empty; pass the weights and biases to estimate`);
  const reduction = options.reduction ?? 'mean';
  if (reduction !== 'mean' && reduction !== 'sum') {
    throw new Error(`${where}: reduction must be 'mean' or 'sum', got ${JSON.stringify(reduction)}`);
  }
  return tf.tidy(() => {
    const estimate = activityPerturbedEstimate(
      (sites) => {
        const out = forward(ps, sites);
        if (!(out instanceof tf.Tensor) || out.rank > 1) {
          throw new Error(
            `${where}: forward must return per-example losses [N] or a scalar loss, got ` +
              (out instanceof tf.Tensor ? `shape ${shapeString(out.shape)}` : typeof out),
          );
        }
        return { losses: [out] };
      },
      {
        ...options,
        perturb: (w) => ps.includes(w),
        // the mean over N examples: each example's tangent / N
        route: (record, [t]) =>
          perExampleRoute(record, [
            t.rank === 2 && reduction === 'mean' ? tf.mul(t, 1 / (t.shape[1] as number)) : t,
          ]),
      },
    );
    const [out] = estimate.losses;
    const value = out.rank === 1 ? (reduction === 'mean' ? tf.mean(out) : tf.sum(out)) : out;
    const grads: (tf.Tensor | null)[] = ps.map(() => null);
    const add = (i: number, g: tf.Tensor) => {
      const prev = grads[i];
      grads[i] = prev === null ? g : tf.add(prev, g); // a parameter shared by sites: sum of its uses
    };
    for (const s of estimate.sites) {
      const wi = s.weight === undefined ? -1 : ps.indexOf(s.weight);
      if (wi < 0) continue;
      add(wi, s.dw);
      const bi = s.bias == null ? -1 : ps.indexOf(s.bias);
      if (bi >= 0) add(bi, s.db);
    }
    const missing = grads.indexOf(null);
    if (missing >= 0) {
      throw new Error(
        `${where}: ${describeParam(missing, ps[missing].shape, options.names)} is not the weight or bias of any ` +
          'sites.linear call, so activity perturbation cannot estimate its gradient. Route it through ' +
          'sites.linear(name, x, w, b), or leave it out of params.',
      );
    }
    return { value, grads: grads as tf.Tensor[] };
  });
}
