import * as tf from '@tensorflow/tfjs';
import { jvp } from '@fwdgrad/jvp-core';
import type { Random } from '@fwdgrad/random';
import { activityWeightGradient } from './layer.js';
import type { NoiseKind } from './noise.js';
import { type ActivityRecord, createActivityRecorder, type NoiseSource, type Sites } from './sites.js';
import { checkSamples, checkTensors, describeParam, shapeString } from './util.js';
import type { ForwardGradientResult, Reduction } from './weight.js';

/** A model's forward pass written against {@link Sites}: returns per-example losses [N] or a scalar loss. */
export type SitesForward = (params: tf.Tensor[], sites: Sites) => tf.Tensor;

/** Options of {@link activityPerturbedGradient}. */
export interface ActivityPerturbationOptions {
  /** Source of the noise (required unless `noise` is a function). */
  random?: Random;
  /** K: noise samples averaged per estimate, all in one batched jvp. Default 1. */
  samples?: number;
  /**
   * `'gaussian'` (default) or `'rademacher'`, drawn independently per example and unit; or a function
   * `(site, shape) => noise` with shape `[K, ...activation]` (e.g. one-hot directions, or noise shared by the
   * batch for experiments).
   */
  noise?: NoiseKind | ((site: string, shape: number[]) => tf.Tensor);
  /** The ReLU mask of §3.6 at ReLU sites. Default true. */
  reluMask?: boolean;
  /** Exact VJP through each site's `normalize` (REFERENCE 1.6 step 3); false = the paper's "NG". Default true. */
  normGradient?: boolean;
  /** Per-example losses are combined by their mean (default) or sum (REFERENCE's global FG-A sums). */
  reduction?: Reduction;
  /** Parameter names for error messages. */
  names?: string[];
}

/** Reshapes the loss tangent to the unit tangent of one site's activation (REFERENCE 1.6 step 1, global). */
function unitTangentOf(
  where: string,
  rec: ActivityRecord,
  tangent: tf.Tensor,
  lossShape: number[],
): tf.Tensor {
  const act = rec.prenorm.shape;
  const k = tangent.shape[0];
  if (tangent.rank === 1) return tf.reshape(tangent, [k, ...act.map(() => 1)]); // one scalar loss: shared
  if (act[0] !== tangent.shape[1]) {
    throw new Error(
      `${where}: the loss returned per-example losses of shape ${shapeString(lossShape)} but site ` +
        `'${rec.name}' has activation ${shapeString(act)} (axis 0 is the example axis); they must have the ` +
        'same number of examples, or return a scalar loss',
    );
  }
  // Each example's own loss tangent drives that example's units: cheap independent noise (§3.4).
  return tf.reshape(tangent, [k, act[0], ...act.slice(1).map(() => 1)]);
}

/**
 * Activity-perturbed forward gradient (FG-A, paper eq. 3; REFERENCE 1.6, global form), for any network written
 * against {@link Sites}. One batched jvp runs `forward(params, sites)` where every `sites.linear` whose weight is
 * in `params` adds noise u ~ N(0, I) — independent per example, unit and sample — after its normalisation;
 * the jvp gives the loss tangent t; then, per layer, ĝ_z = t_n·u ⊙ 1[post > 0], through the normalisation's
 * exact VJP (unless "NG"), dW = Σ pre ⊗ ĝ, db = Σ ĝ (see `activityWeightGradient`).
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
  const k = checkSamples(where, options.samples ?? 1);
  const reduction = options.reduction ?? 'mean';
  if (reduction !== 'mean' && reduction !== 'sum') {
    throw new Error(`${where}: reduction must be 'mean' or 'sum', got ${JSON.stringify(reduction)}`);
  }
  const noise: NoiseSource = options.noise ?? 'gaussian';
  if (typeof noise !== 'function' && options.random === undefined) {
    throw new Error(
      `${where}: pass a seeded random source (options.random = createRandom(seed)) or a noise function`,
    );
  }
  const recorder = createActivityRecorder({ random: options.random, noise, perturb: (w) => ps.includes(w) });
  try {
    return tf.tidy(() => {
      // The jvp needs one primal; the real tangents enter through the noise at the sites (withTangent).
      const [out, dOut] = jvp(() => forward(ps, recorder), [tf.scalar(0)], [tf.zeros([k])], {
        batched: true,
      });
      if (!(out instanceof tf.Tensor) || out.rank > 1) {
        throw new Error(
          `${where}: forward must return per-example losses [N] or a scalar loss, got ` +
            (out instanceof tf.Tensor ? `shape ${shapeString(out.shape)}` : typeof out),
        );
      }
      const n = out.rank === 1 ? out.shape[0] : 1;
      const scale = out.rank === 1 && reduction === 'mean' ? 1 / n : 1;
      const value = out.rank === 1 ? (reduction === 'mean' ? tf.mean(out) : tf.sum(out)) : out;
      const tangent = scale === 1 ? dOut : tf.mul(dOut, scale); // [K] or [K, N]
      const grads: (tf.Tensor | null)[] = ps.map(() => null);
      const add = (i: number, g: tf.Tensor) => {
        const prev = grads[i];
        grads[i] = prev === null ? g : tf.add(prev, g); // a parameter shared by sites: sum of its uses
      };
      for (const rec of recorder.records) {
        const wi = rec.weight === undefined ? -1 : ps.indexOf(rec.weight);
        if (wi < 0) continue;
        const bi = rec.bias == null ? -1 : ps.indexOf(rec.bias);
        const { dw, db } = activityWeightGradient({
          name: rec.name,
          layout: rec.layout,
          pre: rec.pre,
          prenorm: rec.prenorm,
          post: rec.post,
          noise: rec.noise,
          unitTangent: unitTangentOf(where, rec, tangent, out.shape),
          normalize: rec.normalize,
          normalizeVjp: rec.normalizeVjp,
          normGradient: options.normGradient ?? true,
          reluMask: rec.relu && (options.reluMask ?? true),
          active: rec.active,
          weightShape: ps[wi].shape,
          biasShape: rec.bias == null ? undefined : rec.bias.shape,
        });
        add(wi, dw);
        if (bi >= 0) add(bi, db);
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
  } finally {
    recorder.dispose();
  }
}
