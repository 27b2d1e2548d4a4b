import * as tf from '@tensorflow/tfjs';
import { createRandom, type Random } from '@fwdgrad/random';
import { median, round, timeRepeats } from './stats.js';

/**
 * Peak tfjs engine bytes allocated while `f` runs, above what was allocated before (tf.profile's
 * `peakBytes`, as in local-losses' memory test). `f`'s results are disposed.
 */
export async function peakBytesOf(f: () => tf.TensorContainer): Promise<number> {
  const start = tf.memory().numBytes;
  const info = await tf.profile(() => {
    tf.dispose(f());
  });
  return info.peakBytes - start;
}

/** What {@link peakStorageBytesOf} hooks of tfjs's cpu backend: its table of tensor storage. */
interface CpuDataStorage {
  set(dataId: object, entry: { values?: unknown }): void;
  delete(dataId: object): boolean;
}

/**
 * Peak bytes of memory that `f` (and disposing what it returns) adds behind the tensors of tfjs's `cpu`
 * backend (the native kernels' too), each region of memory counted once: a reshape or clone (same
 * storage) and a view (a contiguous slice, the draws of `Random.normals`) add nothing, unlike tfjs's own
 * tally (`tf.memory().numBytes`, `tf.profile`'s peakBytes), which counts every tensor's bytes. Memory
 * outside the backend's tensors (a native sampler's draw-ahead buffers, its buffer pool) is not counted.
 * Null on other backends.
 */
export function peakStorageBytesOf(f: () => tf.TensorContainer): number | null {
  if (tf.getBackend() !== 'cpu') return null;
  const data = (tf.backend() as unknown as { data?: CpuDataStorage }).data;
  if (data === undefined || typeof data.set !== 'function' || typeof data.delete !== 'function') return null;
  // live regions: ArrayBuffer → "offset:length" → how many tensors' entries hold it
  const regions = new Map<ArrayBufferLike, Map<string, number>>();
  const held = new Map<object, { buffer: ArrayBufferLike; key: string; bytes: number }>();
  let current = 0;
  let peak = 0;
  const own = data as unknown as Record<string, unknown>;
  const { set, delete: del } = data;
  own.set = (dataId: object, entry: { values?: unknown }) => {
    const v = entry?.values;
    if (ArrayBuffer.isView(v) && !held.has(dataId)) {
      const key = `${v.byteOffset}:${v.byteLength}`;
      const m = regions.get(v.buffer) ?? new Map<string, number>();
      regions.set(v.buffer, m);
      const n = m.get(key) ?? 0;
      m.set(key, n + 1);
      if (n === 0) current += v.byteLength;
      peak = Math.max(peak, current);
      held.set(dataId, { buffer: v.buffer, key, bytes: v.byteLength });
    }
    return set.call(data, dataId, entry);
  };
  own.delete = (dataId: object) => {
    const h = held.get(dataId);
    if (h !== undefined) {
      held.delete(dataId);
      const m = regions.get(h.buffer) as Map<string, number>;
      const n = (m.get(h.key) ?? 1) - 1;
      if (n > 0) m.set(h.key, n);
      else {
        m.delete(h.key);
        current -= h.bytes;
        if (m.size === 0) regions.delete(h.buffer);
      }
    }
    return del.call(data, dataId);
  };
  try {
    tf.dispose(f());
  } finally {
    delete own.set;
    delete own.delete;
  }
  return peak;
}

/** Blocks until `t`'s values exist (synchronous backends compute eagerly; asynchronous ones are waited for). */
export function settle(result: tf.TensorContainer): void {
  const ts: tf.Tensor[] = [];
  const walk = (c: unknown) => {
    if (c instanceof tf.Tensor) ts.push(c);
    else if (Array.isArray(c)) c.forEach(walk);
    else if (c !== null && typeof c === 'object') Object.values(c).forEach(walk);
  };
  walk(result);
  // Reading one value of the last result waits for everything queued before it on in-order backends.
  const last = ts[ts.length - 1];
  if (last !== undefined) last.dataSync();
}

/** Median wall-clock ms of `f` (results settled and disposed) over `repeats` after `warmup` runs. */
export function medianMs(
  f: () => tf.TensorContainer,
  repeats: number,
  warmup = 1,
): { ms: number; samples: number[] } {
  const r = timeRepeats(
    () => {
      const out = f();
      settle(out);
      tf.dispose(out);
    },
    repeats,
    warmup,
  );
  return { ms: round(r.median), samples: r.samples.map((s) => round(s)) };
}

/**
 * Median ms of several computations timed in turns (f, g, h, f, g, h, ...), so that a burst of
 * other work on the machine affects each of them alike and their ratios stay fair. Errors are
 * recorded per computation. Each is profiled once for its peak bytes first.
 */
export async function measureInterleaved(
  fns: Record<string, () => tf.TensorContainer>,
  repeats: number,
  warmup = 1,
): Promise<Record<string, Measured>> {
  const out: Record<string, Measured> = {};
  const names = Object.keys(fns);
  for (const name of names) {
    try {
      out[name] = { bytes: await peakBytesOf(fns[name]), ms: null, samples: [] };
    } catch (err) {
      out[name] = { bytes: null, ms: null, samples: [], error: failureText(err) };
    }
  }
  const live = () => names.filter((n) => out[n].error === undefined);
  const once = (name: string): number | null => {
    try {
      const t0 = performance.now();
      const r = fns[name]();
      settle(r);
      const ms = performance.now() - t0;
      tf.dispose(r);
      return ms;
    } catch (err) {
      out[name].error = failureText(err);
      return null;
    }
  };
  for (let i = 0; i < warmup; i++) for (const name of live()) once(name);
  for (let i = 0; i < repeats; i++) {
    for (const name of live()) {
      const ms = once(name);
      if (ms !== null) out[name].samples.push(ms);
    }
  }
  for (const name of names) {
    const m = out[name];
    m.samples = m.samples.map((x) => round(x));
    m.ms = m.error === undefined ? round(median(m.samples)) : null;
  }
  return out;
}

/** Bytes and median time of one computation; errors (e.g. out of memory) are returned, not thrown. */
export interface Measured {
  bytes: number | null;
  ms: number | null;
  samples: number[];
  error?: string;
}

/** Measures peak bytes (one profiled run) and median time of `f`; records a failure instead of throwing. */
export async function measure(f: () => tf.TensorContainer, repeats: number, warmup = 1): Promise<Measured> {
  try {
    const bytes = await peakBytesOf(f);
    const t = medianMs(f, repeats, warmup);
    return { bytes, ms: t.ms, samples: t.samples };
  } catch (err) {
    return { bytes: null, ms: null, samples: [], error: failureText(err) };
  }
}

/** True when the active backend still computes (a WebAssembly abort leaves it unusable). */
export function backendHealthy(): boolean {
  try {
    const v = tf.tidy(() => tf.add(tf.scalar(1), tf.scalar(1)).dataSync()[0]);
    return v === 2;
  } catch {
    return false;
  }
}

/**
 * One line describing a failed measurement. When the backend no longer computes afterwards (the
 * WebAssembly heap aborted, sometimes surfacing as an unrelated TypeError), it says so.
 */
export function failureText(err: unknown): string {
  const msg = (err instanceof Error ? `${err.name}: ${err.message}` : String(err))
    .split('\n')[0]
    .slice(0, 300);
  const hinted = outOfMemoryHint(msg);
  if (hinted !== msg) return hinted;
  return backendHealthy() ? msg : `${msg} (the ${tf.getBackend()} backend aborted: out of memory)`;
}

/** Adds "(out of memory?)" to the WebAssembly errors that mean the heap was exhausted. */
export function outOfMemoryHint(msg: string): string {
  return /memory access out of bounds|Aborted\(\)|Cannot enlarge memory|out of memory|Array buffer allocation failed|Invalid typed array length/i.test(
    msg,
  )
    ? `${msg} (out of memory)`
    : msg;
}

/** A seeded N(0, 1) tensor (the caller owns it). */
export function randn(random: Random, shape: number[], scale = 1): tf.Tensor {
  const t = random.normal(shape);
  if (scale === 1) return t;
  const s = tf.mul(t, scale);
  t.dispose();
  return s;
}

/** One-hot labels [n, k] of seeded random classes (the caller owns it). */
export function randomLabels(seed: number, n: number, k: number): tf.Tensor {
  const r = createRandom(seed);
  const ids = Array.from({ length: n }, () => Math.floor(r.uniform() * k));
  return tf.tidy(() => tf.oneHot(tf.tensor1d(ids, 'int32'), k).toFloat());
}
