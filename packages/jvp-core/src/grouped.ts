import * as tf from '@tensorflow/tfjs';

/**
 * The optional kernel a backend may register for {@link groupedMatMul} (`@fwdgrad/native` does, on tfjs's cpu
 * backend, with its gradient): inputs {a, b}, attrs {mode}, rank-3 operands as in {@link GroupedMatMulMode}.
 * jvp-core has its JVP rule (rules/linalg.ts).
 */
export const FUSED_GROUPED_MATMUL = 'FwdgradGroupedMatMul';

/**
 * The three products of a grouped linear layer (`'npgc,gcd->npgd'`, G independent maps), M the flattened
 * leading axes:
 * - `'nn'`: a[M, G, ci] · b[G, ci, co] → [M, G, co] (the layer's output);
 * - `'nt'`: a[M, G, co] · b[G, ci, co]ᵀ → [M, G, ci] (the input cotangent);
 * - `'tn'`: a[M, G, ci]ᵀ · b[M, G, co] summed over M → [G, ci, co] (the weight gradient).
 */
export type GroupedMatMulMode = 'nn' | 'nt' | 'tn';

const MODES: readonly GroupedMatMulMode[] = ['nn', 'nt', 'tn'];

/** Whether a gradient tape records the kernels run now (inside `tf.grad` and its relatives). */
export function tapeRecording(): boolean {
  return (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn();
}

/**
 * Whether the backend registered the kernel `name` and, when a tape records (inside `tf.grad`), a gradient
 * is registered for it too (else the composite formulation, which tfjs differentiates, is used).
 */
export function kernelUsable(name: string): boolean {
  return (
    tf.getKernel(name, tf.getBackend()) !== undefined &&
    (!tapeRecording() || tf.getGradient(name) !== undefined)
  );
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function product(shape: number[]): number {
  return shape.reduce((acc, d) => acc * d, 1);
}

/** The rank-3 views of a and b and the output shape (leading axes of a, and of b in 'tn', flattened into M). */
function groupedShapes(
  a: tf.Tensor,
  b: tf.Tensor,
  mode: GroupedMatMulMode,
): { a3: number[]; b3: number[]; out: number[] } {
  const fail = (expected: string): never => {
    throw new Error(
      `groupedMatMul '${mode}': a [${a.shape}] and b [${b.shape}] do not fit; expected ${expected} ` +
        '(M may be several leading axes)',
    );
  };
  if (!MODES.includes(mode)) {
    throw new Error(`groupedMatMul: mode must be 'nn', 'nt' or 'tn', got ${JSON.stringify(mode)}`);
  }
  if (a.rank < 3) fail(mode === 'nt' ? 'a[M, G, co]' : 'a[M, G, ci]');
  const lead = a.shape.slice(0, -2);
  const g = a.shape[a.rank - 2] as number;
  const c = a.shape[a.rank - 1] as number;
  const m = product(lead);
  if (mode === 'nn') {
    if (b.rank !== 3 || b.shape[0] !== g || b.shape[1] !== c) fail('a[M, G, ci] and b[G, ci, co]');
    return { a3: [m, g, c], b3: b.shape, out: [...lead, g, b.shape[2] as number] };
  }
  if (mode === 'nt') {
    if (b.rank !== 3 || b.shape[0] !== g || b.shape[2] !== c) fail('a[M, G, co] and b[G, ci, co]');
    return { a3: [m, g, c], b3: b.shape, out: [...lead, g, b.shape[1] as number] };
  }
  const bLead = b.shape.slice(0, -2);
  if (b.rank !== a.rank || bLead.some((d, i) => d !== lead[i]) || b.shape[b.rank - 2] !== g) {
    fail('a[M, G, ci] and b[M, G, co] with the same M and G');
  }
  const co = b.shape[b.rank - 1] as number;
  return { a3: [m, g, c], b3: [m, g, co], out: [g, c, co] };
}

/**
 * The transpose → batched matMul → transpose formulation of the grouped product, on rank-3 operands: what
 * backends without the {@link FUSED_GROUPED_MATMUL} kernel run (wasm, pure-JS cpu).
 */
function composite(a: tf.Tensor, b: tf.Tensor, mode: GroupedMatMulMode): tf.Tensor {
  const ag = tf.transpose(a, [1, 0, 2]); // [G, M, ·]
  if (mode === 'nn') return tf.transpose(tf.matMul(ag, b), [1, 0, 2]);
  if (mode === 'nt') return tf.transpose(tf.matMul(ag, b, false, true), [1, 0, 2]);
  return tf.matMul(ag, tf.transpose(b, [1, 0, 2]), true, false);
}

/**
 * The grouped matrix product of a layer with G independent linear maps ({@link GroupedMatMulMode}):
 * `'nn'` a[M, G, ci]·b[G, ci, co] → [M, G, co], `'nt'` a[M, G, co]·b[G, ci, co]ᵀ → [M, G, ci], `'tn'`
 * Σ_M a[M, G, ci]ᵀ·b[M, G, co] → [G, ci, co]. M may be several leading axes (kept in the output of 'nn'
 * and 'nt'; in 'tn' a and b share them).
 *
 * Where the backend registered the `FwdgradGroupedMatMul` kernel (`@fwdgrad/native`: G strided BLAS products
 * on the interleaved layout, no transposes) it runs that; otherwise — and under `tf.grad` when no gradient
 * is registered for the kernel — the same product as transpose → batched `matMul` → transpose. Works inside
 * `jvp` (bilinear rule, batched tangents too) and under `tf.grad`.
 *
 * @example
 * const y = groupedMatMul(x, w, 'nn'); // x [N, P, G, ci], w [G, ci, co] → [N, P, G, co]
 * const gx = groupedMatMul(gy, w, 'nt'); // the input cotangent, [N, P, G, ci]
 * const gw = groupedMatMul(x, gy, 'tn'); // the weight gradient, [G, ci, co]
 */
export function groupedMatMul(a: tf.Tensor, b: tf.Tensor, mode: GroupedMatMulMode = 'nn'): tf.Tensor {
  const { a3, b3, out } = groupedShapes(a, b, mode);
  // reshapes only where M spans several axes (each is a kernel call, and a rule call inside jvp)
  const view = (t: tf.Tensor, shape: number[]) => (sameShape(t.shape, shape) ? t : tf.reshape(t, shape));
  return tf.tidy(() => {
    const ar = view(a, a3);
    const br = view(b, b3);
    const y =
      a.dtype === 'float32' && b.dtype === 'float32' && kernelUsable(FUSED_GROUPED_MATMUL)
        ? (tf.engine().runKernel(FUSED_GROUPED_MATMUL, { a: ar, b: br }, { mode }) as tf.Tensor)
        : composite(ar, br, mode);
    return view(y, out);
  });
}
