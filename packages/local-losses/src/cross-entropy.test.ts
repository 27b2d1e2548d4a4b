import { jvp } from '@fwdgrad/jvp-core';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replicatedCrossEntropy } from './cross-entropy.js';
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

const [N, P, G, Cg, K] = [3, 4, 2, 3, 5];
const COMBOS: Required<ReplicationOptions>[] = [
  { patchwise: true, groupwise: true },
  { patchwise: true, groupwise: false },
  { patchwise: false, groupwise: true },
  { patchwise: false, groupwise: false },
];
const tag = (o: Required<ReplicationOptions>) => `patchwise=${o.patchwise} groupwise=${o.groupwise}`;

let x: tf.Tensor;
let w: tf.Tensor;
let b: tf.Tensor;
let ids: tf.Tensor;
let labels: tf.Tensor;

beforeAll(() => {
  x = randn([N, P, G, Cg], 1);
  w = randn([G * Cg, K], 2, 0.7);
  b = randn([K], 3, 0.3);
  ids = tf.tensor1d([4, 0, 2], 'int32');
  labels = tf.oneHot(ids as tf.Tensor1D, K).toFloat();
});
afterAll(() => tf.dispose([x, w, b, ids, labels]));

const ce = (impl: LossImpl, o: ReplicationOptions) => (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
  replicatedCrossEntropy(xi, wi, bi, labels, { impl, ...o });

/** Independent pooled CE, explicit loops in float64. */
function pooledCeLoops(): number[] {
  const u = linearLoops(poolLoops(toArray4(x)), w.arraySync() as number[][], b.arraySync() as number[]);
  const y = ids.arraySync() as number[];
  return u.map((row, n) => logSumExp(row) - (row[y[n] as number] as number));
}

describe('replicatedCrossEntropy: values', () => {
  it('the pooled value equals an independent cross-entropy (loops), replicated to [N, P′, G′]', () => {
    const ref = pooledCeLoops();
    for (const o of COMBOS) {
      for (const impl of ['naive', 'fused'] as const) {
        const L = replicatedCrossEntropy(x, w, b, labels, { impl, ...o });
        expect(L.shape, `${impl} ${tag(o)}`).toEqual([N, o.patchwise ? P : 1, o.groupwise ? G : 1]);
        const v = L.arraySync() as number[][][];
        for (let n = 0; n < N; n++)
          for (const row of v[n] as number[][])
            for (const val of row)
              expect(Math.abs(val - (ref[n] as number))).toBeLessThan(1e-5 * (ref[n] as number) + 1e-6);
        L.dispose();
      }
    }
  });

  it('fused equals naive to 1e-5 (forward value)', () => {
    for (const o of COMBOS) {
      tf.tidy(() => expectClose(ce('fused', o)(x, w, b), ce('naive', o)(x, w, b)));
    }
  });

  it('int32 class ids give the same loss as one-hot labels; soft labels are accepted', () => {
    tf.tidy(() => {
      expectClose(replicatedCrossEntropy(x, w, b, ids), replicatedCrossEntropy(x, w, b, labels), 0);
      const soft = tf.softmax(randn([N, K], 9));
      expectClose(
        replicatedCrossEntropy(x, w, b, soft, { impl: 'fused' }),
        replicatedCrossEntropy(x, w, b, soft, { impl: 'naive' }),
      );
    });
  });

  it('user errors name the problem', () => {
    expect(() => replicatedCrossEntropy(tf.zeros([N, P, G * Cg]), w, b, labels)).toThrow(/rank 4/);
    expect(() => replicatedCrossEntropy(x, tf.zeros([G * Cg + 1, K]), b, labels)).toThrow(/\[6, K\]/);
    expect(() => replicatedCrossEntropy(x, w, tf.zeros([K + 1]), labels)).toThrow(/bias/);
    expect(() => replicatedCrossEntropy(x, w, b, tf.zeros([N, K + 1]))).toThrow(/labels/);
    expect(() => replicatedCrossEntropy(x, w, b, tf.tensor1d([0, 1, K], 'int32'))).toThrow(
      /outside \[0, 5\)/,
    );
    expect(() => replicatedCrossEntropy(x, w, b, labels, { impl: 'fast' as LossImpl })).toThrow(/impl/);
  });
});

describe('replicatedCrossEntropy: forward mode (jvp)', () => {
  const tangentSets = (seed: number, lead: number[] = []) => ({
    all: [
      randn([...lead, N, P, G, Cg], seed),
      randn([...lead, G * Cg, K], seed + 1),
      randn([...lead, K], seed + 2),
    ],
    xOnly: [randn([...lead, N, P, G, Cg], seed + 3), tf.zeros([...lead, G * Cg, K]), tf.zeros([...lead, K])],
    headOnly: [
      tf.zeros([...lead, N, P, G, Cg]),
      randn([...lead, G * Cg, K], seed + 4),
      randn([...lead, K], seed + 5),
    ],
  });

  it('fused JVP equals naive JVP (unbatched; tangents on x, w, b together and apart)', () => {
    for (const o of COMBOS) {
      tf.tidy(() => {
        for (const [name, ts] of Object.entries(tangentSets(11))) {
          const [yf, tf_] = jvp(ce('fused', o), [x, w, b], ts);
          const [yn, tn] = jvp(ce('naive', o), [x, w, b], ts);
          expectClose(yf, yn);
          expect(tf_.shape, `${name} ${tag(o)}`).toEqual(yn.shape);
          expectClose(tf_, tn);
        }
      });
    }
  });

  it('fused JVP equals naive JVP (batched, 3 tangents) and each batch row equals the unbatched JVP', () => {
    for (const o of COMBOS) {
      tf.tidy(() => {
        for (const ts of Object.values(tangentSets(21, [3]))) {
          const [, tfb] = jvp(ce('fused', o), [x, w, b], ts, { batched: true });
          const [, tnb] = jvp(ce('naive', o), [x, w, b], ts, { batched: true });
          expect(tfb.shape).toEqual([3, N, o.patchwise ? P : 1, o.groupwise ? G : 1]);
          expectClose(tfb, tnb);
          const [, t1] = jvp(
            ce('fused', o),
            [x, w, b],
            ts.map((t) => tf.gather(t, 1)),
          );
          expectClose(tf.gather(tfb, 1), t1);
        }
      });
    }
  });

  it('fused JVP is the adjoint of tfjs reverse mode on the naive form: <c, J·t> = <Jᵀ·c, t>', () => {
    for (const o of COMBOS) {
      tf.tidy(() => {
        const ts = tangentSets(51).all;
        const cot = randn([N, o.patchwise ? P : 1, o.groupwise ? G : 1], 52);
        const [, t] = jvp(ce('fused', o), [x, w, b], ts);
        const forward = tf.sum(tf.mul(t, cot));
        const grads = tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
          tf.sum(tf.mul(ce('naive', o)(xi, wi, bi), cot)),
        )([x, w, b]);
        const backward = tf.addN(grads.map((g, i) => tf.sum(tf.mul(g, ts[i] as tf.Tensor))));
        expectClose(forward, backward);
      });
    }
  });

  it('locality: a tangent at patch p, group g moves only replica (p, g) (naive and fused)', () => {
    const [p0, g0] = [2, 1];
    const mask = tf.tidy(() => {
      const m = tf.buffer([1, P, G, 1]);
      m.set(1, 0, p0, g0, 0);
      return m.toTensor();
    });
    for (const impl of ['naive', 'fused'] as const) {
      tf.tidy(() => {
        const dx = tf.mul(randn([N, P, G, Cg], 31), mask);
        const [, t] = jvp(ce(impl, {}), [x, w, b], [dx, tf.zerosLike(w), tf.zerosLike(b)]);
        const onlyPG = tf.mul(t, tf.reshape(mask, [1, P, G]));
        expect(maxAbs(tf.sub(t, onlyPG)), impl).toBe(0);
        expect(maxAbs(onlyPG), impl).toBeGreaterThan(1e-4);
        // Without patchwise replication, the same tangent reaches the (n, g0) replica (all patches).
        const [, tg] = jvp(ce(impl, { patchwise: false }), [x, w, b], [dx, tf.zerosLike(w), tf.zerosLike(b)]);
        const gMask = tf.reshape(tf.oneHot(g0, G), [1, 1, G]);
        expect(maxAbs(tf.sub(tg, tf.mul(tg, gMask))), impl).toBe(0);
        expectClose(tf.sum(tg, [1, 2]), tf.sum(onlyPG, [1, 2]));
      });
    }
    mask.dispose();
  });
});

describe('replicatedCrossEntropy: reverse mode (tf.grad)', () => {
  it('fused VJP equals naive VJP for a random cotangent', () => {
    for (const o of COMBOS) {
      tf.tidy(() => {
        const cot = randn([N, o.patchwise ? P : 1, o.groupwise ? G : 1], 41);
        const grads = (impl: LossImpl) =>
          tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
            tf.sum(tf.mul(ce(impl, o)(xi, wi, bi), cot)),
          )([x, w, b]);
        const gf = grads('fused');
        const gn = grads('naive');
        for (let i = 0; i < 3; i++) expectClose(gf[i] as tf.Tensor, gn[i] as tf.Tensor);
      });
    }
  });

  it('REFERENCE 1.2: under Σ/B the fused gradient is the ordinary pooled gradient (x) and P′·G′ times it (w, b)', () => {
    // Ordinary pooled loss, written independently: mean_n CE(mean_P(x)·w + b).
    const pooled = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
      tf.losses.softmaxCrossEntropy(
        labels,
        tf.add(tf.matMul(tf.reshape(tf.mean(xi, 1), [N, G * Cg]), wi), bi),
      );
    for (const o of COMBOS) {
      tf.tidy(() => {
        const [gx, gw, gb] = tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
          tf.div(tf.sum(replicatedCrossEntropy(xi, wi, bi, labels, o)), N),
        )([x, w, b]) as [tf.Tensor, tf.Tensor, tf.Tensor];
        const [rx, rw, rb] = tf.grads(pooled)([x, w, b]) as [tf.Tensor, tf.Tensor, tf.Tensor];
        const reps = (o.patchwise ? P : 1) * (o.groupwise ? G : 1);
        expectClose(gx, rx);
        expectClose(gw, tf.mul(rw, reps));
        expectClose(gb, tf.mul(rb, reps));
      });
    }
  });

  it('disposes what it creates (forward, jvp, grad)', () => {
    const ones = [tf.onesLike(x), tf.onesLike(w), tf.onesLike(b)];
    const stacked = ones.map((t) => tf.stack([t, t]));
    const before = tf.memory().numTensors;
    for (const impl of ['naive', 'fused'] as const) {
      replicatedCrossEntropy(x, w, b, ids, { impl }).dispose();
      tf.dispose(jvp(ce(impl, {}), [x, w, b], ones));
      tf.dispose(jvp(ce(impl, {}), [x, w, b], stacked, { batched: true }));
      tf.dispose(
        tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => tf.sum(ce(impl, {})(xi, wi, bi)))([
          x,
          w,
          b,
        ]),
      );
    }
    expect(tf.memory().numTensors - before).toBe(0);
    tf.dispose([...ones, ...stacked]);
  });
});
