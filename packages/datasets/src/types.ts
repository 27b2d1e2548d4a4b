/** Image shape as [height, width, channels] (HWC, the layout tfjs uses for images). */
export type ImageShape = [height: number, width: number, channels: number];

/** Class labels: one byte each, or two when a dataset has more than 256 classes (image folders). */
export type LabelArray = Uint8Array | Uint16Array;

/**
 * One split of a dataset held in memory as raw bytes: `count` images of `shape`, HWC order,
 * uint8 in [0, 255], one label byte per image.
 */
export interface Split {
  /** `count · H · W · C` bytes, image i at offset `i · H · W · C`, HWC order. */
  images: Uint8Array;
  /** `count` class indices in [0, numClasses) (Uint16Array only beyond 256 classes). */
  labels: LabelArray;
  /** Number of examples. */
  count: number;
  /** Shape of one image. */
  shape: ImageShape;
}

/** Per-channel mean and standard deviation of pixel values scaled to [0, 1]. */
export interface Normalization {
  mean: readonly number[];
  std: readonly number[];
}

/** A classification dataset: train and test splits plus what a model needs to know about them. */
export interface Dataset {
  /** Short name, e.g. `mnist`, `cifar10`. */
  name: string;
  train: Split;
  test: Split;
  /** Number of classes; every label is below it. */
  numClasses: number;
  /** Shape of one image, [H, W, C]. */
  shape: ImageShape;
  /** Per-channel mean (pixels in [0, 1]) used for normalisation (REFERENCE §5). */
  mean: number[];
  /** Per-channel standard deviation used for normalisation (REFERENCE §5). */
  std: number[];
  /** Class names in label order, when known. */
  classNames?: string[];
}

/** Normalisation constants from REFERENCE §5 (pixels scaled to [0, 1] first). */
export const NORMALIZATION = {
  mnist: { mean: [0.1307], std: [0.3081] },
  cifar10: { mean: [0.4914, 0.4822, 0.4465], std: [0.2023, 0.1994, 0.201] },
  imagenet: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
} as const satisfies Record<string, Normalization>;

/** The CLI command that downloads a dataset into `dir`, for error messages. */
export function fetchCommand(name: 'mnist' | 'cifar10', dir: string): string {
  return `fwdgrad data fetch ${name} --data-dir ${dir}`;
}
