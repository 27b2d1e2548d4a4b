import * as tf from '@tensorflow/tfjs';
import { expect, it } from 'vitest';

// DESIGN "One tfjs instance": this package resolves the same tfjs, with gradients registered.
it('tf.grad works from this package', () => {
  const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(x, x)))(tf.tensor1d([1.5, -2]));
  expect(Array.from(g.dataSync())).toEqual([3, -4]);
});
