import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { isGzip } from '../files.js';

/**
 * Reads a file, gunzipping it when its content is gzip (detected by magic number, not by name).
 */
export function readMaybeGzip(path: string): Uint8Array {
  const raw = readFileSync(path);
  if (!isGzip(raw)) return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
  try {
    const out = gunzipSync(raw);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (e) {
    throw new Error(
      `${path} starts like a gzip file but cannot be decompressed (${(e as Error).message}). ` +
        'The file is probably truncated: delete it and fetch it again.',
    );
  }
}

/** Returns `dir/name` or `dir/name.gz`, whichever exists (raw first), or undefined. */
export function findMaybeGzip(dir: string, name: string): string | undefined {
  for (const candidate of [join(dir, name), join(dir, `${name}.gz`)]) {
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}
