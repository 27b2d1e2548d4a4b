import '@tensorflow/tfjs-backend-webgpu';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { BACKENDS, type BackendName } from './options.js';

setWasmPaths({
  'tfjs-backend-wasm.wasm': wasmPlain,
  'tfjs-backend-wasm-simd.wasm': wasmSimd,
  'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded,
});

/** Why a backend cannot run in this browser, or null when it may (tfjs still has the last word). */
async function unavailable(name: BackendName): Promise<string | null> {
  if (name === 'webgpu') {
    const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
    if (gpu === undefined) return 'this browser has no WebGPU (navigator.gpu is missing)';
    if ((await gpu.requestAdapter()) === null) return 'WebGPU found no adapter (no usable GPU or driver)';
  }
  if (name === 'webgl' && document.createElement('canvas').getContext('webgl2') === null) {
    return 'this browser gives no WebGL2 context';
  }
  return null;
}

/** The backend in use and why the ones before it were passed over. */
export interface BackendChoice {
  backend: BackendName;
  skipped: { backend: BackendName; reason: string }[];
}

/**
 * Switches tfjs to `wanted`, or — when this browser cannot run it — to the next of webgpu → webgl → wasm → cpu,
 * recording why each one was skipped.
 */
export async function useBackend(wanted: BackendName): Promise<BackendChoice> {
  const skipped: BackendChoice['skipped'] = [];
  for (const name of BACKENDS.slice(BACKENDS.indexOf(wanted))) {
    let reason = await unavailable(name);
    if (reason === null) {
      try {
        if (await tf.setBackend(name)) {
          await tf.ready();
          return { backend: name, skipped };
        }
        reason = 'tfjs could not initialise it';
      } catch (e) {
        reason = `tfjs could not initialise it: ${(e as Error).message}`;
      }
    }
    skipped.push({ backend: name, reason });
  }
  throw new Error(
    `no tfjs backend works in this browser: ${skipped.map((s) => `${s.backend}: ${s.reason}`).join('; ')}`,
  );
}
