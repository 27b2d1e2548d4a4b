import { describe, expect, it } from 'vitest';
import { createSchedule, scaleLr } from './schedule.js';

describe('createSchedule (REFERENCE §4)', () => {
  it('constant, with and without warm-up', () => {
    const lr = createSchedule({ kind: 'constant', baseLr: 0.1, totalSteps: 10 });
    expect([0, 9, 100].map(lr)).toEqual([0.1, 0.1, 0.1]);
    const warm = createSchedule({ kind: 'constant', baseLr: 0.1, totalSteps: 10, warmupSteps: 2 });
    expect([0, 1, 2, 9].map(warm)).toEqual([0, 0.05, 0.1, 0.1]);
  });

  it('linear decays to 0 at the end of training', () => {
    const lr = createSchedule({ kind: 'linear', baseLr: 1, totalSteps: 10 });
    expect(lr(0)).toBe(1);
    expect(lr(5)).toBeCloseTo(0.5, 12);
    expect(lr(9)).toBeCloseTo(0.1, 12);
    expect(lr(10)).toBe(0);
    expect(lr(15)).toBe(0);
    const warm = createSchedule({ kind: 'linear', baseLr: 1, totalSteps: 10, warmupSteps: 2 });
    expect([0, 1, 2].map(warm)).toEqual([0, 0.5, 1]);
    expect(warm(6)).toBeCloseTo(0.5, 12);
    expect(warm(10)).toBe(0);
  });

  it('warmup-cosine: linear warm-up from 0, then cosine to 0', () => {
    const lr = createSchedule({ kind: 'warmup-cosine', baseLr: 1, totalSteps: 10, warmupSteps: 2 });
    expect(lr(0)).toBe(0);
    expect(lr(1)).toBe(0.5);
    expect(lr(2)).toBe(1);
    expect(lr(4)).toBeCloseTo(0.5 * (1 + Math.SQRT1_2), 12); // cos(π/4)
    expect(lr(6)).toBeCloseTo(0.5, 12);
    expect(lr(8)).toBeCloseTo(0.5 * (1 - Math.SQRT1_2), 12);
    expect(lr(10)).toBeCloseTo(0, 12);
    expect(lr(20)).toBeCloseTo(0, 12);
    // the README example
    const ex = createSchedule({ kind: 'warmup-cosine', baseLr: 1.0, totalSteps: 1000, warmupSteps: 100 });
    expect([ex(0), ex(100)]).toEqual([0, 1]);
    expect(ex(550)).toBeCloseTo(0.5, 12);
  });

  it('staircase: × 0.1 at 50 % and again at 80 % of the steps', () => {
    const lr = createSchedule({ kind: 'staircase', baseLr: 1, totalSteps: 10 });
    expect([0, 4].map(lr)).toEqual([1, 1]);
    expect(lr(5)).toBeCloseTo(0.1, 12);
    expect(lr(7)).toBeCloseTo(0.1, 12);
    expect(lr(8)).toBeCloseTo(0.01, 12);
    expect(lr(9)).toBeCloseTo(0.01, 12);
    const odd = createSchedule({ kind: 'staircase', baseLr: 2, totalSteps: 7 });
    expect([odd(2), odd(3), odd(4), odd(5)].map((v) => Number(v.toFixed(10)))).toEqual([2, 0.2, 0.2, 0.02]);
  });

  it('rejects bad options with the value and the fix', () => {
    expect(() => createSchedule({ kind: 'step' as never, baseLr: 1, totalSteps: 10 })).toThrow(
      /Unknown schedule 'step'; use one of constant, linear, warmup-cosine, staircase/,
    );
    expect(() => createSchedule({ kind: 'linear', baseLr: -1, totalSteps: 10 })).toThrow(/baseLr = -1/);
    expect(() => createSchedule({ kind: 'linear', baseLr: 1, totalSteps: 0 })).toThrow(/totalSteps = 0/);
    expect(() => createSchedule({ kind: 'linear', baseLr: 1, totalSteps: 10, warmupSteps: 10 })).toThrow(
      /warmupSteps = 10 is invalid with totalSteps = 10; use a number in \[0, 10\)/,
    );
    // a fractional warm-up ramps linearly: 0.5 of 1.5 steps
    const frac = createSchedule({ kind: 'constant', baseLr: 3, totalSteps: 4, warmupSteps: 1.5 });
    expect([frac(0), frac(1), frac(2)]).toEqual([0, 2, 3]);
    const lr = createSchedule({ kind: 'linear', baseLr: 1, totalSteps: 10 });
    expect(() => lr(-1)).toThrow(/step -1 is invalid/);
  });
});

describe('scaleLr (REFERENCE §4 linear lr scaling)', () => {
  it('multiplies by batch / base', () => {
    expect(scaleLr(0.1, 2048)).toBeCloseTo(0.8, 12);
    expect(scaleLr(0.5, 512)).toBe(1);
    expect(scaleLr(0.1, 512, 128)).toBeCloseTo(0.4, 12);
    expect(() => scaleLr(0.1, 0)).toThrow(/batchSize = 0/);
  });
});
