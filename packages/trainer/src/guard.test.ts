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
      checkFinite(Number.NaN, { step: 1234, epoch: 5, checkpoint: 'runs/a/checkpoint-4.bin', lr: 0.05 });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DivergenceError);
    const e = caught as DivergenceError;
    expect(e.name).toBe('DivergenceError');
    expect(e.message).toBe(
      'Training diverged: loss is NaN at step 1234 (epoch 5). Stopped. The last good checkpoint ' +
        '(runs/a/checkpoint-4.bin) is kept: continue from it with a lower learning rate, --resume --lr 0.005 ' +
        '(the change is recorded in the run\'s config.json "history").',
    );
    expect([e.step, e.epoch, e.checkpoint]).toEqual([1234, 5, 'runs/a/checkpoint-4.bin']);
    expect(Number.isNaN(e.value)).toBe(true);
  });

  it('catches infinities and says when no checkpoint exists yet', () => {
    expect(() =>
      checkFinite(Number.POSITIVE_INFINITY, { step: 7, epoch: 1, what: 'train loss', lr: 0.1 }),
    ).toThrow(
      'Training diverged: train loss is Infinity at step 7 (epoch 1). Stopped. No checkpoint was written ' +
        'yet: start again with a lower learning rate, e.g. --lr 0.01.',
    );
    expect(() => checkFinite(Number.NEGATIVE_INFINITY, { step: 8, epoch: 1 })).toThrow(DivergenceError);
  });
});
