import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { conv2dFilterGradient } from './kernel-vjp.js';
import { createRandom } from '@fwdgrad/random';

describe('conv2dFilterGradient', () => {
  const cases: [string, number[], number[], number | [number, number], 'valid' | 'same'][] = [
    ['3×3, stride 1, valid', [2, 6, 5, 2], [3, 3, 2, 3], 1, 'valid'],
    ['3×3, stride 1, same', [2, 5, 5, 1], [3, 3, 1, 4], 1, 'same'],
    ['3×3, stride 2, same (odd input)', [3, 7, 6, 2], [3, 3, 2, 2], 2, 'same'],
    ['2×3, strides [2, 3], valid (unread rows)', [2, 7, 8, 2], [2, 3, 2, 3], [2, 3], 'valid'],
  ];
  for (const [name, xShape, fShape, strides, pad] of cases) {
    it(`equals tfjs's Conv2D filter gradient: ${name}`, () => {
      tf.tidy(() => {
        const r = createRandom(1);
        const x = r.normal(xShape) as tf.Tensor4D;
        const f = r.normal(fShape) as tf.Tensor4D;
        const y = tf.conv2d(x, f, strides, pad);
        const dy = r.normal(y.shape) as tf.Tensor4D;
        const expected = tf.grad((w: tf.Tensor) =>
          tf.sum(tf.mul(tf.conv2d(x, w as tf.Tensor4D, strides, pad), dy)),
        )(f);
        const got = conv2dFilterGradient(x, dy, fShape, { strides, pad, dataFormat: 'NHWC', dilations: 1 });
        expect(got).not.toBeNull();
        expect((got as tf.Tensor).shape).toEqual(fShape);
        const err = tf.max(tf.abs(tf.sub(got as tf.Tensor, expected))).dataSync()[0];
        expect(err).toBeLessThan(1e-4 * Math.max(1, tf.max(tf.abs(expected)).dataSync()[0]));
      });
    });
  }
  it('declines dilated convolutions and NCHW', () => {
    const x = tf.ones([1, 5, 5, 1]) as tf.Tensor4D;
    const dy = tf.ones([1, 3, 3, 1]) as tf.Tensor4D;
    expect(conv2dFilterGradient(x, dy, [2, 2, 1, 1], { strides: 1, pad: 'valid', dilations: 2 })).toBeNull();
    expect(
      conv2dFilterGradient(x, dy, [2, 2, 1, 1], { strides: 1, pad: 'valid', dataFormat: 'NCHW' }),
    ).toBeNull();
    tf.dispose([x, dy]);
  });
});
