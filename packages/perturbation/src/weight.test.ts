import * as tf from '@tensorflow/tfjs';

import { describe, expect, it } from 'vitest';
import { independentWeightPerturbedGradient, plainSites, weightPerturbedGradient } from './index.js';
import { smallMlp } from './models.test-util.js';
import { flat, looksUnbiased, rand, unbiasedness, values } from './testing.test-util.js';
import { createRandom } from '@fwdgrad/random';

describe('weightPerturbedGradient (FG-W, eq. 2)', () => {
  it('is unbiased (appendix 8): the mean of many estimates approaches tf.grads, within its own standard error', () => {
    const m = smallMlp(1);
    const truth = flat(m.exact());
    const random = createRandom(7);
    const batchMeans: number[][] = [];
    for (let r = 0; r < 60; r++) {
      const { value, grads, directionalDerivatives } = weightPerturbedGradient(m.meanLoss, m.params, {
        random,
        samples: 100,
      });
      batchMeans.push(flat(grads));
      tf.dispose([value, ...grads, directionalDerivatives]);
    }
    const stats = unbiasedness(batchMeans, truth);
    expect(looksUnbiased(stats)).toBe(true);
    // The same test rejects a 25 % bias: it can fail.
    expect(
      looksUnbiased(
        unbiasedness(
          batchMeans.map((b) => b.map((v) => 1.25 * v)),
          truth,
        ),
      ),
    ).toBe(false);
    m.dispose();
  });

  it('is unbiased with Rademacher directions too', () => {
    const m = smallMlp(2);
    const truth = flat(m.exact());
    const random = createRandom(8);
    const batchMeans: number[][] = [];
    for (let r = 0; r < 40; r++) {
      const res = weightPerturbedGradient(m.meanLoss, m.params, {
        random,
        samples: 100,
        noise: 'rademacher',
      });
      batchMeans.push(flat(res.grads));
      tf.dispose([res.value, ...res.grads, res.directionalDerivatives]);
    }
    expect(looksUnbiased(unbiasedness(batchMeans, truth))).toBe(true);
    m.dispose();
  });

  it('with every one-hot direction (K = #weights), K·estimate is the exact gradient', () => {
    const m = smallMlp(3);
    const sizes = m.params.map((p) => p.size);
    const total = sizes.reduce((a, b) => a + b, 0);
    const eye = tf.eye(total);
    let offset = 0;
    const directions = m.params.map((p) => {
      const d = tf.reshape(tf.slice(eye, [0, offset], [total, p.size]), [total, ...p.shape]);
      offset += p.size;
      return d;
    });
    const res = weightPerturbedGradient(m.meanLoss, m.params, { directions });
    const exact = m.exact();
    res.grads.forEach((g, i) => {
      const got = values(g).map((v) => v * total);
      const want = values(exact[i]);
      got.forEach((v, j) => {
        expect(v).toBeCloseTo(want[j], 4);
      });
    });
    // The directional derivatives are the gradient entries themselves.
    expect(values(res.directionalDerivatives).map((v) => v.toFixed(4))).toEqual(
      flat(exact).map((v) => v.toFixed(4)),
    );
    tf.dispose([eye, ...directions, res.value, ...res.grads, res.directionalDerivatives, ...exact]);
    m.dispose();
  });

  it('returns (1/K) Σ_k (∇L·v_k) v_k with ∇L·v_k from forward mode (checked against tf.grads)', () => {
    const m = smallMlp(4);
    const random = createRandom(3);
    const directions = m.params.map((p) => random.normal([3, ...p.shape]));
    const res = weightPerturbedGradient(m.meanLoss, m.params, { directions });
    const exact = m.exact();
    const t = [0, 1, 2].map((k) =>
      m.params.reduce(
        (s, _, i) => s + tf.tidy(() => tf.sum(tf.mul(exact[i], tf.gather(directions[i], k))).dataSync()[0]),
        0,
      ),
    );
    values(res.directionalDerivatives).forEach((v, k) => {
      expect(v).toBeCloseTo(t[k], 4);
    });
    res.grads.forEach((g, i) => {
      const want = tf.tidy(() =>
        values(tf.div(tf.addN([0, 1, 2].map((k) => tf.mul(tf.gather(directions[i], k), t[k]))), 3)),
      );
      values(g).forEach((v, j) => {
        expect(v).toBeCloseTo(want[j], 4);
      });
    });
    expect(values(res.value)[0]).toBeCloseTo(values(m.meanLoss(...m.params))[0], 5);
    tf.dispose([...directions, res.value, ...res.grads, res.directionalDerivatives, ...exact]);
    m.dispose();
  });

  it("per-example losses [N] are reduced by 'mean' (default) or 'sum'", () => {
    const m = smallMlp(5);
    const perExample = (...ps: tf.Tensor[]) => m.forward(ps, plainSites);
    const directions = m.params.map((p, i) => rand([2, ...p.shape], 40 + i));
    const mean = weightPerturbedGradient(perExample, m.params, { directions });
    const sum = weightPerturbedGradient(perExample, m.params, { directions, reduction: 'sum' });
    const scalar = weightPerturbedGradient(m.meanLoss, m.params, { directions });
    mean.grads.forEach((g, i) => {
      const a = values(g);
      const b = values(sum.grads[i]);
      const c = values(scalar.grads[i]);
      a.forEach((v, j) => {
        expect(v).toBeCloseTo(c[j], 5);
        expect(b[j]).toBeCloseTo(6 * v, 4);
      });
    });
    for (const r of [mean, sum, scalar]) tf.dispose([r.value, ...r.grads, r.directionalDerivatives]);
    m.dispose();
  });

  it('leaks no tensors', () => {
    const m = smallMlp(6);
    const random = createRandom(1);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      const r = weightPerturbedGradient(m.meanLoss, m.params, { random, samples: 3 });
      tf.dispose([r.value, ...r.grads, r.directionalDerivatives]);
      const s = independentWeightPerturbedGradient((...ps) => m.forward(ps, plainSites), m.params, {
        random,
        samples: 2,
      });
      tf.dispose([s.value, ...s.grads, s.directionalDerivatives]);
    }
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });
});

describe('independentWeightPerturbedGradient (Table 1, independent)', () => {
  it('is unbiased: the mean of many estimates approaches tf.grads', () => {
    const m = smallMlp(7);
    const truth = flat(m.exact());
    const random = createRandom(9);
    const batchMeans: number[][] = [];
    for (let r = 0; r < 40; r++) {
      const res = independentWeightPerturbedGradient((...ps) => m.forward(ps, plainSites), m.params, {
        random,
        samples: 50,
      });
      batchMeans.push(flat(res.grads));
      tf.dispose([res.value, ...res.grads, res.directionalDerivatives]);
    }
    expect(looksUnbiased(unbiasedness(batchMeans, truth))).toBe(true);
    m.dispose();
  });

  it('uses example n’s own direction for example n’s loss: (1/N) Σ_n (∇ℓ_n·v_n) v_n', () => {
    const m = smallMlp(8);
    const n = 6;
    const directions = m.params.map((p, i) => rand([1, n, ...p.shape], 60 + i));
    const res = independentWeightPerturbedGradient((...ps) => m.forward(ps, plainSites), m.params, {
      directions,
    });
    // Per-example gradients by tfjs autodiff, one example at a time.
    const perExampleGrads = Array.from({ length: n }, (_, e) =>
      tf.grads((...ps: tf.Tensor[]) => tf.gather(m.forward(ps, plainSites), e))(m.params),
    );
    const dots = perExampleGrads.map((g, e) =>
      g.reduce(
        (s, gi, i) =>
          s + tf.tidy(() => tf.sum(tf.mul(gi, tf.gather(tf.squeeze(directions[i], [0]), e))).dataSync()[0]),
        0,
      ),
    );
    values(res.directionalDerivatives).forEach((v, e) => {
      expect(v).toBeCloseTo(dots[e], 4);
    });
    res.grads.forEach((g, i) => {
      const want = tf.tidy(() =>
        values(
          tf.div(tf.addN(dots.map((d, e) => tf.mul(tf.gather(tf.squeeze(directions[i], [0]), e), d))), n),
        ),
      );
      values(g).forEach((v, j) => {
        expect(v).toBeCloseTo(want[j], 4);
      });
    });
    tf.dispose([
      ...directions,
      res.value,
      ...res.grads,
      res.directionalDerivatives,
      ...perExampleGrads.flat(),
    ]);
    m.dispose();
  });
});

describe('bad input: one clear error naming the parameter and both shapes', () => {
  const w = tf.ones([3, 2]);
  const b = tf.zeros([2]);
  const x = tf.ones([4, 3]);
  const loss = (ww: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.add(tf.matMul(x, ww), bb));
  const random = createRandom(1);

  it('K < 1 or not an integer', () => {
    expect(() => weightPerturbedGradient(loss, [w, b], { random, samples: 0 })).toThrow(
      /samples \(K.*\) must be an integer ≥ 1, got 0/,
    );
    expect(() => weightPerturbedGradient(loss, [w, b], { random, samples: 1.5 })).toThrow(/got 1\.5/);
    expect(() => independentWeightPerturbedGradient(loss, [w, b], { random, samples: -1 })).toThrow(/got -1/);
  });

  it('a direction whose shape does not match its parameter', () => {
    expect(() =>
      weightPerturbedGradient(loss, [w, b], {
        directions: [tf.zeros([2, 3, 2]), tf.zeros([2, 3])],
        names: ['w', 'b'],
      }),
    ).toThrow(/direction for parameter 1 'b' \(shape \[2\]\) has shape \[2, 3\]; expected \[2, 2\]/);
  });

  it('a parameter the loss does not use (e.g. a captured tensor instead of the argument)', () => {
    const captured = (_ww: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.add(tf.matMul(x, w), bb));
    const before = tf.memory().numTensors;
    expect(() => weightPerturbedGradient(captured, [w, b], { random, names: ['w', 'b'] })).toThrow(
      /never computes with parameter 0 'w' \(shape \[3, 2\]\)/,
    );
    expect(tf.memory().numTensors).toBe(before);
    // …but a parameter whose derivative is merely zero (dead ReLU) is used, and fine.
    const dead = (ww: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.relu(tf.sub(tf.matMul(x, ww), tf.add(bb, 100))));
    const r = weightPerturbedGradient(dead, [w, b], { random });
    expect(values(r.grads[0]).every((v) => v === 0)).toBe(true);
    tf.dispose([r.value, ...r.grads, r.directionalDerivatives]);
  });

  it('a loss that is not a scalar or [N], no random source, empty params', () => {
    expect(() => weightPerturbedGradient((ww) => tf.matMul(x, ww), [w], { random })).toThrow(
      /loss returned shape \[4, 2\]; return a scalar or per-example losses of shape \[N\]/,
    );
    expect(() => independentWeightPerturbedGradient((ww) => tf.sum(ww), [w], { random })).toThrow(
      /returned shape \[\]; return per-example losses of shape \[N\]/,
    );
    expect(() => weightPerturbedGradient(loss, [w, b])).toThrow(/pass a seeded random source/);
    expect(() => weightPerturbedGradient(loss, [], { random })).toThrow(/params is empty/);
    expect(() => weightPerturbedGradient(loss, [w, b], { random, noise: 'uniform' as never })).toThrow(
      /noise must be 'gaussian' or 'rademacher'/,
    );
  });
});
