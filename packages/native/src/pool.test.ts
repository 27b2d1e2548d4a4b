import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNative } from './addon.js';
import { createRandom, setNormalFiller } from '@fwdgrad/random';
import {
  drawAheadBytes,
  installNativeKernels,
  nativeNormalFiller,
  nativePoolStats,
  setDrawAhead,
  uninstallNativeKernels,
} from './kernels.js';

// Output buffers are recycled when tfjs disposes their tensor; anything that can still see a buffer
// (a dataSync() result, a slice's view) must keep its values.
const enabled = loadNative().available;

beforeAll(async () => {
  await tf.setBackend('cpu');
  (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
  installNativeKernels();
});
afterAll(() => uninstallNativeKernels());

describe.runIf(enabled)('buffer pool', () => {
  const n = 4096; // pooled sizes start at 1024 elements

  it('reuses the buffer of a disposed output for the next output of the same size', () => {
    const x = tf.ones([n]);
    tf.dispose(tf.add(x, 1));
    const before = nativePoolStats().reused;
    const y = tf.add(x, 2);
    expect(nativePoolStats().reused).toBe(before + 1);
    expect(Array.from(y.dataSync().slice(0, 3))).toEqual([3, 3, 3]);
    tf.dispose([x, y]);
  });

  it('never recycles a buffer whose values were read out', () => {
    const x = tf.ones([n]);
    const a = tf.add(x, 1);
    const retired = nativePoolStats().retired;
    const held = a.dataSync(); // the cpu backend hands out its own array
    expect(nativePoolStats().retired).toBe(retired + 1);
    a.dispose();
    const b = tf.add(x, 5); // would take a's buffer if it had gone back to the pool
    expect(held[0]).toBe(2);
    expect(b.dataSync()[0]).toBe(6);
    tf.dispose([x, b]);
  });

  it('never recycles a buffer that a slice views', () => {
    const x = tf.ones([2, n]);
    const a = tf.add(x, 1);
    const retired = nativePoolStats().retired;
    const view = tf.slice(a, [1, 0], [1, n]); // tfjs's simple slice: a subarray of a's buffer
    expect(nativePoolStats().retired).toBe(retired + 1);
    a.dispose();
    const b = tf.add(x, 7);
    expect(view.dataSync()[0]).toBe(2);
    tf.dispose([x, view, b]);
  });

  it('a buffer cut into views comes back when the last view is released, not before', () => {
    setNormalFiller(nativeNormalFiller());
    try {
      const random = createRandom(3);
      const [a, b] = random.normals([[n], [n]]);
      const bValues = Array.from(tf.clone(b).dataSync());
      const recycled = nativePoolStats().recycled;
      a.dispose();
      expect(nativePoolStats().recycled).toBe(recycled); // b still views the buffer
      const c = tf.tidy(() => tf.add(tf.zeros([2 * n]), 1)); // would take the buffer if it had come back
      expect(Array.from(b.dataSync())).toEqual(bValues); // (and this read retires it for good)
      b.dispose();
      expect(nativePoolStats().recycled).toBe(recycled);
      const [d, e] = random.normals([[n], [n]]);
      tf.dispose([d, e]);
      expect(nativePoolStats().recycled).toBe(recycled + 1); // unread views: back with the last one
      tf.dispose([c]);
    } finally {
      setNormalFiller(undefined);
    }
  });
});

describe.runIf(enabled)('drawing ahead, on and off', () => {
  it('holds one buffer per repeated request while on; setDrawAhead(false) gives it back, same draws either way', () => {
    const n = 1 << 17; // drawn ahead from 64K draws
    const draws = (on: boolean) => {
      expect(setDrawAhead(on)).toBe(true);
      setNormalFiller(nativeNormalFiller());
      try {
        const random = createRandom(5);
        const out: number[] = [];
        const held: number[] = [];
        for (let i = 0; i < 3; i++) {
          const [v] = random.normals([[n]]);
          out.push(...v.dataSync().slice(0, 4), v.dataSync()[n - 1]);
          v.dispose();
          held.push(drawAheadBytes());
        }
        return { out, held };
      } finally {
        setNormalFiller(undefined);
      }
    };
    const before = drawAheadBytes();
    const on = draws(true);
    // the next request's buffer, n floats, beside whatever earlier fillers still hold
    expect(on.held).toEqual([before + 4 * n, before + 4 * n, before + 4 * n]);
    const off = draws(false);
    expect(drawAheadBytes()).toBe(0); // every filler's buffers cancelled and given back
    expect(off.held).toEqual([0, 0, 0]);
    expect(off.out).toEqual(on.out);
    setDrawAhead(process.env.FWDGRAD_NATIVE_PREFETCH !== '0');
  });
});
