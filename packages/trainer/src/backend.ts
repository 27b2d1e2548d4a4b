import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { installBackendKernels, loadNative, type NativeStatus } from '@fwdgrad/native';

/**
 * Backends fwdgrad knows, fastest first. `auto` tries them in this order (but see
 * {@link NODE_MIN_STEP_WORK}). `webgpu` is tfjs's WebGPU backend on Dawn (the optional `webgpu` package): a GPU
 * with a Vulkan (Linux), Metal or D3D12 driver. `native` is tfjs's cpu backend with @fwdgrad/native's kernels (system BLAS
 * and vectorised, multi-threaded C loops); it loads only where that package's addon was compiled at
 * install. `node` (tfjs-node, libtensorflow) loads where its install could download libtensorflow or
 * `fwdgrad setup tensorflow` built it.
 */
export const BACKEND_NAMES = ['node-gpu', 'webgpu', 'native', 'node', 'wasm', 'cpu'] as const;

/**
 * From this much work per training step (see {@link stepWork}), `auto` tries `node` before `native`.
 * Measured on the 2-core test machine (apps/bench `backends` suite, LG-FG-A, batch 128, both backends
 * timed in turns in one process): on M/1/16 (stepWork ≈ 3.4e7) native is 1.4–1.6× faster than tfjs-node
 * (1.3× in CPU time): each step is hundreds of small kernels, and tfjs-node pays TensorFlow's eager
 * dispatch per kernel; on M/8/16 (≈ 9.6e9) tfjs-node was 1.6× faster on two threads (1.07× in CPU
 * time) and native 1.09× faster on one: there large products dominate, and libtensorflow's oneDNN
 * kernels and thread pool beat OpenBLAS plus OpenMP loops. The threshold sits between the two
 * (geometrically); only these two sizes were measured.
 */
export const NODE_MIN_STEP_WORK = 1e9;

/**
 * A rough count of the multiply-adds of one LocalMixer training step's forward pass: batch × blocks ×
 * P × C × (C + P) (channel mixing C×C and token mixing P×P per token and channel). Only its order of
 * magnitude matters (it places a step on either side of {@link NODE_MIN_STEP_WORK}).
 */
export function stepWork(
  config: { blocks: number; patchesPerSide: number; channels: number },
  batchSize: number,
): number {
  const p = config.patchesPerSide ** 2;
  return batchSize * config.blocks * p * config.channels * (config.channels + p);
}

/** What `auto` may take into account. */
export interface SelectOptions {
  /** The work of one training step ({@link stepWork}); from {@link NODE_MIN_STEP_WORK} on, node before native. */
  stepWork?: number;
}
export type BackendName = (typeof BACKEND_NAMES)[number];
export type BackendRequest = BackendName | 'auto';

/** One attempt to load a backend, with the reason it was not used when it failed. */
export interface BackendAttempt {
  name: BackendName;
  /** The tfjs backend name that was registered (`tensorflow`, `wasm`, `cpu`). */
  tfjsName: string;
  ok: boolean;
  /** Why this backend was not used (missing package, no CUDA, load error). */
  reason?: string;
}

export interface BackendSelection {
  requested: BackendRequest;
  /** The backend now active, in fwdgrad's words. */
  name: BackendName;
  /** `tf.getBackend()` after selection. */
  tfjsBackend: string;
  attempts: BackendAttempt[];
  /** Kernels replaced or added for this backend (@fwdgrad/native's `installBackendKernels`). */
  kernelPatches: string[];
  /** The native addon's state (BLAS, threads), for every selection: `fwdgrad info` reports it. */
  native: NativeStatus;
}

const TFJS_NAME: Record<BackendName, string> = {
  'node-gpu': 'tensorflow',
  webgpu: 'webgpu',
  node: 'tensorflow',
  native: 'cpu',
  wasm: 'wasm',
  cpu: 'cpu',
};

/** True when an NVIDIA driver is visible (the precondition for tfjs-node-gpu). */
export function cudaAvailable(): boolean {
  if (existsSync('/proc/driver/nvidia/version')) return true;
  const r = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 5000 });
  return r.status === 0 && /GPU/.test(r.stdout ?? '');
}

/** Whether the Vulkan loader is installed (Dawn's backend on Linux). */
function vulkanLoaderInstalled(): boolean {
  const r = spawnSync('ldconfig', ['-p'], { encoding: 'utf8', timeout: 5000 });
  return r.status !== 0 || /libvulkan\.so\.1\b/.test(r.stdout ?? '');
}

interface GpuLike {
  requestAdapter(options?: { powerPreference?: string }): Promise<{ info?: Record<string, string> } | null>;
}

/**
 * Gives this process a WebGPU implementation — Dawn, from the optional `webgpu` package — as `navigator.gpu`
 * (what tfjs's WebGPU backend looks for), then asks it for an adapter. Returns why WebGPU cannot run, or null.
 */
async function dawnUnavailable(allowSoftware: boolean): Promise<string | null> {
  const g = globalThis as { navigator?: { gpu?: GpuLike; userAgent?: string } };
  if (g.navigator?.gpu === undefined) {
    // checked first: without a loader Dawn has nothing to try (and would print a native warning)
    if (process.platform === 'linux' && !vulkanLoaderInstalled()) {
      return (
        'no GPU adapter for Dawn (the webgpu package): the Vulkan loader libvulkan.so.1 is not installed ' +
        "(apt-get install libvulkan1, plus the GPU vendor's Vulkan driver)"
      );
    }
    const { create, globals } = (await import('webgpu')) as unknown as {
      create(flags: string[]): GpuLike;
      globals: Record<string, unknown>;
    };
    Object.assign(globalThis, globals);
    const gpu = create([]);
    if (g.navigator === undefined) {
      // Node 20 has no navigator; tfjs reads userAgent from it once one exists
      Object.defineProperty(globalThis, 'navigator', {
        value: { gpu, userAgent: `Node.js/${process.versions.node}` },
        configurable: true,
        writable: true,
      });
    } else Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
  }
  const gpu = g.navigator?.gpu;
  if (gpu === undefined) return 'navigator.gpu could not be set up in this process';
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (adapter === null) {
    return (
      'Dawn (the webgpu package) found no GPU adapter: no GPU with a Vulkan driver it can use ' +
      "(software Vulkan such as Mesa's lavapipe lacks features Dawn requires)"
    );
  }
  const info = adapter.info ?? {};
  const described = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
  if (
    !allowSoftware &&
    (String(info.isFallbackAdapter) === 'true' || /swiftshader|llvmpipe|lavapipe/i.test(described))
  ) {
    return `Dawn's only adapter is a CPU emulation (${described}), slower than the CPU backends; ask for --backend webgpu to use it anyway`;
  }
  return null;
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return (
    msg
      .split('\n')
      .find((l) => l.trim().length > 0)
      ?.trim() ?? msg
  );
}

/** libtensorflow logs its start-up (oneDNN, CPU features) at INFO level; keep warnings and errors. */
function quietTensorflow(): void {
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '1';
}

async function tryLoad(name: BackendName, auto: boolean): Promise<BackendAttempt> {
  const tfjsName = TFJS_NAME[name];
  try {
    switch (name) {
      case 'node-gpu':
        if (!cudaAvailable()) {
          return { name, tfjsName, ok: false, reason: 'no CUDA device or NVIDIA driver found' };
        }
        quietTensorflow();
        await import('@tensorflow/tfjs-node-gpu');
        break;
      case 'webgpu': {
        const why = await dawnUnavailable(!auto);
        if (why !== null) return { name, tfjsName, ok: false, reason: why };
        await import('@tensorflow/tfjs-backend-webgpu');
        break;
      }
      case 'node':
        quietTensorflow();
        await import('@tensorflow/tfjs-node');
        break;
      case 'native': {
        const status = loadNative();
        if (!status.available) return { name, tfjsName, ok: false, reason: status.reason };
        break;
      }
      case 'wasm':
        await import('@tensorflow/tfjs-backend-wasm');
        break;
      case 'cpu':
        break;
    }
    const ok = await tf.setBackend(tfjsName);
    if (!ok) return { name, tfjsName, ok: false, reason: `tf.setBackend('${tfjsName}') returned false` };
    await tf.ready();
    // the cpu backend prints an install hint on first use in Node; the choice was explained here
    if (tfjsName === 'cpu') (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
    return { name, tfjsName, ok: true };
  } catch (err) {
    const code = (err as { code?: string }).code;
    const reason =
      code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND'
        ? `package not installed (${firstLine(err)})`
        : `failed to load: ${firstLine(err)}`;
    return { name, tfjsName, ok: false, reason };
  }
}

/** The order `auto` tries the backends in, for a step of `work` multiply-adds (if known). */
export function autoOrder(work?: number): BackendName[] {
  const order: BackendName[] = [...BACKEND_NAMES];
  if (work === undefined || work < NODE_MIN_STEP_WORK) return order;
  // node moves to just before native
  order.splice(order.indexOf('node'), 1);
  order.splice(order.indexOf('native'), 0, 'node');
  return order;
}

/**
 * Selects and activates a tfjs backend. `auto` takes the first of node-gpu (only where CUDA is
 * present), webgpu (only where Dawn finds a GPU adapter), native, node, wasm and cpu that loads — node
 * before native for steps of at least {@link NODE_MIN_STEP_WORK} (`options.stepWork`) — and records why
 * the others were skipped. Naming a
 * backend that cannot load throws an error with the reason.
 */
export async function selectBackend(
  request: BackendRequest = 'auto',
  options: SelectOptions = {},
): Promise<BackendSelection> {
  if (request !== 'auto' && !(BACKEND_NAMES as readonly string[]).includes(request)) {
    throw new Error(`unknown backend '${request}'; choose one of auto, ${BACKEND_NAMES.join(', ')}`);
  }
  const order: BackendName[] = request === 'auto' ? autoOrder(options.stepWork) : [request];
  const attempts: BackendAttempt[] = [];
  for (const name of order) {
    const attempt = await tryLoad(name, request === 'auto');
    attempts.push(attempt);
    if (attempt.ok) {
      // 'native' and 'cpu' share tfjs's cpu backend: the native kernels are on for one, off for the other
      const kernelPatches = installBackendKernels(attempt.tfjsName, { native: name === 'native' });
      return {
        requested: request,
        name,
        tfjsBackend: tf.getBackend(),
        attempts,
        kernelPatches,
        native: loadNative(),
      };
    }
  }
  const why = attempts.map((a) => `${a.name}: ${a.reason}`).join('; ');
  throw new Error(`backend '${request}' could not be loaded (${why})`);
}

/** One line per attempt, e.g. for `fwdgrad info` and the trainer's start-up message. */
export function describeSelection(sel: BackendSelection): string {
  const lines = [`backend: ${sel.name} (tfjs '${sel.tfjsBackend}', requested ${sel.requested})`];
  if (sel.name === 'native') {
    const n = sel.native;
    lines.push(
      `  native kernels: ${sel.kernelPatches.length} (matrix products: ${n.blas ?? 'built-in C product, no BLAS found'}; ${n.threads} thread${n.threads === 1 ? '' : 's'}${n.openmp ? '' : ', no OpenMP'})`,
    );
  } else if (sel.kernelPatches.length > 0)
    lines.push(
      `  fast paths: ${sel.kernelPatches.join(', ')} (explicit transposes; batched products as 2-D products)`,
    );
  for (const a of sel.attempts) {
    lines.push(`  ${a.ok ? 'ok  ' : 'skip'} ${a.name}${a.ok ? '' : `: ${a.reason}`}`);
  }
  return lines.join('\n');
}

/** Packages that provide the backends, and whether each is installed (and loads, if tried). */
export interface BackendPackage {
  package: string;
  backend: BackendName;
  installed: boolean;
  version?: string;
  /** The package's folder, as this package resolves it (where `fwdgrad setup tensorflow` builds). */
  dir?: string;
  /** Set when `selectBackend` tried this backend: whether it loaded. */
  loads?: boolean;
}

const BACKEND_PACKAGES: [string, BackendName][] = [
  ['@tensorflow/tfjs-node-gpu', 'node-gpu'],
  ['webgpu', 'webgpu'],
  ['@tensorflow/tfjs-node', 'node'],
  ['@tensorflow/tfjs-backend-wasm', 'wasm'],
  ['@tensorflow/tfjs', 'cpu'],
];

export function backendPackages(sel?: BackendSelection): BackendPackage[] {
  const req = createRequire(import.meta.url);
  return BACKEND_PACKAGES.map(([pkg, backend]) => {
    const tried = sel?.attempts.find((a) => a.name === backend);
    let version: string | undefined;
    let dir: string | undefined;
    try {
      const manifest = req.resolve(`${pkg}/package.json`);
      version = (req(manifest) as { version: string }).version;
      dir = dirname(manifest);
    } catch {
      version = undefined;
    }
    return { package: pkg, backend, installed: version !== undefined, version, dir, loads: tried?.ok };
  });
}
