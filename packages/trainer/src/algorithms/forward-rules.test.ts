import * as tf from '@tensorflow/tfjs';

import { describe, expect, it } from 'vitest';
import { createAlgorithm } from './registry.js';
import { disposeBatch, syntheticBatch, syntheticViews, tinyModel, trainTiny } from './testing.test-util.js';
import { createRandom } from '@fwdgrad/random';

function trainLosses(id: string, steps: number, lr: number, options = {}) {
  const { primary, leaked } = trainTiny(id, steps, lr, options);
  return { losses: primary, leaked };
}

const SEED = Number(process.env.FG_SEED ?? 1000);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('forward-gradient rules lower the training loss on a small synthetic problem', () => {
  for (const [id, options] of [
    ['lg-fg-a', {}],
    ['lg-fg-a', { samples: 4, noise: 'rademacher' }],
    ['lg-fg-a', { normGradient: false, reluMask: false }],
    // one-sample global FG-A is too noisy for a 40-step window on this problem (loss ratio 1.10 at
    // lr 0.01 with tfjs's own kernels); 8 samples give 0.55-0.61
    ['fg-a', { samples: 8 }],
    ['lg-fg-w', {}],
    // global FG-W with 8 samples was chaotic at lr 0.01 (ratio 0.75-1.11 as rounding changed: tfjs
    // vs native kernels, the classifier's gradient with or without a tape); 16 samples at lr 0.003
    // give 0.64 with both kernel sets
    ['fg-w', { samples: 16 }],
  ] as const) {
    it(`${id} ${JSON.stringify(options)}`, () => {
      // lr 0.01, not 0.02: at 0.02 several curves were chaotic (float32 rounding order alone — native
      // vs JavaScript kernels, AVX-512 vs AVX2 BLAS — changed whether a run ended lower); at 0.01 the
      // loss ratios were 0.32-0.67 in all three configurations, against the 0.95 asked here
      const { losses, leaked } = trainLosses(id, 40, id === 'fg-w' ? 0.003 : 0.01, options);
      expect(mean(losses.slice(-5))).toBeLessThan(mean(losses.slice(0, 5)) * 0.95);
      expect(leaked).toBe(0);
    });
  }
});

describe('LG-FG-A is unbiased for the LG-BP gradient of the same local losses', () => {
  it('the mean of many estimates approaches the LG-BP gradient (tolerance from the variance)', () => {
    const model = tinyModel(11);
    const batch = syntheticBatch(model, 12);
    const exact = createAlgorithm('lg-bp', model).step(model, batch, createRandom(0)).grads;
    const fg = createAlgorithm('lg-fg-a', model, { samples: 32 });
    const reps = 24;
    const names = model.entries
      .filter((e) => e.group === 'backbone' && e.kind === 'weight')
      .map((e) => e.name);
    const estimates = new Map<string, tf.Tensor[]>(names.map((n) => [n, []]));
    for (let r = 0; r < reps; r++) {
      const { grads } = fg.step(model, batch, createRandom(SEED + r));
      for (const n of names) estimates.get(n)?.push(grads.get(n) as tf.Tensor);
    }
    // Per coordinate z = (mean − g) / (s / √reps): for an unbiased estimator z follows a t
    // distribution (reps − 1 degrees of freedom), E[z²] = (reps − 1)/(reps − 3) ≈ 1.1 (seen here: 0.8–1.4 over seeds; a swapped group mapping gives ≫ 10).
    let zSum = 0;
    let count = 0;
    let signal = 0;
    for (const n of names) {
      const stack = tf.stack(estimates.get(n) as tf.Tensor[]); // [reps, ...]
      const m = tf.mean(stack, 0);
      const v = tf.div(tf.sum(tf.square(tf.sub(stack, m)), 0), reps - 1);
      const g = exact.get(n) as tf.Tensor;
      const z2 = tf.div(tf.square(tf.sub(m, g)), tf.add(tf.div(v, reps), 1e-20));
      zSum += tf.sum(z2).dataSync()[0];
      count += g.size;
      signal += tf.sum(tf.div(tf.square(g), tf.add(tf.div(v, reps), 1e-20))).dataSync()[0];
    }
    expect(zSum / count).toBeLessThan(2);
    // the test has power: the gradient itself stands far out of the estimator's noise
    expect(signal / count).toBeGreaterThan(10);
    disposeBatch(batch);
  });
});

describe('forward-gradient rules: heads and the final layer get their exact gradients', () => {
  // The local heads learn by backprop on detached block outputs, from the head evaluation of the one
  // forward pass (`replicasWithHeadGradient`); the classifier by backprop on the detached last output.
  // Both must equal LG-BP's, whose features are the same numbers.
  const cases: [string, string, Record<string, unknown>, Record<string, unknown>][] = [
    ['supervised', 'lg-fg-a', {}, {}],
    ['supervised', 'lg-fg-w', {}, {}],
    ['supervised', 'lg-fg-a', { headGradient: 'replicas', lossImpl: 'naive' }, {}],
    ['supervised', 'lg-fg-a', { losses: { block: false, patch: true, group: false } }, {}],
    ['contrastive', 'lg-fg-a', {}, { objective: 'contrastive', projectionDim: 8 }],
  ];
  for (const [objective, id, options, overrides] of cases) {
    it(`${objective} ${id} ${JSON.stringify(options)}`, () => {
      const model = tinyModel(21, overrides);
      const batch = objective === 'contrastive' ? syntheticViews(model, 6) : syntheticBatch(model, 10);
      // LG-BP with the same replication (block placement only changes the backbone's gradients)
      const losses = (options.losses as Record<string, boolean> | undefined) ?? {};
      const ref = createAlgorithm('lg-bp', model, {
        ...options,
        losses: { ...losses, block: true } as never,
      });
      const exact = ref.step(model, batch, createRandom(0));
      const got = createAlgorithm(id, model, options).step(model, batch, createRandom(1));
      const names = [...got.grads.keys()].filter((n) => !n.startsWith('backbone.'));
      expect(names.filter((n) => n.startsWith('head.')).length).toBe(2 * model.config.blocks);
      expect(names.some((n) => n.startsWith('classifier.'))).toBe(objective === 'supervised');
      for (const n of names) {
        const d = tf.max(tf.abs(tf.sub(got.grads.get(n) as tf.Tensor, exact.grads.get(n) as tf.Tensor)));
        const scale = tf.max(tf.abs(exact.grads.get(n) as tf.Tensor));
        expect(d.dataSync()[0]).toBeLessThan(1e-5 * Math.max(1, scale.dataSync()[0]));
        expect(scale.dataSync()[0]).toBeGreaterThan(0);
      }
      expect(got.localLoss as number).toBeCloseTo(exact.localLoss as number, 5);
      expect(got.loss).toBeCloseTo(exact.loss, 5);
      tf.dispose([...got.grads.values(), ...exact.grads.values()]);
      disposeBatch(batch);
    });
  }
});

describe('placements without a post-linear norm', () => {
  it("LG-FG-A's estimate through the identity normalisation equals the NG estimate (its VJP is the cotangent)", () => {
    const model = tinyModel(31, { placement: 'begin' });
    expect(model.config.placement.postLinear).toBe(false);
    const batch = syntheticBatch(model, 8);
    const withVjp = createAlgorithm('lg-fg-a', model).step(model, batch, createRandom(3));
    const without = createAlgorithm('lg-fg-a', model, { normGradient: false }).step(
      model,
      batch,
      createRandom(3),
    );
    const names = [...withVjp.grads.keys()].filter((n) => n.startsWith('backbone.'));
    expect(names.length).toBeGreaterThan(0);
    for (const n of names) {
      const a = withVjp.grads.get(n) as tf.Tensor;
      expect(tf.max(tf.abs(a)).dataSync()[0]).toBeGreaterThan(0);
      expect(Array.from(a.dataSync())).toEqual(Array.from((without.grads.get(n) as tf.Tensor).dataSync()));
    }
    tf.dispose([...withVjp.grads.values(), ...without.grads.values()]);
    disposeBatch(batch);
  });
});
