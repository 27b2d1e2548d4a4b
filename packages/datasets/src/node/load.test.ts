import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CIFAR10_FOLDER } from '../cifar10.js';
import { loadDataset } from './load.js';
import { tempDirs, writeCifarFixture } from '../fixtures.test-util.js';

const tmp = tempDirs('load');

describe('loadDataset', () => {
  it('dispatches by name', () => {
    const root = tmp();
    writeCifarFixture(join(root, CIFAR10_FOLDER));
    const ds = loadDataset('cifar10', { dataDir: root });
    expect([ds.name, ds.train.count, ds.test.count]).toEqual(['cifar10', 10, 3]);
  });

  it('names what is missing', () => {
    expect(() => loadDataset('cifar10')).toThrow(/needs a data folder: pass --data-dir DIR/);
    expect(() => loadDataset('image-folder', { dataDir: '/x' })).toThrow(/needs an image size/);
    expect(() => loadDataset('svhn', { dataDir: '/x' })).toThrow(
      /Unknown dataset 'svhn': expected one of mnist, cifar10, idx, image-folder/,
    );
  });
});
