import { checkLabels } from './files.js';
import { type Dataset, NORMALIZATION, type Split } from './types.js';

/** Bytes per CIFAR-10 record: 1 label byte + 32·32·3 pixel bytes (R plane, G plane, B plane). */
export const CIFAR10_RECORD_BYTES = 3073;
/** Records in each official CIFAR-10 batch file. */
export const CIFAR10_RECORDS_PER_FILE = 10000;
/** The five training batch files of the official binary release. */
export const CIFAR10_TRAIN_FILES = [
  'data_batch_1.bin',
  'data_batch_2.bin',
  'data_batch_3.bin',
  'data_batch_4.bin',
  'data_batch_5.bin',
] as const;
/** The test batch file of the official binary release. */
export const CIFAR10_TEST_FILE = 'test_batch.bin';
/** Folder the official archive extracts to. */
export const CIFAR10_FOLDER = 'cifar-10-batches-bin';
/** Class names in label order (the archive's `batches.meta.txt`). */
export const CIFAR10_CLASSES = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
];

const PLANE = 32 * 32;

/**
 * Parses one CIFAR-10 binary batch (records of 3073 bytes: label, then the 1024 red, 1024 green
 * and 1024 blue bytes of a 32x32 image in row-major order) into HWC images and labels.
 * @param file Name used in error messages.
 */
export function parseCifar10Batch(input: Uint8Array | ArrayBuffer, file = '<buffer>'): Split {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  if (bytes.length === 0 || bytes.length % CIFAR10_RECORD_BYTES !== 0) {
    throw new Error(
      `CIFAR-10 file ${file} has the wrong size: expected a positive multiple of the ${CIFAR10_RECORD_BYTES}-byte ` +
        `record length (${CIFAR10_RECORDS_PER_FILE * CIFAR10_RECORD_BYTES} bytes in the official files), got ` +
        `${bytes.length} bytes (${Math.floor(bytes.length / CIFAR10_RECORD_BYTES)} records and ` +
        `${bytes.length % CIFAR10_RECORD_BYTES} bytes left over). Fetch the binary version again.`,
    );
  }
  const count = bytes.length / CIFAR10_RECORD_BYTES;
  const labels = new Uint8Array(count);
  const images = new Uint8Array(count * 3 * PLANE);
  for (let n = 0; n < count; n++) {
    const rec = n * CIFAR10_RECORD_BYTES;
    labels[n] = bytes[rec];
    const px = rec + 1;
    const out = n * 3 * PLANE;
    // CHW planes → HWC interleaved, the layout tfjs images use.
    for (let p = 0; p < PLANE; p++) {
      images[out + 3 * p] = bytes[px + p];
      images[out + 3 * p + 1] = bytes[px + PLANE + p];
      images[out + 3 * p + 2] = bytes[px + 2 * PLANE + p];
    }
  }
  checkLabels(labels, 10, file);
  return { images, labels, count, shape: [32, 32, 3] };
}

/** Encodes HWC 32x32x3 images and labels as a CIFAR-10 binary batch (inverse of {@link parseCifar10Batch}). */
export function encodeCifar10Batch(split: Pick<Split, 'images' | 'labels' | 'count'>): Uint8Array {
  const { images, labels, count } = split;
  if (images.length !== count * 3 * PLANE || labels.length !== count) {
    throw new Error(
      `encodeCifar10Batch: ${count} images need ${count * 3 * PLANE} bytes and ${count} labels, got ` +
        `${images.length} and ${labels.length}.`,
    );
  }
  const out = new Uint8Array(count * CIFAR10_RECORD_BYTES);
  for (let n = 0; n < count; n++) {
    const rec = n * CIFAR10_RECORD_BYTES;
    out[rec] = labels[n];
    const src = n * 3 * PLANE;
    for (let p = 0; p < PLANE; p++) {
      out[rec + 1 + p] = images[src + 3 * p];
      out[rec + 1 + PLANE + p] = images[src + 3 * p + 1];
      out[rec + 1 + 2 * PLANE + p] = images[src + 3 * p + 2];
    }
  }
  return out;
}

function concatSplits(parts: Split[]): Split {
  const count = parts.reduce((a, p) => a + p.count, 0);
  const images = new Uint8Array(count * 3 * PLANE);
  const labels = new Uint8Array(count);
  let n = 0;
  for (const p of parts) {
    images.set(p.images, n * 3 * PLANE);
    labels.set(p.labels, n);
    n += p.count;
  }
  return { images, labels, count, shape: [32, 32, 3] };
}

/**
 * CIFAR-10 from the bytes of its binary batch files (browser and Node): the training batches
 * (`data_batch_1..5.bin`, or fewer for a subset) and `test_batch.bin`; 32x32x3, 10 classes, normalised with
 * REFERENCE §5's CIFAR mean/std.
 */
export function cifar10Dataset(
  trainBatches: readonly (Uint8Array | ArrayBuffer)[],
  testBatch: Uint8Array | ArrayBuffer,
  names: { train?: readonly string[]; test?: string } = {},
): Dataset {
  const train = concatSplits(
    trainBatches.map((b, i) =>
      parseCifar10Batch(b, names.train?.[i] ?? CIFAR10_TRAIN_FILES[i] ?? `batch ${i}`),
    ),
  );
  const test = parseCifar10Batch(testBatch, names.test ?? CIFAR10_TEST_FILE);
  return {
    name: 'cifar10',
    train,
    test,
    numClasses: 10,
    shape: [32, 32, 3],
    mean: [...NORMALIZATION.cifar10.mean],
    std: [...NORMALIZATION.cifar10.std],
    classNames: [...CIFAR10_CLASSES],
  };
}
