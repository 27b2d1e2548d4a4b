import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CIFAR10_FOLDER, CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILES, cifar10Dataset } from '../cifar10.js';
import { type Dataset, fetchCommand } from '../types.js';

/**
 * Finds the folder holding the CIFAR-10 `.bin` files: `dir` itself or `dir/cifar-10-batches-bin`
 * (where the official archive extracts) — the one holding `test_batch.bin`, else the one holding
 * any of the batches. Returns undefined when neither holds any.
 */
export function resolveCifar10Dir(dir: string): string | undefined {
  const candidates = [dir, join(dir, CIFAR10_FOLDER)];
  const has = (folder: string, names: readonly string[]) => names.some((f) => existsSync(join(folder, f)));
  return (
    candidates.find((c) => has(c, [CIFAR10_TEST_FILE])) ?? candidates.find((c) => has(c, CIFAR10_TRAIN_FILES))
  );
}

function readBatch(file: string): Uint8Array {
  const buf = readFileSync(file);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Loads CIFAR-10 (binary version) from `dir` or `dir/cifar-10-batches-bin`: 50000 train images
 * from `data_batch_1..5.bin`, 10000 test images from `test_batch.bin` (see {@link cifar10Dataset}).
 */
export function loadCifar10(dir: string): Dataset {
  const binDir = resolveCifar10Dir(dir) ?? dir;
  const train = CIFAR10_TRAIN_FILES.map((f) => join(binDir, f));
  const test = join(binDir, CIFAR10_TEST_FILE);
  const missing = [...train, test].filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new Error(
      `CIFAR-10 file${missing.length === 1 ? '' : 's'} not found: ${missing.join(', ')}. Download and extract the ` +
        `binary version with \`${fetchCommand('cifar10', dir)}\`.`,
    );
  }
  return cifar10Dataset(
    train.map((f) => readBatch(f)),
    readBatch(test),
    { train, test },
  );
}
