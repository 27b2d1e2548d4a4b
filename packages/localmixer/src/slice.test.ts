import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  disposeParams,
  forwardBackbone,
  initParams,
  linearSites,
  paramShapes,
  patchify,
  sliceConfig,
  sliceParams,
  startsMidway,
  validateConfig,
} from './index.js';
import { tiny } from './testing.test-util.js';

describe('sliceConfig / sliceParams (blocks of a network as a network of their own)', () => {
  it('a slice without block 0 has mixer blocks only, with the whole network’s shapes', () => {
    const s = sliceConfig(tiny, 1, 2);
    expect(s.blocks).toBe(2);
    expect(s.firstBlock).toBe(1);
    expect(startsMidway(s)).toBe(true);
    validateConfig(s);
    expect(linearSites(s).map((x) => [x.index, x.block, x.layout])).toEqual([
      [0, 0, 'token'],
      [1, 0, 'dense'],
      [2, 0, 'grouped'],
      [3, 1, 'token'],
      [4, 1, 'dense'],
      [5, 1, 'grouped'],
    ]);
    const whole = paramShapes(tiny);
    expect(paramShapes(s).backbone).toEqual(whole.backbone.slice(2));
    // a slice of a slice counts from the whole network
    expect(sliceConfig(s, 1, 1).firstBlock).toBe(2);
    // the first blocks are a whole (shorter) network
    expect(startsMidway(sliceConfig(tiny, 0, 2))).toBe(false);
  });

  it('rejects a range outside the network, naming the fix', () => {
    expect(() => sliceConfig(tiny, 2, 2)).toThrow(/not inside the network's 3 blocks/);
    expect(() => sliceConfig(tiny, 0, 0)).toThrow(/1 ≤ count/);
    expect(() => validateConfig({ ...tiny, firstBlock: -1 })).toThrow(/firstBlock -1/);
  });

  it('chained slices compute the whole backbone exactly', () => {
    const params = initParams(tiny, 3);
    const x = patchify(tf.randomNormal([5, 8, 8, 1], 0, 1, 'float32', 1), tiny);
    const whole = forwardBackbone(tiny, params, x);
    const a = forwardBackbone(sliceConfig(tiny, 0, 1), sliceParams(tiny, params, 0, 1), x);
    const b = forwardBackbone(sliceConfig(tiny, 1, 2), sliceParams(tiny, params, 1, 2), a[0]);
    const sliced = [...a, ...b];
    expect(sliced.length).toBe(3);
    sliced.forEach((h, k) => {
      expect(h.shape).toEqual(whole[k].shape);
      expect(tf.max(tf.abs(tf.sub(h, whole[k]))).dataSync()[0]).toBe(0);
    });
    const p = sliceParams(tiny, params, 1, 2);
    expect(p.backbone[0].w).toBe(params.backbone[2].w);
    expect(p.heads[1]).toBe(params.heads[2]);
    expect(p.classifier).toBe(params.classifier);
    expect(() => forwardBackbone(sliceConfig(tiny, 1, 2), p, x)).toThrow(/block output has shape/);
    tf.dispose([x, ...whole, ...sliced]);
    disposeParams(params);
  });
});
