import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { describeSelection, selectBackend } from './backend.js';

describe('selectBackend', () => {
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('auto picks a backend that loads and explains the skipped ones', async () => {
    const sel = await selectBackend('auto');
    expect(sel.attempts.at(-1)?.ok).toBe(true);
    expect(tf.getBackend()).toBe(sel.tfjsBackend);
    for (const a of sel.attempts.slice(0, -1)) expect(a.reason).toMatch(/\S/);
    expect(describeSelection(sel)).toContain(`backend: ${sel.name}`);
  });

  it('cpu always loads, and gradients work on it (one shared tfjs instance)', async () => {
    const sel = await selectBackend('cpu');
    expect(sel.tfjsBackend).toBe('cpu');
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.square(x)))(tf.tensor1d([1, 2, 3]));
    expect(Array.from(g.dataSync())).toEqual([2, 4, 6]);
  });

  it('wasm loads and computes a matmul gradient', async () => {
    await selectBackend('wasm');
    const a = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.matMul(x as tf.Tensor2D, a)))(tf.ones([2, 2]));
    expect(Array.from(g.dataSync())).toEqual([3, 7, 3, 7]);
  });

  it('native is the cpu backend with native kernels on; cpu turns them off again', async () => {
    const native = await selectBackend('native');
    if (process.env.FWDGRAD_NATIVE === '0') {
      expect(native.name).not.toBe('native');
      return;
    }
    expect(native.tfjsBackend).toBe('cpu');
    expect(native.kernelPatches).toContain('BatchMatMul');
    expect(describeSelection(native)).toMatch(/native kernels: \d+ \(matrix products: /);
    const a = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.matMul(x as tf.Tensor2D, a)))(tf.ones([2, 2]));
    expect(Array.from(g.dataSync())).toEqual([3, 7, 3, 7]);
    const cpu = await selectBackend('cpu');
    expect(cpu.kernelPatches).toEqual([]);
    expect(tf.getKernel('BatchMatMul', 'cpu')?.kernelFunc.name).toBe('batchMatMul');
  });

  it('rejects an unknown backend with the list of valid ones', async () => {
    await expect(selectBackend('tpu' as never)).rejects.toThrow(/unknown backend 'tpu'.*wasm/);
  });
});
