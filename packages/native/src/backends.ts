import { setNormalFiller } from '@fwdgrad/random';
import { installNativeKernels, nativeNormalFiller, uninstallNativeKernels } from './kernels.js';
import { installKernelPatches, patchedKernels } from './wasm.js';

/** Which of fwdgrad's kernels a tfjs backend runs with. */
export interface BackendKernelOptions {
  /**
   * On tfjs's `cpu` backend: this package's C kernels and normal sampler (true), or tfjs's own kernels
   * and `@fwdgrad/random`'s JavaScript sampler (false, the default). Other backends ignore it.
   */
  native?: boolean;
}

/**
 * Puts in place the kernels fwdgrad runs on the tfjs backend `tfjsBackend` (call it after activating
 * that backend; `selectBackend` of @fwdgrad/trainer does):
 * - `cpu` with `native`: the C kernels (`installNativeKernels`) and the native normal sampler, which
 *   draws the same stream as `@fwdgrad/random`'s JavaScript one;
 * - `cpu` without: tfjs's own kernels back (both share tfjs's cpu backend) and the JavaScript sampler;
 * - `wasm`: the transposed-product patches (`installKernelPatches`);
 * - any other backend (`tensorflow`, `webgl`, `webgpu`, …): its own kernels; jvp-core's ops fall back to
 *   composite ops where the fused kernels (`FUSED_LAYER_NORM`, …) are missing.
 * Returns the kernels replaced or added on that backend. Idempotent.
 */
export function installBackendKernels(tfjsBackend: string, options: BackendKernelOptions = {}): string[] {
  const native = options.native === true && tfjsBackend === 'cpu';
  setNormalFiller(native ? nativeNormalFiller() : undefined);
  if (native) return installNativeKernels('cpu');
  if (tfjsBackend === 'cpu') {
    uninstallNativeKernels('cpu');
    return [];
  }
  installKernelPatches(tfjsBackend);
  return patchedKernels(tfjsBackend);
}
