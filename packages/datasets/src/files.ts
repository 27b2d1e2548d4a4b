import type { ImageShape, LabelArray, Normalization, Split } from './types.js';

/** True when the bytes start with the gzip magic number 1f 8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Throws when a label is not below `numClasses`, naming the file, index and value. */
export function checkLabels(labels: LabelArray, numClasses: number, file: string): void {
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] >= numClasses) {
      throw new Error(
        `Label out of range in ${file}: example ${i} has label ${labels[i]}, expected 0..${numClasses - 1} ` +
          `(${numClasses} classes). The file is corrupt or belongs to another dataset.`,
      );
    }
  }
}

/** Checks a split's byte lengths against its count and shape. */
export function checkSplit(split: Split, what: string): void {
  const [h, w, c] = split.shape;
  if (split.images.length !== split.count * h * w * c || split.labels.length !== split.count) {
    throw new Error(
      `${what}: expected ${split.count} images of ${h}x${w}x${c} (${split.count * h * w * c} bytes) and ` +
        `${split.count} labels, got ${split.images.length} image bytes and ${split.labels.length} labels.`,
    );
  }
}

/** Per-channel mean and std of a split's pixels scaled to [0, 1] (population std). */
export function channelStats(split: Split): Normalization {
  const c = split.shape[2];
  const sum = new Float64Array(c);
  const sumSq = new Float64Array(c);
  const { images } = split;
  for (let i = 0; i < images.length; i++) {
    const v = images[i] / 255;
    const ch = i % c;
    sum[ch] += v;
    sumSq[ch] += v * v;
  }
  const n = images.length / c;
  const mean: number[] = [];
  const std: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    const m = n > 0 ? sum[ch] / n : 0;
    mean.push(m);
    std.push(n > 0 ? Math.sqrt(Math.max(sumSq[ch] / n - m * m, 0)) : 0);
  }
  return { mean, std };
}

/** Formats a shape for messages. */
export function shapeString(shape: ImageShape | number[]): string {
  return `[${shape.join(', ')}]`;
}
