import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import {
  appendMetrics,
  checkpointPath,
  listCheckpoints,
  loadCheckpoint,
  loadLatestCheckpoint,
  readConfig,
  readMetrics,
  saveCheckpoint,
  writeConfig,
  writeMetrics,
} from './checkpoint.js';
import type { NamedTensors } from './params.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fwdgrad-ckpt-'));
let serial = 0;
const newRun = () => path.join(root, `run-${serial++}`);
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

function bytesOf(t: tf.Tensor): Buffer {
  const d = t.dataSync() as Float32Array | Int32Array | Uint8Array;
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

function dispose(n: NamedTensors): void {
  for (const t of Object.values(n)) t.dispose();
}

function sample(seed: number): { params: NamedTensors; optimizer: NamedTensors } {
  return {
    params: {
      'block0/layer0/w': tf.tensor2d(
        [seed + 0.1, -0, 1e-38, Number.NaN, Number.POSITIVE_INFINITY, -3.5],
        [2, 3],
      ),
      'block0/layer0/b': tf.tensor1d([seed, 2, 3]),
      scalar: tf.scalar(Math.PI),
      empty: tf.zeros([0, 3]),
      ints: tf.tensor1d([-7, 2 ** 30, seed], 'int32'),
      mask: tf.tensor1d([1, 0, 1], 'bool'),
    },
    optimizer: {
      'momentum/block0/layer0/w': tf.tensor2d([
        [0.5, 0.25, -1],
        [2, 3, 4],
      ]),
    },
  };
}

describe('checkpoints (issue 8 item 4)', () => {
  it('round-trips tensors bit for bit, with epoch, step and extra JSON', () => {
    const run = newRun();
    const { params, optimizer } = sample(1);
    const extra = { rng: { state: [1, 2, 3, 4] }, order: 'abc', best: 0.25 };
    const before = tf.memory().numTensors;
    const file = saveCheckpoint(run, { epoch: 3, step: 1200, params, optimizer, extra });
    expect(tf.memory().numTensors).toBe(before);
    expect(file).toBe(checkpointPath(run, 3));

    const loaded = loadLatestCheckpoint(run)!;
    expect(loaded.file).toBe(file);
    expect(loaded.epoch).toBe(3);
    expect(loaded.step).toBe(1200);
    expect(loaded.extra).toEqual(extra);
    expect(Object.keys(loaded.params)).toEqual(Object.keys(params));
    for (const [name, t] of Object.entries(params)) {
      const r = loaded.params[name];
      expect(r.dtype).toBe(t.dtype);
      expect(r.shape).toEqual(t.shape);
      expect(bytesOf(r).equals(bytesOf(t))).toBe(true);
    }
    expect(Array.from(loaded.optimizer['momentum/block0/layer0/w'].dataSync())).toEqual([
      0.5, 0.25, -1, 2, 3, 4,
    ]);
    expect(tf.memory().numTensors).toBe(before + 7);
    for (const n of [params, optimizer, loaded.params, loaded.optimizer]) dispose(n);
  });

  it('keeps the newest 3 checkpoints, ordered by epoch number', () => {
    const run = newRun();
    const params = { w: tf.tensor1d([1, 2]) };
    for (const epoch of [1, 2, 8, 9, 10, 11]) {
      params.w.dispose();
      params.w = tf.tensor1d([epoch, -epoch]);
      saveCheckpoint(run, { epoch, step: epoch * 10, params, optimizer: {} });
    }
    expect(listCheckpoints(run).map((c) => c.epoch)).toEqual([9, 10, 11]);
    expect(fs.readdirSync(run).sort()).toEqual([
      'checkpoint-10.bin',
      'checkpoint-11.bin',
      'checkpoint-9.bin',
    ]);
    const latest = loadLatestCheckpoint(run)!;
    expect(latest.epoch).toBe(11);
    expect(Array.from(latest.params.w.dataSync())).toEqual([11, -11]);
    dispose(latest.params);
    params.w.dispose();
  });

  it('returns null for a run folder without checkpoints, or none at all', () => {
    expect(loadLatestCheckpoint(path.join(root, 'does-not-exist'))).toBeNull();
    const run = newRun();
    writeConfig(run, { a: 1 });
    expect(loadLatestCheckpoint(run)).toBeNull();
  });

  describe('corruption is detected and named', () => {
    function saved(): { run: string; file: string; bytes: Buffer } {
      const run = newRun();
      const { params, optimizer } = sample(2);
      const file = saveCheckpoint(run, { epoch: 1, step: 5, params, optimizer });
      dispose(params);
      dispose(optimizer);
      return { run, file, bytes: fs.readFileSync(file) };
    }

    it('a flipped payload byte', () => {
      const { run, file, bytes } = saved();
      bytes[bytes.length - 3] ^= 0x10;
      fs.writeFileSync(file, bytes);
      const message = `Checkpoint ${file} is corrupt: the payload checksum (sha256) does not match`;
      expect(() => loadCheckpoint(file)).toThrow(message);
      // the trainer must refuse to resume, not fall back silently
      expect(() => loadLatestCheckpoint(run)).toThrow(/Refusing to resume from it/);
    });

    it('a flipped header byte', () => {
      const { file, bytes } = saved();
      const at = bytes.indexOf('"epoch":1');
      bytes[at + 8] = '7'.charCodeAt(0);
      fs.writeFileSync(file, bytes);
      expect(() => loadCheckpoint(file)).toThrow(
        `${file} is corrupt: the header checksum (sha256) does not match`,
      );
    });

    it('a truncated file, at any length', () => {
      const { file, bytes } = saved();
      for (const length of [0, 5, 40, 60, bytes.length - 1]) {
        fs.writeFileSync(file, bytes.subarray(0, length));
        expect(() => loadCheckpoint(file)).toThrow(
          new RegExp(`${file} is corrupt: truncated: ${length} bytes`),
        );
      }
    });

    it('a file that is not a checkpoint, or has trailing bytes', () => {
      const { file, bytes } = saved();
      fs.writeFileSync(file, Buffer.concat([bytes, Buffer.from([0])]));
      expect(() => loadCheckpoint(file)).toThrow(/1 unexpected bytes after the payload/);
      fs.writeFileSync(file, Buffer.from('{"json": "not a checkpoint at all, but long enough"}'));
      expect(() => loadCheckpoint(file)).toThrow(/not a fwdgrad checkpoint/);
    });
  });

  it('a write that fails midway leaves no partial checkpoint and the previous ones intact', () => {
    const run = newRun();
    const { params, optimizer } = sample(3);
    saveCheckpoint(run, { epoch: 1, step: 10, params, optimizer });
    const good = fs.readFileSync(checkpointPath(run, 1));
    let calls = 0;
    const real = fs.writeSync;
    vi.spyOn(fs, 'writeSync').mockImplementation(((...args: Parameters<typeof fs.writeSync>) => {
      calls += 1;
      if (calls === 3) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      return (real as (...a: unknown[]) => number)(...args);
    }) as typeof fs.writeSync);
    const file2 = checkpointPath(run, 2);
    expect(() => saveCheckpoint(run, { epoch: 2, step: 20, params, optimizer })).toThrow(
      `Cannot write ${file2} (ENOSPC: no space left on device); the previous files are unchanged.`,
    );
    expect(calls).toBe(3);
    vi.restoreAllMocks();
    // no checkpoint-2.bin, no temporary file left behind, checkpoint-1 unchanged
    expect(fs.readdirSync(run)).toEqual(['checkpoint-1.bin']);
    expect(fs.readFileSync(checkpointPath(run, 1)).equals(good)).toBe(true);
    const latest = loadLatestCheckpoint(run)!;
    expect(latest.epoch).toBe(1);
    dispose(latest.params);
    dispose(latest.optimizer);
    dispose(params);
    dispose(optimizer);
  });

  it('an unwritable run folder gives an error naming the folder', () => {
    const file = path.join(root, `plain-file-${serial++}`);
    fs.writeFileSync(file, 'x');
    const params = { w: tf.tensor1d([1]) };
    expect(() => saveCheckpoint(file, { epoch: 1, step: 1, params, optimizer: {} })).toThrow(
      `The run folder ${file} is a file, not a folder; choose another run folder.`,
    );
    const below = path.join(file, 'run');
    expect(() => saveCheckpoint(below, { epoch: 1, step: 1, params, optimizer: {} })).toThrow(
      new RegExp(`Cannot create the run folder ${below} \\(ENOTDIR`),
    );
    expect(() => writeConfig(below, {})).toThrow(/Cannot create the run folder/);
    expect(() => appendMetrics(below, {})).toThrow(/Cannot create the run folder/);
    expect(fs.readFileSync(file, 'utf8')).toBe('x');
    params.w.dispose();
  });

  it('a folder without write permission gives an error naming it (simulated: tests run as root)', () => {
    const run = newRun();
    fs.mkdirSync(run);
    vi.spyOn(fs, 'accessSync').mockImplementation(() => {
      throw Object.assign(new Error(`EACCES: permission denied, access '${run}'`), { code: 'EACCES' });
    });
    expect(() => writeConfig(run, { a: 1 })).toThrow(
      `The run folder ${run} is not writable (EACCES: permission denied, access '${run}'); ` +
        'choose another run folder or fix its permissions.',
    );
    expect(fs.readdirSync(run)).toEqual([]);
  });

  it('rejects bad epochs and unsupported dtypes before writing anything', () => {
    const run = newRun();
    const c = { c: tf.complex([1], [2]) };
    expect(() => saveCheckpoint(run, { epoch: 1, step: 0, params: c, optimizer: {} })).toThrow(
      /dtype complex64 is not supported/,
    );
    expect(() => saveCheckpoint(run, { epoch: -1, step: 0, params: {}, optimizer: {} })).toThrow(/epoch -1/);
    expect(listCheckpoints(run)).toEqual([]);
    c.c.dispose();
  });
});

describe('config.json and metrics.jsonl', () => {
  it('writes and reads the config', () => {
    const run = newRun();
    const config = { preset: 'mnist-s11', lr: 0.01, augmentation: { kind: 'none' } };
    writeConfig(run, config);
    expect(readConfig(run)).toEqual(config);
    expect(fs.readFileSync(path.join(run, 'config.json'), 'utf8')).toBe(
      `${JSON.stringify(config, null, 2)}\n`,
    );
    expect(readConfig(newRun())).toBeNull();
  });

  it('appends one JSON object per line and reads them back', () => {
    const run = newRun();
    expect(readMetrics(run)).toEqual([]);
    appendMetrics(run, { epoch: 1, train_loss: 0.5, lr: 0.01 });
    appendMetrics(run, { epoch: 2, train_loss: Number.NaN, lr: 0.005 });
    const text = fs.readFileSync(path.join(run, 'metrics.jsonl'), 'utf8');
    expect(text).toBe('{"epoch":1,"train_loss":0.5,"lr":0.01}\n{"epoch":2,"train_loss":null,"lr":0.005}\n');
    expect(readMetrics(run)).toEqual([
      { epoch: 1, train_loss: 0.5, lr: 0.01 },
      { epoch: 2, train_loss: null, lr: 0.005 },
    ]);
    // drop the rows after a resumed checkpoint
    writeMetrics(run, readMetrics(run).slice(0, 1));
    expect(readMetrics(run)).toEqual([{ epoch: 1, train_loss: 0.5, lr: 0.01 }]);
  });

  it('names the file and line of a malformed metrics row', () => {
    const run = newRun();
    appendMetrics(run, { epoch: 1 });
    fs.appendFileSync(path.join(run, 'metrics.jsonl'), '{"epoch": 2, "lo');
    expect(() => readMetrics(run)).toThrow(`${path.join(run, 'metrics.jsonl')} line 2 is not valid JSON`);
  });
});
