import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from './program.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' ')));
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out.push(String(s));
    return true;
  });
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    err.push(String(s));
    return true;
  });
  const cerr = vi.spyOn(console, 'error').mockImplementation((...a) => void err.push(a.join(' ')));
  return {
    out,
    err,
    restore: () => {
      for (const s of [log, stdout, stderr, cerr]) s.mockRestore();
    },
  };
}

describe('fwdgrad CLI', () => {
  afterEach(() => vi.restoreAllMocks());

  it('info names the chosen backend and why the native ones were skipped', async () => {
    const c = capture();
    const code = await main(['info', '--json']);
    c.restore();
    expect(code).toBe(0);
    const report = JSON.parse(c.out.join('').trim());
    expect(['node-gpu', 'webgpu', 'node', 'native', 'wasm', 'cpu']).toContain(report.backend);
    expect(report.tfjs_version).toBe(tf.version.tfjs);
    if (report.backend === 'native') {
      expect(report.kernel_patches).toContain('BatchMatMul');
      expect(report.native.available).toBe(true);
    } else {
      expect(report.kernel_patches).toEqual(report.backend === 'wasm' ? ['BatchMatMul', '_FusedMatMul'] : []);
      // auto skipped native: the report says why
      expect(report.native.available === false || report.backend.startsWith('node')).toBe(true);
    }
    const skipped = report.attempts.filter((a: { ok: boolean }) => !a.ok);
    for (const a of skipped) expect(a.reason.length).toBeGreaterThan(0);
  });

  it('rejects an unknown flag with exit code 2', async () => {
    const c = capture();
    const code = await main(['info', '--frobnicate']);
    c.restore();
    expect(code).toBe(2);
    expect(c.err.join('')).toMatch(/unknown option '--frobnicate'/);
  });

  it('rejects a bad value with exit code 2', async () => {
    const c = capture();
    const code = await main(['info', '--backend', 'tpu']);
    c.restore();
    expect(code).toBe(2);
    expect(c.err.join('')).toMatch(/tpu.*invalid|Allowed choices/i);
  });

  it('prints help with exit code 0', async () => {
    const c = capture();
    const code = await main(['--help']);
    c.restore();
    expect(code).toBe(0);
    expect(c.out.join('')).toMatch(/info/);
  });

  it('tf.grad works from this package (one shared tfjs instance)', () => {
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(x, x)))(tf.tensor1d([3]));
    expect(g.dataSync()[0]).toBe(6);
  });
});
