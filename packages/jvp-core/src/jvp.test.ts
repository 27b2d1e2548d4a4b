import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  customJvp,
  groupedMatMul,
  jvp,
  jvpActive,
  jvpBatched,
  layerNorm,
  layerNormFunction,
  layerNormLinearized,
  l2Normalize,
  ops,
  softmaxCrossEntropy,
  stopGradient,
  tangentOf,
  withTangent,
} from './index.js';
import { checkBatched, checkJvp, rand } from './testing.test-util.js';

const values = (t: tf.Tensor) => Array.from(t.dataSync());

/** Elementwise |got − want| < 5e-5 (toBeCloseTo's 4 digits). */
function expectNear(got: tf.Tensor, want: tf.Tensor): void {
  expect(got.shape).toEqual(want.shape);
  const w = values(want);
  for (const [i, v] of values(got).entries()) expect(v).toBeCloseTo(w[i], 4);
}

describe('jvp semantics', () => {
  it('returns the value and the directional derivative', () => {
    const x = tf.tensor1d([1, 2, 3]);
    const [y, dy] = jvp((a) => tf.sum(tf.square(a)), [x], [tf.tensor1d([1, 1, 0])]);
    expect(values(y)).toEqual([14]);
    expect(values(dy)).toEqual([6]); // 2·1 + 2·2
  });

  it('mirrors an array output and gives zero tangents to outputs that do not depend on primals', () => {
    const x = tf.tensor1d([1, 2]);
    const c = tf.tensor1d([5, 6]);
    const [outs, tans] = jvp((a) => [tf.mul(a, 3), tf.add(c, 1)], [x], [tf.tensor1d([1, -1])]);
    expect(outs).toHaveLength(2);
    expect(values(tans[0])).toEqual([3, -3]);
    expect(values(tans[1])).toEqual([0, 0]);
    expect(values(outs[1])).toEqual([6, 7]);
  });

  it('treats the same tensor passed twice as two arguments', () => {
    const x = tf.scalar(3);
    const [, dy] = jvp((a, b) => tf.mul(a, tf.square(b)), [x, x], [tf.scalar(1), tf.scalar(0)]);
    expect(values(dy)).toEqual([9]); // ∂/∂a only
  });

  it('f returning its own argument hands back a tensor the caller owns', () => {
    const x = tf.tensor1d([1, 2]);
    const t = tf.tensor1d([3, 4]);
    const [y, dy] = jvp((a) => a, [x], [t]);
    expect(values(y)).toEqual([1, 2]);
    expect(values(dy)).toEqual([3, 4]);
    y.dispose();
    dy.dispose();
    expect(x.isDisposed).toBe(false);
    expect(t.isDisposed).toBe(false);
  });

  it('leaks no tensors over 100 calls, and intermediate tangents are freed with their primals', () => {
    const w = rand([8, 8], 1);
    const x = rand([4, 8], 2);
    const u = rand([8, 8], 3);
    const f = (ww: tf.Tensor) => tf.mean(tf.relu(tf.matMul(tf.tanh(tf.matMul(x, ww)), ww)));
    const before = tf.memory().numTensors;
    for (let i = 0; i < 100; i++) {
      const [y, dy] = jvp(f, [w], [u]);
      tf.dispose([y, dy]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('output tangents are tracked by an enclosing tf.tidy like ordinary results', () => {
    const x = rand([3], 4);
    const before = tf.memory().numTensors;
    const s = tf.tidy(() => {
      const [y, dy] = jvp((a) => tf.exp(a), [x], [tf.onesLike(x)]);
      return tf.add(y, dy);
    });
    s.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('leaves plain tfjs untouched outside jvp, also after an exception inside f', () => {
    const e = tf.engine() as unknown as Record<string, unknown>;
    const proto = Object.getPrototypeOf(e) as Record<string, unknown>;
    expect(e.runKernelFunc).toBe(proto.runKernelFunc);
    expect(() =>
      jvp(
        () => {
          throw new Error('boom');
        },
        [tf.scalar(1)],
        [tf.scalar(1)],
      ),
    ).toThrow('boom');
    expect(e.runKernelFunc).toBe(proto.runKernelFunc);
    expect(e.disposeTensor).toBe(proto.disposeTensor);
    expect(jvpActive()).toBe(false);
    // and reverse mode still works
    const g = tf.grad((a: tf.Tensor) => tf.sum(tf.square(a)))(tf.tensor1d([2]));
    expect(values(g)).toEqual([4]);
  });
});

describe('errors name the problem', () => {
  it('shape mismatch names both shapes', () => {
    expect(() => jvp((a) => a, [tf.zeros([2, 3])], [tf.zeros([3, 2])])).toThrow(
      /tangent 0 has shape \[3, 2\] but primal 0 has shape \[2, 3\]/,
    );
  });
  it('non-float tangents and primals', () => {
    expect(() => jvp((a) => a, [tf.zeros([2])], [tf.zeros([2], 'int32')])).toThrow(/dtype int32/);
    expect(() => jvp((a) => a, [tf.zeros([2], 'int32')], [tf.zeros([2])])).toThrow(/only float32 primals/);
  });
  it('count mismatch and batched K mismatch', () => {
    expect(() => jvp((a) => a, [tf.zeros([2])], [])).toThrow(/1 primals but 0 tangents/);
    expect(() =>
      jvp((a, b) => tf.add(a, b), [tf.zeros([2]), tf.zeros([2])], [tf.zeros([3, 2]), tf.zeros([4, 2])], {
        batched: true,
      }),
    ).toThrow(/disagree on K/);
  });
  it('an op without a rule names the kernel and lists the supported ones', () => {
    const x = tf.ones([4]);
    expect(() => jvp((a) => tf.atan(a), [x], [x])).toThrow(
      /no JVP rule for kernel 'Atan'.*Supported kernels: .*BatchMatMul.*registerJvpRule\('Atan'/,
    );
    expect(jvpActive()).toBe(false);
  });
});

describe('stopGradient', () => {
  it('cuts forward tangents', () => {
    const x = tf.tensor1d([2, 3]);
    const [y, dy] = jvp((a) => tf.mul(stopGradient(a), a), [x], [tf.tensor1d([1, 1])]);
    expect(values(y)).toEqual([4, 9]);
    expect(values(dy)).toEqual([2, 3]); // only the second factor carries a tangent
  });
  it('cuts reverse-mode gradients', () => {
    const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(stopGradient(a), a)))(tf.tensor1d([2, 3]));
    expect(values(g)).toEqual([2, 3]);
  });
});

describe('withTangent and tangentOf', () => {
  it('adds a tangent to a value inside jvp (activity perturbation)', () => {
    const x = tf.tensor1d([1, 2]);
    const noise = tf.tensor1d([0.5, -1]);
    const [, dy] = jvp(
      (a) => {
        const z = withTangent(tf.mul(a, 0), noise); // x·0 carries x's zero-derivative tangent + noise
        expect(values(tangentOf(z) as tf.Tensor)).toEqual([0.5, -1]);
        return tf.sum(tf.square(tf.add(z, a)));
      },
      [x],
      [tf.zeros([2])],
    );
    // d/dε Σ (x + ε)² along noise = 2·Σ x·noise
    expect(values(dy)[0]).toBeCloseTo(2 * (1 * 0.5 + 2 * -1), 5);
  });
  it('outside jvp returns a plain copy, and validates the shape inside', () => {
    const x = tf.tensor1d([1, 2]);
    expect(values(withTangent(x, tf.zeros([2])))).toEqual([1, 2]);
    expect(() => jvp((a) => withTangent(a, tf.zeros([3])), [x], [x])).toThrow(/tangent shape \[3\]/);
  });
});

describe('customJvp', () => {
  // f(x) = x³ with a hand-written rule, and a custom gradient too
  const cube = customJvp(
    tf.customGrad(((x: tf.Tensor, save: (ts: tf.Tensor[]) => void) => {
      save([x]);
      return {
        value: tf.pow(x, 3),
        gradFunc: (dy: tf.Tensor, [saved]: tf.Tensor[]) => tf.mul(dy, tf.mul(3, tf.square(saved))),
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor,
    ({ inputs: [x], tangents: [dx], batched }) => {
      const d = tf.mul(3, tf.square(x));
      return tf.mul(dx as tf.Tensor, batched ? tf.expandDims(d, 0) : d);
    },
  );

  it('uses the rule inside jvp and the custom gradient under tf.grad', () => {
    const x = tf.tensor1d([1, 2]);
    const [y, dy] = jvp((a) => cube(a), [x], [tf.tensor1d([1, 1])]);
    expect(values(y)).toEqual([1, 8]);
    expect(values(dy)).toEqual([3, 12]);
    const g = tf.grad((a: tf.Tensor) => tf.sum(cube(a)))(x);
    expect(values(g)).toEqual([3, 12]);
  });
  it('works batched and composes with surrounding ops', () => {
    checkJvp((a) => tf.tanh(cube(tf.mul(a, 0.5))), [rand([3], 1)]);
    checkBatched((a) => tf.tanh(cube(tf.mul(a, 0.5))), [rand([3], 1)]);
  });
  it('a rule returning the wrong shape is reported', () => {
    const bad = customJvp(
      (x: tf.Tensor) => tf.square(x),
      () => tf.zeros([5]),
    );
    expect(() => jvp((a) => bad(a), [tf.zeros([2])], [tf.ones([2])])).toThrow(/shape \[5\].*expected \[2\]/);
  });
});

describe('batched tangents', () => {
  it('report batched mode inside f and equal K separate calls', () => {
    const w = rand([4, 3], 7);
    jvp(
      (a) => {
        expect(jvpBatched()).toBe(true);
        return a;
      },
      [w],
      [tf.zeros([2, 4, 3])],
      { batched: true },
    );
    checkBatched((a) => tf.softmax(tf.matMul(rand([5, 4], 8), a)), [w], 4);
  });
});

describe('tangents entering only through withTangent', () => {
  it('works without primals, unbatched and batched with k', () => {
    const x = tf.tensor1d([1, 2]);
    const [, dy] = jvp(() => tf.sum(tf.square(withTangent(x, tf.tensor1d([1, 0])))), [], []);
    expect(values(dy)).toEqual([2]);
    const [, dys] = jvp(
      () =>
        tf.sum(
          tf.square(
            withTangent(
              x,
              tf.tensor2d([
                [1, 0],
                [0, 1],
                [1, 1],
              ]),
            ),
          ),
        ),
      [],
      [],
      {
        batched: true,
        k: 3,
      },
    );
    expect(values(dys)).toEqual([2, 4, 6]);
    expect(() => jvp(() => x, [], [], { batched: true })).toThrow(/needs \{ k \}/);
  });
});

describe('higher order', () => {
  it('nested jvp gives the second derivative', () => {
    const x = tf.scalar(0.7);
    const fp = (a: tf.Tensor) => jvp((b) => tf.sin(tf.mul(b, b)), [a], [tf.scalar(1)])[1];
    const [, d2] = jvp(fp, [x], [tf.scalar(1)]);
    // d²/dx² sin(x²) = 2cos(x²) − 4x²sin(x²)
    const v = 0.7;
    expect(values(d2)[0]).toBeCloseTo(2 * Math.cos(v * v) - 4 * v * v * Math.sin(v * v), 4);
  });
  it('forward-over-reverse gives a Hessian-vector product', () => {
    const x = tf.tensor1d([0.3, -0.5]);
    const g = (a: tf.Tensor) => tf.grad((b: tf.Tensor) => tf.sum(tf.pow(b, 3)))(a);
    const [, hv] = jvp(g, [x], [tf.tensor1d([1, 2])]);
    // H = diag(6x)
    expect(values(hv)[0]).toBeCloseTo(6 * 0.3 * 1, 5);
    expect(values(hv)[1]).toBeCloseTo(6 * -0.5 * 2, 5);
  });
});

describe('extra ops', () => {
  it('ops holds exactly the ops tfjs lacks (the named exports themselves)', () => {
    expect(ops).toEqual({ layerNorm, l2Normalize, softmaxCrossEntropy, stopGradient, groupedMatMul });
    const [y, dy] = jvp(
      (x: tf.Tensor) => ops.l2Normalize(x, -1),
      [tf.tensor1d([3, 4])],
      [tf.tensor1d([1, 0])],
    );
    expect(values(y)).toEqual([0.6000000238418579, 0.800000011920929]);
    // d(x/|x|)·v = (v − y(y·v))/|x| = ([1, 0] − 0.6·[0.6, 0.8])/5
    expect(values(dy)[0]).toBeCloseTo(0.128, 6);
    expect(values(dy)[1]).toBeCloseTo(-0.096, 6);
  });

  it('layerNorm normalises over the given axes and differentiates correctly', () => {
    const x = rand([3, 4, 5], 2);
    const y = layerNorm(x, [1, 2]);
    const m = tf.moments(y, [1, 2]);
    for (const v of values(m.mean)) expect(Math.abs(v)).toBeLessThan(1e-5);
    for (const v of values(m.variance)) expect(v).toBeCloseTo(1, 2);
    checkJvp((a) => layerNorm(a, -1), [x]);
  });
  it('layerNormLinearized: its VJP equals tf.grad of layerNorm, inside and outside jvp, without leaks', () => {
    const x = rand([3, 4, 6], 7);
    const g = rand([3, 4, 6], 8);
    for (const axes of [-1, 1, [1, 2]]) {
      const expected = tf.grad((a: tf.Tensor) => layerNorm(a, axes))(x, g);
      const yRef = layerNorm(x, axes);
      const before = tf.memory().numTensors;
      const lin = layerNormLinearized(x, axes);
      const got = lin.vjp(g);
      expect(values(lin.y)).toEqual(values(yRef));
      expectNear(got, expected);
      lin.dispose();
      tf.dispose([lin.y, got]);
      expect(tf.memory().numTensors).toBe(before);
      // inside jvp: y carries layerNorm's tangent, and the VJP is the same
      const dx = rand([3, 4, 6], 9);
      let inner: tf.Tensor | null = null;
      const [y, dy] = jvp(
        (a) => {
          const l = layerNormLinearized(a, axes);
          inner = tf.keep(l.vjp(g));
          l.dispose();
          return l.y;
        },
        [x],
        [dx],
      );
      const [, dyRef] = jvp((a) => layerNorm(a, axes), [x], [dx]);
      expectNear(dy, dyRef);
      expectNear(inner as unknown as tf.Tensor, expected);
      expect(values(y)).toEqual(values(yRef));
    }
    const lin = layerNormLinearized(x, -1);
    expect(() => lin.vjp(tf.zeros([3, 4]))).toThrow(
      /cotangent has shape \[3,4\] but the output has \[3,4,6\]/,
    );
    lin.dispose();
    const f = layerNormFunction(-1);
    expect(values(f(x))).toEqual(values(layerNorm(x, -1)));
    expect(typeof f.linearize).toBe('function');
  });
  it('l2Normalize and softmaxCrossEntropy', () => {
    const x = rand([3, 4], 3);
    const n = tf.norm(l2Normalize(x, -1), 'euclidean', -1);
    for (const v of values(n)) expect(v).toBeCloseTo(1, 5);
    checkJvp((a) => l2Normalize(a, -1), [x]);
    const labels = tf.oneHot(tf.tensor1d([0, 2, 1], 'int32'), 4);
    const ce = softmaxCrossEntropy(labels, x);
    const ref = tf.losses.softmaxCrossEntropy(labels, x, undefined, 0, tf.Reduction.NONE);
    expect(values(ce).map((v) => v.toFixed(5))).toEqual(values(ref).map((v) => v.toFixed(5)));
    checkJvp((a) => softmaxCrossEntropy(labels, a), [x]);
    expect(() => softmaxCrossEntropy(tf.zeros([3]), x)).toThrow(
      /labels shape \[3\] must equal logits shape \[3,4\]/,
    );
  });
});

describe('layerNorm over a middle axis', () => {
  // token mixing normalises x[N, C, P] over the channels (axis 1): one fused kernel where the backend
  // has it (statistics over C of [outer, C, inner]), the composite formula otherwise
  const x = tf.add(rand([3, 5, 4], 21), 2); // an offset mean, as after a residual
  const composite = (a: tf.Tensor) => {
    const mu = tf.mean(a, 1, true);
    const v = tf.sub(tf.mean(tf.square(a), 1, true), tf.square(mu));
    return tf.mul(tf.sub(a, mu), tf.rsqrt(tf.add(v, 1e-5)));
  };
  it('equals the composite formula, and its JVP matches reverse mode, finite differences and batches', () => {
    expectNear(layerNorm(x, 1), composite(x));
    expectNear(layerNorm(x, -2), composite(x));
    checkJvp((a) => layerNorm(a, 1), [x], { reference: composite });
    checkBatched((a) => tf.mul(layerNorm(a, 1), a), [x], 3);
  });
  it('tf.grad through it equals tf.grad of the composite formula', () => {
    const g = rand([3, 5, 4], 22);
    const loss = (f: (a: tf.Tensor) => tf.Tensor) => (a: tf.Tensor) => tf.sum(tf.mul(tf.square(f(a)), g));
    expectNear(tf.grad(loss((a) => layerNorm(a, 1)))(x), tf.grad(loss(composite))(x));
  });
});

describe('groupedMatMul', () => {
  const M = 5;
  const G = 3;
  const CI = 2;
  const CO = 4;
  /** The grouped products written out with transposes and a batched matMul (what wasm runs). */
  const reference = (a: tf.Tensor, b: tf.Tensor, mode: 'nn' | 'nt' | 'tn') => {
    if (mode === 'tn') {
      const [ci, co] = [a.shape[a.rank - 1], b.shape[b.rank - 1]];
      const ag = tf.transpose(tf.reshape(a, [-1, G, ci]), [1, 0, 2]);
      return tf.matMul(ag, tf.transpose(tf.reshape(b, [-1, G, co]), [1, 0, 2]), true, false);
    }
    const lead = a.shape.slice(0, -2);
    const ag = tf.transpose(tf.reshape(a, [-1, G, a.shape[a.rank - 1]]), [1, 0, 2]);
    const y = tf.transpose(tf.matMul(ag, b, false, mode === 'nt'), [1, 0, 2]);
    return tf.reshape(y, [...lead, G, y.shape[2] as number]);
  };
  const operands = {
    nn: [
      [M, G, CI],
      [G, CI, CO],
    ],
    nt: [
      [M, G, CO],
      [G, CI, CO],
    ],
    tn: [
      [M, G, CI],
      [M, G, CO],
    ],
  } as const;
  for (const mode of ['nn', 'nt', 'tn'] as const) {
    const [aShape, bShape] = operands[mode];
    const a = rand([...aShape], 31);
    const b = rand([...bShape], 32);
    it(`'${mode}': values equal the transpose formulation, also with several leading axes`, () => {
      const y = groupedMatMul(a, b, mode);
      expect(y.shape).toEqual(mode === 'tn' ? [G, CI, CO] : [M, G, mode === 'nn' ? CO : CI]);
      expectNear(y, reference(a, b, mode));
      // M = 5 as [5, 1] leading axes: kept in the output ('nn', 'nt'), shared by a and b ('tn')
      const a2 = tf.reshape(a, [M, 1, G, aShape[2]]);
      const b2 = mode === 'tn' ? tf.reshape(b, [M, 1, G, CO]) : b;
      const y2 = groupedMatMul(a2, b2, mode);
      expect(y2.shape).toEqual(mode === 'tn' ? [G, CI, CO] : [M, 1, G, mode === 'nn' ? CO : CI]);
      expectNear(y2, reference(a2, b2, mode));
      tf.dispose(b2 === b ? [y, y2, a2] : [y, y2, a2, b2]);
    });
    it(`'${mode}': JVP matches reverse mode and finite differences, batched = K single calls`, () => {
      const f = (p: tf.Tensor, q: tf.Tensor) => groupedMatMul(p, q, mode);
      checkJvp(f, [a, b], { seed: 3, reference: (p, q) => reference(p, q, mode) });
      checkJvp(f, [a, b], { seed: 4 }); // reverse mode through groupedMatMul itself (the kernel's gradient)
      checkBatched(f, [a, b], 3);
      // a tangent on one side only, batched
      checkBatched((p) => f(p, b), [a], 2);
      checkBatched((q) => f(a, q), [b], 2);
    });
    it(`'${mode}': tf.grad through it equals tf.grad of the transpose formulation`, () => {
      const w = rand(mode === 'tn' ? [G, CI, CO] : [M, G, mode === 'nn' ? CO : CI], 33);
      const loss = (f: (p: tf.Tensor, q: tf.Tensor) => tf.Tensor) => (p: tf.Tensor, q: tf.Tensor) =>
        tf.sum(tf.mul(tf.sin(f(p, q)), w));
      const got = tf.grads(loss((p, q) => groupedMatMul(p, q, mode)))([a, b]);
      const want = tf.grads(loss((p, q) => reference(p, q, mode)))([a, b]);
      expectNear(got[0], want[0]);
      expectNear(got[1], want[1]);
      tf.dispose([w, ...got, ...want]);
    });
  }
  it('forward-over-reverse through it (the gradient differentiated by jvp)', () => {
    const [a, b] = [rand([M, G, CI], 34), rand([G, CI, CO], 35)];
    const grad = (p: tf.Tensor) => tf.grad((q: tf.Tensor) => tf.sum(tf.square(groupedMatMul(q, b))))(p);
    const gradRef = (p: tf.Tensor) => tf.grad((q: tf.Tensor) => tf.sum(tf.square(reference(q, b, 'nn'))))(p);
    const u = rand([M, G, CI], 36);
    const [, hv] = jvp(grad, [a], [u]);
    const [, hvRef] = jvp(gradRef, [a], [u]);
    expectNear(hv, hvRef);
  });
  it('errors name the shapes and the fix', () => {
    const a = rand([M, G, CI], 37);
    expect(() => groupedMatMul(a, rand([G, CI + 1, CO], 38), 'nn')).toThrow(
      /groupedMatMul 'nn': a \[5,3,2\] and b \[3,3,4\] do not fit; expected a\[M, G, ci\] and b\[G, ci, co\]/,
    );
    expect(() => groupedMatMul(a, rand([M + 1, G, CO], 39), 'tn')).toThrow(/same M and G/);
    expect(() => groupedMatMul(rand([G, CI], 40), rand([G, CI, CO], 41))).toThrow(/expected a\[M, G, ci\]/);
    expect(() => groupedMatMul(a, a, 'xx' as 'nn')).toThrow(/mode must be 'nn', 'nt' or 'tn', got "xx"/);
  });
});

describe('a LocalMixer-like block', () => {
  // linear → layer norm → relu → grouped linear (batched matMul) → layer norm → residual → relu
  // → mean over patches → linear → softmax cross-entropy
  const N = 3;
  const P = 4;
  const C = 16;
  const G = 2;
  const K = 5;
  const x = rand([N, P, C], 11);
  const labels = tf.oneHot(tf.tensor1d([0, 3, 4], 'int32'), K);
  const block = (w1: tf.Tensor, w2: tf.Tensor, head: tf.Tensor, cut = false) => {
    const h1 = tf.relu(layerNorm(tf.matMul(tf.reshape(x, [N * P, C]), w1), -1));
    const grouped = tf.transpose(tf.reshape(h1, [N * P, G, C / G]), [1, 0, 2]); // [G, NP, C/G]
    const h2 = tf.transpose(tf.matMul(grouped, w2), [1, 0, 2]); // [NP, G, C/G]
    const normed = layerNorm(h2, -1);
    let out = tf.relu(tf.add(tf.reshape(normed, [N, P, C]), x));
    if (cut) out = stopGradient(out);
    const pooled = tf.mean(out, 1);
    return tf.mean(softmaxCrossEntropy(labels, tf.matMul(pooled, head)));
  };
  const w1 = rand([C, C], 12);
  const w2 = rand([G, C / G, C / G], 13);
  const head = rand([C, K], 14);

  it('matches reverse mode and finite differences', () => {
    checkJvp((a, b, c) => block(a, b, c), [w1, w2, head], { h: 1e-3, fdTol: 3e-2 });
    checkBatched((a, b, c) => block(a, b, c), [w1, w2, head], 3);
  });

  it('stopGradient in the middle zeroes the tangents of the weights before it', () => {
    const [, dBefore] = jvp(
      (a, b) => block(a, b, head, true),
      [w1, w2],
      [rand([C, C], 1), rand([G, C / G, C / G], 2)],
    );
    expect(values(dBefore)).toEqual([0]);
    const [, dHead] = jvp((c) => block(w1, w2, c, true), [head], [rand([C, K], 3)]);
    expect(Math.abs(values(dHead)[0])).toBeGreaterThan(1e-6);
  });
});
