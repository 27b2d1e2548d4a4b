/**
 * @fwdgrad/datasets/node — the Node-only half: dataset readers from folders (raw or gzipped files),
 * the bundled MNIST, image folders (PNG/JPEG decoding), fetch + verify. The byte parsers they use
 * are in the main entry (`@fwdgrad/datasets`), which runs in browsers too.
 */
export { loadCifar10, resolveCifar10Dir } from './node/cifar10.js';
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
} from './node/fetch.js';
export { findMaybeGzip, readMaybeGzip } from './node/files.js';
export { type LoadIdxOptions, type LoadMnistOptions, loadIdx, loadMnist, mnistDataDir } from './node/idx.js';
export {
  type DecodedImage,
  decodeImage,
  type ImageFolderOptions,
  type ImageFolderSplit,
  type LoadImageFolderOptions,
  loadImageFolder,
  readImageFolder,
  resizeDecoded,
} from './node/image-folder.js';
export { type LoadDatasetOptions, loadDataset } from './node/load.js';
