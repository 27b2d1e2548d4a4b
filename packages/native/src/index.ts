export { type BackendKernelOptions, installBackendKernels } from './backends.js';
export { type LoadOptions, type NativeAddon, type NativeStatus, loadNative, nativeAddon } from './addon.js';
export {
  broadcastLayout,
  collapsePermutation,
  drawAheadBytes,
  groupedMatMulShapes,
  installedNativeKernels,
  installNativeKernels,
  NATIVE_KERNEL_NAMES,
  nativeFallbackCounts,
  nativeNormalFiller,
  nativePoolStats,
  setDrawAhead,
  uninstallNativeKernels,
} from './kernels.js';
export { BufferPool, type PoolableBackend } from './pool.js';
export { installKernelPatches, patchedKernels } from './wasm.js';
