export { type LoadOptions, type NativeAddon, type NativeStatus, loadNative, nativeAddon } from './addon.js';
export {
  broadcastLayout,
  collapsePermutation,
  GROUPED_MATMUL_KERNEL,
  groupedMatMulShapes,
  installedNativeKernels,
  installNativeKernels,
  LAYER_NORM_JVP_KERNEL,
  LAYER_NORM_KERNEL,
  NATIVE_KERNEL_NAMES,
  nativeFallbackCounts,
  type NormalTables,
  nativeNormalFiller,
  nativePoolStats,
  uninstallNativeKernels,
} from './kernels.js';
export { BufferPool, type PoolableBackend } from './pool.js';
