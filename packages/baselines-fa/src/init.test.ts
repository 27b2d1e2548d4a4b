import * as tf from '@tensorflow/tfjs';
import { initScale } from '@fwdgrad/linear';
import { createRandom } from '@fwdgrad/random';
import { describe, expect, it } from 'vitest';
import { initDirectFeedback, initFeedback } from './init.js';

function std(t: tf.Tensor): number {
  return tf.tidy(() => Math.sqrt(tf.mean(tf.square(t)).dataSync()[0]));
}

describe('initFeedback', () => {
  it('draws B like W: W’s shape, scale·N(0,1), same seed same matrix', () => {
    const w = tf.zeros([1024, 16]);
    const b1 = initFeedback(w, 7);
    const b2 = initFeedback(w, { seed: 7 });
    const b3 = initFeedback(w, 8);
    expect(b1.shape).toEqual([1024, 16]);
    expect(Array.from(b1.dataSync())).toEqual(Array.from(b2.dataSync()));
    expect(Array.from(b1.dataSync())).not.toEqual(Array.from(b3.dataSync()));
    // 16384 draws: the sample std is within 3% of 2/√1024.
    expect(Math.abs(std(b1) / (2 / 32) - 1)).toBeLessThan(0.03);
    const lecun = initFeedback([4, 400, 3], { seed: 1, scheme: 'lecun' });
    expect(Math.abs(std(lecun) / (1 / 20) - 1)).toBeLessThan(0.05);
    const explicit = initFeedback([64, 64], { seed: 1, scale: 0.5 });
    expect(Math.abs(std(explicit) / 0.5 - 1)).toBeLessThan(0.05);
  });

  it('draws from a stream of @fwdgrad/random, successive matrices from successive draws', () => {
    const stream = createRandom(100);
    const a = initFeedback([8, 4], { seed: stream });
    const b = initFeedback([8, 4], { seed: stream });
    const replay = createRandom(100);
    const scale = initScale([8, 4]);
    const expected = (t: tf.Tensor) => Array.from(tf.mul(t, scale).dataSync());
    expect(Array.from(a.dataSync())).toEqual(expected(replay.normal([8, 4])));
    expect(Array.from(b.dataSync())).toEqual(expected(replay.normal([8, 4])));
    expect(Array.from(a.dataSync())).toEqual(Array.from(initFeedback([8, 4], 100).dataSync()));
  });

  it('rejects what cannot be a feedback matrix', () => {
    expect(() => initFeedback([5], 1)).toThrow(/no fan-in axis/);
    expect(() => initFeedback([5, 5], { seed: 1, scale: -1 })).toThrow(
      /scale must be a finite number ≥ 0, got -1/,
    );
    expect(() => initFeedback([5, 5], { seed: Number.NaN })).toThrow(/seed must be a finite number/);
  });
});

describe('initDirectFeedback', () => {
  it('draws B_j [K, ...shape] with fan_in = K', () => {
    const d = initDirectFeedback(400, [3, 50], 5);
    expect(d.shape).toEqual([400, 3, 50]);
    expect(Math.abs(std(d) / (2 / 20) - 1)).toBeLessThan(0.03);
    expect(() => initDirectFeedback(0, [3], 1)).toThrow(/numClasses must be a positive integer, got 0/);
    expect(() => initDirectFeedback(10, [], 1)).toThrow(/layer shape \[\] must be non-empty/);
  });
});
