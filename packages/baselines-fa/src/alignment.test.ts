import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { alignmentAngle, alignmentAngles } from './alignment.js';

describe('alignmentAngle', () => {
  it('gives the angle in degrees between the flattened tensors', () => {
    const e1 = tf.tensor2d([[1, 0]]);
    expect(alignmentAngle(e1, tf.tensor2d([[0, 3]]))).toBeCloseTo(90, 10);
    expect(alignmentAngle(e1, tf.tensor2d([[2, 2]]))).toBeCloseTo(45, 10);
    expect(alignmentAngle(e1, tf.tensor2d([[-5, 0]]))).toBeCloseTo(180, 10);
    expect(alignmentAngle(e1, tf.tensor2d([[4, 0]]))).toBe(0);
    // 60°: cos = ⟨(1,1,0,0),(1,0,1,0)⟩ / 2 = 1/2, across a [2,2] shape.
    expect(
      alignmentAngle(
        tf.tensor2d([
          [1, 1],
          [0, 0],
        ]),
        tf.tensor2d([
          [1, 0],
          [1, 0],
        ]),
      ),
    ).toBeCloseTo(60, 10);
  });

  it('handles zero norms and non-finite values', () => {
    const z = tf.zeros([3]);
    expect(alignmentAngle(z, z)).toBe(0);
    expect(alignmentAngle(z, tf.tensor1d([1, 2, 3]))).toBe(90);
    expect(alignmentAngle(tf.tensor1d([1, 2, 3]), z)).toBe(90);
    expect(alignmentAngle(tf.tensor1d([1, Number.NaN, 3]), tf.tensor1d([1, 2, 3]))).toBeNaN();
    // Nearly parallel vectors in float32 never give acos(>1) = NaN.
    expect(alignmentAngle(tf.tensor1d([0.1, 0.2, 0.3]), tf.tensor1d([0.3, 0.6, 0.9]))).toBeLessThan(1e-3);
  });

  it('names both shapes on a mismatch', () => {
    expect(() => alignmentAngle(tf.zeros([2, 3]), tf.zeros([3, 2]))).toThrow(
      /\[2,3\] but the true gradient has shape \[3,2\]/,
    );
  });
});

describe('alignmentAngles', () => {
  it('pairs arrays by index and maps by key', () => {
    const u = [tf.tensor1d([1, 0]), tf.tensor1d([1, 1])];
    const g = [tf.tensor1d([0, 1]), tf.tensor1d([1, 1])];
    const a = alignmentAngles(u, g);
    expect(a[0]).toBeCloseTo(90, 10);
    expect(a[1]).toBeCloseTo(0, 5);
    const m = alignmentAngles({ w1: u[0], w2: u[1] }, { w2: g[0], w1: g[1] });
    expect(m.w1).toBeCloseTo(45, 10);
    expect(m.w2).toBeCloseTo(45, 10);
    expect(() => alignmentAngles(u, [g[0]])).toThrow(/2 updates but 1 true gradients/);
    expect(() => alignmentAngles({ a: u[0] }, { b: g[0] })).toThrow(/differ in keys \(a, b\)/);
    expect(() => alignmentAngles(u, { a: g[0] } as never)).toThrow(/two arrays or two maps/);
  });
});
