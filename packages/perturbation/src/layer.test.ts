import * as tf from '@tensorflow/tfjs';
import { layerNorm } from '@fwdgrad/jvp-core';
import { describe, expect, it } from 'vitest';
import { applyLinear, type LinearLayout } from '@fwdgrad/linear';
import { activityWeightGradient, expandGroupTangent, weightPerturbationGroupedEstimate } from './index.js';
import { rand, values } from './testing.test-util.js';
import { createRandom } from '@fwdgrad/random';

const close = (got: number[], want: number[], digits = 4) => {
  expect(got.length).toBe(want.length);
  got.forEach((v, i) => {
    expect(v).toBeCloseTo(want[i], digits);
  });
};

/** A layer of each layout: pre, weight, bias, and the normalisation axis of its output. */
function layer(layout: LinearLayout) {
  if (layout === 'dense') {
    return { pre: rand([2, 3, 4], 1), w: rand([4, 6], 2), b: rand([6], 3), normAxes: [-1] };
  }
  if (layout === 'grouped') {
    return { pre: rand([2, 3, 2, 3], 4), w: rand([2, 3, 4], 5), b: rand([2, 4], 6), normAxes: [-1] };
  }
  return { pre: rand([2, 4, 3], 7), w: rand([3, 3], 8), b: rand([3], 9), normAxes: [1] };
}

describe('activityWeightGradient (REFERENCE 1.6 steps 2–4)', () => {
  for (const layout of ['dense', 'grouped', 'token'] as const) {
    it(`${layout}: equals the exact gradient of Σ c ⊙ relu(LN(linear)) along c = mean_K(t ⊙ u), via tf.grads`, () => {
      const { pre, w, b, normAxes } = layer(layout);
      const normalize = (z: tf.Tensor) => layerNorm(z, normAxes);
      const prenorm = applyLinear(layout, pre, w, b);
      const post = tf.relu(normalize(prenorm));
      const k = 3;
      const noise = rand([k, ...prenorm.shape], 10);
      const unitTangent = rand([k, prenorm.shape[0], ...prenorm.shape.slice(1).map(() => 1)], 11);
      const { dw, db } = activityWeightGradient({
        layout,
        pre,
        prenorm,
        post,
        noise,
        unitTangent,
        normalize,
      });
      // The estimate is the gradient of the surrogate Σ c ⊙ relu(normalize(linear)) with c = mean_K(t ⊙ u).
      const c = tf.mean(tf.mul(unitTangent, noise), 0);
      const [gw, gb] = tf.grads((ww: tf.Tensor, bb: tf.Tensor) =>
        tf.sum(tf.mul(c, tf.relu(normalize(applyLinear(layout, pre, ww, bb))))),
      )([w, b]);
      expect(dw.shape).toEqual(w.shape);
      expect(db.shape).toEqual(b.shape);
      close(values(dw), values(gw));
      close(values(db), values(gb));
      // NG and no mask: the linear's own gradient with cotangent c.
      const ng = activityWeightGradient({
        layout,
        pre,
        prenorm,
        noise,
        unitTangent,
        normalize,
        normGradient: false,
        reluMask: false,
      });
      const [gw2] = tf.grads((ww: tf.Tensor) => tf.sum(tf.mul(c, applyLinear(layout, pre, ww, b))))([w]);
      close(values(ng.dw), values(gw2));
      tf.dispose([pre, w, b, prenorm, post, noise, unitTangent, dw, db, c, gw, gb, ng.dw, ng.db, gw2]);
    });
  }

  it('accepts K = 1 noise without the K axis and matches the explicit formula', () => {
    const pre = tf.tensor2d([
      [1, 2],
      [3, -1],
    ]);
    const prenorm = tf.tensor2d([
      [0.5, -1, 2],
      [1, 1, -0.5],
    ]);
    const post = tf.relu(prenorm);
    const noise = tf.tensor2d([
      [1, 2, 3],
      [-1, 0.5, 2],
    ]);
    const t = tf.tensor2d([[2], [-1]]); // per-example tangents [N, 1]
    const { dw, db } = activityWeightGradient({ layout: 'dense', pre, prenorm, post, noise, unitTangent: t });
    // ĝ_z = t ⊙ u ⊙ 1[post > 0] = [[2, 0, 6], [1, -0.5, 0]]; dW = preᵀ ĝ_z
    close(values(dw), [1 * 2 + 3 * 1, 1 * 0 + 3 * -0.5, 6, 2 * 2 - 1 * 1, 0 + 0.5, 12]);
    close(values(db), [3, -0.5, 6]);
    tf.dispose([pre, prenorm, post, noise, t, dw, db]);
  });

  it('is linear in the K samples: K samples at once = the mean of K single-sample estimates', () => {
    const { pre, w, b, normAxes } = layer('grouped');
    const normalize = (z: tf.Tensor) => layerNorm(z, normAxes);
    const prenorm = applyLinear('grouped', pre, w, b);
    const post = tf.relu(normalize(prenorm));
    const noise = rand([4, ...prenorm.shape], 12);
    const t = rand([4, 2, 1, 1, 1], 13);
    const all = activityWeightGradient({
      layout: 'grouped',
      pre,
      prenorm,
      post,
      noise,
      unitTangent: t,
      normalize,
    });
    const singles = [0, 1, 2, 3].map((k) =>
      activityWeightGradient({
        layout: 'grouped',
        pre,
        prenorm,
        post,
        noise: tf.slice(noise, [k], [1]),
        unitTangent: tf.slice(t, [k], [1]),
        normalize,
      }),
    );
    const mean = tf.tidy(() => values(tf.div(tf.addN(singles.map((s) => s.dw)), 4)));
    close(values(all.dw), mean);
    tf.dispose([pre, w, b, prenorm, post, noise, t, all.dw, all.db, ...singles.flatMap((s) => [s.dw, s.db])]);
  });

  it('errors name the layer and both shapes', () => {
    const pre = tf.zeros([4, 3]);
    const prenorm = tf.zeros([4, 5]);
    const post = tf.zeros([4, 5]);
    const t = tf.zeros([1, 4, 1]);
    const base = { name: 'block1.dense', layout: 'dense' as const, pre, prenorm, post, unitTangent: t };
    expect(() => activityWeightGradient({ ...base, noise: tf.zeros([2, 4, 3]) })).toThrow(
      /\(layer 'block1\.dense'\): noise has shape \[2, 4, 3\] but the layer's activation is \[4, 5\]/,
    );
    expect(() =>
      activityWeightGradient({ ...base, noise: tf.zeros([2, 4, 5]), unitTangent: tf.zeros([3, 4, 1]) }),
    ).toThrow(/unitTangent has shape \[3, 4, 1\], which does not broadcast to the noise \[2, 4, 5\]/);
    expect(() =>
      activityWeightGradient({ ...base, noise: tf.zeros([1, 4, 5]), post: tf.zeros([4, 4]) }),
    ).toThrow(/post has shape \[4, 4\] but prenorm has \[4, 5\]/);
    expect(() => activityWeightGradient({ ...base, noise: tf.zeros([1, 4, 5]), post: undefined })).toThrow(
      /reluMask needs post/,
    );
    expect(() =>
      activityWeightGradient({ ...base, pre: tf.zeros([3, 3]), noise: tf.zeros([1, 4, 5]) }),
    ).toThrow(/pre \[3, 3\] and prenorm \[4, 5\] do not fit a dense layer/);
    expect(() =>
      activityWeightGradient({ ...base, noise: tf.zeros([1, 4, 5]), weightShape: [3, 6], biasShape: [6] }),
    ).toThrow(/weight estimate has shape \[3, 5\] but the layer's weight is \[3, 6\]/);
    expect(() =>
      activityWeightGradient({ ...base, layout: 'conv' as never, noise: tf.zeros([1, 4, 5]) }),
    ).toThrow(/layout must be 'dense', 'grouped' or 'token'/);
    expect(() =>
      activityWeightGradient({
        ...base,
        layout: 'token',
        pre: tf.zeros([2, 3, 4]),
        prenorm: tf.zeros([2, 3, 5]),
        noise: tf.zeros([2, 3, 5]),
      }),
    ).toThrow(/do not fit a token layer; expected both \[N, C, P\]/);
  });
});

describe('expandGroupTangent', () => {
  it('repeats each group’s tangent over its units', () => {
    const t = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const e = expandGroupTangent(t, 3);
    expect(e.shape).toEqual([2, 6]);
    expect(values(e)).toEqual([1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
    expect(() => expandGroupTangent(t, 0)).toThrow(/unitsPerGroup must be an integer ≥ 1, got 0/);
    tf.dispose([t, e]);
  });
});

describe('weightPerturbationGroupedEstimate (LG-FG-W, REFERENCE 1.5)', () => {
  it('dense: column block g gets s_g·dW[:, g, :]; grouped: s_g·dW[g]; token: (Σ_g s_g)·dW; averaged over K', () => {
    const s = tf.tensor2d([
      [1, -2],
      [3, 0.5],
    ]); // [K = 2, G = 2]
    const dW = rand([2, 3, 4], 1); // dense [in 3, out 4] → blocks of 2 columns
    const dB = rand([2, 4], 2);
    const dense = weightPerturbationGroupedEstimate({
      layout: 'dense',
      groupTangents: s,
      weightNoise: dW,
      biasNoise: dB,
    });
    const sv = values(s);
    const w = values(dW);
    const bv = values(dB);
    const want: number[] = [];
    for (let i = 0; i < 3; i++) {
      for (let o = 0; o < 4; o++) {
        const g = Math.floor(o / 2);
        want.push((sv[g] * w[i * 4 + o] + sv[2 + g] * w[12 + i * 4 + o]) / 2);
      }
    }
    close(values(dense.dw), want);
    close(
      values(dense.db as tf.Tensor),
      [0, 1, 2, 3].map((o) => (sv[Math.floor(o / 2)] * bv[o] + sv[2 + Math.floor(o / 2)] * bv[4 + o]) / 2),
    );
    const gW = rand([2, 2, 3, 2], 3); // grouped [K, G, in/G, out/G]
    const grouped = weightPerturbationGroupedEstimate({
      layout: 'grouped',
      groupTangents: s,
      weightNoise: gW,
    });
    const gv = values(gW);
    close(
      values(grouped.dw),
      Array.from(
        { length: 12 },
        (_, j) => (sv[Math.floor(j / 6)] * gv[j] + sv[2 + Math.floor(j / 6)] * gv[12 + j]) / 2,
      ),
    );
    expect(grouped.db).toBeUndefined();
    const tW = rand([2, 3, 3], 4);
    const token = weightPerturbationGroupedEstimate({ layout: 'token', groupTangents: s, weightNoise: tW });
    const tv = values(tW);
    close(
      values(token.dw),
      Array.from({ length: 9 }, (_, j) => ((sv[0] + sv[1]) * tv[j] + (sv[2] + sv[3]) * tv[9 + j]) / 2),
    );
    tf.dispose([s, dW, dB, dense.dw, dense.db as tf.Tensor, gW, grouped.dw, tW, token.dw]);
  });

  it('is unbiased when group g’s loss depends only on group g’s outputs (grouped layer, local losses)', () => {
    // Loss L = Σ_g L_g with L_g = Σ_n tanh(y[n, g, :])·c_g, y = grouped linear: s_g = ∇_{W_g} L_g · dW_g.
    const x = rand([5, 2, 3], 1);
    const w = rand([2, 3, 2], 2);
    const c = rand([2, 2], 3);
    const local = (ww: tf.Tensor) => tf.sum(tf.mul(tf.tanh(applyLinear('grouped', x, ww)), c), [0, 2]); // [G]
    const exact = values(tf.grad((ww: tf.Tensor) => tf.sum(local(ww)))(w));
    const random = createRandom(4);
    const k = 4000;
    const dW = random.normal([k, 2, 3, 2]);
    // s_g from the exact per-group derivative along each sample's direction (what one jvp gives).
    const perGroup = [0, 1].map((g) => tf.grad((ww: tf.Tensor) => tf.gather(local(ww), g))(w));
    const s = tf.tidy(() =>
      tf.stack(
        [0, 1].map((g) => tf.sum(tf.mul(dW, tf.expandDims(perGroup[g], 0)), [1, 2, 3])),
        1,
      ),
    ); // [K, G]
    const est = weightPerturbationGroupedEstimate({ layout: 'grouped', groupTangents: s, weightNoise: dW });
    // Each group's estimate only sees its own 6 weights: variance ≈ (6 + 1)·g² per entry; tolerance 5 s.e.
    const got = values(est.dw);
    const norm2 = [0, 1].map((g) => exact.slice(g * 6, g * 6 + 6).reduce((a, v) => a + v * v, 0));
    got.forEach((v, j) => {
      const g = Math.floor(j / 6);
      const se = Math.sqrt((norm2[g] + exact[j] ** 2) / k);
      expect(Math.abs(v - exact[j])).toBeLessThan(5 * se);
    });
    tf.dispose([x, w, c, dW, ...perGroup, s, est.dw]);
  });

  it('errors name the layer and both shapes', () => {
    const s = tf.zeros([2, 3]);
    expect(() =>
      weightPerturbationGroupedEstimate({
        name: 'L1',
        layout: 'dense',
        groupTangents: s,
        weightNoise: tf.zeros([2, 4, 5]),
      }),
    ).toThrow(
      /\(layer 'L1'\): weightNoise has shape \[2, 4, 5\] but groupTangents \[2, 3\] needs \[2, in, out\] with out divisible by G = 3/,
    );
    expect(() =>
      weightPerturbationGroupedEstimate({
        layout: 'grouped',
        groupTangents: s,
        weightNoise: tf.zeros([2, 2, 4, 5]),
      }),
    ).toThrow(
      /weightNoise has shape \[2, 2, 4, 5\] but groupTangents \[2, 3\] needs \[2, 3, in\/G, out\/G\]/,
    );
    expect(() =>
      weightPerturbationGroupedEstimate({
        layout: 'token',
        groupTangents: s,
        weightNoise: tf.zeros([3, 4, 4]),
      }),
    ).toThrow(/weightNoise has shape \[3, 4, 4\] but groupTangents \[2, 3\] needs \[2, P, P\]/);
    expect(() =>
      weightPerturbationGroupedEstimate({
        layout: 'grouped',
        groupTangents: s,
        weightNoise: tf.zeros([2, 3, 4, 5]),
        biasNoise: tf.zeros([2, 5]),
      }),
    ).toThrow(/biasNoise has shape \[2, 5\] but groupTangents \[2, 3\] needs \[2, 3, 5\]/);
    expect(() =>
      weightPerturbationGroupedEstimate({
        layout: 'grouped',
        groupTangents: tf.zeros([2, 3, 1]),
        weightNoise: tf.zeros([2]),
      }),
    ).toThrow(/groupTangents has shape \[2, 3, 1\]; expected \[G\] or \[K, G\]/);
  });
});

describe('activityWeightGradient with one tangent per group of units', () => {
  it('equals the same estimate with the tangent repeated over each group (expandGroupTangent)', () => {
    const pre = tf.randomNormal([3, 2, 5], 0, 1, 'float32', 1);
    const prenorm = tf.randomNormal([3, 2, 8], 0, 1, 'float32', 2);
    const post = tf.relu(prenorm);
    const noise = tf.randomNormal([2, 3, 2, 8], 0, 1, 'float32', 3);
    const t = tf.randomNormal([2, 3, 2, 4], 0, 1, 'float32', 4); // 4 groups of 2 units
    const normalize = (z: tf.Tensor) => tf.sub(z, tf.mean(z, -1, true));
    const common = { layout: 'dense' as const, pre, prenorm, post, noise, normalize };
    const grouped = activityWeightGradient({ ...common, unitTangent: t });
    const repeated = activityWeightGradient({ ...common, unitTangent: expandGroupTangent(t, 2) });
    expect(tf.max(tf.abs(tf.sub(grouped.dw, repeated.dw))).dataSync()[0]).toBeLessThan(1e-5);
    expect(tf.max(tf.abs(tf.sub(grouped.db, repeated.db))).dataSync()[0]).toBeLessThan(1e-5);
    expect(() => activityWeightGradient({ ...common, unitTangent: tf.zeros([2, 3, 2, 3]) })).toThrow(
      /does not broadcast/,
    );
  });
});

describe('activityWeightGradient with an identity normalisation', () => {
  it('passes the cotangent through (placements without a post-linear norm)', () => {
    const pre = tf.randomNormal([3, 5], 0, 1, 'float32', 1);
    const prenorm = tf.randomNormal([3, 4], 0, 1, 'float32', 2);
    const common = {
      layout: 'dense' as const,
      pre,
      prenorm,
      noise: tf.randomNormal([3, 4], 0, 1, 'float32', 3),
    };
    const t = tf.randomNormal([3, 1], 0, 1, 'float32', 4);
    const a = activityWeightGradient({ ...common, unitTangent: t, normalize: (z) => z, reluMask: false });
    const b = activityWeightGradient({ ...common, unitTangent: t, reluMask: false });
    expect(tf.max(tf.abs(tf.sub(a.dw, b.dw))).dataSync()[0]).toBe(0);
  });
});
