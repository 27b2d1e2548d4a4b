import * as tf from '@tensorflow/tfjs';
import { createRandom } from '@fwdgrad/random';
import { describe, expect, it } from 'vitest';
import { peakStorageBytesOf } from './measure.js';

describe('peakStorageBytesOf', () => {
  it('counts each region of memory once: a reshape or a view adds nothing, a new tensor its size', () => {
    if (tf.getBackend() !== 'cpu') {
      expect(peakStorageBytesOf(() => tf.zeros([4]))).toBeNull();
      return;
    }
    const x = tf.ones([1000]);
    // (unary ops: no scalar operand) a new tensor of 1000 floats, a reshape of it (same storage) and one of x: 4000 bytes at the peak
    expect(
      peakStorageBytesOf(() => {
        const y = tf.neg(x);
        return [y, tf.reshape(y, [10, 100]), tf.reshape(x, [100, 10])];
      }),
    ).toBe(4000);
    // two tensors alive at once, then one freed before a third: the peak is two
    expect(
      peakStorageBytesOf(() => {
        const a = tf.neg(x);
        const b = tf.exp(x);
        a.dispose();
        return [b, tf.abs(x)];
      }),
    ).toBe(8000);
    // views of one buffer (Random.normals on the cpu backend): their bytes once, not the buffer's twice
    expect(peakStorageBytesOf(() => createRandom(1).normals([[300], [700]]))).toBe(4000);
    // tfjs's own tally counts the reshape again
    const start = tf.memory().numBytes;
    const y = tf.neg(x);
    const r = tf.reshape(y, [10, 100]);
    expect(tf.memory().numBytes - start).toBe(8000);
    tf.dispose([x, y, r]);
  });
});
