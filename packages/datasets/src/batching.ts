import * as tf from '@tensorflow/tfjs';
import { createRandom, shuffleInPlace } from '@fwdgrad/random';
import { type FloatImage, imageFromSplit } from './image.js';
import type { Normalization, Split } from './types.js';
import type { Augment } from './views.js';

/** How to walk a split for one epoch. */
export interface EpochOptions {
  /** Shuffle the order each epoch (default true). */
  shuffle?: boolean;
  /** Seed; required when shuffling or augmenting. The order depends on (seed, epoch) only. */
  seed?: number;
  /** Epoch number (default 0): each epoch gets its own order and augmentation draws. */
  epoch?: number;
  /** Use only the first `limit` examples of the split (a fixed subset, shuffled among themselves). */
  limit?: number;
}

/** Options for {@link batches}. */
export interface BatchOptions extends EpochOptions {
  /** Examples per batch. */
  batchSize: number;
  /** Drop the last batch when it is smaller than batchSize (default false). */
  dropLast?: boolean;
  /** Per-example augmentation on [0, 1] floats, before normalisation. */
  augment?: Augment;
  /**
   * Per-channel mean/std applied after scaling to [0, 1] — pass the Dataset itself to use its
   * REFERENCE §5 constants — or `false` to keep [0, 1] values.
   */
  normalize: Normalization | false;
}

/** One batch. The caller owns (and must dispose) the tensors. */
export interface Batch {
  /** float32 [B, H, W, C], normalised. */
  images: tf.Tensor4D;
  /** int32 [B] class indices. */
  labels: tf.Tensor1D;
  /** Indices into the split of the examples in this batch. */
  indices: Int32Array;
}

/** Options for {@link viewBatches}. */
export interface ViewBatchOptions extends Omit<BatchOptions, 'augment'> {
  /** One augmentation per view (e.g. the two BYOL views). */
  views: Augment[];
}

/** A batch of several augmented views of the same examples. The caller owns the tensors. */
export interface ViewBatch {
  /** One float32 [B, H, W, C] tensor per view. */
  views: tf.Tensor4D[];
  labels: tf.Tensor1D;
  indices: Int32Array;
}

function subsetSize(split: Split, limit: number | undefined): number {
  if (limit === undefined) return split.count;
  if (!Number.isInteger(limit) || limit <= 0 || limit > split.count) {
    throw new Error(
      `limit must be an integer in [1, ${split.count}] (the split size), got ${limit}. Omit it to use every example.`,
    );
  }
  return limit;
}

function requireSeed(options: EpochOptions, why: string): number {
  if (options.seed === undefined) {
    throw new Error(
      `A seed is required when ${why}: pass { seed: 0 } (or any integer) for reproducible runs.`,
    );
  }
  return options.seed;
}

/**
 * The example order for one epoch: indices 0..n−1 (n = limit or the split size), shuffled with a
 * generator seeded from (seed, epoch) when shuffle is on.
 */
export function epochOrder(split: Split, options: EpochOptions = {}): Int32Array {
  const n = subsetSize(split, options.limit);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  if (options.shuffle ?? true) {
    const seed = requireSeed(options, 'shuffling');
    shuffleInPlace(order, createRandom(seed).derive('shuffle', options.epoch ?? 0));
  }
  return order;
}

/** Number of batches {@link batches} yields for these options. */
export function numBatches(
  split: Split,
  options: Pick<BatchOptions, 'batchSize' | 'dropLast' | 'limit'>,
): number {
  checkBatchSize(options.batchSize);
  const n = subsetSize(split, options.limit);
  return options.dropLast ? Math.floor(n / options.batchSize) : Math.ceil(n / options.batchSize);
}

function checkBatchSize(batchSize: number): void {
  if (!Number.isInteger(batchSize) || batchSize <= 0) {
    throw new Error(`batchSize must be a positive integer, got ${batchSize}.`);
  }
}

function checkNormalization(norm: Normalization, channels: number): void {
  if (norm.mean.length !== channels || norm.std.length !== channels) {
    throw new Error(
      `Normalisation has ${norm.mean.length} means and ${norm.std.length} stds but the images have ${channels} ` +
        'channels: pass one mean and one std per channel (e.g. the Dataset itself).',
    );
  }
  for (const s of norm.std) {
    if (!(s > 0)) throw new Error(`Normalisation std must be positive, got ${s}.`);
  }
}

/**
 * Writes example images into a flat float32 batch buffer: direct from bytes when there is no
 * augmentation, else through `augment` with a generator seeded from (seed, epoch, index, view),
 * so each example's draws do not depend on batch size or order.
 */
function fillView(
  split: Split,
  indices: Int32Array,
  norm: Normalization | false,
  augment: Augment | undefined,
  seedParts: [number, number, number] | undefined,
): { data: Float32Array; shape: [number, number, number, number] } {
  const b = indices.length;
  if (augment === undefined) {
    const [h, w, c] = split.shape;
    const size = h * w * c;
    if (norm !== false) checkNormalization(norm, c);
    // A 256-entry table per channel: (v/255 − mean)/std computed once in double precision.
    const table = new Float32Array(256 * c);
    for (let ch = 0; ch < c; ch++) {
      for (let v = 0; v < 256; v++) {
        table[ch * 256 + v] = norm === false ? v / 255 : (v / 255 - norm.mean[ch]) / norm.std[ch];
      }
    }
    const data = new Float32Array(b * size);
    for (let k = 0; k < b; k++) {
      const src = indices[k] * size;
      const dst = k * size;
      for (let i = 0; i < size; i++) data[dst + i] = table[(i % c) * 256 + split.images[src + i]];
    }
    return { data, shape: [b, h, w, c] };
  }
  const [seed, epoch, view] = seedParts!;
  let data: Float32Array | undefined;
  let first: FloatImage | undefined;
  for (let k = 0; k < b; k++) {
    const img = augment(
      imageFromSplit(split, indices[k]),
      createRandom(seed).derive('augment', epoch, indices[k], view),
    );
    if (first === undefined) {
      first = img;
      if (norm !== false) checkNormalization(norm, img.channels);
      data = new Float32Array(b * img.data.length);
    } else if (img.height !== first.height || img.width !== first.width || img.channels !== first.channels) {
      throw new Error(
        `Augmentation produced images of different shapes in one batch: [${first.height}, ${first.width}, ` +
          `${first.channels}] then [${img.height}, ${img.width}, ${img.channels}]. Give it a fixed output size.`,
      );
    }
    const size = img.data.length;
    const c = img.channels;
    for (let i = 0; i < size; i++) {
      const ch = i % c;
      data![k * size + i] = norm === false ? img.data[i] : (img.data[i] - norm.mean[ch]) / norm.std[ch];
    }
  }
  return { data: data!, shape: [b, first!.height, first!.width, first!.channels] };
}

function labelTensor(split: Split, indices: Int32Array): tf.Tensor1D {
  const labels = new Int32Array(indices.length);
  for (let k = 0; k < indices.length; k++) labels[k] = split.labels[indices[k]];
  return tf.tensor1d(labels, 'int32');
}

function* batchIndices(split: Split, options: BatchOptions | ViewBatchOptions): Generator<Int32Array> {
  checkBatchSize(options.batchSize);
  const order = epochOrder(split, options);
  for (let start = 0; start < order.length; start += options.batchSize) {
    const end = Math.min(start + options.batchSize, order.length);
    if (options.dropLast && end - start < options.batchSize) return;
    yield order.slice(start, end);
  }
}

/**
 * Iterates one epoch of a split in batches of float32 image tensors [B, H, W, C] (normalised)
 * and int32 labels [B]. Tensors are made one batch at a time, so memory stays bounded by the
 * batches the caller still holds; the caller disposes each batch's tensors.
 *
 * Deterministic: the order depends on (seed, epoch); each example's augmentation on
 * (seed, epoch, example index).
 */
export function* batches(split: Split, options: BatchOptions): Generator<Batch> {
  const seed = options.augment !== undefined ? requireSeed(options, 'augmenting') : 0;
  const epoch = options.epoch ?? 0;
  for (const indices of batchIndices(split, options)) {
    const { data, shape } = fillView(split, indices, options.normalize, options.augment, [seed, epoch, 0]);
    yield { images: tf.tensor4d(data, shape, 'float32'), labels: labelTensor(split, indices), indices };
  }
}

/**
 * Like {@link batches}, but yields several augmented views of each example (contrastive
 * learning: pass the two BYOL views, e.g. `byolViewConfigs(crop).map(viewAugment)`). View v of
 * example i is drawn from a generator seeded with (seed, epoch, i, v).
 */
export function* viewBatches(split: Split, options: ViewBatchOptions): Generator<ViewBatch> {
  if (options.views.length === 0) throw new Error('viewBatches needs at least one view augmentation, got 0.');
  const seed = requireSeed(options, 'augmenting');
  const epoch = options.epoch ?? 0;
  for (const indices of batchIndices(split, options)) {
    // Fill every view before making tensors, so a failing augmentation leaks nothing.
    const filled = options.views.map((augment, v) =>
      fillView(split, indices, options.normalize, augment, [seed, epoch, v]),
    );
    const views = filled.map(({ data, shape }) => tf.tensor4d(data, shape, 'float32'));
    yield { views, labels: labelTensor(split, indices), indices };
  }
}
