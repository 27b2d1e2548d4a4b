import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';

import { nativeAddon } from '@fwdgrad/native';
import { createRandom, normalFiller } from '@fwdgrad/random';
import { autoOrder, describeSelection, NODE_MIN_STEP_WORK, selectBackend, stepWork } from './backend.js';

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

  it('wasm loads with its kernel patches and computes a matmul gradient', async () => {
    const sel = await selectBackend('wasm');
    expect(sel.kernelPatches).toEqual(['BatchMatMul', '_FusedMatMul']);
    const a = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.matMul(x as tf.Tensor2D, a)))(tf.ones([2, 2]));
    expect(Array.from(g.dataSync())).toEqual([3, 7, 3, 7]);
  });

  it('native is the cpu backend with native kernels on; cpu turns them off again', async () => {
    if (process.env.FWDGRAD_NATIVE === '0') {
      await expect(selectBackend('native')).rejects.toThrow(/FWDGRAD_NATIVE=0/);
      return;
    }
    const native = await selectBackend('native');
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

  it('the native normal sampler draws the same stream as the JavaScript one, bit for bit', async () => {
    if (process.env.FWDGRAD_NATIVE === '0') return;
    await selectBackend('cpu');
    expect(normalFiller()).toBeUndefined();
    const js = createRandom(11);
    // 2M draws: the ziggurat's tail (|x| > 3.44) and wedge rejections both occur thousands of times
    const a = js.normal([2_000_000]);
    const aNext = js.uniform();
    await selectBackend('native');
    expect(normalFiller()).toBeDefined();
    const nat = createRandom(11);
    const b = nat.normal([2_000_000]);
    expect(nat.uniform()).toBe(aNext);
    const av = a.dataSync();
    const bv = b.dataSync();
    let tail = 0;
    let mismatches = 0;
    for (let i = 0; i < av.length; i++) {
      if (av[i] !== bv[i]) mismatches++;
      if (Math.abs(av[i]) > 3.442619855899) tail++;
    }
    expect(mismatches).toBe(0);
    expect(tail).toBeGreaterThan(500);
    tf.dispose([a, b]);
    // a sequence of requests, as a forward-gradient step makes them: after a request of 64K draws or
    // more the native filler draws the next one ahead into the buffer a same-size request will get
    // (back-to-back requests catch it part-way: the rest is drawn then) and, on two threads, draws what
    // the prefetch did not cover block-parallel (from 128K draws). uniform() calls in between move the
    // stream without it; a request of another size leaves what was drawn ahead for the first.
    const sizes = [
      1000, 300000, 5000, 3, 300000, 300000, 70000, 256, 1, 12, 4096, 8192, 262144, 262144, 65536, 65536,
      65536, 70000,
    ];
    const draw = (r: ReturnType<typeof createRandom>) =>
      sizes.flatMap((n, i) => {
        const t = r.normal([n]);
        const v = Array.from(t.dataSync());
        t.dispose();
        return i % 4 === 3 ? [...v, r.uniform()] : v;
      });
    // streams taking turns (rules timed in turns, models trained side by side), each repeating its
    // request as a training loop does, so that the draw-ahead of each is taken up by its next request
    // (whole, part-way or not at all, depending on the timing): normals() requests cut into shapes
    // (forwardVariableGrads' FG-W), single requests of several sizes, a stream whose size alternates,
    // and five streams drawn ahead against four buffers (the oldest is dropped)
    const turns = (seed: number) => {
      const streams = [0, 1, 2, 3, 4].map((i) => createRandom(seed).derive(i));
      const out: number[] = [];
      for (let step = 0; step < 6; step++) {
        streams.forEach((r, i) => {
          const ts =
            i === 0
              ? r.normals([[300, 300], [256], [70000]])
              : [r.normal([i === 4 && step % 2 === 1 ? 5000 : 65536 * (1 + (i % 2))])];
          for (const t of ts) {
            const v = t.dataSync();
            for (let j = 0; j < v.length; j += 61) out.push(v[j]);
            out.push(v[v.length - 1]);
            t.dispose();
          }
          if (step === 2) out.push(r.uniform());
        });
      }
      return out;
    };
    const addon = nativeAddon();
    const threads = addon?.info().threads ?? 1;
    const natSeqs = [1, 2].map((t) => {
      addon?.setThreads(t);
      return [draw(createRandom(5)), turns(6)];
    });
    addon?.setThreads(threads);
    await selectBackend('cpu');
    expect(normalFiller()).toBeUndefined();
    const jsSeqs = [draw(createRandom(5)), turns(6)];
    for (const natSeq of natSeqs) {
      natSeq.forEach((seq, k) => {
        expect(seq.length).toBe(jsSeqs[k].length);
        expect(seq.every((v, i) => v === jsSeqs[k][i])).toBe(true);
      });
    }
  });

  it('webgpu (Dawn in Node) either runs a matmul like cpu or says exactly why not, with the fix', async () => {
    const sel = await selectBackend('auto');
    const webgpu = sel.attempts.find((a) => a.name === 'webgpu');
    if (sel.name === 'webgpu') {
      // a machine with a GPU: the product matches the cpu backend's
      const a = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
      const b = tf.tensor2d([1, 0, -1, 2, 0.5, 1], [3, 2]);
      expect(Array.from(await tf.matMul(a, b).data())).toEqual([2.5, 7, 5.5, 16]);
    } else {
      expect(webgpu?.ok).toBe(false);
      expect(webgpu?.reason).toMatch(/Dawn \(the webgpu package\)|webgpu package|CPU emulation/);
      expect(webgpu?.reason).toMatch(/install|Vulkan|--backend webgpu/);
      await expect(selectBackend('webgpu')).rejects.toThrow(
        /backend 'webgpu' could not be loaded \(webgpu: /,
      );
    }
    await selectBackend('cpu');
  });

  it('auto tries native before node for small steps, node first for large ones', async () => {
    // M/1/16 and M/8/16 at batch 128, the two measured sizes, fall on either side of the threshold
    const m116 = stepWork({ blocks: 1, patchesPerSide: 1, channels: 512 }, 128);
    const m816 = stepWork({ blocks: 4, patchesPerSide: 8, channels: 512 }, 128);
    expect(m116).toBe(128 * 512 * 513);
    expect(m116).toBeLessThan(NODE_MIN_STEP_WORK);
    expect(m816).toBeGreaterThan(NODE_MIN_STEP_WORK);
    expect(autoOrder()).toEqual(['node-gpu', 'webgpu', 'native', 'node', 'wasm', 'cpu']);
    expect(autoOrder(m116)).toEqual(autoOrder());
    expect(autoOrder(m816)).toEqual(['node-gpu', 'webgpu', 'node', 'native', 'wasm', 'cpu']);
    const sel = await selectBackend('auto', { stepWork: m816 });
    const names = sel.attempts.map((a) => a.name);
    expect(names.indexOf('native') === -1 || names.indexOf('node') < names.indexOf('native')).toBe(true);
  });

  it('rejects an unknown backend with the list of valid ones', async () => {
    await expect(selectBackend('tpu' as never)).rejects.toThrow(/unknown backend 'tpu'.*wasm/);
  });
});
