import { jvp } from '@fwdgrad/jvp-core';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TEMPERATURE, replicatedInfoNce } from './info-nce.js';
import {
  expectClose,
  linearLoops,
  logSumExp,
  maxAbs,
  poolLoops,
  randn,
  toArray4,
} from './testing.test-util.js';
import type { LossImpl, ReplicationOptions } from './types.js';

const [N, P, G, Cg, D] = [3, 4, 2, 3, 6];
const COMBOS: Required<ReplicationOptions>[] = [
  { patchwise: true, groupwise: true },
  { patchwise: true, groupwise: false },
  { patchwise: false, groupwise: true },
  { patchwise: false, groupwise: false },
];
const tag = (o: Required<ReplicationOptions>) => `patchwise=${o.patchwise} groupwise=${o.groupwise}`;
const outShape = (o: Required<ReplicationOptions>) => [2 * N, o.patchwise ? P : 1, o.groupwise ? G : 1];

let x: tf.Tensor;
let y: tf.Tensor;
let w: tf.Tensor;
let b: tf.Tensor;

beforeAll(() => {
  x = randn([N, P, G, Cg], 101);
  y = tf.tidy(() => tf.add(x, randn([N, P, G, Cg], 102, 0.5))); // a correlated second view
  w = randn([G * Cg, D], 103, 0.7);
  b = randn([D], 104, 0.3);
});
afterAll(() => tf.dispose([x, y, w, b]));

const nce =
  (impl: LossImpl, o: ReplicationOptions, temperature?: number) =>
  (xi: tf.Tensor, yi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
    replicatedInfoNce(xi, yi, wi, bi, { impl, temperature, ...o });

/**
 * Plain NT-Xent, explicit loops in float64: for row i of view a, logits over the N keys of view b
 * (positive: the same index) and the N − 1 other keys of view a; loss = logsumexp − positive.
 */
function ntXentLoops(T: number): number[] {
  const wa = w.arraySync() as number[][];
  const ba = b.arraySync() as number[];
  const embed = (v: tf.Tensor) =>
    linearLoops(poolLoops(toArray4(v)), wa, ba).map((u) => {
      const norm = Math.sqrt(
        Math.max(
          u.reduce((s, a) => s + a * a, 0),
          1e-12,
        ),
      );
      return u.map((a) => a / norm);
    });
  const dot = (a: number[], c: number[]) => a.reduce((s, ai, i) => s + ai * (c[i] as number), 0);
  const ex = embed(x);
  const ey = embed(y);
  const side = (q: number[][], other: number[][]) =>
    q.map((qi, i) => {
      const logits: number[] = [];
      for (let j = 0; j < N; j++) logits.push(dot(qi, other[j] as number[]) / T);
      for (let j = 0; j < N; j++) if (j !== i) logits.push(dot(qi, q[j] as number[]) / T);
      return logSumExp(logits) - (logits[i] as number);
    });
  return [...side(ex, ey), ...side(ey, ex)];
}

describe('replicatedInfoNce: values', () => {
  it('equals an independent NT-Xent (loops), replicated to [2N, P′, G′], for T = 0.5 (default) and T = 0.2', () => {
    expect(DEFAULT_TEMPERATURE).toBe(0.5);
    for (const T of [undefined, 0.2]) {
      const ref = ntXentLoops(T ?? 0.5);
      for (const o of COMBOS) {
        for (const impl of ['naive', 'fused'] as const) {
          const L = nce(impl, o, T)(x, y, w, b);
          expect(L.shape, `${impl} ${tag(o)}`).toEqual(outShape(o));
          const v = L.arraySync() as number[][][];
          for (let n = 0; n < 2 * N; n++)
            for (const row of v[n] as number[][])
              for (const val of row)
                expect(Math.abs(val - (ref[n] as number))).toBeLessThan(1e-5 * (ref[n] as number) + 1e-6);
          L.dispose();
        }
      }
    }
  });

  it('fused equals naive to 1e-5 (forward value)', () => {
    for (const o of COMBOS)
      tf.tidy(() => expectClose(nce('fused', o)(x, y, w, b), nce('naive', o)(x, y, w, b)));
  });

  it('user errors name the problem', () => {
    expect(() => replicatedInfoNce(x, tf.zeros([N + 1, P, G, Cg]), w, b)).toThrow(/same shape/);
    expect(() => replicatedInfoNce(x, y, tf.zeros([5, D]), b)).toThrow(/\[6, K\]/);
    expect(() => replicatedInfoNce(x, y, w, b, { temperature: 0 })).toThrow(/temperature/);
  });
});

describe('replicatedInfoNce: forward mode (jvp)', () => {
  const tangents = (seed: number, lead: number[] = []) => [
    randn([...lead, N, P, G, Cg], seed),
    randn([...lead, N, P, G, Cg], seed + 1),
    randn([...lead, G * Cg, D], seed + 2),
    randn([...lead, D], seed + 3),
  ];

  it('fused JVP equals naive JVP (unbatched, random tangents on x, y, w, b; and on x alone)', () => {
    for (const o of COMBOS) {
      tf.tidy(() => {
        const all = tangents(111);
        const xOnly = [all[0] as tf.Tensor, tf.zerosLike(y), tf.zerosLike(w), tf.zerosLike(b)];
        for (const ts of [all, xOnly]) {
          const [vf, tfw] = jvp(nce('fused', o), [x, y, w, b], ts);
          const [vn, tn] = jvp(nce('naive', o), [x, y, w, b], ts);
          expectClose(vf, vn);
          expect(tfw.shape, tag(o)).toEqual(outShape(o));
          expectClose(tfw, tn);
        }
      });
    }
  });

  it('fused JVP equals naive JVP (batched, 2 tangents)', () => {
    for (const o of COMBOS) {
      tf.tidy(() => {
        const ts = tangents(121, [2]);
        const [, tfb] = jvp(nce('fused', o), [x, y, w, b], ts, { batched: true });
        const [, tnb] = jvp(nce('naive', o), [x, y, w, b], ts, { batched: true });
        expect(tfb.shape).toEqual([2, ...outShape(o)]);
        expectClose(tfb, tnb);
      });
    }
  });

  it('fused JVP is the adjoint of tfjs reverse mode on the naive form: <c, J·t> = <Jᵀ·c, t>', () => {
    for (const o of COMBOS) {
      tf.tidy(() => {
        const ts = tangents(161);
        const cot = randn(outShape(o), 162);
        const [, t] = jvp(nce('fused', o), [x, y, w, b], ts);
        const forward = tf.sum(tf.mul(t, cot));
        const grads = tf.grads((xi: tf.Tensor, yi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
          tf.sum(tf.mul(nce('naive', o)(xi, yi, wi, bi), cot)),
        )([x, y, w, b]);
        const backward = tf.addN(grads.map((g, i) => tf.sum(tf.mul(g, ts[i] as tf.Tensor))));
        expectClose(forward, backward);
      });
    }
  });

  it('locality: a tangent at view-1 patch p, group g moves only replica (p, g) of the view-1 rows', () => {
    const [p0, g0] = [1, 0];
    for (const impl of ['naive', 'fused'] as const) {
      tf.tidy(() => {
        const m = tf.buffer([1, P, G, 1]);
        m.set(1, 0, p0, g0, 0);
        const mask = m.toTensor();
        const dx = tf.mul(randn([N, P, G, Cg], 131), mask);
        const [, t] = jvp(
          nce(impl, {}),
          [x, y, w, b],
          [dx, tf.zerosLike(y), tf.zerosLike(w), tf.zerosLike(b)],
        );
        const rowMask = tf.concat([tf.ones([N, 1, 1]), tf.zeros([N, 1, 1])], 0);
        const allowed = tf.mul(t, tf.mul(rowMask, tf.reshape(mask, [1, P, G])));
        expect(maxAbs(tf.sub(t, allowed)), impl).toBe(0);
        expect(maxAbs(allowed), impl).toBeGreaterThan(1e-4);
      });
    }
  });
});

describe('replicatedInfoNce: stop-gradient on the keys (eq. 6)', () => {
  // What is tested: loss_a (rows :N, queries from view 1) has exactly zero derivative with respect to
  // view 2's features y, and loss_b (rows N:) exactly zero derivative with respect to x — in reverse
  // mode (tf.grad) and forward mode (jvp) — while each has a nonzero derivative through its own view.
  for (const impl of ['naive', 'fused'] as const) {
    it(`${impl}: ∂loss_a/∂y = 0 and ∂loss_b/∂x = 0, exactly; ∂loss_a/∂x ≠ 0, ∂loss_b/∂y ≠ 0`, () => {
      tf.tidy(() => {
        const rows = (from: number) => (xi: tf.Tensor, yi: tf.Tensor) =>
          tf.sum(tf.slice(nce(impl, {})(xi, yi, w, b), [from, 0, 0], [N, -1, -1]));
        const [ax, ay] = tf.grads(rows(0))([x, y]) as [tf.Tensor, tf.Tensor];
        const [bx, by] = tf.grads(rows(N))([x, y]) as [tf.Tensor, tf.Tensor];
        expect(maxAbs(ay)).toBe(0);
        expect(maxAbs(bx)).toBe(0);
        expect(maxAbs(ax)).toBeGreaterThan(1e-3);
        expect(maxAbs(by)).toBeGreaterThan(1e-3);
        const [, ty] = jvp(
          nce(impl, {}),
          [x, y, w, b],
          [tf.zerosLike(x), randn([N, P, G, Cg], 141), tf.zerosLike(w), tf.zerosLike(b)],
        );
        expect(maxAbs(tf.slice(ty, [0, 0, 0], [N, -1, -1]))).toBe(0);
        expect(maxAbs(tf.slice(ty, [N, 0, 0], [N, -1, -1]))).toBeGreaterThan(1e-4);
      });
    });
  }

  it('the test above can fail: a plain NT-Xent without stop-gradient has ∂loss_a/∂y ≠ 0', () => {
    tf.tidy(() => {
      const plainLossA = (yi: tf.Tensor) => {
        const e = (v: tf.Tensor) => {
          const u = tf.add(tf.matMul(tf.reshape(tf.mean(v, 1), [N, G * Cg]), w), b);
          return tf.div(u, tf.norm(u, 'euclidean', 1, true));
        };
        const qa = e(x);
        const kb = e(yi);
        const ab = tf.div(tf.matMul(qa, kb, false, true), 0.5);
        const aa = tf.sub(tf.div(tf.matMul(qa, qa, false, true), 0.5), tf.mul(tf.eye(N), 1e9));
        const logits = tf.concat([ab, aa], 1);
        return tf.sum(tf.sub(tf.logSumExp(logits, 1), tf.sum(tf.mul(ab, tf.eye(N)), 1)));
      };
      expect(maxAbs(tf.grad(plainLossA)(y))).toBeGreaterThan(1e-3);
    });
  });
});

describe('replicatedInfoNce: reverse mode (tf.grad)', () => {
  it('fused VJP equals naive VJP for a random cotangent', () => {
    for (const o of COMBOS) {
      tf.tidy(() => {
        const cot = randn(outShape(o), 151);
        const grads = (impl: LossImpl) =>
          tf.grads((xi: tf.Tensor, yi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
            tf.sum(tf.mul(nce(impl, o)(xi, yi, wi, bi), cot)),
          )([x, y, w, b]);
        const gf = grads('fused');
        const gn = grads('naive');
        for (let i = 0; i < 4; i++) expectClose(gf[i] as tf.Tensor, gn[i] as tf.Tensor);
      });
    }
  });

  it('pooled (no replication): the fused gradient equals tf.grad of an independent NT-Xent with constant keys', () => {
    tf.tidy(() => {
      const embed = (v: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => {
        const u = tf.add(tf.matMul(tf.reshape(tf.mean(v, 1), [N, G * Cg]), wi), bi);
        return tf.div(u, tf.norm(u, 'euclidean', 1, true));
      };
      // Keys computed outside the differentiated function: constants, as eq. 6's StopGrad makes them.
      const kx = embed(x, w, b);
      const ky = embed(y, w, b);
      const side = (q: tf.Tensor, other: tf.Tensor, same: tf.Tensor) => {
        const ab = tf.div(tf.matMul(q, other, false, true), 0.5);
        const aa = tf.sub(tf.div(tf.matMul(q, same, false, true), 0.5), tf.mul(tf.eye(N), 1e9));
        return tf.sub(tf.logSumExp(tf.concat([ab, aa], 1), 1), tf.sum(tf.mul(ab, tf.eye(N)), 1));
      };
      const reference = (xi: tf.Tensor, yi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
        tf.sum(tf.concat([side(embed(xi, wi, bi), ky, kx), side(embed(yi, wi, bi), kx, ky)]));
      const fused = (xi: tf.Tensor, yi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
        tf.sum(replicatedInfoNce(xi, yi, wi, bi, { patchwise: false, groupwise: false }));
      const gf = tf.grads(fused)([x, y, w, b]);
      const gr = tf.grads(reference)([x, y, w, b]);
      for (let i = 0; i < 4; i++) expectClose(gf[i] as tf.Tensor, gr[i] as tf.Tensor);
    });
  });

  it('disposes what it creates (forward, jvp, grad)', () => {
    const ts = [tf.onesLike(x), tf.onesLike(y), tf.onesLike(w), tf.onesLike(b)];
    const before = tf.memory().numTensors;
    for (const impl of ['naive', 'fused'] as const) {
      nce(impl, {})(x, y, w, b).dispose();
      tf.dispose(jvp(nce(impl, {}), [x, y, w, b], ts));
      tf.dispose(
        tf.grads((...a: tf.Tensor[]) =>
          tf.sum(nce(impl, {})(a[0] as tf.Tensor, a[1] as tf.Tensor, a[2] as tf.Tensor, a[3] as tf.Tensor)),
        )([x, y, w, b]),
      );
    }
    expect(tf.memory().numTensors - before).toBe(0);
    tf.dispose(ts);
  });
});
