import * as tf from '@tensorflow/tfjs';
import { normalFiller } from '@fwdgrad/random';
import { afterAll, describe, expect, it } from 'vitest';
import { loadNative } from './addon.js';
import { installBackendKernels } from './backends.js';
import { NATIVE_KERNEL_NAMES } from './kernels.js';

describe('installBackendKernels', () => {
  afterAll(() => {
    installBackendKernels('cpu');
  });

  it("puts the native kernels and sampler on tfjs's cpu backend, and takes them off again", async () => {
    await tf.setBackend('cpu');
    if (!loadNative().available) {
      expect(installBackendKernels('cpu', { native: true })).toEqual([]);
      return;
    }
    const installed = installBackendKernels('cpu', { native: true });
    expect([...installed].sort()).toEqual([...NATIVE_KERNEL_NAMES].sort());
    expect(normalFiller()).toBeDefined();
    expect(installBackendKernels('cpu', { native: true })).toEqual(installed);
    expect(installBackendKernels('cpu')).toEqual([]);
    expect(normalFiller()).toBeUndefined();
  });

  it('leaves backends it has no kernels for alone (the sampler back to JavaScript)', () => {
    installBackendKernels('cpu', { native: true });
    expect(installBackendKernels('tensorflow', { native: true })).toEqual([]);
    expect(normalFiller()).toBeUndefined();
  });
});
