// Vitest setup shared by the packages' test suites (issue 10: "the full test suite passes with the
// fast path on and off"). With FWDGRAD_NATIVE_KERNELS=1 every suite runs with @fwdgrad/native's
// kernels installed on tfjs's cpu backend (the backend the suites use) and jvp-core's normal
// sampler replaced by the native one; without it, the suites run on tfjs's own kernels.
// `pnpm test` runs both passes.
import { existsSync } from 'node:fs';

if (process.env.FWDGRAD_NATIVE_KERNELS === '1') {
  const native = await import('../packages/native/dist/index.js');
  const status = native.loadNative();
  if (!status.available) {
    throw new Error(`FWDGRAD_NATIVE_KERNELS=1 but the native addon is unavailable: ${status.reason}`);
  }
  if (native.installNativeKernels('cpu').length === 0) throw new Error('no native kernel was installed');
  // packages that use jvp-core build it first (turbo ^build); the others do not draw normals
  const jvpDist = new URL('../packages/jvp-core/dist/index.js', import.meta.url);
  if (existsSync(jvpDist)) {
    const jvp = await import(jvpDist.href);
    jvp.setNormalFiller(native.nativeNormalFiller());
  }
}
