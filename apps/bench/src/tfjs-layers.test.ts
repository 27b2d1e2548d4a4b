import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { trainMnistCnn } from './suites/tfjs-layers.js';
import { num, smoke } from './testing.test-util.js';
import { mnist } from './training.js';

describe('tfjs-layers: a tf.sequential CNN on MNIST with forwardVariableGrads', () => {
  it('the example: FG-A and BP side by side on a small subset; both learn', () => {
    const dataset = mnist();
    const before = tf.memory().numTensors;
    // a BP step costs ~10 FG-A steps here (tfjs's cpu Conv2DBackpropFilter): FG-A gets more steps
    const run = (rule: 'bp' | 'fg-a', steps: number) =>
      trainMnistCnn({
        rule,
        dataset,
        steps,
        batchSize: 8,
        learningRate: 1e-3,
        testLimit: 300,
        filters: [4, 8],
      });
    const bp = run('bp', 20);
    const fga = run('fg-a', 100);
    expect(tf.memory().numTensors).toBe(before);
    const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
    expect(bp.losses).toHaveLength(20);
    expect(fga.losses).toHaveLength(100);
    expect(mean(bp.losses.slice(-5))).toBeLessThan(mean(bp.losses.slice(0, 5)));
    // BP is far above chance (0.1) after 160 examples (measured 0.40); FG-A, one noise sample per step, is
    // above it after 800 (0.27; its noisy training loss need not fall yet: Adam's steps on the noise grow
    // the logits while their ranking improves)
    expect(bp.accuracy).toBeGreaterThan(0.3);
    expect(fga.accuracy).toBeGreaterThan(0.18);
  });

  it('the suite at --budget smoke: train rows per rule, step rows with ratios and bytes against BP', async () => {
    // the train rows are the example above (trainMnistCnn); here the step rows only
    const { file, cleanup } = await smoke('tfjs-layers', { filter: ['step|'] });
    expect(file.rows.map((r) => r.key)).toEqual(['step|cnn', 'step|mlp']);
    for (const r of file.rows) expect(r.error).toBeUndefined();
    for (const r of file.rows.filter((x) => x.kind === 'step')) {
      const bp = num(r.bp_ms);
      expect(num(r.fg_w_ratio)).toBeCloseTo(num(r.fg_w_ms) / bp, 2);
      expect(num(r.fg_a_ratio)).toBeCloseTo(num(r.fg_a_ms) / bp, 2);
      expect(num(r.bp_bytes)).toBeGreaterThan(0);
      expect(num(r.fg_a_bytes_ratio)).toBeCloseTo(num(r.fg_a_bytes) / num(r.bp_bytes), 2);
      if (tf.getBackend() === 'cpu') {
        expect(num(r.bp_storage_bytes)).toBeGreaterThan(0);
        // each region once: never more than tfjs's tally, which counts every reshape again
        expect(num(r.bp_storage_bytes)).toBeLessThanOrEqual(num(r.bp_bytes));
        expect(num(r.fg_w_storage_ratio)).toBeCloseTo(num(r.fg_w_storage_bytes) / num(r.bp_storage_bytes), 2);
      }
    }
    expect((file.summary.checks as unknown[]).length).toBe(2);
    cleanup();
  });
});
