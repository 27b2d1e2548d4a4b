import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CIFAR10_FOLDER, cifar10Dataset, encodeCifar10Batch, parseCifar10Batch } from '../cifar10.js';
import { randomCifarSplit, tempDirs, writeCifarFixture } from '../fixtures.test-util.js';
import { loadCifar10 } from './cifar10.js';

const tmp = tempDirs('cifar');

describe('CIFAR-10 binary format', () => {
  it('parses records: label byte, then R, G, B planes, to HWC', () => {
    const record = new Uint8Array(3073);
    record[0] = 7;
    // pixel (row 1, col 2) = index 34 in each plane
    record[1 + 34] = 11;
    record[1 + 1024 + 34] = 22;
    record[1 + 2048 + 34] = 33;
    const split = parseCifar10Batch(record);
    expect(split.count).toBe(1);
    expect(split.shape).toEqual([32, 32, 3]);
    expect(Array.from(split.labels)).toEqual([7]);
    expect(Array.from(split.images.subarray(3 * 34, 3 * 34 + 3))).toEqual([11, 22, 33]);
    expect(split.images.reduce((a, b) => a + b, 0)).toBe(66);
  });

  it('round-trips encode → parse pixel-exact', () => {
    const s = randomCifarSplit(4, 1);
    const back = parseCifar10Batch(encodeCifar10Batch(s));
    expect(back.count).toBe(4);
    expect(Array.from(back.images)).toEqual(Array.from(s.images));
    expect(Array.from(back.labels)).toEqual(Array.from(s.labels));
  });

  it('rejects a wrong record length naming file, expected and actual', () => {
    expect(() => parseCifar10Batch(new Uint8Array(3073 * 2 + 5), 'b.bin')).toThrow(
      /b\.bin has the wrong size: expected a positive multiple of the 3073-byte record length \(30730000 bytes in the official files\), got 6151 bytes \(2 records and 5 bytes left over\)/,
    );
    expect(() => parseCifar10Batch(new Uint8Array(0), 'e.bin')).toThrow(/e\.bin has the wrong size/);
  });

  it('rejects labels out of range', () => {
    const bytes = encodeCifar10Batch(randomCifarSplit(3, 2));
    bytes[2 * 3073] = 10;
    expect(() => parseCifar10Batch(bytes, 'c.bin')).toThrow(
      /Label out of range in c\.bin: example 2 has label 10/,
    );
  });
});

describe('cifar10Dataset (bytes, browser-safe)', () => {
  it('builds the dataset from ArrayBuffers of the batch files, train batches in order', () => {
    const parts = [randomCifarSplit(2, 5), randomCifarSplit(3, 6)];
    const test = randomCifarSplit(2, 7);
    const buffer = (b: Uint8Array) => b.slice().buffer;
    const ds = cifar10Dataset(
      parts.map((p) => buffer(encodeCifar10Batch(p))),
      buffer(encodeCifar10Batch(test)),
    );
    expect(ds.train.count).toBe(5);
    expect(Array.from(ds.train.images.subarray(2 * 3072))).toEqual(Array.from(parts[1].images));
    expect(Array.from(ds.test.labels)).toEqual(Array.from(test.labels));
    expect(ds.mean).toEqual([0.4914, 0.4822, 0.4465]);
    expect(() => cifar10Dataset([new ArrayBuffer(10)], buffer(encodeCifar10Batch(test)))).toThrow(
      /CIFAR-10 file data_batch_1\.bin has the wrong size/,
    );
  });
});

describe('loadCifar10', () => {
  it('loads a folder pixel-exact, from the dir or its cifar-10-batches-bin sub-folder', () => {
    const root = tmp();
    const fx = writeCifarFixture(join(root, CIFAR10_FOLDER));
    for (const dir of [root, join(root, CIFAR10_FOLDER)]) {
      const ds = loadCifar10(dir);
      expect(ds.train.count).toBe(10);
      expect(ds.test.count).toBe(3);
      expect(ds.numClasses).toBe(10);
      expect(ds.mean).toEqual([0.4914, 0.4822, 0.4465]);
      expect(ds.std).toEqual([0.2023, 0.1994, 0.201]);
      expect(ds.classNames?.[0]).toBe('airplane');
      // train = data_batch_1..5 in order
      expect(Array.from(ds.train.images.subarray(3072 * 4, 3072 * 6))).toEqual(
        Array.from(fx.train[2].images),
      );
      expect(Array.from(ds.train.labels)).toEqual(fx.train.flatMap((s) => Array.from(s.labels)));
      expect(Array.from(ds.test.images)).toEqual(Array.from(fx.test.images));
    }
  });

  it('names the missing file and the fetch command', () => {
    const root = tmp();
    expect(() => loadCifar10(root)).toThrow(
      new RegExp(
        `CIFAR-10 files not found: ${join(root, 'data_batch_1.bin')}, .*, ${join(root, 'test_batch.bin')}\\. .*fwdgrad data fetch cifar10 --data-dir ${root}`,
      ),
    );
    // the archive's folder without its test batch: named where it belongs, not data_batch_1.bin
    const partial = tmp();
    writeCifarFixture(join(partial, CIFAR10_FOLDER));
    rmSync(join(partial, CIFAR10_FOLDER, 'test_batch.bin'));
    expect(() => loadCifar10(partial)).toThrow(
      new RegExp(`CIFAR-10 file not found: ${join(partial, CIFAR10_FOLDER, 'test_batch.bin')}\\. Download`),
    );
  });
});
