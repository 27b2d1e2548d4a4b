/**
 * @fwdgrad/datasets — MNIST/IDX, CIFAR-10 and image-folder readers, fetch + verify,
 * augmentation (crops, flips, BYOL colour ops) and seeded batching for TensorFlow.js.
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
  encodeCifar10Batch,
  loadCifar10,
  parseCifar10Batch,
  resolveCifar10Dir,
} from './cifar10.js';
export {
  DATASET_SOURCES,
  type DatasetSource,
  downloadVerified,
  type FetchableDataset,
  type FetchOptions,
  type FetchProgress,
  type FetchReport,
  fetchDataset,
  md5File,
  type RemoteFile,
  type VerifyCheck,
  type VerifyOptions,
  type VerifyReport,
  verifyDataset,
} from './fetch.js';
export { channelStats, readMaybeGzip } from './files.js';
export {
  encodeIdx,
  IDX_FILES,
  type IdxArray,
  type LoadIdxOptions,
  type LoadMnistOptions,
  loadIdx,
  loadMnist,
  mnistDataDir,
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
  type DecodedImage,
  decodeImage,
  type ImageFolderOptions,
  type ImageFolderSplit,
  type LoadImageFolderOptions,
  loadImageFolder,
  readImageFolder,
  resizeDecoded,
} from './image-folder.js';
export { createRng, hashSeed, type Rng, shuffleInPlace } from './rng.js';
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
export { type LoadDatasetOptions, loadDataset } from './load.js';
