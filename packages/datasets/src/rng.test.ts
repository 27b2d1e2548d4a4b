import { describe, expect, it } from 'vitest';
import { createRng, hashSeed, shuffleInPlace } from './rng.js';

describe('createRng', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = Array.from({ length: 5 }, createRng(42).next);
    const b = createRng(42);
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(a);
    const c = createRng(43);
    expect(Array.from({ length: 5 }, () => c.next())).not.toEqual(a);
  });

  it('draws uniform values in [0, 1) with mean 1/2 and variance 1/12', () => {
    const rng = createRng(7);
    const n = 20000;
    let sum = 0;
    let sumSq = 0;
    let min = 1;
    let max = 0;
    for (let i = 0; i < n; i++) {
      const v = rng.next();
      min = Math.min(min, v);
      max = Math.max(max, v);
      sum += v;
      sumSq += v * v;
    }
    expect(min).toBeGreaterThanOrEqual(0);
    expect(max).toBeLessThan(1);
    const mean = sum / n;
    // 4.5 standard errors: sd of the mean is sqrt(1/12/n) ≈ 0.002.
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.01);
    expect(Math.abs(sumSq / n - mean * mean - 1 / 12)).toBeLessThan(0.003);
  });

  it('int(n) is uniform over 0..n-1 (chi-square)', () => {
    const rng = createRng(3);
    const counts = new Array(6).fill(0);
    const n = 12000;
    for (let i = 0; i < n; i++) counts[rng.int(6)]++;
    const expected = n / 6;
    const chi2 = counts.reduce((a, c) => a + (c - expected) ** 2 / expected, 0);
    // chi-square with 5 dof: P(> 20.5) ≈ 0.001.
    expect(chi2).toBeLessThan(20.5);
    expect(() => rng.int(0)).toThrow(/positive integer/);
  });

  it('normal() has mean 0 and variance 1', () => {
    const rng = createRng(11);
    const n = 20000;
    let sum = 0;
    let sumSq = 0;
    for (let i = 0; i < n; i++) {
      const z = rng.normal();
      sum += z;
      sumSq += z * z;
    }
    expect(Math.abs(sum / n)).toBeLessThan(0.03);
    expect(Math.abs(sumSq / n - 1)).toBeLessThan(0.04);
  });

  it('rejects non-integer seeds with a message', () => {
    expect(() => createRng(1.5)).toThrow(/seed must be a safe integer, got 1.5/);
  });
});

describe('hashSeed', () => {
  it('separates (seed, epoch) pairs that a plain sum would confuse', () => {
    expect(hashSeed(1, 0)).not.toBe(hashSeed(0, 1));
    expect(hashSeed(5, 2)).toBe(hashSeed(5, 2));
    expect(hashSeed(5, 2)).not.toBe(hashSeed(5, 2, 0));
    expect(hashSeed(2 ** 40)).not.toBe(hashSeed(0));
  });
});

describe('shuffleInPlace', () => {
  it('returns a permutation, deterministic per seed', () => {
    const a = shuffleInPlace(
      Array.from({ length: 50 }, (_, i) => i),
      createRng(1),
    );
    const b = shuffleInPlace(
      Array.from({ length: 50 }, (_, i) => i),
      createRng(1),
    );
    expect(a).toEqual(b);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(a).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('puts each element in each position equally often', () => {
    const rng = createRng(9);
    const counts = Array.from({ length: 4 }, () => new Array(4).fill(0));
    const n = 8000;
    for (let t = 0; t < n; t++) {
      const p = shuffleInPlace([0, 1, 2, 3], rng);
      p.forEach((v, pos) => {
        counts[v][pos]++;
      });
    }
    for (const row of counts) for (const c of row) expect(Math.abs(c / n - 0.25)).toBeLessThan(0.02);
  });
});
