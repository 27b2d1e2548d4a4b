import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createRandom } from '@fwdgrad/random';
import { flipHorizontal } from './augment.js';
import { batches, epochOrder, numBatches, viewBatches } from './batching.js';
import type { Split } from './types.js';
import { byolViewConfigs, viewAugment } from './views.js';

function makeSplit(count: number, h: number, w: number, c: number, seed = 1): Split {
  const rng = createRandom(seed);
  return {
    images: Uint8Array.from({ length: count * h * w * c }, () => rng.int(256)),
    labels: Uint8Array.from({ length: count }, (_, i) => i % 10),
    count,
    shape: [h, w, c],
  };
}

describe('epochOrder', () => {
  const split = makeSplit(20, 2, 2, 1);
  it('is a permutation, the same for the same (seed, epoch), different across epochs', () => {
    const a = Array.from(epochOrder(split, { seed: 3, epoch: 0 }));
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(Array.from(epochOrder(split, { seed: 3, epoch: 0 }))).toEqual(a);
    expect(Array.from(epochOrder(split, { seed: 3, epoch: 1 }))).not.toEqual(a);
    expect(Array.from(epochOrder(split, { seed: 4, epoch: 0 }))).not.toEqual(a);
  });

  it('limit takes a fixed subset; no shuffle keeps order; errors name the fix', () => {
    const sub = Array.from(epochOrder(split, { seed: 1, limit: 7 }));
    expect([...sub].sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(Array.from(epochOrder(split, { shuffle: false, limit: 3 }))).toEqual([0, 1, 2]);
    expect(() => epochOrder(split, { limit: 21, shuffle: false })).toThrow(
      /limit must be an integer in \[1, 20\].*got 21/,
    );
    expect(() => epochOrder(split, {})).toThrow(/seed is required when shuffling/);
  });
});

describe('batches', () => {
  it('yields normalised float32 images and int32 labels matching the indices', () => {
    const split = makeSplit(5, 2, 3, 2);
    const norm = { mean: [0.5, 0.25], std: [0.2, 0.4] };
    const out = [...batches(split, { batchSize: 2, shuffle: false, normalize: norm })];
    expect(out.map((b) => b.images.shape)).toEqual([
      [2, 2, 3, 2],
      [2, 2, 3, 2],
      [1, 2, 3, 2],
    ]);
    const b = out[1];
    expect(b.images.dtype).toBe('float32');
    expect(b.labels.dtype).toBe('int32');
    expect(Array.from(b.indices)).toEqual([2, 3]);
    expect(Array.from(b.labels.dataSync())).toEqual([2, 3]);
    const values = b.images.dataSync();
    for (let i = 0; i < values.length; i++) {
      const raw = split.images[2 * 12 + i];
      const ch = i % 2;
      expect(values[i]).toBeCloseTo((raw / 255 - norm.mean[ch]) / norm.std[ch], 5);
    }
    for (const x of out) tf.dispose([x.images, x.labels]);
  });

  it('normalize: false keeps [0, 1] values; dropLast and limit set the batch count', () => {
    const split = makeSplit(10, 1, 1, 1);
    const all = [...batches(split, { batchSize: 4, shuffle: false, normalize: false })];
    expect(Array.from(all[0].images.dataSync())).toEqual(
      Array.from(split.images.subarray(0, 4), (v) => Math.fround(v / 255)),
    );
    expect(all.length).toBe(3);
    const dropped = [...batches(split, { batchSize: 4, seed: 0, dropLast: true, normalize: false })];
    expect(dropped.map((b) => b.indices.length)).toEqual([4, 4]);
    expect(numBatches(split, { batchSize: 4, dropLast: true })).toBe(2);
    expect(numBatches(split, { batchSize: 4, limit: 9 })).toBe(3);
    const limited = [...batches(split, { batchSize: 4, seed: 0, limit: 6, normalize: false })];
    expect(limited.flatMap((b) => Array.from(b.indices)).sort()).toEqual([0, 1, 2, 3, 4, 5]);
    for (const x of [...all, ...dropped, ...limited]) tf.dispose([x.images, x.labels]);
  });

  it('covers every example once per epoch in the seeded order', () => {
    const split = makeSplit(13, 1, 1, 1);
    const idx = [...batches(split, { batchSize: 5, seed: 2, epoch: 3, normalize: false })].flatMap((b) => {
      tf.dispose([b.images, b.labels]);
      return Array.from(b.indices);
    });
    expect(idx).toEqual(Array.from(epochOrder(split, { seed: 2, epoch: 3 })));
  });

  it('augmentation is seeded per (seed, epoch, example), independent of batch size', () => {
    const split = makeSplit(6, 4, 4, 3);
    const augment = viewAugment(byolViewConfigs({ outputSize: [3, 3], areaLowerBound: 0.5 })[0]);
    const byIndex = (batchSize: number, epoch: number) => {
      const m = new Map<number, number[]>();
      for (const b of batches(split, { batchSize, seed: 7, epoch, augment, normalize: false })) {
        expect(b.images.shape.slice(1)).toEqual([3, 3, 3]);
        const data = b.images.dataSync();
        b.indices.forEach((ex, k) => {
          m.set(ex, Array.from(data.subarray(k * 27, (k + 1) * 27)));
        });
        tf.dispose([b.images, b.labels]);
      }
      return m;
    };
    const a = byIndex(2, 0);
    const b = byIndex(4, 0);
    const c = byIndex(2, 1);
    for (let i = 0; i < 6; i++) expect(a.get(i)).toEqual(b.get(i));
    expect(a.get(0)).not.toEqual(c.get(0));
    expect(() => [...batches(split, { batchSize: 2, shuffle: false, augment, normalize: false })]).toThrow(
      /seed is required when augmenting/,
    );
  });

  it("augments example i of epoch e with the stream createRandom(seed).derive('augment', e, i, view)", () => {
    const split = makeSplit(3, 2, 2, 1);
    const seen: number[] = [];
    const augment = (im: any, rng: any) => {
      seen.push(rng.key);
      return flipHorizontal(im);
    };
    for (const b of batches(split, {
      batchSize: 3,
      shuffle: false,
      seed: 5,
      epoch: 2,
      augment,
      normalize: false,
    })) {
      tf.dispose([b.images, b.labels]);
    }
    expect(seen).toEqual([0, 1, 2].map((i) => createRandom(5).derive('augment', 2, i, 0).key));
  });

  it('does not leak tensors: only the yielded ones exist until disposed', () => {
    const split = makeSplit(9, 2, 2, 1);
    const before = tf.memory().numTensors;
    for (const b of batches(split, { batchSize: 4, seed: 1, normalize: { mean: [0.5], std: [0.5] } })) {
      expect(tf.memory().numTensors).toBe(before + 2);
      tf.dispose([b.images, b.labels]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects bad options with messages', () => {
    const split = makeSplit(4, 1, 1, 3);
    expect(() => [...batches(split, { batchSize: 0, seed: 1, normalize: false })]).toThrow(
      /batchSize must be a positive integer, got 0/,
    );
    expect(() => [...batches(split, { batchSize: 2, seed: 1, normalize: { mean: [0], std: [1] } })]).toThrow(
      /1 means and 1 stds but the images have 3 channels/,
    );
  });
});

describe('viewBatches', () => {
  it('yields two differently augmented views of the same examples', () => {
    const split = makeSplit(4, 8, 8, 3);
    const views = byolViewConfigs({ outputSize: [6, 6], areaLowerBound: 0.5 }).map(viewAugment);
    const before = tf.memory().numTensors;
    const out = [
      ...viewBatches(split, { batchSize: 4, seed: 3, views, normalize: { mean: [0, 0, 0], std: [1, 1, 1] } }),
    ];
    expect(out.length).toBe(1);
    const [v1, v2] = out[0].views;
    expect(v1.shape).toEqual([4, 6, 6, 3]);
    expect(v2.shape).toEqual([4, 6, 6, 3]);
    expect(Array.from(v1.dataSync())).not.toEqual(Array.from(v2.dataSync()));
    const again = [
      ...viewBatches(split, { batchSize: 2, seed: 3, views, normalize: { mean: [0, 0, 0], std: [1, 1, 1] } }),
    ];
    // Same example → same view, whatever the batch size.
    const ex = again[0].indices[0];
    const k = Array.from(out[0].indices).indexOf(ex);
    expect(Array.from(again[0].views[1].dataSync().subarray(0, 108))).toEqual(
      Array.from(v2.dataSync().subarray(k * 108, (k + 1) * 108)),
    );
    for (const b of [...out, ...again]) tf.dispose([...b.views, b.labels]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
