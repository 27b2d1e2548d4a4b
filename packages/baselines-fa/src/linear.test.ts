import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import type { LinearLayout } from '@fwdgrad/linear';
import { feedbackLinear } from './linear.js';
import { linear, maxAbsDiff } from './testing.test-util.js';

const rn = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);

/** Independent reference for each layout, written with tf.einsum (the cpu backend has it). */
function einsumLinear(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, layout: LinearLayout): tf.Tensor {
  if (layout === 'grouped') return tf.add(tf.einsum('npgc,gcd->npgd', x, w), b);
  if (layout === 'token') return tf.add(tf.einsum('ncp,pq->ncq', x, w), b);
  return tf.add(tf.einsum('nsi,io->nso', x, w), b);
}

/**
 * Independent, differentiable reference (tfjs has no Einsum gradient): dense/token as one 2-D matMul;
 * grouped as one matMul per group on slices, stacked back.
 */
function loopLinear(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, layout: LinearLayout): tf.Tensor {
  if (layout === 'grouped') {
    const [n, p, g, c] = x.shape as number[];
    const d = w.shape[2] as number;
    const outs: tf.Tensor[] = [];
    for (let i = 0; i < g; i++) {
      const xg = tf.reshape(tf.slice(x, [0, 0, i, 0], [n, p, 1, c]), [n * p, c]) as tf.Tensor2D;
      const wg = tf.reshape(tf.slice(w, [i, 0, 0], [1, c, d]), [c, d]) as tf.Tensor2D;
      outs.push(tf.reshape(tf.matMul(xg, wg), [n, p, d]));
    }
    return tf.add(tf.stack(outs, 2), b);
  }
  const s = x.shape as number[];
  const x2 = tf.reshape(x, [-1, s[s.length - 1]]) as tf.Tensor2D;
  return tf.add(tf.reshape(tf.matMul(x2, w as tf.Tensor2D), [...s.slice(0, -1), w.shape[1] as number]), b);
}

/** Two stacked linear layers of one layout with a ReLU between; shapes per layout. */
const cases: Record<LinearLayout, { x: number[]; w1: number[]; b1: number[]; w2: number[]; b2: number[] }> = {
  dense: { x: [3, 2, 5], w1: [5, 4], b1: [4], w2: [4, 3], b2: [3] },
  grouped: { x: [2, 3, 2, 4], w1: [2, 4, 3], b1: [2, 3], w2: [2, 3, 5], b2: [2, 5] },
  token: { x: [2, 3, 4], w1: [4, 4], b1: [4], w2: [4, 4], b2: [4] },
};

describe('feedbackLinear', () => {
  for (const layout of ['dense', 'grouped', 'token'] as const) {
    it(`'${layout}': forward value equals x·W + b (einsum reference)`, () => {
      const c = cases[layout];
      const [x, w, b, f] = [rn(c.x, 1), rn(c.w1, 2), rn(c.b1, 3), rn(c.w1, 4)];
      const ref = einsumLinear(x, w, b, layout);
      expect(maxAbsDiff(linear(x, w, b, layout), ref)).toBeLessThan(1e-5);
      expect(maxAbsDiff(feedbackLinear(x, w, b, f, layout), ref)).toBeLessThan(1e-5);
    });

    it(`'${layout}': with B = W, FA gives exactly the backprop gradient of every input`, () => {
      const c = cases[layout];
      const params = [rn(c.x, 11), rn(c.w1, 12), rn(c.b1, 13), rn(c.w2, 14), rn(c.b2, 15)];
      const r = tf.tidy(() => {
        const [x, w1, b1, w2] = params;
        return tf.randomNormal(
          einsumLinear(tf.relu(einsumLinear(x, w1, b1, layout)), w2, params[4], layout).shape,
          0,
          1,
          'float32',
          16,
        );
      });
      // Backprop reference through autodiff of plain per-group / 2-D matMuls, and of `linear`.
      const bp = tf.grads((x, w1, b1, w2, b2) =>
        tf.sum(tf.mul(r, loopLinear(tf.relu(loopLinear(x, w1, b1, layout)), w2, b2, layout))),
      )(params);
      const plain = tf.grads((x, w1, b1, w2, b2) =>
        tf.sum(tf.mul(r, linear(tf.relu(linear(x, w1, b1, layout)), w2, b2, layout))),
      )(params);
      // FA with the feedback matrices set equal to the forward weights.
      const fa = tf.grads((x, w1, b1, w2, b2) =>
        tf.sum(tf.mul(r, feedbackLinear(tf.relu(feedbackLinear(x, w1, b1, w1, layout)), w2, b2, w2, layout))),
      )(params);
      expect(fa).toHaveLength(5);
      for (let i = 0; i < 5; i++) {
        const scale = tf.tidy(() => tf.max(tf.abs(bp[i])).dataSync()[0]);
        expect(scale).toBeGreaterThan(0);
        expect(maxAbsDiff(fa[i], bp[i])).toBeLessThan(1e-5 * Math.max(1, scale));
        expect(maxAbsDiff(plain[i], bp[i])).toBeLessThan(1e-5 * Math.max(1, scale));
      }
    });

    it(`'${layout}': with B ≠ W, x gets δ·Bᵀ, W gets xᵀδ, b gets Σδ and B gets zero`, () => {
      const c = cases[layout];
      const [x, w, b, f] = [rn(c.x, 21), rn(c.w1, 22), rn(c.b1, 23), rn(c.w1, 24)];
      const r = tf.randomNormal(linear(x, w, b, layout).shape, 0, 1, 'float32', 25);
      const [gx, gw, gb, gf] = tf.grads((xi, wi, bi, fi) =>
        tf.sum(tf.mul(r, feedbackLinear(xi, wi, bi, fi, layout))),
      )([x, w, b, f]);
      // Closed forms with δ = r (the loss is ⟨r, y⟩).
      let ex: tf.Tensor;
      let ew: tf.Tensor;
      let eb: tf.Tensor;
      if (layout === 'grouped') {
        ex = tf.einsum('npgd,gcd->npgc', r, f);
        ew = tf.einsum('npgc,npgd->gcd', x, r);
        eb = tf.sum(r, [0, 1]);
      } else if (layout === 'token') {
        ex = tf.einsum('ncq,pq->ncp', r, f);
        ew = tf.einsum('ncp,ncq->pq', x, r);
        eb = tf.sum(r, [0, 1]);
      } else {
        ex = tf.einsum('nso,io->nsi', r, f);
        ew = tf.einsum('nsi,nso->io', x, r);
        eb = tf.sum(r, [0, 1]);
      }
      expect(maxAbsDiff(gx, ex)).toBeLessThan(1e-4);
      expect(maxAbsDiff(gw, ew)).toBeLessThan(1e-4);
      expect(maxAbsDiff(gb, eb)).toBeLessThan(1e-4);
      expect(tf.tidy(() => tf.max(tf.abs(gf)).dataSync()[0])).toBe(0);
      // And the signal to x really is not the backprop one.
      const bpx = tf.einsum(
        layout === 'grouped' ? 'npgd,gcd->npgc' : layout === 'token' ? 'ncq,pq->ncp' : 'nso,io->nsi',
        r,
        w,
      );
      expect(maxAbsDiff(gx, bpx)).toBeGreaterThan(1e-2);
    });
  }

  it('works without a bias (b = null)', () => {
    const [x, w, f] = [rn([4, 3], 31), rn([3, 2], 32), rn([3, 2], 33)];
    const r = rn([4, 2], 34);
    expect(maxAbsDiff(feedbackLinear(x, w, null, f), tf.matMul(x, w))).toBeLessThan(1e-6);
    const [gx, gw, gf] = tf.grads((xi, wi, fi) => tf.sum(tf.mul(r, feedbackLinear(xi, wi, null, fi))))([
      x,
      w,
      f,
    ]);
    expect(maxAbsDiff(gx, tf.matMul(r, f, false, true))).toBeLessThan(1e-5);
    expect(maxAbsDiff(gw, tf.matMul(x, r, true, false))).toBeLessThan(1e-5);
    expect(tf.tidy(() => tf.max(tf.abs(gf)).dataSync()[0])).toBe(0);
  });

  it('B stays unchanged under an optimiser even if it is a trainable variable', () => {
    const w = tf.variable(rn([3, 2], 41), true, 'faW');
    const b = tf.variable(tf.zeros([2]), true, 'faB');
    const feedback = tf.variable(rn([3, 2], 42), true, 'faFeedback');
    const before = feedback.arraySync();
    const w0 = w.arraySync();
    const x = rn([8, 3], 43);
    const y = rn([8, 2], 44);
    const opt = tf.train.momentum(0.1, 0.9);
    for (let s = 0; s < 3; s++) {
      opt.minimize(() => tf.mean(tf.square(tf.sub(feedbackLinear(x, w, b, feedback), y))) as tf.Scalar);
    }
    expect(feedback.arraySync()).toEqual(before);
    expect(w.arraySync()).not.toEqual(w0);
    opt.dispose();
    w.dispose();
    b.dispose();
    feedback.dispose();
  });

  it('does not leak tensors across gradient steps', () => {
    const [x, w, b, f] = [rn([5, 2, 3], 51), rn([3, 4], 52), rn([4], 53), rn([3, 4], 54)];
    const step = () => {
      const gs = tf.grads((xi, wi, bi) => tf.sum(tf.relu(feedbackLinear(xi, wi, bi, f))))([x, w, b]);
      for (const g of gs) g.dispose();
    };
    step();
    const before = tf.memory().numTensors;
    step();
    step();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('validates shapes with errors that name both shapes', () => {
    const x = tf.zeros([4, 3]);
    expect(() => feedbackLinear(x, tf.zeros([5, 2]), tf.zeros([2]), tf.zeros([5, 2]))).toThrow(
      /x has shape \[4,3\] but W has shape \[5,2\]/,
    );
    expect(() => feedbackLinear(x, tf.zeros([3, 2]), tf.zeros([2]), tf.zeros([2, 3]))).toThrow(
      /B has shape \[2,3\] but W has shape \[3,2\]/,
    );
    expect(() => feedbackLinear(x, tf.zeros([3, 2]), tf.zeros([3]), tf.zeros([3, 2]))).toThrow(
      /b has shape \[3\] but W has shape \[3,2\]; b must be \[2\]/,
    );
    expect(() =>
      feedbackLinear(
        tf.zeros([2, 3, 2, 4]),
        tf.zeros([2, 5, 3]),
        tf.zeros([2, 3]),
        tf.zeros([2, 5, 3]),
        'grouped',
      ),
    ).toThrow(/x has shape \[2,3,2,4\] but W has shape \[2,5,3\]/);
    expect(() =>
      feedbackLinear(tf.zeros([2, 3, 4]), tf.zeros([4, 5]), tf.zeros([5]), tf.zeros([4, 5]), 'token'),
    ).toThrow(/W must be a square token-mixing weight \[P, P\] but has shape \[4,5\]/);
    expect(() =>
      feedbackLinear(tf.zeros([2, 4, 3]), tf.zeros([4, 4]), tf.zeros([4]), tf.zeros([4, 4]), 'token'),
    ).toThrow(/x has shape \[2,4,3\] but W has shape \[4,4\]/);
    expect(() => feedbackLinear(x, tf.zeros([3, 2]), null, tf.zeros([3, 2]), 'conv' as LinearLayout)).toThrow(
      /unknown layout "conv"/,
    );
  });
});
