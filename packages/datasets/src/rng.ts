/**
 * A small seeded pseudo-random generator (mulberry32) and seed mixing.
 *
 * DESIGN "Explicit randomness": every draw in this package (shuffles, augmentation) comes from a
 * generator built from an explicit seed, so the same seed gives the same numbers on every machine.
 */

/** A seeded stream of random numbers. Same seed → same sequence. */
export interface Rng {
  /** The seed this generator was created with (as an unsigned 32-bit integer). */
  readonly seed: number;
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** True with probability p. */
  bernoulli(p: number): boolean;
  /** Standard normal (Box–Muller). */
  normal(): number;
}

/** Murmur3's 32-bit finaliser: a bijection on uint32 with good avalanche. */
function fmix32(h: number): number {
  let x = h >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

function checkInteger(value: number, what: string): void {
  if (!Number.isSafeInteger(value)) {
    throw new Error(`${what} must be a safe integer, got ${value}. Pass an integer seed such as 0 or 42.`);
  }
}

/**
 * Mixes several integers (e.g. seed, epoch, example index, view) into one 32-bit seed.
 *
 * Unlike `seed + epoch`, (seed 1, epoch 0) and (seed 0, epoch 1) give unrelated streams.
 */
export function hashSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const part of parts) {
    checkInteger(part, 'seed component');
    const lo = part >>> 0;
    const hi = Math.floor(part / 0x100000000) >>> 0;
    h = fmix32(h ^ lo);
    h = fmix32((h + 0x9e3779b9) ^ hi);
  }
  return h;
}

/**
 * Creates a seeded generator (mulberry32: 32-bit state, period 2^32, fast and adequate for
 * shuffling and augmentation draws).
 */
export function createRng(seed: number): Rng {
  checkInteger(seed, 'seed');
  const seed32 = seed >>> 0 === seed ? seed : hashSeed(seed);
  let state = seed32;
  let spareNormal: number | null = null;
  const next = (): number => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    seed: seed32,
    next,
    uniform(lo: number, hi: number): number {
      return lo + (hi - lo) * next();
    },
    int(n: number): number {
      if (!Number.isInteger(n) || n <= 0) throw new Error(`rng.int(n) needs a positive integer n, got ${n}.`);
      return Math.floor(next() * n);
    },
    bernoulli(p: number): boolean {
      return next() < p;
    },
    normal(): number {
      if (spareNormal !== null) {
        const z = spareNormal;
        spareNormal = null;
        return z;
      }
      let u = next();
      while (u === 0) u = next();
      const v = next();
      const r = Math.sqrt(-2 * Math.log(u));
      spareNormal = r * Math.sin(2 * Math.PI * v);
      return r * Math.cos(2 * Math.PI * v);
    },
  };
}

/** Fisher–Yates shuffle in place, drawing from `rng`. Returns the same array. */
export function shuffleInPlace<T extends { length: number; [i: number]: any }>(array: T, rng: Rng): T {
  for (let i = array.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = array[i];
    array[i] = array[j];
    array[j] = tmp;
  }
  return array;
}
