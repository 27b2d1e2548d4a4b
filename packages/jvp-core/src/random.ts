import * as tf from '@tensorflow/tfjs';

/**
 * A seeded random source (DESIGN principle 6: every random draw comes from a generator passed
 * in). Same seed, same stream, on the same backend.
 */
export interface Random {
  /** Uniform in [0, 1). */
  uniform(): number;
  /** A fresh 31-bit integer seed, e.g. for tfjs random ops. */
  seed(): number;
  /** A float32 tensor of independent N(0, 1) draws. */
  normal(shape: number[]): tf.Tensor;
  /** A float32 tensor of independent ±1 draws with probability 1/2 each. */
  rademacher(shape: number[]): tf.Tensor;
  /** An independent child stream (derived deterministically from this one). */
  fork(): Random;
}

/** splitmix32: small, fast, good statistical quality for our purposes. */
function splitmix32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x9e3779b9) >>> 0;
    let z = a;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    z ^= z >>> 15;
    return (z >>> 0) / 4294967296;
  };
}

/** Creates a {@link Random} from an integer seed. */
export function createRandom(seed: number): Random {
  if (!Number.isFinite(seed)) throw new Error(`createRandom: seed must be a finite number, got ${seed}`);
  const next = splitmix32(Math.floor(seed));
  const random: Random = {
    uniform: next,
    seed: () => Math.floor(next() * 2147483647),
    normal: (shape) => tf.randomNormal(shape, 0, 1, 'float32', random.seed()),
    rademacher: (shape) =>
      tf.tidy(() => tf.sub(tf.mul(tf.floor(tf.randomUniform(shape, 0, 2, 'float32', random.seed())), 2), 1)),
    fork: () => createRandom(random.seed() ^ 0x5bd1e995),
  };
  return random;
}
