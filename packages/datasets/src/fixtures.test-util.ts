/** Fixture writers shared by the tests (not part of the published API). */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { createRandom } from '@fwdgrad/random';
import { CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILES, encodeCifar10Batch } from './cifar10.js';

/** count random 32x32x3 HWC images with labels < 10. */
export function randomCifarSplit(count: number, seed: number) {
  const rng = createRandom(seed);
  return {
    images: Uint8Array.from({ length: count * 3072 }, () => rng.int(256)),
    labels: Uint8Array.from({ length: count }, () => rng.int(10)),
    count,
  };
}

/** Writes a tiny CIFAR-10 folder (2 records per train file, 3 test records) and returns the data. */
export function writeCifarFixture(dir: string) {
  mkdirSync(dir, { recursive: true });
  const train = CIFAR10_TRAIN_FILES.map((f, i) => {
    const s = randomCifarSplit(2, 10 + i);
    writeFileSync(join(dir, f), encodeCifar10Batch(s));
    return s;
  });
  const test = randomCifarSplit(3, 99);
  writeFileSync(join(dir, CIFAR10_TEST_FILE), encodeCifar10Batch(test));
  return { train, test };
}

/** Returns a maker of fresh temporary folders, all removed after the calling test file. */
export function tempDirs(prefix: string): (name?: string) => string {
  const made: string[] = [];
  afterAll(() => {
    for (const d of made) rmSync(d, { recursive: true, force: true });
  });
  return (name = '') => {
    const d = mkdtempSync(join(tmpdir(), `fwdgrad-${prefix}${name}-`));
    made.push(d);
    return d;
  };
}
