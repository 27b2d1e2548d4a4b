import type * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createRandom, hashSeed, NORMAL_BLOCK, type Random, shuffleInPlace, streamId } from './index.js';

const values = (t: tf.Tensor) => {
  const v = Array.from(t.dataSync());
  t.dispose();
  return v;
};
const uniforms = (r: Random, n: number) => Array.from({ length: n }, () => r.uniform());

describe('createRandom', () => {
  it('is deterministic per seed, differs across seeds, and keeps its pinned stream', () => {
    expect(uniforms(createRandom(42), 5)).toEqual(uniforms(createRandom(42), 5));
    expect(uniforms(createRandom(43), 5)).not.toEqual(uniforms(createRandom(42), 5));
    // splitmix32 from counter 0: pinned so that a change of any consumer's numbers cannot go unnoticed
    const r = createRandom(0);
    expect(r.key).toBe(0);
    expect(r.uniform() * 2 ** 32).toBe(0x64625032);
    expect(createRandom(2 ** 32 + 7).key).toBe(7);
    expect(createRandom(7.9).key).toBe(7);
    expect(() => createRandom(Number.NaN)).toThrow(/seed must be a finite number/);
  });

  it('draws uniforms in [lo, hi) with mean 1/2 and variance 1/12 on [0, 1)', () => {
    const r = createRandom(7);
    const n = 20000;
    const u = uniforms(r, n);
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    const mean = u.reduce((a, v) => a + v, 0) / n;
    const variance = u.reduce((a, v) => a + v * v, 0) / n - mean * mean;
    // 4.5 standard errors: sd of the mean is sqrt(1/12/n) ≈ 0.002
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.01);
    expect(Math.abs(variance - 1 / 12)).toBeLessThan(0.003);
    const a = createRandom(3);
    const b = createRandom(3);
    expect(a.uniform(-2, 6)).toBe(-2 + 8 * b.uniform());
  });

  it('int(n) is uniform over 0..n-1 (chi-square) and bernoulli(p) hits p', () => {
    const r = createRandom(3);
    const counts = new Array(6).fill(0);
    const n = 12000;
    for (let i = 0; i < n; i++) counts[r.int(6)]++;
    const expected = n / 6;
    const chi2 = counts.reduce((a, c) => a + (c - expected) ** 2 / expected, 0);
    // chi-square with 5 dof: P(> 20.5) ≈ 0.001
    expect(chi2).toBeLessThan(20.5);
    expect(() => r.int(0)).toThrow(/positive integer/);
    let hits = 0;
    for (let i = 0; i < n; i++) if (r.bernoulli(0.3)) hits++;
    expect(Math.abs(hits / n - 0.3)).toBeLessThan(0.015);
  });

  it('standardNormal() has mean 0, variance 1 and E[z⁴] = 3', () => {
    const r = createRandom(11);
    const n = 40000;
    const z = Array.from({ length: n }, () => r.standardNormal());
    const m = (k: number) => z.reduce((acc, v) => acc + v ** k, 0) / n;
    expect(Math.abs(m(1))).toBeLessThan(0.02);
    expect(Math.abs(m(2) - 1)).toBeLessThan(0.03);
    expect(Math.abs(m(4) - 3)).toBeLessThan(0.15);
  });

  it('normal(shape) is N(0, 1) up to the fourth moment and the tails; rademacher(shape) is ±1', () => {
    expect(values(createRandom(5).normal([4]))).toEqual(values(createRandom(5).normal([4])));
    // the ziggurat sampler: moments up to the fourth (the variance theory of Table 1 uses E[v⁴] = 3)
    // and tail frequencies of N(0, 1)
    const draws = values(createRandom(1).normal([400000]));
    const m = (k: number) => draws.reduce((acc, v) => acc + v ** k, 0) / draws.length;
    expect(Math.abs(m(1))).toBeLessThan(0.005);
    expect(Math.abs(m(2) - 1)).toBeLessThan(0.01);
    expect(Math.abs(m(3))).toBeLessThan(0.02);
    expect(Math.abs(m(4) - 3)).toBeLessThan(0.06);
    const frac = (f: (v: number) => boolean) => draws.filter(f).length / draws.length;
    expect(Math.abs(frac((v) => Math.abs(v) > 1.959964) - 0.05)).toBeLessThan(0.002);
    expect(Math.abs(frac((v) => v > 3) - 0.0013499)).toBeLessThan(0.0004);
    expect(Math.abs(frac((v) => v < -3.5) - 0.0002326)).toBeLessThan(0.00012);
    const t = createRandom(1).normal([2, 3]);
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('float32');
    t.dispose();
    const r = values(createRandom(2).rademacher([1000]));
    expect(new Set(r)).toEqual(new Set([-1, 1]));
    expect(Math.abs(r.reduce((s, v) => s + v, 0) / 1000)).toBeLessThan(0.1);
  });

  it('normals(shapes) is one normal request of the total size, cut in order into views of one buffer', () => {
    const shapes = [[3, 2000], [7], [4096], [1, 1]];
    const total = 6000 + 7 + 4096 + 1;
    const a = createRandom(21);
    const parts = a.normals(shapes);
    const afterA = a.uniform();
    const b = createRandom(21);
    const whole = values(b.normal([total]));
    expect(b.uniform()).toBe(afterA); // the stream moves on as that one request does
    expect(parts.map((t) => t.shape)).toEqual(shapes);
    expect(parts.flatMap((t) => Array.from(t.dataSync()))).toEqual(whole);
    // on the cpu backend: views of one buffer (no copy); releasing one leaves the others intact
    const buffers = new Set(parts.map((t) => (t.dataSync() as Float32Array).buffer));
    expect(buffers.size).toBe(1);
    parts[0].dispose();
    expect(Array.from(parts[2].dataSync())).toEqual(whole.slice(6007, 6007 + 4096));
    for (const t of parts.slice(1)) t.dispose();
  });

  it('draws a normal request in independent blocks: block b does not depend on the blocks before it', () => {
    // a request of two blocks: its second block equals the first block of a request that starts where the
    // generator would have been after one block's stride
    const two = values(createRandom(9).normal([2 * NORMAL_BLOCK]));
    const one = createRandom(9);
    values(one.normal([NORMAL_BLOCK]));
    expect(values(one.normal([NORMAL_BLOCK]))).toEqual(two.slice(NORMAL_BLOCK));
  });
});

describe('derive: named streams', () => {
  it('is createRandom(hashSeed(key, ...ids)), names mapped by streamId', () => {
    const root = createRandom(3);
    expect(root.derive(2, 17).key).toBe(hashSeed(3, 2, 17));
    expect(root.derive('shuffle', 4).key).toBe(hashSeed(3, streamId('shuffle'), 4));
    expect(uniforms(root.derive('a'), 3)).toEqual(uniforms(createRandom(hashSeed(3, streamId('a'))), 3));
    expect(streamId('a')).not.toBe(streamId('b'));
  });

  it('depends on the key and the path only: drawing from the parent or a sibling moves nothing', () => {
    const quiet = createRandom(1);
    const busy = createRandom(1);
    const before = uniforms(quiet.derive('init'), 4);
    uniforms(busy, 1000); // the parent draws
    values(busy.derive('noise').normal([5000])); // a new consumer draws from its own stream
    expect(uniforms(busy.derive('init'), 4)).toEqual(before);
  });

  it('gives unrelated streams to different names and indices', () => {
    const root = createRandom(0);
    const a = uniforms(root.derive('step', 0), 200);
    const b = uniforms(root.derive('step', 1), 200);
    const mean = (x: number[]) => x.reduce((s, v) => s + v, 0) / x.length;
    const ma = mean(a);
    const mb = mean(b);
    const cov = a.reduce((s, v, i) => s + (v - ma) * (b[i] - mb), 0) / a.length;
    expect(Math.abs(cov / (1 / 12))).toBeLessThan(0.25); // correlation of 200 pairs: sd ≈ 0.07
    expect(a).not.toEqual(uniforms(root.derive('init', 0), 200));
  });
});

describe('hashSeed', () => {
  it('separates (seed, epoch) pairs that a plain sum would confuse', () => {
    expect(hashSeed(1, 0)).not.toBe(hashSeed(0, 1));
    expect(hashSeed(5, 2)).toBe(hashSeed(5, 2));
    expect(hashSeed(5, 2)).not.toBe(hashSeed(5, 2, 0));
    expect(hashSeed(2 ** 40)).not.toBe(hashSeed(0));
    expect(() => hashSeed(1.5)).toThrow(/safe integers, got 1.5/);
  });
});

describe('shuffleInPlace', () => {
  it('returns a permutation, deterministic per seed', () => {
    const identity = Array.from({ length: 50 }, (_, i) => i);
    const a = shuffleInPlace([...identity], createRandom(1));
    expect(a).toEqual(shuffleInPlace([...identity], createRandom(1)));
    expect([...a].sort((x, y) => x - y)).toEqual(identity);
    expect(a).not.toEqual(identity);
  });

  it('puts each element in each position equally often', () => {
    const r = createRandom(9);
    const counts = Array.from({ length: 4 }, () => new Array(4).fill(0));
    const n = 8000;
    for (let t = 0; t < n; t++) {
      shuffleInPlace([0, 1, 2, 3], r).forEach((v, pos) => {
        counts[v][pos]++;
      });
    }
    for (const row of counts) for (const c of row) expect(Math.abs(c / n - 0.25)).toBeLessThan(0.02);
  });
});
