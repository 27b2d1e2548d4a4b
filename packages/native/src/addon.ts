import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The functions the compiled addon (src/native/fwdgrad.c) exports. All buffers are owned by the caller. */
export interface NativeAddon {
  gemm(
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    batch: number,
    m: number,
    n: number,
    k: number,
    transposeA: boolean,
    transposeB: boolean,
    aBatchStride: number,
    bBatchStride: number,
    bias: Float32Array | null,
    biasLength: number,
    activation: number,
  ): void;
  binary(
    op: number,
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    shape: Int32Array,
    aStrides: Int32Array,
    bStrides: Int32Array,
  ): void;
  unary(op: number, x: Float32Array, out: Float32Array, alpha: number): void;
  reduce(op: number, x: Float32Array, out: Float32Array, outer: number, size: number, inner: number): void;
  transpose(x: Float32Array, out: Float32Array, shape: Int32Array, perm: Int32Array): void;
  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  addN(out: Float32Array, inputs: Float32Array[]): void;
  /** Layer norm of x viewed as [outer, n, inner] over n; r [outer, inner]. */
  layerNorm(
    x: Float32Array,
    y: Float32Array,
    r: Float32Array,
    outer: number,
    n: number,
    inner: number,
    epsilon: number,
  ): void;
  /** Its JVP for k stacked tangents t [k, outer, n, inner]. */
  layerNormJvp(
    t: Float32Array,
    y: Float32Array,
    r: Float32Array,
    out: Float32Array,
    k: number,
    outer: number,
    n: number,
    inner: number,
  ): void;
  /**
   * Grouped product, mode 0 'nn' a[m,g,ci]·b[g,ci,co] → [m,g,co]; 1 'nt' a[m,g,co]·b[g,ci,co]ᵀ → [m,g,ci];
   * 2 'tn' Σ_m a[m,g,ci]ᵀ·b[m,g,co] → [g,ci,co].
   */
  groupedGemm(
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    mode: number,
    m: number,
    g: number,
    ci: number,
    co: number,
  ): void;
  fillNormal(
    out: Float32Array,
    state: number,
    kn: Int32Array,
    wn: Float64Array,
    fn: Float64Array,
    r: number,
  ): number;
  /**
   * Queues drawing `buf.length` normals from counter `state` into `buf` on a background thread, for a
   * later `fillNormal(buf, state, ...)` (up to four buffers at once, drawn oldest first); false (buf
   * untouched) when drawing ahead is off, the request is small or four buffers are queued. `buf` must
   * not be read or reused before that `fillNormal` (or `prefetchCancel(buf)`) returns.
   */
  prefetchInto(buf: Float32Array, state: number): boolean;
  /** Stops drawing ahead into `buf` (if it was) and forgets it: `buf` may be reused once this returns. */
  prefetchCancel(buf: Float32Array): void;
  setThreads(threads: number, parallelMin?: number): void;
  setPrefetch(enabled: boolean): void;
  info(): { blas: string | null; threads: number; parallelMin: number; blasThreads: number; openmp: boolean };
  loadBlas(library: string): { blas: string | null; threads: number; blasThreads: number; openmp: boolean };
}

/** What `loadNative` found: whether the addon loaded, why not, and which BLAS it uses. */
export interface NativeStatus {
  available: boolean;
  /** Why the addon is not available (not built, disabled, failed to load). */
  reason?: string;
  /** Path of the loaded `.node` file. */
  path?: string;
  /** The BLAS library that serves matrix products, or null for the built-in product. */
  blas: string | null;
  /** Threads used by the BLAS and by the parallel elementwise loops. */
  threads: number;
  /** Whether the addon was compiled with OpenMP (parallel elementwise loops). */
  openmp: boolean;
  /** The compiler flags of the build, from build/build.json. */
  buildFlags?: string[];
}

export interface LoadOptions {
  /** Threads for BLAS and elementwise loops. Default: FWDGRAD_THREADS, else the machine's cores. */
  threads?: number;
  /**
   * BLAS library to dlopen (a file name or path), `'none'` for the built-in product, or `''` to search
   * (default: FWDGRAD_BLAS, else search OpenBLAS, BLIS, MKL, libcblas, libblas).
   */
  blas?: string;
  /** Path of the `.node` file (default: FWDGRAD_NATIVE_ADDON, else build/fwdgrad.node). */
  addonPath?: string;
}

let addon: NativeAddon | undefined;
let status: NativeStatus | undefined;

function moduleDir(): string {
  return dirname(fileURLToPath(import.meta.url));
}

/** Where the compiled addon is: build/ at the package root (from dist/ or, in tests, from src/). */
function candidatePaths(): string[] {
  return [join(moduleDir(), '..', 'build', 'fwdgrad.node')];
}

function buildRecord(path: string): { ok?: boolean; reason?: string; flags?: string[] } | undefined {
  const file = join(dirname(path), 'build.json');
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Elements from which elementwise loops split across threads (FWDGRAD_NATIVE_PAR_MIN; C default 2M). */
function parallelMin(): number | undefined {
  const env = Number(process.env.FWDGRAD_NATIVE_PAR_MIN);
  return Number.isInteger(env) && env > 0 ? env : undefined;
}

function defaultThreads(): number {
  const env = Number(process.env.FWDGRAD_THREADS);
  if (Number.isInteger(env) && env > 0) return env;
  return Math.max(1, availableParallelism());
}

/**
 * Loads the native addon once and configures it. Never throws: when the addon is missing (no
 * compiler at install), disabled (`FWDGRAD_NATIVE=0`) or fails to load, the status says why and
 * `available` is false. Later calls return the same status unless options change threads or BLAS.
 */
export function loadNative(options: LoadOptions = {}): NativeStatus {
  if (status !== undefined && addon === undefined) return status;
  if (addon === undefined) {
    if (process.env.FWDGRAD_NATIVE === '0') {
      status = {
        available: false,
        reason: 'disabled by FWDGRAD_NATIVE=0',
        blas: null,
        threads: 1,
        openmp: false,
      };
      return status;
    }
    const explicit = options.addonPath ?? process.env.FWDGRAD_NATIVE_ADDON;
    const paths = explicit ? [explicit] : candidatePaths();
    const path = paths.find((p) => existsSync(p));
    if (path === undefined) {
      const record = paths.map(buildRecord).find((r) => r !== undefined);
      const why = record?.reason
        ? `build failed: ${record.reason}`
        : `not built (looked for ${paths.join(', ')})`;
      status = { available: false, reason: why, blas: null, threads: 1, openmp: false };
      return status;
    }
    // OpenMP workers must sleep between parallel loops, or they spin against the BLAS threads and the
    // JavaScript thread on small machines; libgomp reads this when the addon is loaded.
    process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
    // Likewise OpenBLAS's threads, which by default spin ~2^28 cycles after each product: against the
    // OpenMP loops and the sampler in between they cost M/8/16 steps 3-7% (measured at batch 8 and 32
    // on 2 threads). OpenBLAS reads it when loadBlas opens the library.
    process.env.OPENBLAS_THREAD_TIMEOUT ??= '1';
    try {
      addon = createRequire(import.meta.url)(path) as NativeAddon;
    } catch (err) {
      const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
      status = {
        available: false,
        reason: `failed to load ${path}: ${msg}`,
        blas: null,
        threads: 1,
        openmp: false,
      };
      return status;
    }
    const info = addon.loadBlas(options.blas ?? process.env.FWDGRAD_BLAS ?? '');
    addon.setThreads(options.threads ?? defaultThreads(), parallelMin());
    // normal draws ahead on a background thread (same stream; FWDGRAD_NATIVE_PREFETCH=0: off)
    addon.setPrefetch(process.env.FWDGRAD_NATIVE_PREFETCH !== '0');
    status = {
      available: true,
      path,
      blas: info.blas,
      threads: addon.info().threads,
      openmp: info.openmp,
      buildFlags: buildRecord(path)?.flags,
    };
    return status;
  }
  if (options.blas !== undefined) addon.loadBlas(options.blas);
  if (options.threads !== undefined) addon.setThreads(options.threads, parallelMin());
  const info = addon.info();
  status = { ...(status as NativeStatus), blas: info.blas, threads: info.threads };
  return status;
}

/** The loaded addon, or undefined when `loadNative` found none. */
export function nativeAddon(): NativeAddon | undefined {
  if (status === undefined) loadNative();
  return addon;
}
