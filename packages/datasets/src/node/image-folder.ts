import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { channelStats } from '../files.js';
import { type CropBox, cropAndResize, type FloatImage } from '../image.js';
import { type Dataset, type ImageShape, type LabelArray, NORMALIZATION, type Split } from '../types.js';

/** A decoded image: RGB bytes, HWC. */
export interface DecodedImage {
  data: Uint8Array;
  height: number;
  width: number;
}

const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png']);

/**
 * Decodes a PNG or JPEG (detected by signature) to RGB bytes with the `pngjs` / `jpeg-js`
 * decoders. Alpha is dropped; 16-bit PNGs are scaled to 8 bits.
 * @param file Name used in error messages.
 */
export function decodeImage(bytes: Uint8Array, file = '<buffer>'): DecodedImage {
  const isPng =
    bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  const isJpeg = bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
  if (!isPng && !isJpeg) {
    const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new Error(
      `${file} is neither PNG nor JPEG: expected a signature 89 50 4e 47 (PNG) or ff d8 ff (JPEG), got ` +
        `${head || 'an empty file'}. Remove or convert it.`,
    );
  }
  try {
    if (isPng) {
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      const n = png.width * png.height;
      const data = new Uint8Array(n * 3);
      for (let i = 0; i < n; i++) {
        data[3 * i] = png.data[4 * i];
        data[3 * i + 1] = png.data[4 * i + 1];
        data[3 * i + 2] = png.data[4 * i + 2];
      }
      return { data, height: png.height, width: png.width };
    }
    const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false });
    return { data: img.data, height: img.height, width: img.width };
  } catch (e) {
    throw new Error(
      `Cannot decode ${file} as ${isPng ? 'PNG' : 'JPEG'}: ${(e as Error).message}. The file is corrupt.`,
    );
  }
}

/** Options for reading an image folder. */
export interface ImageFolderOptions {
  /** Output size: a number for square images or [height, width]. */
  size: number | [number, number];
  /**
   * `center-crop` (default): take the largest central box with the output's aspect ratio, then
   * resize; `stretch`: resize the whole image.
   */
  resize?: 'center-crop' | 'stretch';
  /** 3 (RGB, default) or 1 (grayscale, 0.2989 R + 0.5870 G + 0.1140 B). */
  channels?: 1 | 3;
  /** Read at most this many images per class (the first in name order). */
  maxPerClass?: number;
}

function outputSize(size: number | [number, number]): [number, number] {
  const [h, w] = typeof size === 'number' ? [size, size] : size;
  if (!Number.isInteger(h) || !Number.isInteger(w) || h <= 0 || w <= 0) {
    throw new Error(
      `Image folder size must be a positive integer or [height, width], got ${JSON.stringify(size)}.`,
    );
  }
  return [h, w];
}

/** Resizes a decoded RGB image to the output shape (bilinear, half-pixel centres), as bytes. */
export function resizeDecoded(
  image: DecodedImage,
  shape: ImageShape,
  mode: 'center-crop' | 'stretch' = 'center-crop',
): Uint8Array {
  const [oh, ow, oc] = shape;
  const float: FloatImage = {
    data: Float32Array.from(image.data, (v) => v / 255),
    height: image.height,
    width: image.width,
    channels: 3,
  };
  let box: CropBox = { top: 0, left: 0, height: image.height, width: image.width };
  if (mode === 'center-crop') {
    // Largest central box with aspect ow/oh.
    const target = ow / oh;
    if (image.width / image.height > target) {
      const w = Math.max(1, Math.min(image.width, Math.round(image.height * target)));
      box = { top: 0, left: Math.floor((image.width - w) / 2), height: image.height, width: w };
    } else {
      const h = Math.max(1, Math.min(image.height, Math.round(image.width / target)));
      box = { top: Math.floor((image.height - h) / 2), left: 0, height: h, width: image.width };
    }
  }
  const resized = cropAndResize(float, box, oh, ow);
  const out = new Uint8Array(oh * ow * oc);
  for (let p = 0; p < oh * ow; p++) {
    const r = resized.data[3 * p];
    const g = resized.data[3 * p + 1];
    const b = resized.data[3 * p + 2];
    if (oc === 3) {
      out[3 * p] = Math.round(r * 255);
      out[3 * p + 1] = Math.round(g * 255);
      out[3 * p + 2] = Math.round(b * 255);
    } else {
      out[p] = Math.round((0.2989 * r + 0.587 * g + 0.114 * b) * 255);
    }
  }
  return out;
}

function listClassDirs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

function listImages(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter(
      (e) => e.isFile() && !e.name.startsWith('.') && IMAGE_EXTENSIONS.has(extname(e.name).toLowerCase()),
    )
    .map((e) => e.name)
    .sort();
}

/** What {@link readImageFolder} returns. */
export interface ImageFolderSplit {
  split: Split;
  /** Class names (sub-folder names) in label order. */
  classNames: string[];
  /** Path of each example, in split order. */
  files: string[];
}

/**
 * Reads one folder with a sub-folder per class (`dir/<class>/*.jpg|jpeg|png`), decoding and
 * resizing every image into memory. Labels follow `classNames` (default: the sub-folders in
 * sorted order).
 */
export function readImageFolder(
  dir: string,
  options: ImageFolderOptions & { classNames?: string[] },
): ImageFolderSplit {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new Error(
      `Image folder not found: ${dir}. Expected one sub-folder per class holding JPEG/PNG files.`,
    );
  }
  const [h, w] = outputSize(options.size);
  const c = options.channels ?? 3;
  if (c !== 1 && c !== 3) throw new Error(`channels must be 1 or 3, got ${c}.`);
  const found = listClassDirs(dir);
  if (found.length === 0) {
    throw new Error(`Image folder ${dir} has no class sub-folders: expected ${dir}/<class>/<image>.jpg|png.`);
  }
  const classNames = options.classNames ?? found;
  const labelOf = new Map(classNames.map((name, i) => [name, i]));
  const files: string[] = [];
  const labelList: number[] = [];
  for (const name of found) {
    const label = labelOf.get(name);
    if (label === undefined) {
      throw new Error(
        `Image folder ${dir} has class folder '${name}' that is not among the ${classNames.length} known classes ` +
          `(${classNames.slice(0, 5).join(', ')}${classNames.length > 5 ? ', …' : ''}). Remove it or add it to the training set.`,
      );
    }
    let images = listImages(join(dir, name));
    if (images.length === 0) {
      throw new Error(
        `Class folder ${join(dir, name)} holds no .jpg/.jpeg/.png images: expected at least 1, got 0.`,
      );
    }
    if (options.maxPerClass !== undefined) images = images.slice(0, options.maxPerClass);
    for (const f of images) {
      files.push(join(dir, name, f));
      labelList.push(label);
    }
  }
  const shape: ImageShape = [h, w, c];
  const size = h * w * c;
  const count = files.length;
  const imagesOut = new Uint8Array(count * size);
  const labels: LabelArray = classNames.length <= 256 ? new Uint8Array(count) : new Uint16Array(count);
  for (let i = 0; i < count; i++) {
    const buf = readFileSync(files[i]);
    const decoded = decodeImage(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), files[i]);
    imagesOut.set(resizeDecoded(decoded, shape, options.resize ?? 'center-crop'), i * size);
    labels[i] = labelList[i];
  }
  return { split: { images: imagesOut, labels, count, shape }, classNames, files };
}

/** Options for {@link loadImageFolder}. */
export interface LoadImageFolderOptions extends ImageFolderOptions {
  /** Sub-folder with the training classes (default `train`). */
  trainDir?: string;
  /** Sub-folder with the test classes (default `val`, else `test`). */
  testDir?: string;
  /** Per-channel mean; default ImageNet's (REFERENCE §5) for 3 channels, computed for 1. */
  mean?: number[];
  /** Per-channel std; default ImageNet's for 3 channels, computed for 1. */
  std?: number[];
  /** Dataset name (default `image-folder`). */
  name?: string;
}

/**
 * Loads an ImageNet-style dataset: `dir/train/<class>/*` and `dir/val/<class>/*` (or
 * `dir/test/…`), resized to `size`. Class labels come from the training folder's sorted class
 * names. Everything is held in memory as bytes (H·W·C per image), so use it for subsets
 * (`maxPerClass`) or small data sets.
 */
export function loadImageFolder(dir: string, options: LoadImageFolderOptions): Dataset {
  const trainPath = join(dir, options.trainDir ?? 'train');
  let testPath: string;
  if (options.testDir !== undefined) testPath = join(dir, options.testDir);
  else testPath = existsSync(join(dir, 'val')) ? join(dir, 'val') : join(dir, 'test');
  if (!existsSync(trainPath)) {
    throw new Error(
      `Image folder training set not found: ${trainPath}. Expected ${dir}/train/<class>/*.jpg|png and ` +
        `${dir}/val/<class>/*.jpg|png (set trainDir/testDir for other names).`,
    );
  }
  if (!existsSync(testPath)) {
    throw new Error(
      `Image folder test set not found: ${testPath}. Expected ${dir}/val/<class>/… or ${dir}/test/<class>/… ` +
        '(set testDir for another name).',
    );
  }
  const train = readImageFolder(trainPath, options);
  const test = readImageFolder(testPath, { ...options, classNames: train.classNames });
  const c = train.split.shape[2];
  let mean = options.mean;
  let std = options.std;
  if (mean === undefined || std === undefined) {
    const stats =
      c === 3
        ? { mean: [...NORMALIZATION.imagenet.mean], std: [...NORMALIZATION.imagenet.std] }
        : channelStats(train.split);
    mean = mean ?? [...stats.mean];
    std = std ?? [...stats.std];
  }
  return {
    name: options.name ?? 'image-folder',
    train: train.split,
    test: test.split,
    numClasses: train.classNames.length,
    shape: train.split.shape,
    mean,
    std,
    classNames: train.classNames,
  };
}
