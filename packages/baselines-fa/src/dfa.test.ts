import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createDirectFeedback, detach, directFeedback, randomReadoutLoss } from './dfa.js';
import { linear, maxAbsDiff, meanCrossEntropy } from './testing.test-util.js';

const rn = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);

/** Row-major matrices as plain arrays for the hand computation. */
type M = number[][];
const mat = (t: tf.Tensor): M => t.arraySync() as M;
const vec = (t: tf.Tensor): number[] => t.arraySync() as number[];

describe('DFA (Nøkland 2016) through the DirectFeedback hub', () => {
  it('equals a hand-computed update on a two-layer MLP', () => {
    // x [N, D] → a1 = x·W1 + b1 → h = relu(a1) → logits = h·W2 + b2 → mean CE.
    const N = 5;
    const D = 3;
    const H = 4;
    const K = 3;
    const x = rn([N, D], 1);
    const W1 = rn([D, H], 2);
    const b1 = tf.mul(rn([H], 3), 0.5);
    const W2 = rn([H, K], 4);
    const b2 = rn([K], 5);
    const B1 = rn([K, H], 6); // DFA matrix: error [N, K] → layer [N, H]
    const labels = [0, 2, 1, 2, 0];
    const y = tf.oneHot(labels, K).toFloat();

    const dfa = createDirectFeedback();
    const grads = tf.grads((w1, c1, w2, c2) => {
      const h = dfa.hidden(tf.relu(linear(x, w1, c1)), B1);
      const logits = dfa.output(linear(h, w2, c2));
      return meanCrossEntropy(logits, y);
    })([W1, b1, W2, b2]);

    // By hand, in plain JS: e = (softmax(logits) − y)/N; δ2 = e; δ1 = (e·B1) ⊙ 1[a1 > 0].
    const [xs, w1s, w2s, bb1] = [mat(x), mat(W1), mat(W2), mat(B1)];
    const [c1s, c2s] = [vec(b1), vec(b2)];
    const a1 = xs.map((row) =>
      Array.from({ length: H }, (_, j) => c1s[j] + row.reduce((s, v, i) => s + v * w1s[i][j], 0)),
    );
    const h = a1.map((row) => row.map((v) => Math.max(v, 0)));
    const logits = h.map((row) =>
      Array.from({ length: K }, (_, k) => c2s[k] + row.reduce((s, v, j) => s + v * w2s[j][k], 0)),
    );
    const e = logits.map((row, n) => {
      const m = Math.max(...row);
      const ex = row.map((v) => Math.exp(v - m));
      const z = ex.reduce((s, v) => s + v, 0);
      return ex.map((v, k) => (v / z - (k === labels[n] ? 1 : 0)) / N);
    });
    const delta1 = e.map((row, n) =>
      Array.from({ length: H }, (_, j) => (a1[n][j] > 0 ? row.reduce((s, v, k) => s + v * bb1[k][j], 0) : 0)),
    );
    const outer = (a: M, b: M) =>
      a[0].map((_, i) => b[0].map((_, j) => a.reduce((s, row, n) => s + row[i] * b[n][j], 0)));
    const colSum = (a: M) => a[0].map((_, j) => a.reduce((s, row) => s + row[j], 0));
    const expected = [outer(xs, delta1), colSum(delta1), outer(h, e), colSum(e)];

    for (let i = 0; i < 4; i++) {
      expect(maxAbsDiff(grads[i], tf.tensor(expected[i]))).toBeLessThan(1e-6);
    }
    // The captured error is e itself.
    expect(maxAbsDiff(dfa.error!, tf.tensor(e))).toBeLessThan(1e-7);
    // The hidden update is not backprop's: backprop would use W2ᵀ, not B1.
    const bp = tf.grads((w1, c1, w2, c2) => meanCrossEntropy(linear(tf.relu(linear(x, w1, c1)), w2, c2), y))([
      W1,
      b1,
      W2,
      b2,
    ]);
    expect(maxAbsDiff(grads[0], bp[0])).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(grads[2], bp[2])).toBeLessThan(1e-6); // output layer: exact
    dfa.dispose();
    expect(dfa.error).toBeNull();
  });

  it('gives B a zero gradient and ignores the cotangent from above', () => {
    const h = rn([3, 4], 11);
    const B = rn([2, 4], 12);
    const e = rn([3, 2], 13);
    const r = rn([3, 4], 14);
    // Loss ⟨r, f(h)⟩ with f = directFeedback: the gradient to h is e·B whatever r is.
    const [gh, gB] = tf.grads((hi, bi) => tf.sum(tf.mul(r, directFeedback(hi, bi, e))))([h, B]);
    expect(maxAbsDiff(gh, tf.matMul(e, B))).toBeLessThan(1e-6);
    expect(tf.tidy(() => tf.max(tf.abs(gB)).dataSync()[0])).toBe(0);
  });

  it('broadcasts a [K, C] projection over the middle axes of a [N, P, C] layer, with a scale', () => {
    const h = rn([2, 3, 4], 21);
    const B = rn([5, 4], 22);
    const e = rn([2, 5], 23);
    const [gh] = tf.grads((hi) => tf.sum(directFeedback(hi, B, e, { scale: 1 / 3 })))([h]);
    const expected = tf.div(tf.tile(tf.reshape(tf.matMul(e, B), [2, 1, 4]), [1, 3, 1]), 3);
    expect(maxAbsDiff(gh, expected)).toBeLessThan(1e-6);
    // A full [K, P, C] matrix gives each token its own projection.
    const B3 = rn([5, 3, 4], 24);
    const [gh3] = tf.grads((hi) => tf.sum(directFeedback(hi, B3, e)))([h]);
    expect(maxAbsDiff(gh3, tf.reshape(tf.matMul(e, tf.reshape(B3, [5, 12])), [2, 3, 4]))).toBeLessThan(1e-6);
  });

  it('throws a clear error when no output error was captured, or shapes do not fit', () => {
    const dfa = createDirectFeedback();
    const h = rn([3, 4], 31);
    const B = rn([2, 4], 32);
    expect(() => tf.grads((hi) => tf.sum(dfa.hidden(hi, B)))([h])).toThrow(
      /wrap the final logits with dfa\.output/,
    );
    expect(() => directFeedback(h, rn([2, 5], 33), dfa)).toThrow(
      /feedback matrix has shape \[2,5\] but the layer output h has shape \[3,4\]/,
    );
    expect(() => directFeedback(h, B, rn([3, 3], 34))).toThrow(
      /error has shape \[3,3\] but h has shape \[3,4\]/,
    );
    expect(() => dfa.output(rn([3, 2, 2], 35))).toThrow(/must be \[N, K\] but have shape \[3,2,2\]/);
  });

  it('keeps one error tensor per hub and leaks nothing across steps', () => {
    const x = rn([6, 3], 41);
    const W1 = rn([3, 5], 42);
    const W2 = rn([5, 2], 43);
    const B1 = rn([2, 5], 44);
    const y = tf.oneHot([0, 1, 1, 0, 1, 0], 2).toFloat();
    const dfa = createDirectFeedback();
    const step = () => {
      const gs = tf.grads((w1, w2) =>
        meanCrossEntropy(dfa.output(tf.matMul(dfa.hidden(tf.relu(tf.matMul(x, w1)), B1), w2)), y),
      )([W1, W2]);
      for (const g of gs) g.dispose();
    };
    step();
    const before = tf.memory().numTensors;
    step();
    step();
    expect(tf.memory().numTensors).toBe(before);
    dfa.dispose();
    expect(tf.memory().numTensors).toBe(before - 1);
  });
});

describe('randomReadoutLoss (the authors’ DFA and FA-head variants, REFERENCE 1.3–1.4)', () => {
  it('matches the closed-form value and gradient, and B gets no gradient', () => {
    const [N, P, C, K] = [3, 4, 5, 2];
    const h = rn([N, P, C], 51);
    const B = rn([C, K], 52);
    const bias = rn([K], 53);
    const y = tf.oneHot([1, 0, 1], K).toFloat();
    const [gh, gB, gbias] = tf.grads((hi, bi, ci) => randomReadoutLoss(hi, bi, y, { bias: ci }))([
      h,
      B,
      bias,
    ]);
    // a = mean_P h; p = softmax(a·B + b); ∂ℓ/∂h[n,p,:] = (p − y)_n·Bᵀ / (N·P).
    const a = tf.mean(h, 1);
    const logits = tf.add(tf.matMul(a, B), bias);
    const p = tf.softmax(logits);
    const expected = tf.tile(tf.reshape(tf.div(tf.matMul(tf.sub(p, y), B, false, true), N * P), [N, 1, C]), [
      1,
      P,
      1,
    ]);
    expect(maxAbsDiff(gh, expected)).toBeLessThan(1e-6);
    expect(tf.tidy(() => tf.max(tf.abs(gB)).dataSync()[0])).toBe(0);
    expect(tf.tidy(() => tf.max(tf.abs(gbias)).dataSync()[0])).toBe(0);
    const value = randomReadoutLoss(h, B, y, { bias }).dataSync()[0];
    expect(value).toBeCloseTo(meanCrossEntropy(logits, y).dataSync()[0], 6);
  });

  it('pools token-mixing outputs over channels by default ([N, C, P] → [N, P])', () => {
    const h = rn([2, 3, 4], 61);
    const B = rn([4, 3], 62);
    const y = tf.oneHot([2, 0], 3).toFloat();
    const expected = meanCrossEntropy(tf.matMul(tf.mean(h, 1), B), y).dataSync()[0];
    expect(randomReadoutLoss(h, B, y).dataSync()[0]).toBeCloseTo(expected, 6);
    expect(() => randomReadoutLoss(h, rn([5, 3], 63), y)).toThrow(
      /gives 4 features, but the readout matrix has shape \[5,3\]/,
    );
    expect(() => randomReadoutLoss(h, B, tf.oneHot([1, 0], 2))).toThrow(
      /labels have shape \[2,2\] but must be one-hot \[2, 3\]/,
    );
  });

  it('detach passes the value and blocks the gradient', () => {
    const x = tf.tensor1d([1, -2, 3]);
    expect(Array.from(detach(x).dataSync())).toEqual([1, -2, 3]);
    const [g] = tf.grads((xi) => tf.add(tf.sum(tf.square(detach(xi))), tf.sum(xi)))([x]);
    expect(Array.from(g.dataSync())).toEqual([1, 1, 1]);
  });
});
