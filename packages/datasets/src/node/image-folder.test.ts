import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { createRandom } from '@fwdgrad/random';
import { describe, expect, it } from 'vitest';
import { decodeImage, loadImageFolder, readImageFolder } from './image-folder.js';
import { tempDirs } from '../fixtures.test-util.js';

/** Random RGB bytes, h x w. */
function rgb(h: number, w: number, seed: number): Uint8Array {
  const rng = createRandom(seed);
  return Uint8Array.from({ length: h * w * 3 }, () => rng.int(256));
}

function pngBytes(data: Uint8Array, h: number, w: number): Buffer {
  const png = new PNG({ width: w, height: h });
  for (let p = 0; p < h * w; p++) {
    png.data[4 * p] = data[3 * p];
    png.data[4 * p + 1] = data[3 * p + 1];
    png.data[4 * p + 2] = data[3 * p + 2];
    png.data[4 * p + 3] = 255;
  }
  return PNG.sync.write(png);
}

function jpegBytes(data: Uint8Array, h: number, w: number): Buffer {
  const rgba = Buffer.alloc(h * w * 4);
  for (let p = 0; p < h * w; p++) {
    rgba[4 * p] = data[3 * p];
    rgba[4 * p + 1] = data[3 * p + 1];
    rgba[4 * p + 2] = data[3 * p + 2];
    rgba[4 * p + 3] = 255;
  }
  return jpeg.encode({ data: rgba, width: w, height: h }, 95).data;
}

/** A smooth gradient (JPEG keeps it well). */
function smooth(h: number, w: number): Uint8Array {
  const out = new Uint8Array(h * w * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = 3 * (y * w + x);
      out[p] = Math.round((255 * x) / (w - 1));
      out[p + 1] = Math.round((255 * y) / (h - 1));
      out[p + 2] = 128;
    }
  }
  return out;
}

const tmp = tempDirs('folder');

describe('decodeImage', () => {
  it('decodes PNG exactly and JPEG as jpeg-js does', () => {
    const data = rgb(3, 5, 1);
    const png = decodeImage(pngBytes(data, 3, 5), 'a.png');
    expect([png.height, png.width]).toEqual([3, 5]);
    expect(Array.from(png.data)).toEqual(Array.from(data));
    const jp = decodeImage(jpegBytes(smooth(8, 8), 8, 8), 'b.jpg');
    const ref = jpeg.decode(jpegBytes(smooth(8, 8), 8, 8), { useTArray: true, formatAsRGBA: false });
    expect(Array.from(jp.data)).toEqual(Array.from(ref.data));
  });

  it('rejects other formats and corrupt files naming the file', () => {
    expect(() => decodeImage(new Uint8Array([0x47, 0x49, 0x46, 0x38]), 'x.gif')).toThrow(
      /x\.gif is neither PNG nor JPEG: expected a signature 89 50 4e 47 \(PNG\) or ff d8 ff \(JPEG\), got 47 49 46 38/,
    );
    const png = pngBytes(rgb(4, 4, 2), 4, 4);
    expect(() => decodeImage(png.subarray(0, 40), 'cut.png')).toThrow(/Cannot decode cut\.png as PNG/);
  });
});

describe('readImageFolder / loadImageFolder', () => {
  function makeTree() {
    const root = tmp();
    const cat = [rgb(4, 4, 10), rgb(4, 4, 11)];
    const dog = [rgb(4, 4, 12)];
    mkdirSync(join(root, 'train', 'cat'), { recursive: true });
    mkdirSync(join(root, 'train', 'dog'), { recursive: true });
    mkdirSync(join(root, 'val', 'dog'), { recursive: true });
    writeFileSync(join(root, 'train', 'cat', 'a.png'), pngBytes(cat[0], 4, 4));
    writeFileSync(join(root, 'train', 'cat', 'b.PNG'), pngBytes(cat[1], 4, 4));
    writeFileSync(join(root, 'train', 'cat', 'notes.txt'), 'ignored');
    writeFileSync(join(root, 'train', 'dog', 'c.png'), pngBytes(dog[0], 4, 4));
    writeFileSync(join(root, 'val', 'dog', 'd.jpg'), jpegBytes(smooth(8, 8), 8, 8));
    return { root, cat, dog };
  }

  it('reads classes in sorted order, pixel-exact at the same size', () => {
    const { root, cat, dog } = makeTree();
    const ds = loadImageFolder(root, { size: 4 });
    expect(ds.classNames).toEqual(['cat', 'dog']);
    expect(ds.numClasses).toBe(2);
    expect(ds.shape).toEqual([4, 4, 3]);
    expect(ds.train.count).toBe(3);
    expect(Array.from(ds.train.labels)).toEqual([0, 0, 1]);
    expect(Array.from(ds.train.images)).toEqual([...cat[0], ...cat[1], ...dog[0]]);
    // val has only 'dog': label follows the training classes.
    expect(ds.test.count).toBe(1);
    expect(Array.from(ds.test.labels)).toEqual([1]);
    expect(ds.mean).toEqual([0.485, 0.456, 0.406]);
  });

  it('resizes a JPEG close to the original gradient', () => {
    const { root } = makeTree();
    const ds = loadImageFolder(root, { size: 4 });
    // 8→4 bilinear with half-pixel centres averages pixel pairs of the gradient: x' = 2x + 0.5.
    const expected = smooth(8, 8);
    let err = 0;
    for (let y = 0; y < 4; y++) {
      for (let x = 0; x < 4; x++) {
        for (let c = 0; c < 3; c++) {
          const a = expected[3 * (2 * y * 8 + 2 * x) + c];
          const b = expected[3 * ((2 * y + 1) * 8 + 2 * x + 1) + c];
          err = Math.max(err, Math.abs(ds.test.images[3 * (y * 4 + x) + c] - (a + b) / 2));
        }
      }
    }
    expect(err).toBeLessThan(6);
  });

  it('downsamples PNG 2x by 2x2 averages; center-crops wide images; grayscale channel', () => {
    const root = tmp();
    mkdirSync(join(root, 'k'));
    const big = rgb(4, 4, 3);
    writeFileSync(join(root, 'k', 'a.png'), pngBytes(big, 4, 4));
    const wide = rgb(2, 6, 4);
    writeFileSync(join(root, 'k', 'b.png'), pngBytes(wide, 2, 6));
    const { split } = readImageFolder(root, { size: 2 });
    const expectedA: number[] = [];
    for (let y = 0; y < 2; y++) {
      for (let x = 0; x < 2; x++) {
        for (let c = 0; c < 3; c++) {
          const at = (yy: number, xx: number) => big[3 * (yy * 4 + xx) + c];
          expectedA.push(
            Math.round(
              (at(2 * y, 2 * x) + at(2 * y, 2 * x + 1) + at(2 * y + 1, 2 * x) + at(2 * y + 1, 2 * x + 1)) / 4,
            ),
          );
        }
      }
    }
    const gotA = Array.from(split.images.subarray(0, 12));
    gotA.forEach((v, i) => {
      expect(Math.abs(v - expectedA[i])).toBeLessThanOrEqual(1);
    });
    // 2x6 → central 2x2 (columns 2, 3), no resampling.
    const centre = [0, 1].flatMap((y) =>
      [2, 3].flatMap((x) => Array.from(wide.subarray(3 * (y * 6 + x), 3 * (y * 6 + x) + 3))),
    );
    expect(Array.from(split.images.subarray(12, 24))).toEqual(centre);
    const gray = readImageFolder(root, { size: 2, channels: 1 });
    expect(gray.split.shape).toEqual([2, 2, 1]);
    const [r, g, b] = centre;
    expect(gray.split.images[4]).toBe(Math.round(0.2989 * r + 0.587 * g + 0.114 * b));
  });

  it('maxPerClass reads the first images per class', () => {
    const { root } = makeTree();
    const { split, files } = readImageFolder(join(root, 'train'), { size: 4, maxPerClass: 1 });
    expect(split.count).toBe(2);
    expect(files.map((f) => f.slice(root.length))).toEqual([
      join('/train', 'cat', 'a.png'),
      join('/train', 'dog', 'c.png'),
    ]);
  });

  it('fails loudly on bad layouts', () => {
    const root = tmp();
    expect(() => loadImageFolder(root, { size: 4 })).toThrow(/training set not found: .*train\. Expected/);
    expect(() => readImageFolder(join(root, 'missing'), { size: 4 })).toThrow(/Image folder not found/);
    mkdirSync(join(root, 'train', 'a'), { recursive: true });
    mkdirSync(join(root, 'val', 'b'), { recursive: true });
    expect(() => loadImageFolder(root, { size: 4 })).toThrow(
      /Class folder .*a holds no \.jpg\/\.jpeg\/\.png images/,
    );
    writeFileSync(join(root, 'train', 'a', 'x.png'), pngBytes(rgb(2, 2, 1), 2, 2));
    writeFileSync(join(root, 'val', 'b', 'y.png'), pngBytes(rgb(2, 2, 1), 2, 2));
    expect(() => loadImageFolder(root, { size: 4 })).toThrow(
      /class folder 'b' that is not among the 1 known classes/,
    );
    expect(() => readImageFolder(join(root, 'train'), { size: 0 })).toThrow(
      /size must be a positive integer/,
    );
  });
});
