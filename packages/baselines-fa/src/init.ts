import * as tf from '@tensorflow/tfjs';
import { type InitScheme, initWeight } from '@fwdgrad/linear';
import { createRandom, type Random } from '@fwdgrad/random';

/** Options of {@link initFeedback}. */
export interface InitFeedbackOptions {
  /**
   * Integer seed (the matrix is drawn from `createRandom(seed)`), or a stream of `@fwdgrad/random` to draw it
   * from (successive matrices then take successive draws). Required.
   */
  seed: number | Random;
  /** 'kaiming' (default): scale = min(2/√fan_in, 0.1); 'lecun': min(1/√fan_in, 0.1). Ignored if `scale`. */
  scheme?: InitScheme;
  /** Explicit standard deviation; overrides `scheme`. Must be finite and ≥ 0. */
  scale?: number;
  /** Fan-in used by `scheme`; defaults to shape[-2] (REFERENCE 0: C′ for grouped layers). */
  fanIn?: number;
}

function streamOf(seed: number | Random): Random {
  if (typeof seed !== 'number') return seed;
  if (!Number.isFinite(seed)) {
    throw new Error(`initFeedback: seed must be a finite number, got ${String(seed)}.`);
  }
  return createRandom(seed);
}

/**
 * A fixed random feedback matrix B for the weight `w` (or for a weight of shape `w`), initialised like
 * the forward weight (REFERENCE 0 and 1.3): B = scale·N(0, 1), scale from `scheme` (default kaiming)
 * or given explicitly. Same seed, same matrix. A number as `options` is the seed.
 *
 * The result is a plain tensor owned by the caller; it is meant to stay fixed (never pass it to an
 * optimiser).
 */
export function initFeedback(
  w: tf.Tensor | readonly number[],
  options: InitFeedbackOptions | number,
): tf.Tensor {
  const shape = Array.isArray(w) ? [...(w as readonly number[])] : (w as tf.Tensor).shape;
  const opts: InitFeedbackOptions = typeof options === 'number' ? { seed: options } : options;
  if (opts === undefined || opts === null || opts.seed === undefined) {
    throw new Error(
      'initFeedback: pass a seed (a number or a stream of @fwdgrad/random), e.g. initFeedback(W, 1).',
    );
  }
  if (shape.length < 2 && opts.scale === undefined && opts.fanIn === undefined) {
    throw new Error(
      `initFeedback: shape [${shape.join(',')}] has no fan-in axis; feedback matrices are for weights of ` +
        `rank ≥ 2 (pass fanIn or scale to draw one anyway).`,
    );
  }
  const { scale } = opts;
  if (scale !== undefined && (!Number.isFinite(scale) || scale < 0)) {
    throw new Error(`initFeedback: scale must be a finite number ≥ 0, got ${scale}.`);
  }
  const random = streamOf(opts.seed);
  if (scale === undefined) return initWeight(shape, opts.scheme ?? 'kaiming', random, opts.fanIn);
  return tf.tidy(() => tf.mul(random.normal(shape), scale));
}

/**
 * The fixed random matrix B_j [K, ...shape] of direct feedback alignment (Nøkland 2016) that projects the
 * K-dimensional output error e to a layer whose output has trailing shape `shape` (see `directFeedback`).
 * Initialised like a weight mapping K units to the layer (fan_in = K): scale = min(2/√K, 0.1) for
 * kaiming, unless `scale` is given.
 */
export function initDirectFeedback(
  numClasses: number,
  shape: readonly number[],
  options: Omit<InitFeedbackOptions, 'fanIn'> | number,
): tf.Tensor {
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new Error(`initDirectFeedback: numClasses must be a positive integer, got ${numClasses}.`);
  }
  if (shape.length === 0 || shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new Error(
      `initDirectFeedback: the layer shape [${shape.join(',')}] must be non-empty positive integers ` +
        `(the output's trailing axes, e.g. [hidden]).`,
    );
  }
  const opts = typeof options === 'number' ? { seed: options } : options;
  return initFeedback([numClasses, ...shape], { ...opts, fanIn: numClasses });
}
