import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
// README example imports
import * as tf from '@tensorflow/tfjs';
import { softmaxCrossEntropy } from '@fwdgrad/jvp-core';
import { createRandom } from '@fwdgrad/random';
import { forwardGradient, plainSites, type Sites } from './index.js';
// README example imports end

describe('README example', () => {
  it('trains a small MLP on a toy problem with FG-W and FG-A', async () => {
    // README example start
    // Toy problem: is a 2-D point inside the circle of radius 1.2?
    const random = createRandom(0);
    const x = random.normal([256, 2]);
    const labels = tf.oneHot(tf.cast(tf.less(tf.sum(tf.square(x), 1), 1.44), 'int32'), 2);

    // The model, written once against Sites: sites.linear(name, x, w, b) = relu(x·w + b) (+ noise for FG-A).
    const mlp = ([w1, b1, w2, b2]: tf.Tensor[], sites: Sites) => {
      const h = sites.linear('hidden', x, w1, b1);
      const logits = sites.linear('out', h, w2, b2, { activation: 'none' });
      return softmaxCrossEntropy(labels, logits); // per-example losses [N]
    };
    const accuracy = (ps: tf.Tensor[]) =>
      tf.tidy(() => {
        const logits = plainSites.linear('out', plainSites.linear('hidden', x, ps[0], ps[1]), ps[2], ps[3], {
          activation: 'none',
        });
        return tf
          .mean(tf.cast(tf.equal(tf.argMax(logits, 1), tf.argMax(labels, 1)), 'float32'))
          .dataSync()[0];
      });

    const results: Record<string, { before: number; after: number }> = {};
    for (const perturb of ['weight', 'activity'] as const) {
      const params = [
        random.normal([2, 32]),
        tf.zeros([32]),
        tf.mul(random.normal([32, 2]), 0.1),
        tf.zeros([2]),
      ];
      const before = accuracy(params);
      for (let step = 0; step < 100; step++) {
        const { value, grads } = forwardGradient(mlp, params, { perturb, random, samples: 8 });
        params.forEach((p, i) => {
          params[i] = tf.sub(p, tf.mul(grads[i], 0.2)); // SGD
          p.dispose();
        });
        tf.dispose([value, ...grads]);
      }
      results[perturb] = { before, after: accuracy(params) };
      tf.dispose(params);
    }
    console.log(results); // accuracy before and after: ~50 % → ~98 % for both
    // README example end
    for (const perturb of ['weight', 'activity']) {
      expect(results[perturb].before).toBeLessThan(0.6);
      expect(results[perturb].after).toBeGreaterThan(0.9);
    }
    tf.dispose([x, labels]);
  });

  it('is the code shown in README.md', () => {
    const self = readFileSync(new URL(import.meta.url), 'utf8');
    const between = (text: string, start: string, end: string) =>
      text.slice(text.indexOf(start) + start.length, text.indexOf(end)).split('\n');
    const imports = between(self, '// README example imports\n', '// README example imports end')
      .map((l) => l.replace("'./index.js'", "'@fwdgrad/perturbation'"))
      .filter((l) => l !== '');
    const body = between(self, '// README example start\n', '    // README example end').map((l) =>
      l.slice(4),
    );
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const block = readme.slice(
      readme.indexOf('```ts\n') + 6,
      readme.indexOf('```', readme.indexOf('```ts\n') + 6),
    );
    expect(block.trimEnd()).toBe([...imports, '', ...body].join('\n').trimEnd());
  });
});
