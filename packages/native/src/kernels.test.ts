import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FUSED_GROUPED_MATMUL, FUSED_LAYER_NORM, FUSED_LAYER_NORM_JVP } from '@fwdgrad/jvp-core';
import { loadNative, nativeAddon } from './addon.js';
import {
  broadcastLayout,
  collapsePermutation,
  installedNativeKernels,
  installNativeKernels,
  NATIVE_KERNEL_NAMES,
  uninstallNativeKernels,
} from './kernels.js';

// The addon must be built for these tests (pnpm build compiles it). FWDGRAD_NATIVE=0 turns it off on
// purpose; then only the fallback test below runs its checks.
const status = loadNative();
const expectAddon = process.env.FWDGRAD_NATIVE !== '0';

beforeAll(async () => {
  await tf.setBackend('cpu');
  (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
});
afterAll(() => uninstallNativeKernels());

/** Seeded uniform values in [-2, 2] (plus a positive shift when asked), as a tensor. */
function rand(shape: number[], seed: number, positive = false): tf.Tensor {
  return tf.tidy(() => {
    const r = tf.randomUniform(shape, -2, 2, 'float32', seed);
    return positive ? tf.add(tf.abs(r), 0.1) : r;
  });
}

/** Runs f with tfjs's kernels and with the native ones; returns both results as arrays. */
function both(f: () => tf.Tensor): {
  ref: Float32Array;
  got: Float32Array;
  shape: number[];
  refShape: number[];
} {
  uninstallNativeKernels();
  const r = f();
  const ref = r.dataSync() as Float32Array;
  const refShape = r.shape;
  r.dispose();
  expect(installNativeKernels().length).toBeGreaterThan(0);
  const g = f();
  const got = g.dataSync() as Float32Array;
  const shape = g.shape;
  g.dispose();
  return { ref, got, shape, refShape };
}

/** |got - ref| <= 1e-5 * max(|ref|, 1) elementwise (relative 1e-5, absolute near zero). */
function expectClose(ref: ArrayLike<number>, got: ArrayLike<number>, tol = 1e-5): void {
  expect(got.length).toBe(ref.length);
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    if (Number.isNaN(ref[i])) {
      expect(Number.isNaN(got[i])).toBe(true);
      continue;
    }
    if (ref[i] === got[i]) continue;
    const err = Math.abs(got[i] - ref[i]) / Math.max(Math.abs(ref[i]), 1);
    worst = Math.max(worst, err);
  }
  expect(worst).toBeLessThanOrEqual(tol);
}

function check(f: () => tf.Tensor, tol = 1e-5): void {
  const { ref, got, shape, refShape } = both(f);
  expect(shape).toEqual(refShape);
  expectClose(ref, got, tol);
}

/** The grouped-matmul kernel, run directly. */
const runGrouped = (a: tf.Tensor, b: tf.Tensor, mode: string) =>
  tf.engine().runKernel(FUSED_GROUPED_MATMUL, { a, b }, { mode }) as tf.Tensor;

/** The JS formulation jvp-core falls back to: transpose → batched matMul → transpose. */
const groupedReference = (a: tf.Tensor, b: tf.Tensor, mode: string) => {
  const ag = tf.transpose(a, [1, 0, 2]);
  if (mode === 'nn') return tf.transpose(tf.matMul(ag, b), [1, 0, 2]);
  if (mode === 'nt') return tf.transpose(tf.matMul(ag, b, false, true), [1, 0, 2]);
  return tf.matMul(ag, tf.transpose(b, [1, 0, 2]), true, false);
};

describe('addon', () => {
  it('loads with a matrix-product implementation it names', () => {
    if (!expectAddon) return;
    expect(status.reason).toBeUndefined();
    expect(status.available).toBe(true);
    expect(status.threads).toBeGreaterThanOrEqual(1);
    expect(typeof status.blas === 'string' || status.blas === null).toBe(true);
  });
});

describe('layouts', () => {
  it('collapses broadcast axes', () => {
    expect(broadcastLayout([4, 5, 6], [4, 5, 6])).toMatchObject({
      shape: [120],
      aStrides: [1],
      bStrides: [1],
    });
    expect(broadcastLayout([4, 5, 6], [6])).toMatchObject({
      shape: [20, 6],
      aStrides: [6, 1],
      bStrides: [0, 1],
    });
    expect(broadcastLayout([4, 5, 1], [1, 5, 6])).toMatchObject({
      outShape: [4, 5, 6],
      shape: [4, 5, 6],
      aStrides: [5, 1, 0],
      bStrides: [0, 6, 1],
    });
    expect(broadcastLayout([], [3, 2])).toMatchObject({ shape: [6], aStrides: [0], bStrides: [1] });
  });
  it('merges axes that move together', () => {
    expect(collapsePermutation([2, 3, 4, 5], [0, 2, 3, 1])).toEqual({ shape: [2, 3, 20], perm: [0, 2, 1] });
    expect(collapsePermutation([2, 1, 4], [1, 0, 2])).toEqual({ shape: [8], perm: [0] });
    expect(collapsePermutation([2, 3, 4], [2, 1, 0])).toEqual({ shape: [2, 3, 4], perm: [2, 1, 0] });
  });
});

describe.runIf(expectAddon)('native kernels equal tfjs cpu kernels (relative 1e-5)', () => {
  it('replaces the matmul, elementwise, reduction, transpose and softmax kernels', () => {
    expect(installNativeKernels().sort()).toEqual([...NATIVE_KERNEL_NAMES].sort());
    expect(installedNativeKernels()).toContain('BatchMatMul');
  });

  it('matMul with every transpose and batch layout', () => {
    for (const [ta, tb] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      const a = rand(ta ? [7, 5] : [5, 7], 1);
      const b = rand(tb ? [3, 7] : [7, 3], 2);
      check(() => tf.matMul(a, b, ta, tb));
      const ab = rand(ta ? [4, 7, 5] : [4, 5, 7], 3);
      const bb = rand(tb ? [4, 3, 7] : [4, 7, 3], 4);
      check(() => tf.matMul(ab, bb, ta, tb));
      check(() => tf.matMul(ab, b, ta, tb)); // b shared by the batch
      check(() => tf.matMul(a, bb, ta, tb)); // a shared by the batch
      tf.dispose([a, b, ab, bb]);
    }
    const a4 = rand([2, 3, 6, 5], 5);
    const b4 = rand([2, 3, 5, 4], 6);
    check(() => tf.matMul(a4, b4));
    const big = rand([130, 70], 7);
    check(() => tf.matMul(big, big, false, true));
    tf.dispose([a4, b4, big]);
  });

  it('fused matMul with bias and relu; its gradient', () => {
    const a = rand([6, 5], 8);
    const b = rand([5, 4], 9);
    const bias = rand([4], 10);
    check(() => tf.fused.matMul({ a, b, bias, activation: 'relu' }));
    check(() => tf.fused.matMul({ a, b, bias: tf.scalar(0.5), activation: 'linear' }));
    check(() => tf.fused.matMul({ a, b, transposeB: false, bias: rand([6, 4], 11) })); // falls back
    check(() =>
      tf.grad((x: tf.Tensor) =>
        tf.sum(tf.fused.matMul({ a: x as tf.Tensor2D, b, bias, activation: 'relu' })),
      )(a),
    );
    tf.dispose([a, b, bias]);
  });

  it('binary ops with broadcasting', () => {
    const shapes: [number[], number[]][] = [
      [
        [3, 4, 5],
        [3, 4, 5],
      ],
      [[3, 4, 5], [5]],
      [
        [3, 4, 5],
        [4, 1],
      ],
      [
        [3, 1, 5],
        [1, 4, 1],
      ],
      [[], [2, 3]],
      [[2, 3], []],
      [
        [2, 1, 3, 1, 4],
        [3, 5, 1],
      ],
      [
        [64, 33],
        [64, 1],
      ],
    ];
    const ops: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, boolean][] = [
      ['add', tf.add, false],
      ['sub', tf.sub, false],
      ['mul', tf.mul, false],
      ['div', tf.div, true],
      ['maximum', tf.maximum, false],
      ['minimum', tf.minimum, false],
      ['squaredDifference', tf.squaredDifference, false],
      ['pow', tf.pow, true],
    ];
    let seed = 20;
    for (const [sa, sb] of shapes) {
      for (const [, op, positive] of ops) {
        const a = rand(sa, seed++, positive);
        const b = rand(sb, seed++, positive);
        check(() => op(a, b));
        tf.dispose([a, b]);
      }
    }
    // int32 stays with tfjs's kernels
    check(() => tf.add(tf.tensor1d([1, 2, 3], 'int32'), tf.tensor1d([4, 5, 6], 'int32')).toFloat());
  });

  it('unary ops', () => {
    const x = rand([7, 9], 40);
    const p = rand([7, 9], 41, true);
    for (const f of [tf.exp, tf.neg, tf.square, tf.relu, tf.step, tf.abs, tf.sigmoid, tf.tanh])
      check(() => f(x));
    check(() => tf.step(x, 0.25));
    for (const f of [tf.log, tf.sqrt, tf.rsqrt, tf.reciprocal, tf.log1p]) check(() => f(p));
    check(() => tf.step(tf.tensor1d([Number.NaN, -1, 0, 2])));
    // NaN propagates like tfjs's kernels (a divergence guard must still see it)
    check(() => tf.relu(tf.tensor1d([Number.NaN, -1, 0, 2])));
    check(() => tf.maximum(tf.tensor1d([Number.NaN, 1, 2]), tf.tensor1d([0, Number.NaN, 1])));
    check(() => tf.max(tf.tensor1d([1, Number.NaN, 2])));
    tf.dispose([x, p]);
  });

  it('reductions over every axis set, kept or dropped', () => {
    const x = rand([3, 4, 5, 2], 50);
    const axesList: (number | number[] | undefined)[] = [
      undefined,
      0,
      1,
      3,
      -1,
      [0, 1],
      [1, 2],
      [0, 2],
      [1, 3],
      [0, 1, 2, 3],
    ];
    for (const axis of axesList)
      for (const keepDims of [false, true]) {
        check(() => tf.sum(x, axis, keepDims));
        check(() => tf.mean(x, axis, keepDims));
        check(() => tf.max(x, axis, keepDims));
        check(() => tf.min(x, axis, keepDims));
        check(() => tf.prod(tf.div(x, 2), axis, keepDims));
      }
    const ones = rand([4, 1, 6], 51);
    check(() => tf.sum(ones, 1));
    check(() => tf.mean(ones, [0, 1]));
    tf.dispose([x, ones]);
  });

  it('transposes, softmax and addN', () => {
    const x = rand([2, 3, 4, 5], 60);
    for (const perm of [
      [0, 1, 3, 2],
      [3, 2, 1, 0],
      [0, 2, 3, 1],
      [1, 0, 2, 3],
      [2, 0, 3, 1],
    ])
      check(() => tf.transpose(x, perm));
    const wide = rand([70, 45], 61);
    check(() => tf.transpose(wide));
    // a batch of 2-D transposes with partial 16×16 tiles on both axes
    const batch = rand([3, 37, 18], 62);
    check(() => tf.transpose(batch, [0, 2, 1]));
    batch.dispose();
    check(() => tf.softmax(x));
    check(() => tf.tile(x, [1, 2, 1, 3]));
    check(() => tf.tile(x, [2, 1, 1, 1]));
    check(() => tf.tile(x, [1, 1, 1, 1]));
    check(() => tf.broadcastTo(tf.reshape(x, [2, 3, 1, 4, 5]), [2, 3, 6, 4, 5]));
    check(() => tf.addN([x, tf.mul(x, 2), tf.neg(x)]));
    tf.dispose([x, wide]);
  });

  it('Sum and Mean gradients (replaced: broadcast instead of a product with ones) match', () => {
    const x = rand([3, 4, 5], 72);
    for (const axis of [undefined, 0, 1, 2, [0, 2], [1, 2]])
      for (const keepDims of [false, true]) {
        check(() => tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.sum(v, axis, keepDims), 1.5)))(x));
        check(() => tf.grad((v: tf.Tensor) => tf.sum(tf.square(tf.mean(v, axis, keepDims))))(x));
      }
    tf.dispose(x);
  });

  it('fused layer norm and its JVP equal the composite formulas', () => {
    installNativeKernels();
    const x = tf.add(rand([6, 5, 33], 80), 3); // an offset mean, as after a residual
    const t = rand([4, 6, 5, 33], 81); // 4 stacked tangents
    const [y, r] = tf.engine().runKernel(FUSED_LAYER_NORM, { x }, { epsilon: 1e-5 }) as tf.Tensor[];
    const mean = tf.mean(x, -1, true);
    const rRef = tf.rsqrt(tf.add(tf.sub(tf.mean(tf.square(x), -1, true), tf.square(mean)), 1e-5));
    const yRef = tf.mul(tf.sub(x, mean), rRef);
    expect(r.shape).toEqual([6, 5, 1]);
    expectClose(rRef.dataSync(), r.dataSync());
    expectClose(yRef.dataSync(), y.dataSync());
    const jvp = tf.engine().runKernel(FUSED_LAYER_NORM_JVP, { t, y, r }) as tf.Tensor;
    const centred = tf.sub(t, tf.mean(t, -1, true));
    const proj = tf.mean(tf.mul(y, t), -1, true);
    const jvpRef = tf.mul(tf.sub(centred, tf.mul(y, proj)), r);
    expect(jvp.shape).toEqual(t.shape);
    expectClose(jvpRef.dataSync(), jvp.dataSync());
    // and against reverse mode: the Jacobian is symmetric, so the JVP kernel is also the VJP
    uninstallNativeKernels();
    const vjp = tf.grad((v: tf.Tensor) =>
      tf.sum(
        tf.mul(
          tf.mul(
            tf.sub(v, tf.mean(v, -1, true)),
            tf.rsqrt(tf.add(tf.sub(tf.mean(tf.square(v), -1, true), tf.square(tf.mean(v, -1, true))), 1e-5)),
          ),
          tf.slice(t, [0], [1]).squeeze([0]),
        ),
      ),
    )(x);
    expectClose(vjp.dataSync(), tf.slice(jvp, [0], [1]).dataSync(), 2e-5);
    tf.dispose([x, t, y, r, mean, rRef, yRef, jvp, centred, proj, jvpRef, vjp]);
  });

  it('fused layer norm over a middle or leading axis: [outer, n, inner] views, JVP with stacked tangents, gradient', () => {
    installNativeKernels();
    const composite = (v: tf.Tensor, axis: number) => {
      const mean = tf.mean(v, axis, true);
      const r = tf.rsqrt(tf.add(tf.sub(tf.mean(tf.square(v), axis, true), tf.square(mean)), 1e-5));
      return { y: tf.mul(tf.sub(v, mean), r), r };
    };
    const native = nativeAddon();
    const { threads, parallelMin } = native?.info() ?? { threads: 1, parallelMin: 0 };
    const cases = [
      [[4, 37, 6], 1], // token mixing's channel axis of x[N, C, P]
      [[5, 3, 2, 7], 0],
      [[3, 4, 9], -2],
      [[3, 4, 9], 2], // the last axis, named: the same numbers as without the attribute
    ] as [number[], number][];
    // and again with the loops split across 2 threads from 64 elements (OpenMP paths)
    for (const [pass, [shape, axis]] of [...cases.map((c) => [0, c]), ...cases.map((c) => [1, c])] as [
      number,
      [number[], number],
    ][]) {
      native?.setThreads(pass === 0 ? threads : 2, pass === 0 ? parallelMin : 64);
      const x = tf.add(rand(shape, 90), 3);
      const ax = axis < 0 ? axis + shape.length : axis;
      const [y, r] = tf.engine().runKernel(FUSED_LAYER_NORM, { x }, { epsilon: 1e-5, axis }) as tf.Tensor[];
      const ref = composite(x, ax);
      expect(r.shape).toEqual(shape.map((d, i) => (i === ax ? 1 : d)));
      expectClose(ref.r.dataSync(), r.dataSync());
      expectClose(ref.y.dataSync(), y.dataSync());
      if (ax === shape.length - 1) {
        const [y0, r0] = tf.engine().runKernel(FUSED_LAYER_NORM, { x }, { epsilon: 1e-5 }) as tf.Tensor[];
        expect(y.dataSync()).toEqual(y0.dataSync());
        expect(r.dataSync()).toEqual(r0.dataSync());
        tf.dispose([y0, r0]);
      }
      // three stacked tangents share y and r
      const t = rand([3, ...shape], 91);
      const jvp = tf.engine().runKernel(FUSED_LAYER_NORM_JVP, { t, y, r }, { axis }) as tf.Tensor;
      const ta = ax + 1;
      const jvpRef = tf.mul(
        tf.sub(tf.sub(t, tf.mean(t, ta, true)), tf.mul(y, tf.mean(tf.mul(y, t), ta, true))),
        r,
      );
      expect(jvp.shape).toEqual(t.shape);
      expectClose(jvpRef.dataSync(), jvp.dataSync());
      // reverse mode through the kernel (both outputs) against tf.grad of the composite formula
      const g = rand(shape, 92);
      const loss = (f: (v: tf.Tensor) => { y: tf.Tensor; r: tf.Tensor }) => (v: tf.Tensor) => {
        const o = f(v);
        return tf.add(tf.sum(tf.mul(o.y, g)), tf.sum(tf.square(o.r)));
      };
      const fused = (v: tf.Tensor) => {
        const [fy, fr] = tf
          .engine()
          .runKernel(FUSED_LAYER_NORM, { x: v }, { epsilon: 1e-5, axis }) as tf.Tensor[];
        return { y: fy, r: fr };
      };
      const gFused = tf.grad(loss(fused))(x);
      const gRef = tf.grad(loss((v) => composite(v, ax)))(x);
      expectClose(gRef.dataSync(), gFused.dataSync(), 5e-5);
      tf.dispose([x, y, r, ref.y, ref.r, t, jvp, jvpRef, g, gFused, gRef]);
    }
    native?.setThreads(threads, parallelMin);
    expect(native?.info()).toMatchObject({ threads, parallelMin });
    const x = rand([2, 3], 93);
    expect(() => tf.engine().runKernel(FUSED_LAYER_NORM, { x }, { epsilon: 1e-5, axis: 2 })).toThrow(
      /FwdgradLayerNorm: axis 2 is out of range for a tensor of shape \[2,3\]; pass an axis in \[-2, 1\]/,
    );
    x.dispose();
  });

  it('grouped matmul kernel equals the transpose formulation (odd sizes, every mode, BLAS and built-in product)', () => {
    installNativeKernels();
    const operands = (mode: string, [m, g, ci, co]: number[], seed: number) =>
      mode === 'nn'
        ? [rand([m, g, ci], seed), rand([g, ci, co], seed + 1)]
        : mode === 'nt'
          ? [rand([m, g, co], seed), rand([g, ci, co], seed + 1)]
          : [rand([m, g, ci], seed), rand([m, g, co], seed + 1)];
    const sizes = [
      [7, 3, 5, 2],
      [1, 1, 1, 1],
      [33, 5, 3, 9],
      [130, 4, 17, 11], // two row blocks (128 + 2): 'tn' accumulates across them
      [300, 2, 64, 48], // row blocks over the built-in product's threading threshold
      [0, 2, 3, 4], // no rows: 'tn' sums nothing
    ];
    const original = status.blas;
    const products = original === null ? ['none'] : [original, 'none'];
    try {
      for (const blas of products) {
        loadNative({ blas });
        for (const mode of ['nn', 'nt', 'tn']) {
          for (const [i, dims] of sizes.entries()) {
            const [a, b] = operands(mode, dims, 100 + i);
            const got = runGrouped(a, b, mode);
            const want = groupedReference(a, b, mode);
            expect(got.shape).toEqual(want.shape);
            // sums of up to 300 products of values in [-2, 2], in another order (row blocks): float32 rounding
            expectClose(want.dataSync(), got.dataSync(), 5e-5);
            tf.dispose([a, b, got, want]);
          }
        }
      }
    } finally {
      loadNative({ blas: original ?? 'none' });
    }
    expect(loadNative().blas).toBe(original);
    expect(() => runGrouped(rand([4, 3, 2], 1), rand([3, 5, 6], 2), 'nn')).toThrow(
      /FwdgradGroupedMatMul 'nn': a \[4,3,2\] and b \[3,5,6\] do not fit; expected a\[M, G, ci\] and b\[G, ci, co\]/,
    );
    expect(() => runGrouped(rand([4, 3, 2], 1), rand([3, 2, 6], 2), 'tt')).toThrow(
      /expected mode 'nn', 'nt' or 'tn'/,
    );
  });

  it('grouped matmul gradient equals tf.grad of the transpose formulation, every mode', () => {
    installNativeKernels();
    const [m, g, ci, co] = [9, 3, 5, 4];
    const shapes: Record<string, number[][]> = {
      nn: [
        [m, g, ci],
        [g, ci, co],
      ],
      nt: [
        [m, g, co],
        [g, ci, co],
      ],
      tn: [
        [m, g, ci],
        [m, g, co],
      ],
    };
    for (const mode of ['nn', 'nt', 'tn']) {
      const [a, b] = shapes[mode].map((s, i) => rand(s, 120 + i));
      const w = rand(mode === 'tn' ? [g, ci, co] : [m, g, mode === 'nn' ? co : ci], 130);
      const loss = (f: (p: tf.Tensor, q: tf.Tensor) => tf.Tensor) => (p: tf.Tensor, q: tf.Tensor) =>
        tf.sum(tf.mul(tf.sin(f(p, q)), w));
      const got = tf.grads(loss((p, q) => runGrouped(p, q, mode)))([a, b]);
      const want = tf.grads(loss((p, q) => groupedReference(p, q, mode)))([a, b]);
      for (let i = 0; i < 2; i++) {
        expect(got[i].shape).toEqual(want[i].shape);
        expectClose(want[i].dataSync(), got[i].dataSync());
      }
      tf.dispose([a, b, w, ...got, ...want]);
    }
  });

  it('gradients through the replaced kernels match', () => {
    const w = rand([6, 4], 70);
    const xs = rand([5, 6], 71);
    const f = (v: tf.Tensor) =>
      tf.mean(tf.logSoftmax(tf.sub(tf.matMul(xs, v), tf.max(tf.matMul(xs, v), -1, true))));
    check(() => tf.grad(f)(w));
    tf.dispose([w, xs]);
  });
});

describe('fallback', () => {
  it('without an addon nothing is replaced, the status says why, and tfjs computes as before', async () => {
    uninstallNativeKernels();
    vi.resetModules();
    const before = process.env.FWDGRAD_NATIVE_ADDON;
    process.env.FWDGRAD_NATIVE_ADDON = '/nonexistent/fwdgrad.node';
    try {
      const fresh = await import('./index.js');
      const s = fresh.loadNative();
      expect(s.available).toBe(false);
      expect(s.reason).toContain('/nonexistent/fwdgrad.node');
      expect(fresh.installNativeKernels()).toEqual([]);
    } finally {
      if (before === undefined) delete process.env.FWDGRAD_NATIVE_ADDON;
      else process.env.FWDGRAD_NATIVE_ADDON = before;
    }
    expect(installedNativeKernels()).toEqual([]);
    const y = tf.add(tf.tensor1d([1, 2]), tf.tensor1d([3, 4]));
    expect(Array.from(y.dataSync())).toEqual([4, 6]);
  });
});
