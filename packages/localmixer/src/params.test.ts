import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  countParameters,
  countParametersByPart,
  disposeParams,
  flattenParams,
  initParams,
  paramShapes,
  paramsToTensors,
  presets,
  resolveConfig,
} from './index.js';
import { tiny } from './testing.test-util.js';

describe('parameter counts (paper Table 2)', () => {
  // Table 2 counts backbone + local heads + final classifier (supervised, K = 10).
  it.each([
    ['S/1/1', 272e3, 271_892],
    ['M/1/16', 429e3, 429_076],
    ['M/8/16', 919e3, 918_770],
    ['L/8/64', 13.1e6, 13_074_674],
  ] as const)('%s is within 1%% of %d', (name, paper, exact) => {
    const n = countParameters(presets[name]);
    expect(n).toBe(exact);
    expect(Math.abs(n - paper) / paper).toBeLessThan(0.01);
  });

  it('L/32/64: the parts behind the README discussion of the 17.3M entry', () => {
    expect(countParametersByPart(presets['L/32/64'])).toEqual({
      backbone: 16_311_296,
      heads: 4 * (2048 * 1000 + 1000),
      projection: 0,
      classifier: 2048 * 1000 + 1000,
      total: 26_556_296,
    });
    const contrastive = countParametersByPart(resolveConfig('L/32/64', { objective: 'contrastive' }));
    expect(contrastive.backbone + contrastive.heads).toBe(17_360_384);
    expect(contrastive.projection).toBe(2048 * 128 + 128);
  });

  it('equals the number of values initParams creates', () => {
    for (const config of [tiny, resolveConfig(tiny, { objective: 'contrastive' }), presets['S/1/1']]) {
      const params = initParams(config, 1);
      const n = flattenParams(params).reduce((a, t) => a + t.size, 0);
      expect(n).toBe(countParameters(config));
      disposeParams(params);
    }
  });
});

describe('initParams (REFERENCE 0)', () => {
  it('has the REFERENCE 0 shapes in order', () => {
    const shapes = paramShapes(tiny);
    expect(shapes.backbone).toEqual([
      { w: [16, 12], b: [12] },
      { w: [2, 6, 4], b: [2, 4] },
      { w: [4, 4], b: [4] },
      { w: [8, 12], b: [12] },
      { w: [2, 6, 4], b: [2, 4] },
      { w: [4, 4], b: [4] },
      { w: [8, 12], b: [12] },
      { w: [2, 6, 4], b: [2, 4] },
    ]);
    expect(shapes.heads).toEqual(Array(3).fill({ w: [8, 10], b: [10] }));
    expect(shapes.classifier).toEqual({ w: [8, 10], b: [10] });
    const c = paramShapes(resolveConfig(tiny, { objective: 'contrastive' }));
    expect(c.heads[0]).toEqual({ w: [8, 128], b: [128] });
    expect(c.projection).toEqual({ w: [8, 128], b: [128] });
  });

  it('is deterministic in the seed, zero biases and a zero classifier', () => {
    const a = initParams(tiny, 7);
    const b = initParams(tiny, 7);
    const c = initParams(tiny, 8);
    const va = flattenParams(a).map((t) => Array.from(t.dataSync()));
    expect(flattenParams(b).map((t) => Array.from(t.dataSync()))).toEqual(va);
    expect(flattenParams(c).map((t) => Array.from(t.dataSync()))).not.toEqual(va);
    for (const p of [...a.backbone, ...a.heads]) {
      expect(tf.any(tf.notEqual(p.w, 0)).dataSync()[0]).toBe(1);
      expect(tf.max(tf.abs(p.b)).dataSync()[0]).toBe(0);
    }
    expect(tf.max(tf.abs(a.classifier.w)).dataSync()[0]).toBe(0);
    expect(a.backbone[0].w).toBeInstanceOf(tf.Variable);
    const copy = paramsToTensors(a);
    expect(Array.from(copy.backbone[1].w.dataSync())).toEqual(va[2]);
    for (const p of [a, b, c, copy]) disposeParams(p);
  });
});
