import { jvp } from '@fwdgrad/jvp-core';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { replicatedCrossEntropy } from './cross-entropy.js';
import { CONTRASTIVE_PROJECTION_WIDTH, replicatedInfoNce } from './info-nce.js';
import { createLocalLoss } from './local-loss.js';
import { expectClose, randn } from './testing.test-util.js';

const [N, P, G, Cg, K] = [4, 2, 2, 3, 5];

describe('createLocalLoss', () => {
  it('supervised: replicas = replicatedCrossEntropy; reduce = Σ / N (REFERENCE 1.1)', () => {
    tf.tidy(() => {
      const x = randn([N, P, G, Cg], 301);
      const w = randn([G * Cg, K], 302);
      const b = randn([K], 303);
      const labels = tf.tensor1d([0, 1, 4, 2], 'int32');
      const loss = createLocalLoss({ objective: 'supervised' });
      expect([loss.objective, loss.impl, loss.patchwise, loss.groupwise, loss.temperature]).toEqual([
        'supervised',
        'fused',
        true,
        true,
        undefined,
      ]);
      const r = loss.replicas(x, w, b, labels);
      expectClose(r, replicatedCrossEntropy(x, w, b, labels), 0);
      expect(loss.batchSize(N)).toBe(N);
      const total = loss.reduce(r);
      expect(total.rank).toBe(0);
      expectClose(total, tf.div(tf.sum(r), N), 1e-6);
      // Σ/N equals P·G times the ordinary batch-mean CE (every replica has the pooled value).
      const logits = tf.add(tf.matMul(tf.reshape(tf.mean(x, 1), [N, G * Cg]), w), b);
      expectClose(total, tf.mul(tf.losses.softmaxCrossEntropy(tf.oneHot(labels, K), logits), P * G), 1e-5);
      expect(() => loss.replicas(x, w, b)).toThrow(/needs labels/);
    });
  });

  it('contrastive: stacked views [2N, …] give replicatedInfoNce(view 1, view 2); B = rows / 2; width 128', () => {
    tf.tidy(() => {
      expect(CONTRASTIVE_PROJECTION_WIDTH).toBe(128);
      const v1 = randn([N, P, G, Cg], 311);
      const v2 = randn([N, P, G, Cg], 312);
      const w = randn([G * Cg, CONTRASTIVE_PROJECTION_WIDTH], 313, 0.3);
      const b = tf.zeros([CONTRASTIVE_PROJECTION_WIDTH]);
      const loss = createLocalLoss({ objective: 'contrastive', impl: 'naive', groupwise: false });
      expect([loss.impl, loss.patchwise, loss.groupwise, loss.temperature]).toEqual([
        'naive',
        true,
        false,
        0.5,
      ]);
      const stacked = tf.concat([v1, v2], 0);
      const r = loss.replicas(stacked, w, b);
      expect(r.shape).toEqual([2 * N, P, 1]);
      expectClose(r, replicatedInfoNce(v1, v2, w, b, { impl: 'fused', groupwise: false }), 1e-5);
      expect(loss.batchSize(2 * N)).toBe(N);
      expectClose(loss.reduce(r), tf.div(tf.sum(r), N), 1e-6);
      // Tangents of the stacked features split per view, as REFERENCE 1.7 lays them out.
      const d = randn([2 * N, P, G, Cg], 314);
      const [, t] = jvp((f) => loss.replicas(f, w, b), [stacked], [d]);
      const [, tRef] = jvp(
        (a, c) => replicatedInfoNce(a, c, w, b, { impl: 'naive', groupwise: false }),
        [v1, v2],
        tf.split(d, 2, 0),
      );
      expectClose(t, tRef);
      expect(() => loss.replicas(tf.zeros([3, P, G, Cg]), w, b)).toThrow(/\[2N, P, G, C′\]/);
    });
  });

  it.each([
    ['supervised', 'fused', true, true],
    ['supervised', 'fused', false, true],
    ['supervised', 'naive', true, false],
    ['contrastive', 'fused', true, true],
    ['contrastive', 'fused', false, false],
    ['contrastive', 'naive', true, true],
  ] as const)(
    'replicasWithHeadGradient (%s, %s, patchwise %s, groupwise %s): the replicas, their tangent and tf.grads of reduce for the head, without leaks',
    (objective, impl, patchwise, groupwise) => {
      const rows = objective === 'contrastive' ? 2 * N : N;
      const D = objective === 'contrastive' ? 6 : K;
      const x = randn([rows, P, G, Cg], 321);
      const w = randn([G * Cg, D], 322, 0.4);
      const b = randn([D], 323, 0.2);
      const labels = objective === 'supervised' ? tf.tensor1d([0, 1, 4, 2], 'int32') : undefined;
      const d = randn([rows, P, G, Cg], 324);
      const loss = createLocalLoss({ objective, impl, patchwise, groupwise });
      const [dwRef, dbRef] = tf.grads((wi: tf.Tensor, bi: tf.Tensor) =>
        loss.reduce(loss.replicas(x, wi, bi, labels)),
      )([w, b]);
      const replicasRef = loss.replicas(x, w, b, labels);
      const [, tangentRef] = jvp((f) => loss.replicas(f, w, b, labels), [x], [d]);
      const before = tf.memory().numTensors;
      const plain = loss.replicasWithHeadGradient(x, w, b, labels);
      expectClose(plain.replicas, replicasRef, 1e-6);
      expectClose(plain.dw, dwRef, 1e-5);
      expectClose(plain.db, dbRef, 1e-5);
      tf.dispose([plain.replicas, plain.dw, plain.db]);
      expect(tf.memory().numTensors).toBe(before);
      // inside jvp: the replicas carry the same tangent, the head gradient is unchanged
      let head: tf.Tensor[] = [];
      const [value, tangent] = jvp(
        (f) => {
          const r = loss.replicasWithHeadGradient(f, w, b, labels);
          head = [tf.keep(r.dw), tf.keep(r.db)];
          return r.replicas;
        },
        [x],
        [d],
      );
      expectClose(value, replicasRef, 1e-6);
      expectClose(tangent, tangentRef, 1e-5);
      expectClose(head[0], dwRef, 1e-5);
      expectClose(head[1], dbRef, 1e-5);
      tf.dispose([x, w, b, d, dwRef, dbRef, replicasRef, tangentRef, value, tangent, ...head]);
      labels?.dispose();
    },
  );

  it('rejects an unknown objective or impl', () => {
    expect(() => createLocalLoss({ objective: 'generative' as 'supervised' })).toThrow(/objective/);
    expect(() => createLocalLoss({ objective: 'supervised', impl: 'quick' as 'fused' })).toThrow(/impl/);
  });
});
