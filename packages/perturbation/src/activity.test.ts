import * as tf from '@tensorflow/tfjs';
import { jvp } from '@fwdgrad/jvp-core';
import { describe, expect, it } from 'vitest';
import { activityPerturbedGradient, createActivityRecorder, plainSites, type Sites } from './index.js';
import { smallMixer, smallMlp } from './models.test-util.js';
import { flat, looksUnbiased, rand, unbiasedness, values } from './testing.test-util.js';
import { createRandom } from '@fwdgrad/random';

/** Noise that is one-hot over the units of `site` (sample k perturbs unit k of every example), zero elsewhere. */
function oneHotAt(site: string) {
  return (name: string, shape: number[]) =>
    tf.tidy(() => {
      const [k, n, ...unit] = shape;
      const size = unit.reduce((a, b) => a * b, 1);
      if (name !== site) return tf.zeros(shape);
      if (k !== size) throw new Error(`test: K = ${k} but site ${site} has ${size} units`);
      return tf.reshape(tf.tile(tf.expandDims(tf.eye(size), 1), [1, n, 1]), shape);
    });
}

describe('activityPerturbedGradient (FG-A, eq. 3)', () => {
  it('is unbiased on an MLP with LN and ReLU (mean of many estimates vs tf.grads, variance-derived tolerance)', () => {
    const m = smallMlp(11);
    const truth = flat(m.exact());
    const random = createRandom(5);
    const batchMeans: number[][] = [];
    for (let r = 0; r < 40; r++) {
      const res = activityPerturbedGradient(m.forward, m.params, { random, samples: 100 });
      batchMeans.push(flat(res.grads));
      tf.dispose([res.value, ...res.grads]);
    }
    const stats = unbiasedness(batchMeans, truth);
    expect(looksUnbiased(stats)).toBe(true);
    expect(
      looksUnbiased(
        unbiasedness(
          batchMeans.map((b) => b.map((v) => 1.1 * v)),
          truth,
        ),
      ),
    ).toBe(false);
    m.dispose();
  });

  it('is unbiased for token-mixing, grouped and residual dense layouts, with Rademacher noise too', () => {
    const m = smallMixer(3);
    // Entries 9..11 are the token-mixing bias: the LN over channels that follows removes any per-token
    // constant, so its true gradient is exactly 0 (REFERENCE 2, note) and tf.grads returns rounding noise.
    // The estimate goes through the LN's VJP, whose output sums to zero over channels: ≈ 0 as well.
    const deadBias = (v: number[]) => v.slice(9, 12);
    const live = (v: number[]) => [...v.slice(0, 9), ...v.slice(12)];
    const all = flat(m.exact());
    expect(Math.max(...deadBias(all).map(Math.abs))).toBeLessThan(1e-5);
    const truth = live(all);
    for (const noise of ['gaussian', 'rademacher'] as const) {
      const random = createRandom(noise === 'gaussian' ? 1 : 2);
      const batchMeans: number[][] = [];
      for (let r = 0; r < 40; r++) {
        const res = activityPerturbedGradient(m.forward, m.params, { random, samples: 100, noise });
        const est = flat(res.grads);
        expect(Math.max(...deadBias(est).map(Math.abs))).toBeLessThan(1e-5);
        batchMeans.push(live(est));
        tf.dispose([res.value, ...res.grads]);
      }
      expect(looksUnbiased(unbiasedness(batchMeans, truth))).toBe(true);
    }
    m.dispose();
  });

  it('with a scalar loss (one tangent shared by the batch) it stays unbiased', () => {
    const m = smallMlp(12);
    const truth = flat(m.exact());
    const random = createRandom(6);
    const scalar = (ps: tf.Tensor[], sites: Sites) => tf.mean(m.forward(ps, sites));
    const batchMeans: number[][] = [];
    for (let r = 0; r < 40; r++) {
      const res = activityPerturbedGradient(scalar, m.params, { random, samples: 100 });
      batchMeans.push(flat(res.grads));
      tf.dispose([res.value, ...res.grads]);
    }
    expect(looksUnbiased(unbiasedness(batchMeans, truth))).toBe(true);
    m.dispose();
  });

  it('one-hot noise on one unit gives exactly that column of the gradient (no normalisation)', () => {
    const x = rand([5, 3], 1);
    const y = rand([5, 2], 2);
    const params = [rand([3, 4], 3), rand([4], 4, -0.2, 0.2), rand([4, 2], 5)];
    const forward = ([w1, b1, w2]: tf.Tensor[], sites: Sites) => {
      const h = sites.linear('hidden', x, w1, b1);
      return tf.sum(tf.square(tf.sub(sites.linear('out', h, w2, null, { activation: 'none' }), y)), 1);
    };
    const exact = tf.grads((...ps: tf.Tensor[]) => tf.mean(forward(ps, plainSites)))(params);
    for (let j = 0; j < 4; j++) {
      const noise = (name: string, shape: number[]) =>
        name === 'hidden'
          ? tf.tile(tf.reshape(tf.oneHot([j], 4).toFloat(), [1, 1, 4]), [1, shape[1], 1])
          : tf.zeros(shape);
      const res = activityPerturbedGradient(forward, params, { noise });
      const got = values(res.grads[0]);
      const want = values(exact[0]);
      for (let i = 0; i < 3; i++) {
        for (let c = 0; c < 4; c++) {
          expect(got[i * 4 + c]).toBeCloseTo(c === j ? want[i * 4 + c] : 0, 5);
        }
      }
      values(res.grads[1]).forEach((v, c) => {
        expect(v).toBeCloseTo(c === j ? values(exact[1])[c] : 0, 5);
      });
      expect(values(res.grads[2]).every((v) => v === 0)).toBe(true); // the readout saw no noise
      tf.dispose([res.value, ...res.grads]);
    }
    tf.dispose([x, y, ...params, ...exact]);
  });

  it.each([
    ['re-run under tf.grad', false],
    ['reused from the forward pass (linearisable norms)', true],
  ])(
    'one-hot noise over all units of a site (K = units): K·estimate is the exact gradient, every layout, through LN (norm VJP %s)',
    (_how, linearizable) => {
      const m = smallMixer(5, linearizable);
      const exact = m.exact();
      const sites = ['token', 'grouped', 'dense', 'out'];
      sites.forEach((site, si) => {
        const k = m.units[site].reduce((a, b) => a * b, 1);
        const res = activityPerturbedGradient(m.forward, m.params, { noise: oneHotAt(site), samples: k });
        for (const pi of [2 * si, 2 * si + 1]) {
          const got = values(res.grads[pi]).map((v) => v * k);
          const want = values(exact[pi]);
          got.forEach((v, j) => {
            expect(v).toBeCloseTo(want[j], 4);
          });
        }
        tf.dispose([res.value, ...res.grads]);
      });
      tf.dispose(exact);
      m.dispose();
    },
  );

  it('"NG" (normGradient: false) skips the LN VJP: no longer the exact gradient, equals the identity-norm backward', () => {
    const m = smallMlp(13);
    const exact = m.exact();
    const k = 5 * 1; // hidden has 5 units
    const noise = (name: string, shape: number[]) =>
      name === 'hidden' ? tf.tile(tf.expandDims(tf.eye(5), 1), [1, shape[1], 1]) : tf.zeros(shape);
    const ng = activityPerturbedGradient(m.forward, m.params, { noise, samples: k, normGradient: false });
    const withNorm = activityPerturbedGradient(m.forward, m.params, { noise, samples: k });
    const gotNg = values(ng.grads[0]).map((v) => v * k);
    const gotExact = values(withNorm.grads[0]).map((v) => v * k);
    const want = values(exact[0]);
    gotExact.forEach((v, j) => {
      expect(v).toBeCloseTo(want[j], 4);
    });
    expect(Math.max(...gotNg.map((v, j) => Math.abs(v - want[j])))).toBeGreaterThan(1e-2);
    // NG = Σ_n x_n ⊗ (∂ℓ/∂z_post-norm ⊙ relu mask) / N, computed here with tfjs autodiff on the normalised z.
    const ngWant = tf.tidy(() => {
      const pre = tf.add(tf.matMul(m.x, m.params[0]), m.params[1]);
      const z = tf.layers
        .layerNormalization({ center: false, scale: false, epsilon: 1e-5 })
        .apply(pre) as tf.Tensor;
      const g = tf.grad((zz: tf.Tensor) => {
        const out = tf.add(tf.matMul(tf.relu(zz), m.params[2]), m.params[3]);
        return tf.mean(tf.sum(tf.square(tf.sub(out, m.y)), 1));
      })(z);
      return values(tf.matMul(m.x, g, true, false));
    });
    gotNg.forEach((v, j) => {
      expect(v).toBeCloseTo(ngWant[j], 2);
    });
    tf.dispose([ng.value, ...ng.grads, withNorm.value, ...withNorm.grads, ...exact]);
    m.dispose();
  });

  it('the ReLU mask (§3.6) keeps the estimate unbiased and lowers its variance', () => {
    const m = smallMlp(14);
    const truth = flat(m.exact());
    const run = (reluMask: boolean) => {
      const random = createRandom(21);
      const batchMeans: number[][] = [];
      for (let r = 0; r < 30; r++) {
        const res = activityPerturbedGradient(m.forward, m.params, { random, samples: 50, reluMask });
        batchMeans.push(flat(res.grads));
        tf.dispose([res.value, ...res.grads]);
      }
      return unbiasedness(batchMeans, truth);
    };
    const masked = run(true);
    const unmasked = run(false);
    expect(looksUnbiased(masked)).toBe(true);
    expect(looksUnbiased(unmasked)).toBe(true);
    const total = (s: { variance: number[] }) => s.variance.slice(0, 15).reduce((a, b) => a + b, 0); // hidden W
    expect(total(masked)).toBeLessThan(0.8 * total(unmasked));
    m.dispose();
  });

  it('a weight used at two sites gets the sum of both estimates', () => {
    const x = rand([3, 4], 1);
    const w = rand([4, 4], 2, -0.6, 0.6);
    const forward = ([ww]: tf.Tensor[], sites: Sites) => {
      const h = sites.linear('first', x, ww, null, { activation: 'none' });
      return tf.sum(tf.tanh(sites.linear('second', h, ww, null, { activation: 'none' })), 1);
    };
    const exact = tf.grads((ww: tf.Tensor) => tf.mean(forward([ww], plainSites)))([w]);
    const k = 8;
    const noise = (name: string, shape: number[]) =>
      tf.tidy(() => {
        const eye = tf.eye(8);
        const rows = name === 'first' ? tf.slice(eye, [0, 0], [8, 4]) : tf.slice(eye, [0, 4], [8, 4]);
        return tf.tile(tf.expandDims(rows, 1), [1, shape[1], 1]);
      });
    const res = activityPerturbedGradient(forward, [w], { noise, samples: k });
    values(res.grads[0]).forEach((v, j) => {
      expect(v * k).toBeCloseTo(values(exact[0])[j], 4);
    });
    tf.dispose([x, w, ...exact, res.value, ...res.grads]);
  });

  it("returns the loss value ('mean' by default, 'sum' on request) and leaks no tensors", () => {
    const m = smallMlp(15);
    const random = createRandom(2);
    const mean = tf.tidy(() => values(m.meanLoss(...m.params))[0]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      const a = activityPerturbedGradient(m.forward, m.params, { random, samples: 3 });
      const s = activityPerturbedGradient(m.forward, m.params, { random, samples: 3, reduction: 'sum' });
      expect(values(a.value)[0]).toBeCloseTo(mean, 5);
      expect(values(s.value)[0]).toBeCloseTo(6 * mean, 4);
      tf.dispose([a.value, ...a.grads, s.value, ...s.grads]);
    }
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });
});

describe('bad input: one clear error naming the layer or parameter and both shapes', () => {
  const m = smallMlp(16);
  const random = createRandom(1);

  it('a parameter that is not the weight or bias of any site', () => {
    const scale = tf.scalar(2);
    const forward = (ps: tf.Tensor[], sites: Sites) => tf.mul(m.forward(ps.slice(0, 4), sites), ps[4]);
    const before = tf.memory().numTensors;
    expect(() =>
      activityPerturbedGradient(forward, [...m.params, scale], {
        random,
        names: ['w1', 'b1', 'w2', 'b2', 'scale'],
      }),
    ).toThrow(/parameter 4 'scale' \(shape \[\]\) is not the weight or bias of any sites\.linear call/);
    expect(tf.memory().numTensors).toBe(before);
    scale.dispose();
  });

  it('per-example losses whose N does not match a site', () => {
    const forward = (ps: tf.Tensor[], sites: Sites) => tf.slice(m.forward(ps, sites), [0], [3]);
    expect(() => activityPerturbedGradient(forward, m.params, { random })).toThrow(
      /per-example losses of shape \[3\] but site 'hidden' has activation \[6, 5\]/,
    );
  });

  it('a noise function returning the wrong shape', () => {
    expect(() =>
      activityPerturbedGradient(m.forward, m.params, { noise: () => tf.zeros([2, 6, 5]), samples: 1 }),
    ).toThrow(/site 'hidden': the noise function returned shape \[2, 6, 5\]; the site needs \[1, 6, 5\]/);
  });

  it('K < 1, no random source, a site name used twice, a loss that is not [N] or scalar', () => {
    expect(() => activityPerturbedGradient(m.forward, m.params, { random, samples: 0 })).toThrow(
      /samples \(K.*\) must be an integer ≥ 1, got 0/,
    );
    expect(() => activityPerturbedGradient(m.forward, m.params)).toThrow(/pass a seeded random source/);
    const twice = ([w1, b1]: tf.Tensor[], sites: Sites) =>
      tf.sum(tf.add(sites.linear('a', m.x, w1, b1), sites.linear('a', m.x, w1, b1)), 1);
    expect(() => activityPerturbedGradient(twice, m.params.slice(0, 2), { random })).toThrow(
      /site 'a' ran twice/,
    );
    const matrix = ([w1, b1]: tf.Tensor[], sites: Sites) => sites.linear('h', m.x, w1, b1);
    expect(() => activityPerturbedGradient(matrix, m.params.slice(0, 2), { random })).toThrow(
      /forward must return per-example losses \[N\] or a scalar loss, got shape \[6, 5\]/,
    );
  });

  it('a layer whose weight does not fit its input names the site and the shapes', () => {
    const bad = ([w1, b1]: tf.Tensor[], sites: Sites) =>
      tf.sum(sites.linear('hidden', m.x, tf.transpose(w1), b1), 1);
    expect(() => activityPerturbedGradient(bad, m.params.slice(0, 2), { random })).toThrow(
      /sites\.linear\('hidden'\) \(dense layer\): x has shape \[6,3\] but W has shape \[5,3\]/,
    );
  });

  it('the recorder refuses to run outside jvp; inside a plain (unbatched) jvp it records K = 1', () => {
    const rec = createActivityRecorder({ random });
    expect(() => rec.linear('h', m.x, m.params[0], m.params[1])).toThrow(/works inside jvp/);
    const [y, dy] = jvp(
      () => tf.sum(rec.linear('h', m.x, m.params[0], m.params[1])),
      [tf.scalar(0)],
      [tf.scalar(0)],
    );
    expect(rec.records[0].noise.shape).toEqual([1, 6, 5]);
    expect(Number.isFinite(values(dy)[0])).toBe(true);
    tf.dispose([y, dy]);
    rec.dispose();
    expect(rec.records.length).toBe(0);
  });
});
