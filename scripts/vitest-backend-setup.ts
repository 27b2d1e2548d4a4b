// Vitest setup shared by the packages' test suites: the backend the suites run on comes from ONE
// environment variable, FWDGRAD_TEST_BACKEND:
// - `cpu` (default): tfjs's cpu backend with tfjs's own kernels;
// - `native`: the cpu backend with @fwdgrad/native's kernels and normal sampler (issue 10: "the full
//   test suite passes with the fast path on and off"; `pnpm test` runs both passes);
// - `tensorflow`: @tensorflow/tfjs-node's libtensorflow (after `fwdgrad setup tensorflow`); .ci/run runs
//   jvp-core, local-losses, perturbation and a trainer smoke test on it.
// FWDGRAD_NATIVE_KERNELS=1 is read as FWDGRAD_TEST_BACKEND=native (older scripts).
// Suites that test one backend on purpose (native's kernels, backend selection) set it themselves.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const BACKENDS = ['cpu', 'native', 'tensorflow'];
const backend =
  process.env.FWDGRAD_TEST_BACKEND ?? (process.env.FWDGRAD_NATIVE_KERNELS === '1' ? 'native' : 'cpu');
if (!BACKENDS.includes(backend)) {
  throw new Error(`FWDGRAD_TEST_BACKEND=${backend}: choose one of ${BACKENDS.join(', ')}`);
}
const root = new URL('..', import.meta.url);

/**
 * The tfjs instance the package under test imports (every package shares one), or undefined for a
 * package without tfjs.
 */
async function tfjs(): Promise<typeof import('@tensorflow/tfjs') | undefined> {
  let entry: string;
  try {
    entry = createRequire(join(process.cwd(), 'package.json')).resolve('@tensorflow/tfjs');
  } catch {
    return undefined;
  }
  return import(pathToFileURL(entry).href);
}

if (backend === 'native') {
  const native = await import(new URL('packages/native/dist/index.js', root).href);
  const status = native.loadNative();
  if (!status.available) {
    throw new Error(`FWDGRAD_TEST_BACKEND=native but the native addon is unavailable: ${status.reason}`);
  }
  if (native.installNativeKernels('cpu').length === 0) throw new Error('no native kernel was installed');
  // packages that draw normals build @fwdgrad/random first (turbo ^build); the others do not draw them
  const randomDist = new URL('packages/random/dist/index.js', root);
  if (existsSync(randomDist)) {
    const random = await import(randomDist.href);
    random.setNormalFiller(native.nativeNormalFiller());
  }
}

if (backend === 'tensorflow') {
  // tfjs-node is an optional dependency of @fwdgrad/trainer: load it as the trainer does
  const req = createRequire(new URL('packages/trainer/package.json', root));
  let entry: string;
  try {
    entry = req.resolve('@tensorflow/tfjs-node');
  } catch {
    throw new Error(
      'FWDGRAD_TEST_BACKEND=tensorflow but @tensorflow/tfjs-node is not installed: run pnpm install',
    );
  }
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '1';
  try {
    await import(pathToFileURL(entry).href);
  } catch (err) {
    throw new Error(
      `FWDGRAD_TEST_BACKEND=tensorflow but @tensorflow/tfjs-node does not load (${(err as Error).message.split('\n')[0]}): ` +
        'run pnpm fwdgrad setup tensorflow',
    );
  }
  const tf = await tfjs();
  if (tf !== undefined && !(await tf.setBackend('tensorflow'))) {
    throw new Error("tf.setBackend('tensorflow') failed");
  }
} else {
  const tf = await tfjs();
  if (tf !== undefined) {
    await tf.setBackend('cpu');
    // the cpu backend prints an install hint on first use in Node
    (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
  }
}
