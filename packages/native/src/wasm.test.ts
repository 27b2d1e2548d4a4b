import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, describe, expect, it } from 'vitest';
import { installBackendKernels } from './backends.js';

async function useWasm(): Promise<string[]> {
  await tf.setBackend('wasm');
  await tf.ready();
  return installBackendKernels('wasm');
}

function products(seed: number) {
  const a = tf.randomNormal([3, 5, 4], 0, 1, 'float32', seed);
  const b = tf.randomNormal([3, 5, 6], 0, 1, 'float32', seed + 1);
  const c = tf.randomNormal([6, 4], 0, 1, 'float32', seed + 2);
  const bias = tf.randomNormal([6], 0, 1, 'float32', seed + 3);
  return [
    tf.matMul(a, b, true, false), // [3,4,6]
    tf.matMul(b, c, false, false), // [3,5,4]
    tf.matMul(a, c, false, true), // [3,5,6]
    tf.matMul(c, c, true, false),
    tf.fused.matMul({ a: tf.reshape(a, [15, 4]), b: c, transposeB: true, bias, activation: 'relu' }),
    // reverse mode uses the transposed products
    ...tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, y))))([
      tf.reshape(a, [15, 4]),
      tf.transpose(c),
    ]),
  ].map((t) => Array.from(t.dataSync()));
}

describe('wasm kernel patches (explicit transposes for BatchMatMul / _FusedMatMul)', () => {
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('are installed by installBackendKernels and give the cpu backend results', async () => {
    await tf.setBackend('cpu');
    const expected = products(1);
    expect(await useWasm()).toEqual(['BatchMatMul', '_FusedMatMul']);
    // idempotent
    expect(installBackendKernels('wasm')).toEqual(['BatchMatMul', '_FusedMatMul']);
    const got = products(1);
    got.forEach((values, i) => {
      values.forEach((v, j) => {
        const e = expected[i][j];
        expect(Math.abs(v - e)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(e)));
      });
    });
  });

  it('leak no tensors or backend data', async () => {
    await useWasm();
    products(2);
    const before = tf.memory();
    tf.tidy(() => products(3));
    const after = tf.memory();
    expect(after.numTensors).toBe(before.numTensors);
    expect((after as { numDataBuffers: number }).numDataBuffers).toBe(
      (before as { numDataBuffers: number }).numDataBuffers,
    );
  });
});
