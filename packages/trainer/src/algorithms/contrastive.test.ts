import * as tf from '@tensorflow/tfjs';

import { describe, expect, it } from 'vitest';
import { createOptimizer } from '../optim.js';
import { createAlgorithm } from './registry.js';
import { disposeBatch, syntheticViews, tinyModel } from './testing.test-util.js';
import { createRandom } from '@fwdgrad/random';

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('contrastive objective (InfoNCE with stop-gradient keys, two views)', () => {
  // Table 4's protocol rules must learn; DFA and LG-FG-W run (finite updates of the right shapes)
  for (const id of ['bp', 'lg-bp', 'fa', 'lg-fa', 'fg-a', 'lg-fg-a', 'dfa', 'lg-fg-w']) {
    const mustLearn = !['dfa', 'lg-fg-w'].includes(id);
    it(`${id} ${mustLearn ? 'lowers its training loss' : 'gives finite updates'}, never training the classifier in the main step`, () => {
      const model = tinyModel(3, { objective: 'contrastive', projectionDim: 8 });
      const batch = syntheticViews(model);
      const algo = createAlgorithm(id, model, {}, createRandom(5));
      expect(algo.trainable(model).some((n) => n.startsWith('classifier'))).toBe(false);
      const opt = createOptimizer('sgd', { momentum: 0.9 });
      // FA at 0.05 sits where 30 steps are chaotic: float32 rounding order alone (OpenBLAS's AVX-512 vs
      // AVX2 kernels under the native backend) moved its loss ratio from 0.86 to 1.02; at 0.03 it is
      // 0.73-0.83 in every configuration measured
      // The forward-gradient rules at 0.05 were chaotic too once the noise stream was drawn in blocks
      // (LG-FG-A's ratio 0.77-1.11 over four noise seeds); at 0.02 LG-FG-A is 0.81-0.97 and FG-A
      // 0.90-1.00 (0.95 on this test's seed) with tfjs's and the native kernels
      const lr = id === 'fa' ? 0.03 : id === 'lg-fg-a' || id === 'fg-a' ? 0.02 : 0.05;
      const losses: number[] = [];
      for (let s = 0; s < 30; s++) {
        const r = algo.step(model, batch, createRandom(100 + s));
        expect(r.accuracy).toBeUndefined();
        losses.push(r.localLoss ?? r.loss);
        for (const [name, g] of r.grads) {
          expect(g.shape).toEqual(model.entry(name).variable.shape);
          expect(Number.isFinite(tf.sum(tf.abs(g)).dataSync()[0])).toBe(true);
        }
        opt.apply(
          model.entries.filter((e) => r.grads.has(e.name)),
          r.grads,
          lr,
        );
        tf.dispose([...r.grads.values()]);
      }
      algo.dispose();
      opt.dispose();
      disposeBatch(batch);
      model.dispose();
      if (mustLearn) expect(mean(losses.slice(-5))).toBeLessThan(mean(losses.slice(0, 5)));
    });
  }

  it('FG-A gives both views the same noise: swapping the views leaves the estimate unchanged', () => {
    const model = tinyModel(4, { objective: 'contrastive', projectionDim: 8 });
    const batch = syntheticViews(model, 8);
    const swapped = { ...batch, x: tf.concat(tf.split(batch.x, 2, 0).reverse(), 0) };
    const algo = createAlgorithm('lg-fg-a', model);
    const a = algo.step(model, batch, createRandom(9)).grads.get('backbone.0.w') as tf.Tensor;
    const b = algo.step(model, swapped, createRandom(9)).grads.get('backbone.0.w') as tf.Tensor;
    const diff = tf.max(tf.abs(tf.sub(a, b))).dataSync()[0];
    const scale = tf.max(tf.abs(a)).dataSync()[0];
    expect(diff / scale).toBeLessThan(1e-4);
    disposeBatch(batch);
  });
});
