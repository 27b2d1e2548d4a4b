import { resolveConfig } from './index.js';

/** A small LocalMixer for tests: 8×8×1 images, 2×2 patches (P = 4, D_in = 16), C = 8, Hd = 12, G = 2, 3 blocks. */
export const tiny = resolveConfig({
  imageShape: [8, 8, 1],
  patchesPerSide: 2,
  channels: 8,
  hidden: 12,
  groups: 2,
  blocks: 3,
});
