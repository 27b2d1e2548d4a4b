import { createHash, randomBytes } from 'node:crypto';
// The default import (the CommonJS object), so tests can simulate a failing disk write.
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { NamedTensors } from './params.js';

/*
 * Run folder layout (issue 8 item 4, REFERENCE §4 "checkpoint each epoch, keep the newest 3,
 * resume automatically"):
 *
 *   <runDir>/config.json          the resolved experiment configuration
 *   <runDir>/metrics.jsonl        one JSON object per line (one per epoch)
 *   <runDir>/checkpoint-<E>.bin   after epoch E; the newest 3 are kept
 *
 * Checkpoint file format (little-endian):
 *
 *   bytes 0..7    magic "FWDGCKP1"
 *   bytes 8..11   header length H (uint32)
 *   bytes 12..43  sha256 of the header bytes
 *   H bytes       header, UTF-8 JSON: {format, version, epoch, step, extra, payloadBytes,
 *                 payloadSha256, tensors: [{section, name, dtype, shape, offset, byteLength}]}
 *   payload       the tensors' values, each at its offset (from the payload start)
 *
 * Every byte is covered by a checksum, so a flipped bit or a truncated file is detected.
 */

const MAGIC = Buffer.from('FWDGCKP1', 'ascii');
const PREFIX_BYTES = MAGIC.length + 4 + 32;
const FORMAT = 'fwdgrad-checkpoint';
const VERSION = 1;
const CHECKPOINT_RE = /^checkpoint-(\d+)\.bin$/;

/** What a checkpoint holds. */
export interface CheckpointData {
  /** Epochs completed (the file is `checkpoint-<epoch>.bin`). */
  epoch: number;
  /** Optimiser steps completed. */
  step: number;
  /** Parameter values by name (e.g. from `namedParams`). */
  params: NamedTensors;
  /** Optimiser state by name (from `Optimizer.state()`). */
  optimizer: NamedTensors;
  /** Anything else JSON can hold: random generator state, data order, best metric, … */
  extra?: unknown;
}

/** A checkpoint read back: the tensors are new and owned by the caller. */
export interface LoadedCheckpoint extends CheckpointData {
  extra: unknown;
  /** The file it came from. */
  file: string;
}

/** Options of {@link saveCheckpoint}. */
export interface SaveCheckpointOptions {
  /** How many checkpoints to keep, newest first (default 3). */
  keep?: number;
}

type Section = 'params' | 'optimizer';
type StoredDtype = 'float32' | 'int32' | 'bool';

interface TensorRecord {
  section: Section;
  name: string;
  dtype: StoredDtype;
  shape: number[];
  offset: number;
  byteLength: number;
}

interface Header {
  format: string;
  version: number;
  epoch: number;
  step: number;
  extra: unknown;
  payloadBytes: number;
  payloadSha256: string;
  tensors: TensorRecord[];
}

function describeFsError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const message = String(e?.message ?? err);
  return e?.code && !message.startsWith(e.code) ? `${e.code}: ${message}` : message;
}

/**
 * Creates the run folder if needed and checks that it is a writable folder.
 * Throws an Error naming the folder, the reason and the fix.
 */
export function ensureRunDir(runDir: string): void {
  const cannotCreate = (err: unknown) =>
    new Error(
      `Cannot create the run folder ${runDir} (${describeFsError(err)}); ` +
        'choose another run folder or fix the permissions of its parent.',
    );
  let existing: fs.Stats | undefined;
  try {
    existing = fs.statSync(runDir, { throwIfNoEntry: false });
  } catch (err) {
    // e.g. ENOTDIR: a path component is a file
    throw cannotCreate(err);
  }
  if (existing !== undefined && !existing.isDirectory()) {
    throw new Error(`The run folder ${runDir} is a file, not a folder; choose another run folder.`);
  }
  if (existing === undefined) {
    try {
      fs.mkdirSync(runDir, { recursive: true });
    } catch (err) {
      throw cannotCreate(err);
    }
  }
  try {
    fs.accessSync(runDir, fs.constants.W_OK);
  } catch (err) {
    throw new Error(
      `The run folder ${runDir} is not writable (${describeFsError(err)}); ` +
        'choose another run folder or fix its permissions.',
    );
  }
}

/**
 * Writes `bytes` to `file` atomically: a temporary file in the same folder, fsync, then rename,
 * so `file` is either the old content or the complete new one (never a partial write).
 */
function writeAtomic(file: string, chunks: readonly Uint8Array[]): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx');
    for (const chunk of chunks) {
      let written = 0;
      while (written < chunk.byteLength) {
        written += fs.writeSync(fd, chunk, written, chunk.byteLength - written);
      }
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (err) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; the original error is the one to report
      }
    }
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // best effort: a stray temporary file is never taken for a checkpoint
    }
    throw new Error(`Cannot write ${file} (${describeFsError(err)}); the previous files are unchanged.`);
  }
  // Persist the rename itself (best effort: not every platform can fsync a folder).
  try {
    const dfd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    // ignore
  }
}

function tensorBytes(t: tf.Tensor, label: string): { dtype: StoredDtype; bytes: Uint8Array } {
  if (t.isDisposed) throw new Error(`Cannot save ${label}: the tensor is disposed.`);
  const data = t.dataSync();
  switch (t.dtype) {
    case 'float32':
    case 'int32': {
      const arr = data as Float32Array | Int32Array;
      return { dtype: t.dtype, bytes: new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength) };
    }
    case 'bool': {
      const arr = data as Uint8Array;
      return { dtype: 'bool', bytes: new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength) };
    }
    default:
      throw new Error(`Cannot save ${label}: dtype ${t.dtype} is not supported (float32, int32, bool).`);
  }
}

/** The checkpoint file of an epoch in a run folder. */
export function checkpointPath(runDir: string, epoch: number): string {
  return path.join(runDir, `checkpoint-${epoch}.bin`);
}

/** The checkpoints of a run folder, oldest first (none if the folder does not exist). */
export function listCheckpoints(runDir: string): { epoch: number; file: string }[] {
  let names: string[];
  try {
    names = fs.readdirSync(runDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`Cannot list the run folder ${runDir} (${describeFsError(err)}).`);
  }
  const out: { epoch: number; file: string }[] = [];
  for (const name of names) {
    const m = CHECKPOINT_RE.exec(name);
    if (m) out.push({ epoch: Number(m[1]), file: path.join(runDir, name) });
  }
  return out.sort((a, b) => a.epoch - b.epoch);
}

/**
 * Saves a checkpoint as `<runDir>/checkpoint-<epoch>.bin`, atomically (temporary file in the
 * same folder + rename), then deletes all but the newest `keep` (3) checkpoints. Reads the
 * tensors (does not dispose them). Returns the file written.
 *
 * @example
 * saveCheckpoint('runs/a', { epoch: 3, step: 1200, params: namedParams(entries),
 *   optimizer: opt.state(), extra: { rng: rng.state() } });
 */
export function saveCheckpoint(
  runDir: string,
  data: CheckpointData,
  options: SaveCheckpointOptions = {},
): string {
  const keep = options.keep ?? 3;
  if (!Number.isInteger(data.epoch) || data.epoch < 0) {
    throw new Error(`Checkpoint epoch ${data.epoch} is invalid; use a whole number ≥ 0.`);
  }
  if (!Number.isInteger(data.step) || data.step < 0) {
    throw new Error(`Checkpoint step ${data.step} is invalid; use a whole number ≥ 0.`);
  }
  if (!Number.isInteger(keep) || keep < 1) {
    throw new Error(`Checkpoint keep = ${keep} is invalid; keep at least 1.`);
  }
  ensureRunDir(runDir);

  const records: TensorRecord[] = [];
  const chunks: Uint8Array[] = [];
  const hash = createHash('sha256');
  let offset = 0;
  for (const section of ['params', 'optimizer'] as const) {
    for (const [name, t] of Object.entries(data[section] ?? {})) {
      const { dtype, bytes } = tensorBytes(t, `${section} '${name}'`);
      records.push({ section, name, dtype, shape: [...t.shape], offset, byteLength: bytes.byteLength });
      hash.update(bytes);
      chunks.push(bytes);
      offset += bytes.byteLength;
    }
  }
  const header: Header = {
    format: FORMAT,
    version: VERSION,
    epoch: data.epoch,
    step: data.step,
    extra: data.extra ?? null,
    payloadBytes: offset,
    payloadSha256: hash.digest('hex'),
    tensors: records,
  };
  let json: string;
  try {
    json = JSON.stringify(header);
  } catch (err) {
    throw new Error(`Checkpoint extra data is not JSON-serialisable (${describeFsError(err)}).`);
  }
  const headerBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(PREFIX_BYTES);
  MAGIC.copy(prefix, 0);
  prefix.writeUInt32LE(headerBytes.byteLength, MAGIC.length);
  createHash('sha256')
    .update(headerBytes)
    .digest()
    .copy(prefix, MAGIC.length + 4);

  const file = checkpointPath(runDir, data.epoch);
  writeAtomic(file, [prefix, headerBytes, ...chunks]);

  const all = listCheckpoints(runDir);
  for (const old of all.slice(0, Math.max(0, all.length - keep))) {
    try {
      fs.rmSync(old.file, { force: true });
    } catch (err) {
      throw new Error(`Cannot delete the old checkpoint ${old.file} (${describeFsError(err)}).`);
    }
  }
  return file;
}

function corrupt(file: string, what: string): Error {
  return new Error(
    `Checkpoint ${file} is corrupt: ${what}. Refusing to resume from it; move it away to resume from ` +
      'the previous checkpoint, or start a new run folder.',
  );
}

/**
 * Reads and verifies one checkpoint file. A damaged file (wrong magic, truncated, checksum
 * mismatch, bad header) throws an Error naming the file and what is wrong.
 */
export function loadCheckpoint(file: string): LoadedCheckpoint {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (err) {
    throw new Error(`Cannot read checkpoint ${file} (${describeFsError(err)}).`);
  }
  if (buf.byteLength < PREFIX_BYTES) {
    throw corrupt(file, `truncated: ${buf.byteLength} bytes, shorter than the ${PREFIX_BYTES}-byte prefix`);
  }
  if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw corrupt(file, `not a fwdgrad checkpoint (the first bytes are not "${MAGIC.toString('ascii')}")`);
  }
  const headerLength = buf.readUInt32LE(MAGIC.length);
  const headerEnd = PREFIX_BYTES + headerLength;
  if (buf.byteLength < headerEnd) {
    throw corrupt(file, `truncated: ${buf.byteLength} bytes, but the header alone ends at byte ${headerEnd}`);
  }
  const headerBytes = buf.subarray(PREFIX_BYTES, headerEnd);
  const headerSum = createHash('sha256').update(headerBytes).digest();
  if (!headerSum.equals(buf.subarray(MAGIC.length + 4, PREFIX_BYTES))) {
    throw corrupt(file, 'the header checksum (sha256) does not match');
  }
  let header: Header;
  try {
    header = JSON.parse(headerBytes.toString('utf8')) as Header;
  } catch (err) {
    throw corrupt(file, `the header is not valid JSON (${(err as Error).message})`);
  }
  if (header.format !== FORMAT || header.version !== VERSION) {
    throw corrupt(
      file,
      `unknown format ${header.format} version ${header.version} (expected ${FORMAT} ${VERSION})`,
    );
  }
  const expected = headerEnd + header.payloadBytes;
  if (buf.byteLength !== expected) {
    throw corrupt(
      file,
      buf.byteLength < expected
        ? `truncated: ${buf.byteLength} bytes, expected ${expected}`
        : `${buf.byteLength - expected} unexpected bytes after the payload (expected ${expected} bytes in all)`,
    );
  }
  const payload = buf.subarray(headerEnd);
  if (createHash('sha256').update(payload).digest('hex') !== header.payloadSha256) {
    throw corrupt(file, 'the payload checksum (sha256) does not match: the tensor values are damaged');
  }

  const params: NamedTensors = {};
  const optimizer: NamedTensors = {};
  try {
    for (const r of header.tensors) {
      const size = r.shape.reduce((a, b) => a * b, 1);
      const width = r.dtype === 'bool' ? 1 : 4;
      if (size * width !== r.byteLength || r.offset + r.byteLength > payload.byteLength) {
        throw corrupt(file, `tensor '${r.name}' has inconsistent shape [${r.shape}] and byte length`);
      }
      // Copy into a fresh, aligned buffer: the file buffer's offsets need not be 4-byte aligned.
      const bytes = new Uint8Array(r.byteLength);
      bytes.set(payload.subarray(r.offset, r.offset + r.byteLength));
      const values =
        r.dtype === 'float32'
          ? new Float32Array(bytes.buffer)
          : r.dtype === 'int32'
            ? new Int32Array(bytes.buffer)
            : bytes;
      const target = r.section === 'params' ? params : optimizer;
      target[r.name] = tf.tensor(values, r.shape, r.dtype);
    }
  } catch (err) {
    for (const t of [...Object.values(params), ...Object.values(optimizer)]) t.dispose();
    throw err;
  }
  return { epoch: header.epoch, step: header.step, params, optimizer, extra: header.extra, file };
}

/**
 * Loads the newest checkpoint of a run folder, or null if it has none (or does not exist).
 * A damaged newest checkpoint throws (it is never skipped silently: the run must not resume
 * from an older state without the user knowing).
 */
export function loadLatestCheckpoint(runDir: string): LoadedCheckpoint | null {
  const all = listCheckpoints(runDir);
  if (all.length === 0) return null;
  return loadCheckpoint(all[all.length - 1].file);
}

/** Writes `<runDir>/config.json` (atomically, pretty-printed). Returns the file. */
export function writeConfig(runDir: string, config: unknown): string {
  ensureRunDir(runDir);
  const file = path.join(runDir, 'config.json');
  writeAtomic(file, [Buffer.from(`${JSON.stringify(config, null, 2)}\n`, 'utf8')]);
  return file;
}

/** Reads `<runDir>/config.json`, or null if there is none. */
export function readConfig<T = unknown>(runDir: string): T | null {
  const file = path.join(runDir, 'config.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`Cannot read ${file} (${describeFsError(err)}).`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(
      `${file} is not valid JSON (${(err as Error).message}); fix it (the run's settings are also in each checkpoint).`,
    );
  }
}

/**
 * Appends one row to `<runDir>/metrics.jsonl` (or another `name`, e.g. `steps.jsonl`; one JSON object per line). Non-finite numbers
 * become `null` (JSON has no NaN).
 */
export function appendMetrics(runDir: string, row: Record<string, unknown>, name = 'metrics.jsonl'): void {
  ensureRunDir(runDir);
  const file = path.join(runDir, name);
  try {
    fs.appendFileSync(file, `${JSON.stringify(row)}\n`, 'utf8');
  } catch (err) {
    throw new Error(`Cannot append to ${file} (${describeFsError(err)}).`);
  }
}

/**
 * Reads `<runDir>/metrics.jsonl` (or `name`; [] if there is none). A malformed line throws an Error
 * naming the file and the line.
 */
export function readMetrics<T = Record<string, unknown>>(runDir: string, name = 'metrics.jsonl'): T[] {
  const file = path.join(runDir, name);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`Cannot read ${file} (${describeFsError(err)}).`);
  }
  const rows: T[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      rows.push(JSON.parse(line) as T);
    } catch (err) {
      throw new Error(`${file} line ${i + 1} is not valid JSON (${(err as Error).message}).`);
    }
  });
  return rows;
}

/**
 * Replaces `<runDir>/metrics.jsonl` (or `name`) with `rows` atomically — e.g. to drop the rows after the
 * checkpoint a run resumes from, so a resumed run's metrics match an uninterrupted one.
 */
export function writeMetrics(
  runDir: string,
  rows: readonly Record<string, unknown>[],
  name = 'metrics.jsonl',
): void {
  ensureRunDir(runDir);
  const file = path.join(runDir, name);
  writeAtomic(file, [Buffer.from(rows.map((r) => `${JSON.stringify(r)}\n`).join(''), 'utf8')]);
}
