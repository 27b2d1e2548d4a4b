import * as tf from '@tensorflow/tfjs';
import { createRandom } from '@fwdgrad/random';
import { describe, expect, it } from 'vitest';
import {
  applyLinear,
  checkLinearShapes,
  initScale,
  initWeight,
  type LinearLayout,
  linearInputCotangent,
  linearLayouts,
  linearParamGradients,
} from './index.js';

const rn = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);
const maxAbsDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);

/** Independent reference for each layout, written with tf.einsum (the cpu backend has it). */
function einsumLinear(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, layout: LinearLayout): tf.Tensor {
  if (layout === 'grouped') return tf.add(tf.einsum('npgc,gcd->npgd', x, w), b);
  if (layout === 'token') return tf.add(tf.einsum('ncp,pq->ncq', x, w), b);
  return tf.add(tf.einsum('nsi,io->nso', x, w), b);
}

const cases: Record<LinearLayout, { x: number[]; w: number[]; b: number[] }> = {
  dense: { x: [3, 2, 5], w: [5, 4], b: [4] },
  grouped: { x: [2, 3, 2, 4], w: [2, 4, 3], b: [2, 3] },
  token: { x: [2, 3, 4], w: [4, 4], b: [4] },
};

describe('applyLinear and its derivatives', () => {
  for (const layout of linearLayouts) {
    const c = cases[layout];

    it(`'${layout}': equals the einsum reference, with and without a bias`, () => {
      const [x, w, b] = [rn(c.x, 1), rn(c.w, 2), rn(c.b, 3)];
      expect(maxAbsDiff(applyLinear(layout, x, w, b), einsumLinear(x, w, b, layout))).toBeLessThan(1e-5);
      expect(maxAbsDiff(applyLinear(layout, x, w), einsumLinear(x, w, tf.zeros(c.b), layout))).toBeLessThan(
        1e-5,
      );
    });

    it(`'${layout}': linearParamGradients and linearInputCotangent equal tfjs autodiff`, () => {
      const [x, w, b] = [rn(c.x, 4), rn(c.w, 5), rn(c.b, 6)];
      const g = rn(applyLinear(layout, x, w, b).shape, 7);
      const [dx, dw, db] = tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
        tf.sum(tf.mul(g, applyLinear(layout, xi, wi, bi))),
      )([x, w, b]);
      const ours = linearParamGradients(layout, x, g);
      expect(maxAbsDiff(ours.dw, dw)).toBeLessThan(1e-4);
      expect(maxAbsDiff(ours.db, db)).toBeLessThan(1e-4);
      const dxOurs = linearInputCotangent(layout, g, w, x.shape);
      expect(dxOurs.shape).toEqual(x.shape);
      expect(maxAbsDiff(dxOurs, dx)).toBeLessThan(1e-4);
    });
  }

  it('checks shapes with errors that name the layer, both shapes and the fix', () => {
    const x = tf.zeros([4, 3]);
    expect(() => applyLinear('dense', x, tf.zeros([5, 2]), null, 'layer h')).toThrow(
      /layer h \(dense layer\): x has shape \[4,3\] but W has shape \[5,2\].*Reshape x to \[\.\.\., 5\]/,
    );
    expect(() => applyLinear('dense', x, tf.zeros([3, 2]), tf.zeros([3]))).toThrow(
      /b has shape \[3\] but W has shape \[3,2\]; b must be \[2\]/,
    );
    expect(() => applyLinear('grouped', tf.zeros([2, 3, 2, 4]), tf.zeros([2, 5, 3]))).toThrow(
      /x has shape \[2,3,2,4\] but W has shape \[2,5,3\]; x must be \[\.\.\., G, in\/G\]/,
    );
    expect(() => applyLinear('grouped', tf.zeros([2, 4]), tf.zeros([2, 4, 3]))).toThrow(
      /leading \(example\) axis/,
    );
    expect(() => applyLinear('token', tf.zeros([2, 3, 4]), tf.zeros([4, 5]))).toThrow(
      /W must be a square token-mixing weight \[P, P\] but has shape \[4,5\]/,
    );
    expect(() => applyLinear('token', tf.zeros([2, 4, 3]), tf.zeros([4, 4]))).toThrow(
      /Transpose \[N, P, C\] inputs to \[N, C, P\]/,
    );
    expect(() => checkLinearShapes('f', 'conv' as LinearLayout, x, x)).toThrow(
      /f: unknown layout "conv"; layout must be 'dense', 'grouped' or 'token'/,
    );
  });
});

describe('initScale and initWeight (REFERENCE 0)', () => {
  it('initScale follows min(2/√fan_in, 0.1) and min(1/√fan_in, 0.1) with fan_in = shape[-2]', () => {
    expect(initScale([1024, 16])).toBeCloseTo(2 / 32, 12);
    expect(initScale([1024, 16], 'lecun')).toBeCloseTo(1 / 32, 12);
    expect(initScale([16, 8])).toBe(0.1); // capped
    expect(initScale([4, 400, 3], 'lecun')).toBeCloseTo(1 / 20, 12); // grouped: fan_in = C′
    expect(initScale([10, 64], 'kaiming', 900)).toBeCloseTo(2 / 30, 12);
    expect(() => initScale([5])).toThrow(/fan_in = shape\[-2\] of shape \[5\]/);
    expect(() => initScale([5, 5], 'xavier' as never)).toThrow(/unknown scheme 'xavier'/);
  });

  it('initWeight draws scale·N(0, 1) from the stream, in order', () => {
    const cases: [number[], 'kaiming' | 'lecun', number][] = [
      [[1600, 100], 'kaiming', 0.05],
      [[1600, 100], 'lecun', 0.025],
      [[4, 1600, 25], 'kaiming', 0.05], // grouped: fan_in is the per-group input width
      [[16, 10000], 'lecun', 0.1],
    ];
    const random = createRandom(3);
    for (const [shape, scheme, std] of cases) {
      const w = initWeight(shape, scheme, random);
      const s = tf.tidy(() => tf.sqrt(tf.mean(tf.square(w))).dataSync()[0]);
      expect(Math.abs(s / std - 1)).toBeLessThan(0.02);
      w.dispose();
    }
    const replay = createRandom(5);
    const a = initWeight([8, 4], 'kaiming', createRandom(5));
    expect(Array.from(a.dataSync())).toEqual(Array.from(tf.mul(replay.normal([8, 4]), 0.1).dataSync()));
  });
});
