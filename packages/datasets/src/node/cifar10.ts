import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CIFAR10_FOLDER, CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILES, cifar10Dataset } from '../cifar10.js';
import { type Dataset, fetchCommand } from '../types.js';

/**
 * Finds the folder holding the CIFAR-10 `.bin` files: `dir` itself or `dir/cifar-10-batches-bin`
 * (where the official archive extracts). Returns undefined when neither has `test_batch.bin`.
 */
export function resolveCifar10Dir(dir: string): string | undefined {
  for (const candidate of [dir, join(dir, CIFAR10_FOLDER)]) {
    if (existsSync(join(candidate, CIFAR10_TEST_FILE))) return candidate;
  }
  return undefined;
}

function readBatch(file: string, rootDir: string): Uint8Array {
  if (!existsSync(file)) {
    throw new Error(
      `CIFAR-10 file not found: ${file}. Download and extract the binary version with ` +
        `\`${fetchCommand('cifar10', rootDir)}\`.`,
    );
  }
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
  return cifar10Dataset(
    train.map((f) => readBatch(f, dir)),
    readBatch(test, dir),
    { train, test },
  );
}
