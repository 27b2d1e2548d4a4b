import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import { createOptimizer } from './optim.js';
import type { ParamEntry, ParamGroup, ParamKind } from './params.js';

const made: tf.Tensor[] = [];
afterEach(() => {
  for (const t of made.splice(0)) t.dispose();
});

let serial = 0;
function param(name: string, values: number[], kind: ParamKind, group: ParamGroup): ParamEntry {
  const variable = tf.variable(tf.tensor1d(values), true, `optim-test-${name}-${serial++}`);
  made.push(variable);
  return { name, variable, kind, group };
}

function grads(values: Record<string, number[]>): Map<string, tf.Tensor> {
  const m = new Map<string, tf.Tensor>();
  for (const [k, v] of Object.entries(values)) {
    const t = tf.tensor1d(v);
    made.push(t);
    m.set(k, t);
  }
  return m;
}

const values = (e: ParamEntry) => Array.from(e.variable.dataSync());

function expectClose(actual: number[], expected: number[], digits = 6): void {
  expect(actual).toHaveLength(expected.length);
  for (const [i, a] of actual.entries()) expect(a).toBeCloseTo(expected[i], digits);
}

describe('SGD with momentum (REFERENCE §1.1, §4)', () => {
  it('matches hand-computed updates over two steps: decay on weights only, after the lr scaling', () => {
    const w = param('w', [1, -2], 'weight', 'backbone');
    const b = param('b', [0.5], 'bias', 'backbone');
    const h = param('h', [1], 'weight', 'head');
    const c = param('c', [2], 'weight', 'classifier');
    const cb = param('cb', [1], 'bias', 'classifier');
    const entries = [w, b, h, c, cb];
    const opt = createOptimizer('sgd', { momentum: 0.9, weightDecay: 0.1, headLr: 0.5, lastLayerLr: 0.1 });
    const g = grads({ w: [0.5, 1], b: [1], h: [2], c: [1], cb: [1] });

    opt.apply(entries, g, 0.1);
    // w: g + 0.1·w = [0.6, 0.8]; w − 0.1·t
    expectClose(values(w), [0.94, -2.08]);
    // bias: no decay
    expectClose(values(b), [0.4]);
    // head: 0.5·2 + 0.1·1 = 1.1
    expectClose(values(h), [0.89]);
    // classifier: 0.1·1 + 0.1·2 = 0.3 (decay after the last_layer_lr scaling; before would give 0.12)
    expectClose(values(c), [1.97]);
    // classifier bias: 0.1·1, no decay
    expectClose(values(cb), [0.99]);

    opt.apply(entries, g, 0.1);
    // w: g' = [0.5 + 0.094, 1 − 0.208] = [0.594, 0.792]; t = g' + 0.9·[0.6, 0.8] = [1.134, 1.512]
    expectClose(values(w), [0.8266, -2.2312]);
    // b: t = 1 + 0.9 = 1.9
    expectClose(values(b), [0.21]);
    // h: g' = 1 + 0.089 = 1.089; t = 1.089 + 0.99 = 2.079
    expectClose(values(h), [0.6821]);
    // c: g' = 0.1 + 0.197 = 0.297; t = 0.297 + 0.27 = 0.567
    expectClose(values(c), [1.9133]);
    opt.dispose();
  });

  it('the rate multiplies the trace after accumulation: t = g + m·t_prev, W −= lr·t', () => {
    const w = param('w', [0], 'weight', 'backbone');
    const opt = createOptimizer('sgd', { momentum: 0.5 });
    const g = grads({ w: [1] });
    opt.apply([w], g, 1); // t = 1
    opt.apply([w], g, 0.1); // t = 1.5, step 0.15
    expectClose(values(w), [-1.15]);
    opt.dispose();
  });

  it('momentum 0 is plain SGD', () => {
    const w = param('w', [1, 1], 'weight', 'backbone');
    const opt = createOptimizer('sgd', { momentum: 0 });
    const g = grads({ w: [1, -1] });
    for (let i = 0; i < 3; i++) opt.apply([w], g, 0.5);
    expectClose(values(w), [-0.5, 2.5]);
    opt.dispose();
  });
});

describe('LARS (REFERENCE §4)', () => {
  it('matches hand-computed updates: masked decay, trust ratio, momentum on lr-scaled steps', () => {
    const w = param('w', [3, 4], 'weight', 'backbone');
    const b = param('b', [1, 0], 'bias', 'backbone');
    const hw = param('hw', [3, 4], 'weight', 'head');
    const c = param('c', [0, 0], 'weight', 'classifier');
    const z = param('z', [5, 5], 'weight', 'backbone');
    const entries = [w, b, hw, c, z];
    const opt = createOptimizer('lars', { momentum: 0.9, weightDecay: 0.1, trust: 0.1 });
    const g = grads({ w: [2.7, 3.6], b: [0, 2], hw: [2.7, 3.6], c: [1, 2], z: [0, 0] });

    opt.apply(entries, g, 0.5);
    // w: u = g + 0.1·[3,4] = [3,4], ‖u‖ = ‖w‖ = 5, ratio 0.1 → u = [0.3,0.4]; step 0.5·u
    expectClose(values(w), [2.85, 3.8]);
    // b (no decay): u = [0,2], ratio 0.1·1/2 → [0, 0.1]; step [0, 0.05]
    expectClose(values(b), [1, -0.05]);
    // head weight: no decay under LARS (backbone only): u = [2.7,3.6], ‖u‖ = 4.5, ratio 0.1·5/4.5
    expectClose(values(hw), [3 - 0.5 * 0.27 * (5 / 4.5), 4 - 0.5 * 0.36 * (5 / 4.5)]);
    // zero-initialised classifier: ‖W‖ = 0 → factor 1; u = 0.1·g (last_layer_lr)
    expectClose(values(c), [-0.05, -0.1]);
    // zero gradient with decay: u = 0.1·[5,5], ratio 0.1·‖z‖/‖u‖ = 1 → step 0.5·[0.5,0.5]
    expectClose(values(z), [4.75, 4.75]);

    // Second step at a different rate: t = lr·u + 0.9·t_prev (the trace holds lr-scaled steps).
    const g2 = grads({ w: [0, 0], b: [0, 0], hw: [0, 0], c: [0, 0], z: [0, 0] });
    opt.apply(entries, g2, 0.1);
    // w = [2.85, 3.8]: u = 0.1·w, ratio 0.1·‖w‖/‖u‖ = 1 → u = [0.285, 0.38]; t = 0.1·u + 0.9·[0.15, 0.2]
    expectClose(values(w), [2.85 - (0.0285 + 0.135), 3.8 - (0.038 + 0.18)]);
    // b: zero gradient, no decay: ‖u‖ = 0 → u = 0; t = 0.9·[0, 0.05]
    expectClose(values(b), [1, -0.05 - 0.045]);
    opt.dispose();
  });
});

describe('optimizer state and memory', () => {
  it('keeps the live tensor count constant across steps', () => {
    const entries = [
      param('w', [1, 2, 3], 'weight', 'backbone'),
      param('b', [0, 0, 0], 'bias', 'backbone'),
      param('c', [0, 0, 0], 'weight', 'classifier'),
    ];
    const g = grads({ w: [1, 1, 1], b: [1, 2, 3], c: [3, 2, 1] });
    for (const kind of ['sgd', 'lars'] as const) {
      const opt = createOptimizer(kind, { weightDecay: 1e-4 });
      opt.apply(entries, g, 0.1); // creates the traces
      const before = tf.memory().numTensors;
      for (let i = 0; i < 5; i++) opt.apply(entries, g, 0.1);
      expect(tf.memory().numTensors).toBe(before);
      // state() hands out the live traces (no new tensors); loadState() copies them
      const s = opt.state();
      expect(tf.memory().numTensors).toBe(before);
      opt.loadState(s);
      expect(tf.memory().numTensors).toBe(before);
      expect(Object.values(s).every((t) => t.isDisposed)).toBe(true);
      opt.apply(entries, g, 0.1);
      expect(tf.memory().numTensors).toBe(before);
      opt.dispose();
      expect(tf.memory().numTensors).toBe(before - 3);
    }
  });

  it('state() and loadState() resume exactly', () => {
    const a = [param('w', [1, -1], 'weight', 'backbone'), param('h', [0.5, 2], 'weight', 'head')];
    const b = [param('w', [1, -1], 'weight', 'backbone'), param('h', [0.5, 2], 'weight', 'head')];
    const g1 = grads({ w: [0.3, -0.2], h: [1, 1] });
    const g2 = grads({ w: [-0.1, 0.4], h: [2, -1] });
    const optA = createOptimizer('sgd', { weightDecay: 0.01 });
    optA.apply(a, g1, 0.1);
    optA.apply(a, g2, 0.1);
    // b gets A's parameters and state, then both continue with the same gradients.
    for (const [i, e] of b.entries()) e.variable.assign(a[i].variable);
    const optB = createOptimizer('sgd', { weightDecay: 0.01 });
    const s = optA.state();
    expect(Object.keys(s).sort()).toEqual(['momentum/h', 'momentum/w']);
    optB.loadState(s);
    optA.apply(a, g1, 0.05);
    optB.apply(b, g1, 0.05);
    for (const [i, e] of a.entries()) expect(values(b[i])).toEqual(values(e));
    optA.dispose();
    optB.dispose();
  });

  it('rejects a missing or mis-shaped gradient and leaves every parameter untouched', () => {
    const w = param('w', [1, 2], 'weight', 'backbone');
    const v = param('v', [3], 'weight', 'backbone');
    const opt = createOptimizer('sgd');
    expect(() => opt.apply([w, v], grads({ w: [1, 1] }), 0.1)).toThrow(/No gradient for parameter 'v'/);
    expect(() => opt.apply([w, v], grads({ w: [1, 1], v: [1, 1] }), 0.1)).toThrow(
      /Gradient of 'v' has shape \[2\] but the parameter has \[1\]/,
    );
    expect(() => opt.apply([w], grads({ w: [1, 1] }), Number.NaN)).toThrow(/Learning rate NaN is not finite/);
    expect(values(w)).toEqual([1, 2]);
    expect(values(v)).toEqual([3]);
    opt.dispose();
  });

  it('rejects a state of another model and bad options', () => {
    const w = param('w', [1, 2], 'weight', 'backbone');
    const opt = createOptimizer('sgd');
    const bad = tf.tensor1d([1, 2, 3]);
    made.push(bad);
    opt.loadState({ 'momentum/w': bad });
    expect(() => opt.apply([w], grads({ w: [1, 1] }), 0.1)).toThrow(/state for 'w' has shape \[3\]/);
    expect(() => opt.loadState({ w: bad })).toThrow(/not a momentum trace/);
    expect(() => createOptimizer('sgd', { momentum: -1 })).toThrow(/momentum = -1/);
    expect(() => createOptimizer('adam' as never)).toThrow(/Unknown optimizer 'adam'/);
    opt.dispose();
  });

  it('does not dispose or change the caller’s gradients', () => {
    const w = param('w', [1], 'weight', 'backbone');
    const g = grads({ w: [2] });
    const opt = createOptimizer('sgd', { momentum: 0.9 });
    opt.apply([w], g, 0.1);
    opt.apply([w], g, 0.1);
    expect(Array.from(g.get('w')!.dataSync())).toEqual([2]);
    opt.dispose();
    expect(g.get('w')!.isDisposed).toBe(false);
  });
});
