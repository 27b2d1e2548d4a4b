import * as tf from '@tensorflow/tfjs';

/**
 * A seeded random stream (DESIGN principle 6: every random draw comes from a generator passed in). Same
 * key, same draws (on the same backend). Streams are split as JAX splits keys: {@link Random.derive} gives
 * an independent stream named by a path of strings or integers that depends only on this stream's key and
 * the path — not on how much was drawn — so a new consumer never shifts another's numbers.
 */
export interface Random {
  /** The 32-bit key this stream started from (`createRandom(key)` replays it from the start). */
  readonly key: number;
  /** Uniform in [lo, hi), by default [0, 1). */
  uniform(lo?: number, hi?: number): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** True with probability p. */
  bernoulli(p: number): boolean;
  /** One standard normal draw as a number (Box–Muller; draws come in pairs). */
  standardNormal(): number;
  /** A float32 tensor of independent N(0, 1) draws (ziggurat, in blocks: see {@link NORMAL_BLOCK}). */
  normal(shape: number[]): tf.Tensor;
  /**
   * One float32 tensor of N(0, 1) draws per shape, drawn as ONE request of their total size (the draws of
   * `normal([total])`, cut in order into the shapes; the stream moves on as that request does). On tfjs's
   * `cpu` backend the tensors are views of one buffer (no copy; its memory is freed with the last of
   * them). One request instead of one per shape lets a native filler draw a training loop's next request
   * ahead in one piece (see {@link NormalFiller}).
   */
  normals(shapes: number[][]): tf.Tensor[];
  /** A float32 tensor of independent ±1 draws with probability 1/2 each. */
  rademacher(shape: number[]): tf.Tensor;
  /**
   * The independent stream named `path` below this one: `createRandom(hashSeed(key, ...ids))`, each string
   * of the path replaced by {@link streamId} of it. Derive once per consumer (and per step, epoch, example…)
   * instead of sharing one stream, so that what one consumer draws cannot move another's draws.
   */
  derive(...path: (string | number)[]): Random;
}

/** splitmix32: small, fast, good statistical quality; signed 32-bit integers. `state.a` is the counter. */
function splitmix32Int(state: { a: number }): () => number {
  return () => {
    const a = (state.a + 0x9e3779b9) >>> 0;
    state.a = a;
    let z = a;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    return (z ^ (z >>> 15)) | 0;
  };
}

// Ziggurat tables for the standard normal (Marsaglia & Tsang 2000, 128 layers).
const ZIG_R = 3.442619855899;
const ZIG_V = 9.91256303526217e-3;
const KN = new Int32Array(128);
const WN = new Float64Array(128);
const FN = new Float64Array(128);
{
  const m1 = 2147483648;
  let dn = ZIG_R;
  let tn = dn;
  const q = ZIG_V / Math.exp(-0.5 * dn * dn);
  KN[0] = Math.floor((dn / q) * m1);
  KN[1] = 0;
  WN[0] = q / m1;
  WN[127] = dn / m1;
  FN[0] = 1;
  FN[127] = Math.exp(-0.5 * dn * dn);
  for (let i = 126; i >= 1; i--) {
    dn = Math.sqrt(-2 * Math.log(ZIG_V / dn + Math.exp(-0.5 * dn * dn)));
    KN[i + 1] = Math.floor((dn / tn) * m1);
    tn = dn;
    FN[i] = Math.exp(-0.5 * dn * dn);
    WN[i] = dn / m1;
  }
}

/**
 * Standard normal draws by the ziggurat method from a stream of 32-bit integers: about four
 * times faster than tfjs's `randomNormal` (polar method on an alea stream), which matters when
 * every activation of a large network gets fresh noise at every step.
 */
function fillNormal(out: Float32Array, nextInt: () => number, nextUniform: () => number): void {
  for (let i = 0; i < out.length; i++) {
    let hz = nextInt();
    let iz = hz & 127;
    if (Math.abs(hz) < KN[iz]) {
      out[i] = hz * WN[iz];
      continue;
    }
    for (;;) {
      if (iz === 0) {
        let x: number;
        let y: number;
        do {
          x = -Math.log(1 - nextUniform()) / ZIG_R;
          y = -Math.log(1 - nextUniform());
        } while (y + y < x * x);
        out[i] = hz > 0 ? ZIG_R + x : -ZIG_R - x;
        break;
      }
      const x = hz * WN[iz];
      if (FN[iz] + nextUniform() * (FN[iz - 1] - FN[iz]) < Math.exp(-0.5 * x * x)) {
        out[i] = x;
        break;
      }
      hz = nextInt();
      iz = hz & 127;
      if (Math.abs(hz) < KN[iz]) {
        out[i] = hz * WN[iz];
        break;
      }
    }
  }
}

/**
 * A faster implementation of `normal` and `normals` (e.g. native code), given the shapes of one request,
 * the generator's state (the splitmix32 counter) and the ziggurat tables. It must draw exactly what the
 * JavaScript sampler draws for one request of the shapes' total size — blocks of {@link NORMAL_BLOCK}
 * draws, block b on the stream from counter `state + b·NORMAL_STRIDE`, same integers, same rejections —
 * cut in order into one float32 tensor per shape, and return them with the counter after the request
 * (`state + blocks·NORMAL_STRIDE` increments), so that results do not depend on whether it is installed.
 * (It creates the tensors itself so that it can use memory its backend recycles; they may be views of
 * one buffer.)
 */
export type NormalFiller = (
  shapes: number[][],
  state: number,
  tables: ZigguratTables,
) => { tensors: tf.Tensor[]; state: number };

/** The ziggurat tables (Marsaglia & Tsang 2000, 128 layers) as `fillNormal` uses them. */
export interface ZigguratTables {
  readonly kn: Int32Array;
  readonly wn: Float64Array;
  readonly fn: Float64Array;
  readonly r: number;
}

const TABLES: ZigguratTables = { kn: KN, wn: WN, fn: FN, r: ZIG_R };
let filler: NormalFiller | undefined;

/**
 * Installs (or, with undefined, removes) a faster normal fill used by every {@link Random}'s
 * `normal`. The backend layer installs the native one (@fwdgrad/native) next to its kernels.
 */
export function setNormalFiller(fill: NormalFiller | undefined): void {
  filler = fill;
}

/** The fill installed by {@link setNormalFiller}, if any. */
export function normalFiller(): NormalFiller | undefined {
  return filler;
}

/**
 * Normal draws come in blocks of `NORMAL_BLOCK`: block b of a request drawn at counter `state` is the
 * ziggurat on the splitmix32 stream that starts at counter `state + b·NORMAL_STRIDE` (in units of the
 * generator's increment), and the request moves the generator on by `blocks · NORMAL_STRIDE`. Blocks are
 * independent, so a native filler can draw them in parallel; their counter ranges are disjoint (a block
 * would need ~4000 slow-path integers beyond its 4096 draws to reach the next one, against ~100 on
 * average), so no two units of one request share a draw.
 */
export const NORMAL_BLOCK = 4096;
/** Counter distance between the starts of consecutive blocks of one normal request (see {@link NORMAL_BLOCK}). */
export const NORMAL_STRIDE = 2 * NORMAL_BLOCK;

/** Fills `out` with blocked normal draws from counter `start`; returns the counter after the request. */
function fillNormalBlocks(out: Float32Array, start: number): number {
  const blocks = Math.ceil(out.length / NORMAL_BLOCK);
  const sub = { a: 0 };
  const nextInt = splitmix32Int(sub);
  const uniform = () => (nextInt() >>> 0) / 4294967296;
  for (let b = 0; b < blocks; b++) {
    sub.a = (start + Math.imul(b * NORMAL_STRIDE, 0x9e3779b9)) >>> 0;
    fillNormal(
      out.subarray(b * NORMAL_BLOCK, Math.min(out.length, (b + 1) * NORMAL_BLOCK)),
      nextInt,
      uniform,
    );
  }
  return (start + Math.imul(blocks * NORMAL_STRIDE, 0x9e3779b9)) >>> 0;
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

/**
 * Mixes integers (a seed, then e.g. a stream id, an epoch, an example index, a view) into one 32-bit key.
 * Unlike `seed + epoch`, (seed 1, epoch 0) and (seed 0, epoch 1) give unrelated keys. Safe integers only.
 */
export function hashSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const part of parts) {
    if (!Number.isSafeInteger(part)) {
      throw new Error(
        `hashSeed: seed components must be safe integers, got ${part}. Pass integers such as 0 or 42.`,
      );
    }
    const lo = part >>> 0;
    const hi = Math.floor(part / 0x100000000) >>> 0;
    h = fmix32(h ^ lo);
    h = fmix32((h + 0x9e3779b9) ^ hi);
  }
  return h;
}

/** The 32-bit id of a stream name (FNV-1a over its UTF-16 code units, then fmix32), as {@link Random.derive} uses it. */
export function streamId(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return fmix32(h);
}

/**
 * Creates the {@link Random} stream of an integer seed (its key is `floor(seed) mod 2^32`). The generator is
 * splitmix32 (a counter: `key` plus a multiple of the golden-ratio increment, hashed), so streams of different
 * keys are unrelated and a normal request can be drawn block-parallel by a native filler.
 */
export function createRandom(seed: number): Random {
  if (!Number.isFinite(seed)) {
    throw new Error(
      `createRandom: seed must be a finite number, got ${seed}. Pass an integer such as 0 or 42.`,
    );
  }
  const key = Math.floor(seed) >>> 0;
  const state = { a: key };
  const nextInt = splitmix32Int(state);
  const next = () => (nextInt() >>> 0) / 4294967296;
  let spare: number | null = null;
  const random: Random = {
    key,
    uniform: (lo = 0, hi = 1) => (lo === 0 && hi === 1 ? next() : lo + (hi - lo) * next()),
    int(n) {
      if (!Number.isInteger(n) || n <= 0)
        throw new Error(`random.int(n) needs a positive integer n, got ${n}.`);
      return Math.floor(next() * n);
    },
    bernoulli: (p) => next() < p,
    standardNormal() {
      if (spare !== null) {
        const z = spare;
        spare = null;
        return z;
      }
      const r = Math.sqrt(-2 * Math.log(1 - next()));
      const a = 2 * Math.PI * next();
      spare = r * Math.sin(a);
      return r * Math.cos(a);
    },
    normal: (shape) => {
      if (filler !== undefined) {
        const drawn = filler([shape], state.a, TABLES);
        state.a = drawn.state >>> 0;
        return drawn.tensors[0];
      }
      const values = new Float32Array(sizeOf(shape));
      state.a = fillNormalBlocks(values, state.a);
      return tf.tensor(values, shape, 'float32');
    },
    normals: (shapes) => {
      if (filler !== undefined) {
        const drawn = filler(shapes, state.a, TABLES);
        state.a = drawn.state >>> 0;
        return drawn.tensors;
      }
      const sizes = shapes.map(sizeOf);
      const values = new Float32Array(sizes.reduce((a, b) => a + b, 0));
      state.a = fillNormalBlocks(values, state.a);
      let at = 0;
      return shapes.map((shape, i) => {
        at += sizes[i];
        return tf.tensor(values.subarray(at - sizes[i], at), shape, 'float32');
      });
    },
    rademacher: (shape) => {
      const values = new Float32Array(sizeOf(shape));
      for (let i = 0; i < values.length; i += 32) {
        const bits = nextInt();
        for (let j = 0; j < 32 && i + j < values.length; j++) values[i + j] = (bits >>> j) & 1 ? 1 : -1;
      }
      return tf.tensor(values, shape, 'float32');
    },
    derive: (...path) =>
      createRandom(hashSeed(key, ...path.map((p) => (typeof p === 'string' ? streamId(p) : p)))),
  };
  return random;
}

function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Fisher–Yates shuffle in place, drawing from `random`. Returns the same array. */
export function shuffleInPlace<T extends { length: number; [i: number]: any }>(array: T, random: Random): T {
  for (let i = array.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    const tmp = array[i];
    array[i] = array[j];
    array[j] = tmp;
  }
  return array;
}
