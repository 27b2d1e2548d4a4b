/**
 * @fwdgrad/datasets — MNIST/IDX and CIFAR-10 parsers (on bytes), augmentation (crops, flips, BYOL
 * colour ops) and seeded batching for TensorFlow.js. Browser-safe: file and network access (folder
 * readers, fetch + verify, image folders) is in the `@fwdgrad/datasets/node` entry.
 */

export {
  type ColorJitterParams,
  type ColorJitterStrength,
  type JitterOp,
  type ResizedCropOptions,
  adjustBrightness,
  adjustContrast,
  adjustHue,
  adjustSaturation,
  applyColorJitter,
  BYOL_JITTER,
  blurKernelSize,
  flipHorizontal,
  GRAYSCALE_WEIGHTS,
  gaussianBlur,
  gaussianKernel,
  hsvToRgb,
  padAndCrop,
  randomPadCrop,
  randomResizedCrop,
  rgbToHsv,
  sampleColorJitter,
  sampleResizedCropBox,
  solarize,
  toGrayscale,
} from './augment.js';
export {
  type Batch,
  type BatchOptions,
  batches,
  type EpochOptions,
  epochOrder,
  numBatches,
  type ViewBatch,
  type ViewBatchOptions,
  viewBatches,
} from './batching.js';
export {
  CIFAR10_CLASSES,
  CIFAR10_FOLDER,
  CIFAR10_RECORD_BYTES,
  CIFAR10_RECORDS_PER_FILE,
  CIFAR10_TEST_FILE,
  CIFAR10_TRAIN_FILES,
  cifar10Dataset,
  encodeCifar10Batch,
  parseCifar10Batch,
} from './cifar10.js';
export { channelStats, isGzip } from './files.js';
export {
  encodeIdx,
  IDX_FILES,
  type IdxArray,
  type IdxDatasetOptions,
  type IdxFileBytes,
  idxDataset,
  MNIST_OPTIONS,
  mnistDataset,
  parseIdx,
} from './idx.js';
export {
  type CropBox,
  cropAndResize,
  cropImage,
  emptyImage,
  type FloatImage,
  imageFromSplit,
  imageToBytes,
  resizeBilinear,
} from './image.js';
export {
  type Dataset,
  fetchCommand,
  type ImageShape,
  type LabelArray,
  NORMALIZATION,
  type Normalization,
  type Split,
} from './types.js';
export {
  type Augment,
  applyViewParams,
  byolViewConfigs,
  padCropFlipAugment,
  resizedCropFlipAugment,
  sampleViewParams,
  twoViews,
  type ViewConfig,
  type ViewCrop,
  type ViewParams,
  viewAugment,
} from './views.js';
