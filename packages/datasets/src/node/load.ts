import { loadCifar10 } from './cifar10.js';
import { loadIdx, loadMnist } from './idx.js';
import { loadImageFolder } from './image-folder.js';
import type { Dataset } from '../types.js';

/** Options for {@link loadDataset}. */
export interface LoadDatasetOptions {
  /** Data folder (`--data-dir`); optional for MNIST (bundled), required otherwise. */
  dataDir?: string;
  /** Image folder output size (image-folder only). */
  size?: number | [number, number];
  /** Images per class to read (image-folder only). */
  maxPerClass?: number;
}

/**
 * Loads a dataset by name: `mnist` (bundled, or from dataDir), `cifar10`, `idx` (any MNIST-format
 * folder) or `image-folder` (ImageNet-style, needs `size`). A single entry point for CLIs.
 */
export function loadDataset(name: string, options: LoadDatasetOptions = {}): Dataset {
  const needDir = (): string => {
    if (options.dataDir === undefined) {
      throw new Error(`Dataset '${name}' needs a data folder: pass --data-dir DIR (dataDir).`);
    }
    return options.dataDir;
  };
  switch (name) {
    case 'mnist':
      return loadMnist({ dataDir: options.dataDir });
    case 'cifar10':
      return loadCifar10(needDir());
    case 'idx':
      return loadIdx(needDir());
    case 'image-folder': {
      const dir = needDir();
      if (options.size === undefined) {
        throw new Error(
          "Dataset 'image-folder' needs an image size (the model's input, e.g. 224): pass size.",
        );
      }
      return loadImageFolder(dir, { size: options.size, maxPerClass: options.maxPerClass });
    }
    default:
      throw new Error(`Unknown dataset '${name}': expected one of mnist, cifar10, idx, image-folder.`);
  }
}
