export { type LoadOptions, type NativeAddon, type NativeStatus, loadNative, nativeAddon } from './addon.js';
export {
  broadcastLayout,
  collapsePermutation,
  installedNativeKernels,
  installNativeKernels,
  NATIVE_KERNEL_NAMES,
  nativeFallbackCounts,
  nativePoolStats,
  uninstallNativeKernels,
} from './kernels.js';
export { BufferPool, type PoolableBackend } from './pool.js';
