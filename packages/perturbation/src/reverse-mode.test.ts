import * as tf from '@tensorflow/tfjs';
import { jvp } from '@fwdgrad/jvp-core';
import { describe, expect, it } from 'vitest';
import {
  activityPerturbedGradient,
  activityWeightGradient,
  createActivityRecorder,
  forwardGradient,
  independentWeightPerturbedGradient,
  plainSites,
  type Sites,
  weightPerturbationGroupedEstimate,
  weightPerturbedGradient,
} from './index.js';
import { smallMixer, smallMlp } from './models.test-util.js';
import { countReverseMode } from './testing.test-util.js';
import { createRandom } from '@fwdgrad/random';

// DESIGN principle 3 ("forward means forward"): the estimators run no reverse-mode pass; the one documented
// exception is the exact VJP of a layer's parameter-free normalisation (REFERENCE 1.6 step 3).
describe('no reverse-mode pass in the estimators', () => {
  it('the counter sees tf.grad (so a zero below means something)', () => {
    const { calls } = countReverseMode(() =>
      tf
        .grad((x: tf.Tensor) => tf.sum(x))(tf.ones([2]))
        .dispose(),
    );
    expect(calls).toBe(1);
  });

  it('weight perturbation (shared and independent): none', () => {
    const m = smallMlp(1);
    const random = createRandom(1);
    const { calls } = countReverseMode(() => {
      const a = weightPerturbedGradient(m.meanLoss, m.params, { random, samples: 3 });
      const b = independentWeightPerturbedGradient((...ps) => m.forward(ps, plainSites), m.params, {
        random,
      });
      const c = forwardGradient(m.forward, m.params, { perturb: 'weight', random });
      tf.dispose([
        a.value,
        ...a.grads,
        a.directionalDerivatives,
        b.value,
        ...b.grads,
        b.directionalDerivatives,
      ]);
      tf.dispose([c.value, ...c.grads]);
    });
    expect(calls).toBe(0);
    m.dispose();
  });

  it('activity perturbation without normalisation, or with "NG": none', () => {
    const x = tf.ones([3, 4]);
    const params = [tf.ones([4, 5]), tf.zeros([5]), tf.ones([5, 2])];
    const plain = ([w1, b1, w2]: tf.Tensor[], sites: Sites) =>
      tf.sum(sites.linear('out', sites.linear('h', x, w1, b1), w2, null, { activation: 'none' }), 1);
    const m = smallMixer(2); // every layer normalised
    const random = createRandom(2);
    const { calls } = countReverseMode(() => {
      const a = activityPerturbedGradient(plain, params, { random, samples: 2 });
      const b = activityPerturbedGradient(m.forward, m.params, { random, samples: 2, normGradient: false });
      tf.dispose([a.value, ...a.grads, b.value, ...b.grads]);
    });
    expect(calls).toBe(0);
    tf.dispose([x, ...params]);
    m.dispose();
  });

  it('the layer-level pieces: none, except one local VJP per normalised layer when normGradient is on', () => {
    const m = smallMixer(3);
    const random = createRandom(3);
    const rec = createActivityRecorder({ random });
    const [y, dy] = jvp(() => tf.mean(m.forward(m.params, rec)), [tf.scalar(0)], [tf.zeros([2])], {
      batched: true,
    });
    const estimate = (normGradient: boolean) =>
      countReverseMode(() => {
        for (const r of rec.records) {
          const t = tf.ones([2, r.prenorm.shape[0], ...r.prenorm.shape.slice(1).map(() => 1)]);
          const { dw, db } = activityWeightGradient({ ...r, unitTangent: t, normGradient, reluMask: r.relu });
          tf.dispose([t, dw, db]);
        }
        const g = weightPerturbationGroupedEstimate({
          layout: 'grouped',
          groupTangents: tf.ones([2]),
          weightNoise: tf.ones([2, 3, 4]),
        });
        g.dw.dispose();
      }).calls;
    expect(estimate(false)).toBe(0);
    // token, grouped and dense are normalised; the readout is not.
    expect(estimate(true)).toBe(3);
    tf.dispose([y, dy]);
    rec.dispose();
    m.dispose();
  });
});
