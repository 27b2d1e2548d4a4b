import { describe, expect, it } from 'vitest';
import { checkFinite, DivergenceError } from './guard.js';

describe('checkFinite (issue 8 item 4 divergence guard)', () => {
  it('passes finite values through', () => {
    expect(checkFinite(0.25, { step: 3, epoch: 0 })).toBe(0.25);
    expect(checkFinite(-1e30, { step: 3, epoch: 0 })).toBe(-1e30);
  });

  it('throws a DivergenceError naming the step and keeping the last good checkpoint', () => {
    let caught: unknown;
    try {
      checkFinite(Number.NaN, { step: 1234, epoch: 5, checkpoint: 'runs/a/checkpoint-4.bin' });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DivergenceError);
    const e = caught as DivergenceError;
    expect(e.name).toBe('DivergenceError');
    expect(e.message).toBe(
      'Training diverged: loss is NaN at step 1234 (epoch 5). Stopped; the last good checkpoint ' +
        '(runs/a/checkpoint-4.bin) is kept. Lower the learning rate, then resume or start again.',
    );
    expect([e.step, e.epoch, e.checkpoint]).toEqual([1234, 5, 'runs/a/checkpoint-4.bin']);
    expect(Number.isNaN(e.value)).toBe(true);
  });

  it('catches infinities and says when no checkpoint exists yet', () => {
    expect(() => checkFinite(Number.POSITIVE_INFINITY, { step: 7, epoch: 0, what: 'train loss' })).toThrow(
      'Training diverged: train loss is Infinity at step 7 (epoch 0). Stopped; the last good checkpoint in ' +
        'the run folder is kept (none was written yet).',
    );
    expect(() => checkFinite(Number.NEGATIVE_INFINITY, { step: 8, epoch: 1 })).toThrow(DivergenceError);
  });
});
