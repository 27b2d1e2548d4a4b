import * as tf from '@tensorflow/tfjs';

/** Shapes of a replicated-loss call, validated. */
export interface LossShape {
  /** Rows (examples, or 2× examples for the stacked contrastive views). */
  N: number;
  P: number;
  G: number;
  /** Channels per group C′. */
  Cg: number;
  /** Head output width (classes or projection units). */
  K: number;
}

const fmt = (s: readonly number[]): string => `[${s.join(', ')}]`;

/**
 * Checks x [N,P,G,C′], w [G·C′,K], b [K] and returns the sizes; throws an Error naming the
 * argument, both shapes and the fix otherwise.
 */
export function checkHeadShapes(
  fn: string,
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor,
  xName = 'x',
): LossShape {
  if (x.rank !== 4) {
    throw new Error(
      `${fn}: ${xName} must be a block output [N, P, G, C′] (rank 4), got shape ${fmt(x.shape)}; ` +
        'reshape a [N, P, C] output to [N, P, G, C/G] (use G = 1 for an ungrouped block).',
    );
  }
  const [N, P, G, Cg] = x.shape as [number, number, number, number];
  if (w.rank !== 2 || w.shape[0] !== G * Cg) {
    throw new Error(
      `${fn}: head weight w must have shape [G·C′, K] = [${G * Cg}, K] for ${xName} ${fmt(x.shape)}, ` +
        `got ${fmt(w.shape)}; create the head with G·C′ = ${G * Cg} input rows.`,
    );
  }
  const K = w.shape[1] as number;
  if (b.rank !== 1 || b.shape[0] !== K) {
    throw new Error(
      `${fn}: head bias b must have shape [${K}] to match w ${fmt(w.shape)}, got ${fmt(b.shape)}.`,
    );
  }
  for (const [name, t] of [
    [xName, x],
    ['w', w],
    ['b', b],
  ] as const) {
    if (t.dtype !== 'float32') {
      throw new Error(
        `${fn}: ${name} must be float32, got ${t.dtype}; cast it with tf.cast(${name}, 'float32').`,
      );
    }
  }
  return { N, P, G, Cg, K };
}

/**
 * Returns float32 targets [N, K]: one-hot / soft labels [N, K] are used as they are, int32 class ids
 * [N] are one-hot encoded after a range check. The caller owns the result.
 */
export function toTargets(fn: string, labels: tf.Tensor, N: number, K: number): tf.Tensor2D {
  if (labels.rank === 1) {
    if (labels.shape[0] !== N || labels.dtype !== 'int32') {
      throw new Error(
        `${fn}: class-id labels must be int32 [${N}] (one per example), got ${labels.dtype} ${fmt(labels.shape)}; ` +
          'pass int32 class ids [N] or one-hot float32 labels [N, K].',
      );
    }
    const ids = labels.dataSync();
    for (let i = 0; i < ids.length; i++) {
      const c = ids[i] as number;
      if (!(c >= 0 && c < K)) {
        throw new Error(
          `${fn}: label ${c} of example ${i} is outside [0, ${K}) (the head has K = ${K} outputs); ` +
            'fix the labels or widen the head.',
        );
      }
    }
    return tf.tidy(() => tf.cast(tf.oneHot(labels as tf.Tensor1D, K), 'float32') as tf.Tensor2D);
  }
  if (labels.rank !== 2 || labels.shape[0] !== N || labels.shape[1] !== K) {
    throw new Error(
      `${fn}: labels must be one-hot [N, K] = [${N}, ${K}] or int32 class ids [${N}], got ${fmt(labels.shape)}; ` +
        'make K match the head width w.shape[1].',
    );
  }
  return tf.cast(labels, 'float32') as tf.Tensor2D;
}

/** Which replication a loss applies, resolved (both on unless turned off). */
export interface Replication {
  patchwise: boolean;
  groupwise: boolean;
}

/** Resolves replication flags to booleans, default on (the paper's configuration). */
export function resolveReplication(opts: { patchwise?: boolean; groupwise?: boolean } = {}): Replication {
  return { patchwise: opts.patchwise ?? true, groupwise: opts.groupwise ?? true };
}

/** Throws unless impl is 'naive' or 'fused'. */
export function checkImpl(fn: string, impl: unknown): 'naive' | 'fused' {
  if (impl === undefined) return 'fused';
  if (impl !== 'naive' && impl !== 'fused') {
    throw new Error(`${fn}: impl must be 'fused' or 'naive', got ${JSON.stringify(impl)}.`);
  }
  return impl;
}
