import * as tf from '@tensorflow/tfjs';

/**
 * Kernel-level speed fixes, registered for a backend through tfjs's documented extension point
 * (`registerKernel`). They change no algorithm code and no numerics beyond float32 rounding order.
 *
 * wasm: tfjs-backend-wasm 4.22's BatchMatMul is fast only without transposes — measured here
 * (2 cores, 8192×512 · 512×512): plain 0.2 s, `transposeA` 3.2 s, `transposeB` 1.2 s, while an
 * explicit Transpose followed by the plain product takes 0.17 s. Reverse mode (tfjs's MatMul
 * gradient: dA = dy·Bᵀ, dB = Aᵀ·dy) and the forward-gradient weight estimates (xᵀ·ĝ) are
 * exactly those products. The patched kernel transposes the operand first and calls the
 * original kernel without transposes.
 *
 * wasm also runs batched products ([G, M, K] · [G, K, N], the grouped linear layers) through a
 * generic loop about five times slower than its XNNPACK 2-D path (measured: 16 × 4096×32·32×32
 * in 89 ms batched, 19 ms as 16 separate 2-D products). The patch runs one 2-D product per batch
 * entry, copying each operand block with one typed-array copy (no Slice kernels).
 */

interface TensorInfo {
  dataId: object;
  shape: number[];
  dtype: string;
}

interface KernelBackend {
  disposeData(dataId: object): void;
}

/** What the patches use of tfjs-backend-wasm's backend object (public methods its kernels use). */
interface WasmBackend extends KernelBackend {
  makeOutput(shape: number[], dtype: string): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

type KernelFunc = (args: {
  inputs: Record<string, TensorInfo>;
  attrs: Record<string, unknown>;
  backend: KernelBackend;
}) => TensorInfo | TensorInfo[];

const installed = new Map<string, string[]>();

/** The kernels patched for a backend so far. */
export function patchedKernels(backendName: string): string[] {
  return installed.get(backendName) ?? [];
}

function swapLast(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return perm;
}

function patchTransposes(kernelName: string, backendName: string, transpose: KernelFunc): boolean {
  const original = tf.getKernel(kernelName, backendName);
  if (original === undefined) return false;
  const plain = original.kernelFunc as unknown as KernelFunc;
  const run: KernelFunc = kernelName === 'BatchMatMul' ? (args) => perBatch(plain, args) : plain;
  const kernelFunc: KernelFunc = ({ inputs, attrs, backend }) => {
    const transposeA = attrs.transposeA === true;
    const transposeB = attrs.transposeB === true;
    if (!transposeA && !transposeB) return run({ inputs, attrs, backend });
    const temporary: TensorInfo[] = [];
    const explicit = (x: TensorInfo): TensorInfo => {
      const t = transpose({
        inputs: { x },
        attrs: { perm: swapLast(x.shape.length) },
        backend,
      }) as TensorInfo;
      temporary.push(t);
      return t;
    };
    try {
      return run({
        inputs: {
          ...inputs,
          a: transposeA ? explicit(inputs.a) : inputs.a,
          b: transposeB ? explicit(inputs.b) : inputs.b,
        },
        attrs: { ...attrs, transposeA: false, transposeB: false },
        backend,
      });
    } finally {
      for (const t of temporary) backend.disposeData(t.dataId);
    }
  };
  // registerKernel warns when a kernel is replaced; that replacement is the point here.
  const warn = console.warn;
  console.warn = () => {};
  try {
    tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel({ ...original, kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  } finally {
    console.warn = warn;
  }
  return true;
}

function size(shape: number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}

/**
 * A batched product without transposes as one 2-D product per batch entry (see above). Falls
 * back to the original kernel for broadcasting batches and for a single batch entry.
 */
function perBatch(run: KernelFunc, args: Parameters<KernelFunc>[0]): TensorInfo | TensorInfo[] {
  const { inputs, attrs } = args;
  const { a, b } = inputs;
  const batchA = size(a.shape.slice(0, -2));
  const same = a.shape.length === b.shape.length && a.shape.slice(0, -2).every((d, i) => d === b.shape[i]);
  if (
    batchA <= 1 ||
    !same ||
    attrs.transposeA === true ||
    attrs.transposeB === true ||
    a.dtype !== 'float32'
  ) {
    return run(args);
  }
  const backend = args.backend as WasmBackend;
  const [m, k] = a.shape.slice(-2);
  const n = b.shape[b.shape.length - 1];
  const out = backend.makeOutput([...a.shape.slice(0, -2), m, n], 'float32');
  for (let i = 0; i < batchA; i++) {
    // Fresh operands every time: the XNNPACK path caches packed weights by tensor id, so a
    // reused id would multiply by the first entry's weights. Views are taken after every
    // allocation, since a growing wasm heap detaches older ones.
    const ai = backend.makeOutput([m, k], 'float32');
    const bi = backend.makeOutput([k, n], 'float32');
    try {
      backend.typedArrayFromHeap(ai).set(backend.typedArrayFromHeap(a).subarray(i * m * k, (i + 1) * m * k));
      backend.typedArrayFromHeap(bi).set(backend.typedArrayFromHeap(b).subarray(i * k * n, (i + 1) * k * n));
      const ci = run({ inputs: { a: ai, b: bi }, attrs, backend }) as TensorInfo;
      backend.typedArrayFromHeap(out).set(backend.typedArrayFromHeap(ci), i * m * n);
      backend.disposeData(ci.dataId);
    } finally {
      backend.disposeData(ai.dataId);
      backend.disposeData(bi.dataId);
    }
  }
  return out;
}

/**
 * Installs the speed fixes for `backendName` (currently: wasm's transposed matrix products).
 * Idempotent; returns the names of the kernels patched by this call. `installBackendKernels` calls it.
 */
export function installKernelPatches(backendName: string): string[] {
  if (backendName !== 'wasm' || installed.has(backendName)) return [];
  const transpose = tf.getKernel('Transpose', backendName);
  if (transpose === undefined) return [];
  const patched = ['BatchMatMul', '_FusedMatMul'].filter((name) =>
    patchTransposes(name, backendName, transpose.kernelFunc as unknown as KernelFunc),
  );
  installed.set(backendName, patched);
  return patched;
}
