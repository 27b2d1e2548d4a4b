import * as tf from '@tensorflow/tfjs';
import { jvp } from '@fwdgrad/jvp-core';
import type { Random } from '@fwdgrad/random';
import { checkNoiseKind, type NoiseKind, sampleNoise } from './noise.js';
import { checkSamples, checkTensors, describeParam, sameShape, shapeString } from './util.js';

/** How per-example losses [N] are combined into the loss whose gradient is estimated. */
export type Reduction = 'mean' | 'sum';

/** Options of {@link weightPerturbedGradient}. */
export interface WeightPerturbationOptions {
  /** Source of the directions (required unless `directions` is given). */
  random?: Random;
  /** K: directions averaged per estimate, all in one batched jvp. Default 1. */
  samples?: number;
  /** Distribution of the direction entries. Default `'gaussian'` (the paper's). */
  noise?: NoiseKind;
  /**
   * Explicit directions instead of random ones: one tensor per parameter, `[K, ...param.shape]` (e.g. one-hot
   * directions in tests). Owned by the caller.
   */
  directions?: tf.Tensor[];
  /** When the loss returns per-example values [N]: estimate the gradient of their mean (default) or sum. */
  reduction?: Reduction;
  /** Parameter names for error messages. */
  names?: string[];
}

/** What a forward-gradient estimator returns; the caller owns (disposes) every tensor. */
export interface ForwardGradientResult {
  /** The (reduced) loss at the current parameters: a scalar. */
  value: tf.Tensor;
  /** One gradient estimate per parameter, each of its parameter's shape. */
  grads: tf.Tensor[];
}

/** {@link weightPerturbedGradient}'s result: adds the K directional derivatives ∇L·v_k. */
export interface WeightPerturbationResult extends ForwardGradientResult {
  /**
   * The forward-mode dot products the estimate is built from: [K] (∇L·v_k) for the shared estimator,
   * [K, N] (∇ℓ_n·v_{k,n}, before the 1/N of `'mean'`) for the independent one.
   */
  directionalDerivatives: tf.Tensor;
}

/**
 * Wraps `t` so that a kernel reading its data (every tfjs kernel reads its inputs' `dataId`) calls `onUse`.
 * This is how a parameter the loss never computes with is detected structurally — without a reverse-mode pass
 * and without relying on a numerically zero derivative (which a dead ReLU can also produce).
 */
function watchUse<T extends tf.Tensor>(t: T, onUse: () => void): T {
  return new Proxy(t, {
    get(target, prop, receiver) {
      if (prop === 'dataId') onUse();
      return Reflect.get(target, prop, receiver);
    },
  });
}

/**
 * Runs `loss` inside a batched jvp over `params` with `tangents` ([rows, ...shape]) and checks that every
 * parameter was computed with. Returns the loss value and its tangents ([rows, ...value.shape]).
 */
function watchedJvp(
  where: string,
  loss: (...params: tf.Tensor[]) => tf.Tensor,
  params: tf.Tensor[],
  tangents: tf.Tensor[],
  names?: string[],
): [tf.Tensor, tf.Tensor] {
  const used = params.map(() => false);
  const [value, tangent] = jvp(
    (...args: tf.Tensor[]) => {
      const watched = args.map((a, i) => watchUse(a, () => (used[i] = true)));
      const out = loss(...watched);
      if (!(out instanceof tf.Tensor)) {
        throw new Error(`${where}: the loss must return a tf.Tensor (a scalar or per-example losses [N])`);
      }
      // A loss that returns one of its arguments as is: hand back the tensor jvp knows.
      const k = watched.indexOf(out);
      return k >= 0 ? args[k] : out;
    },
    params,
    tangents,
    { batched: true },
  );
  const unused = used.findIndex((u) => !u);
  if (unused >= 0) {
    tf.dispose([value, tangent]);
    throw new Error(
      `${where}: the loss never computes with ${describeParam(unused, params[unused].shape, names)}, so its ` +
        'forward gradient would be structurally zero. Compute the loss from the tensors it receives as ' +
        'arguments (not from captured ones), or leave that parameter out of params.',
    );
  }
  return [value, tangent];
}

function checkLossOutput(where: string, value: tf.Tensor, perExample: boolean): void {
  if (perExample ? value.rank !== 1 : value.rank > 1) {
    throw new Error(
      `${where}: the loss returned shape ${shapeString(value.shape)}; return ` +
        (perExample ? 'per-example losses of shape [N]' : 'a scalar or per-example losses of shape [N]'),
    );
  }
}

function directionsFor(
  where: string,
  params: tf.Tensor[],
  options: WeightPerturbationOptions,
  lead: number[],
  leadText: string,
): tf.Tensor[] {
  if (options.directions !== undefined) {
    const dirs = checkTensors(where, options.directions, (i) => `direction ${i}`);
    if (dirs.length !== params.length) {
      throw new Error(
        `${where}: got ${dirs.length} directions for ${params.length} parameters; pass one each`,
      );
    }
    dirs.forEach((d, i) => {
      const expected = [...lead, ...params[i].shape];
      if (!sameShape(d.shape, expected)) {
        throw new Error(
          `${where}: the direction for ${describeParam(i, params[i].shape, options.names)} has shape ` +
            `${shapeString(d.shape)}; expected ${shapeString(expected)} (${leadText}, then the parameter's shape)`,
        );
      }
    });
    return dirs;
  }
  if (options.random === undefined) {
    throw new Error(
      `${where}: pass a seeded random source (options.random = createRandom(seed)) or directions`,
    );
  }
  const kind = options.noise ?? 'gaussian';
  checkNoiseKind(where, kind);
  const random = options.random;
  return params.map((p) => sampleNoise(random, [...lead, ...p.shape], kind));
}

/** K: the leading axis of explicit directions, else `options.samples` (default 1). */
function samplesOf(where: string, options: WeightPerturbationOptions): number {
  if (options.directions === undefined) return checkSamples(where, options.samples ?? 1);
  const dirs = checkTensors(where, options.directions, (i) => `direction ${i}`);
  if (dirs.length === 0 || dirs[0].rank === 0) {
    throw new Error(`${where}: directions must be [K, ...] tensors, one per parameter`);
  }
  return checkSamples(where, dirs[0].shape[0]);
}

function checkParams(where: string, params: unknown, names?: string[]): tf.Tensor[] {
  const ps = checkTensors(where, params, (i) => `parameter ${i}${names?.[i] ? ` '${names[i]}'` : ''}`);
  if (ps.length === 0)
    throw new Error(`${where}: params is empty; pass the tensors to estimate gradients for`);
  return ps;
}

function checkReduction(where: string, reduction: unknown): Reduction {
  if (reduction !== 'mean' && reduction !== 'sum') {
    throw new Error(`${where}: reduction must be 'mean' or 'sum', got ${JSON.stringify(reduction)}`);
  }
  return reduction;
}

/**
 * Weight-perturbed forward gradient (FG-W, paper eq. 2; Baydin et al. 2022), with one direction shared by the
 * whole batch (the practical form, REFERENCE 1.5 global FG-W): samples v over all `params`, computes ∇L·v by
 * forward-mode AD and returns (∇L·v)·v per parameter — an unbiased estimate of ∇L (appendix 8, Prop. 1). With
 * K samples the K estimates are averaged; all K directions go through ONE batched jvp. No reverse-mode pass.
 *
 * `loss(...params)` is plain tfjs code returning a scalar, or per-example losses [N] (reduced by `reduction`).
 * It must compute with the tensors it receives; a parameter it never reads is an error.
 *
 * @example
 * const { value, grads } = weightPerturbedGradient((w, b) => mse(tf.add(tf.matMul(x, w), b), y), [w, b],
 *   { random: createRandom(0), samples: 4 });
 */
export function weightPerturbedGradient(
  loss: (...params: tf.Tensor[]) => tf.Tensor,
  params: tf.Tensor[],
  options: WeightPerturbationOptions = {},
): WeightPerturbationResult {
  const where = 'weightPerturbedGradient';
  const ps = checkParams(where, params, options.names);
  const reduction = checkReduction(where, options.reduction ?? 'mean');
  const k = samplesOf(where, options);
  return tf.tidy(() => {
    const dirs = directionsFor(where, ps, options, [k], 'K');
    const [out, dOut] = watchedJvp(where, loss, ps, dirs, options.names);
    checkLossOutput(where, out, false);
    const reduce = (t: tf.Tensor, axis: number) =>
      reduction === 'mean' ? tf.mean(t, axis) : tf.sum(t, axis);
    const value = out.rank === 1 ? reduce(out, 0) : out;
    const t = dOut.rank === 2 ? reduce(dOut, 1) : dOut; // [K]: ∇L·v_k
    // eq. 2: (∇L·v) v, averaged over the K samples: (1/K) Σ_k t_k v_k as one [1, K]·[K, size] product.
    const tRow = tf.reshape(tf.div(t, k), [1, k]);
    const grads = dirs.map((d, i) => tf.reshape(tf.matMul(tRow, tf.reshape(d, [k, -1])), ps[i].shape));
    return { value, grads, directionalDerivatives: t };
  });
}

/**
 * Weight-perturbed forward gradient with an INDEPENDENT direction per example (Table 1, "independent" column):
 * (1/N) Σ_n (∇ℓ_n·v_n) v_n for `reduction: 'mean'` (without 1/N for `'sum'`), averaged over K samples. Its
 * variance falls as 1/N, but each example needs its own directional derivative: the jvp carries K·N tangent
 * rows and the loss tangent's diagonal is taken, so the cost is N times that of {@link weightPerturbedGradient}
 * (the paper's point, §3.4: per-example weight noise defeats batched matrix products). Meant for studying the
 * estimator (the variance lab), not for training.
 *
 * `loss(...params)` must return per-example losses [N], where ℓ_n depends on example n only. Explicit
 * `directions` are `[K, N, ...param.shape]`.
 */
export function independentWeightPerturbedGradient(
  loss: (...params: tf.Tensor[]) => tf.Tensor,
  params: tf.Tensor[],
  options: WeightPerturbationOptions = {},
): WeightPerturbationResult {
  const where = 'independentWeightPerturbedGradient';
  const ps = checkParams(where, params, options.names);
  const reduction = checkReduction(where, options.reduction ?? 'mean');
  const k = samplesOf(where, options);
  return tf.tidy(() => {
    // The number of examples comes from one plain evaluation (also the returned value).
    const plain = loss(...ps);
    checkLossOutput(where, plain, true);
    const n = plain.shape[0];
    const dirs = directionsFor(where, ps, options, [k, n], 'K, then N');
    const rows = dirs.map((d, i) => tf.reshape(d, [k * n, ...ps[i].shape]));
    const [out, dOut] = watchedJvp(where, loss, ps, rows, options.names);
    checkLossOutput(where, out, true);
    if (out.shape[0] !== n) {
      throw new Error(`${where}: the loss returned ${out.shape[0]} losses inside jvp but ${n} outside`);
    }
    // Row (k, m) of dOut is the tangent of all N losses along v_{k,m}; keep ∇ℓ_n·v_{k,n} (the diagonal).
    const diag = tf.sum(tf.mul(tf.reshape(dOut, [k, n, n]), tf.eye(n)), 2); // [K, N]
    const scale = reduction === 'mean' ? k * n : k;
    const coeff = tf.reshape(tf.div(diag, scale), [1, k * n]);
    const grads = rows.map((d, i) => tf.reshape(tf.matMul(coeff, tf.reshape(d, [k * n, -1])), ps[i].shape));
    const value = reduction === 'mean' ? tf.mean(plain) : tf.sum(plain);
    return { value, grads, directionalDerivatives: diag };
  });
}
