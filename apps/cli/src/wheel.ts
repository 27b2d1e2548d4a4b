import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, open, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createInflateRaw, inflateRawSync } from 'node:zlib';

/**
 * Reading Python wheels (zip archives) without Python or an unzip tool: the central directory gives each
 * member's name, method (stored or deflated), sizes and offset; members are streamed to disk through
 * zlib, so a 788 MB library never sits in memory. Zip64 sizes and offsets are read where present.
 */

/** One member of a zip archive, from its central directory. */
export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflated */
  method: number;
  compressedSize: number;
  size: number;
  /** Offset of the member's local header. */
  offset: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

async function readAt(file: string, position: number, length: number): Promise<Buffer> {
  const fd = await open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fd.read(buf, 0, length, position);
    return buf.subarray(0, bytesRead);
  } finally {
    await fd.close();
  }
}

function notZip(file: string, why: string): Error {
  return new Error(`${file} is not a readable wheel (zip archive): ${why}; download it again`);
}

/** The members of the zip archive `file`. */
export async function listZip(file: string): Promise<ZipEntry[]> {
  const fd = await open(file, 'r');
  const { size } = await fd.stat();
  await fd.close();
  const tailLength = Math.min(size, 22 + 65535 + 20);
  const tail = await readAt(file, size - tailLength, tailLength);
  let at = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD) {
      at = i;
      break;
    }
  }
  if (at < 0) throw notZip(file, 'no end of central directory');
  let count = tail.readUInt16LE(at + 10);
  let cdSize = tail.readUInt32LE(at + 12);
  let cdOffset = tail.readUInt32LE(at + 16);
  if (at >= 20 && tail.readUInt32LE(at - 20) === ZIP64_LOCATOR) {
    const recordOffset = Number(tail.readBigUInt64LE(at - 20 + 8));
    const record = await readAt(file, recordOffset, 56);
    if (record.readUInt32LE(0) !== ZIP64_EOCD) throw notZip(file, 'bad zip64 end record');
    count = Number(record.readBigUInt64LE(32));
    cdSize = Number(record.readBigUInt64LE(40));
    cdOffset = Number(record.readBigUInt64LE(48));
  }
  const cd = await readAt(file, cdOffset, cdSize);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL)
      throw notZip(file, 'truncated central directory');
    const nameLength = cd.readUInt16LE(p + 28);
    const extraLength = cd.readUInt16LE(p + 30);
    const commentLength = cd.readUInt16LE(p + 32);
    const entry: ZipEntry = {
      name: cd.toString('utf8', p + 46, p + 46 + nameLength),
      method: cd.readUInt16LE(p + 10),
      compressedSize: cd.readUInt32LE(p + 20),
      size: cd.readUInt32LE(p + 24),
      offset: cd.readUInt32LE(p + 42),
    };
    // zip64 extra field: the 64-bit values of the fields saturated above, in this order
    let e = p + 46 + nameLength;
    const extraEnd = e + extraLength;
    while (e + 4 <= extraEnd) {
      const id = cd.readUInt16LE(e);
      const length = cd.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        for (const field of ['size', 'compressedSize', 'offset'] as const) {
          if (entry[field] === 0xffffffff) {
            entry[field] = Number(cd.readBigUInt64LE(q));
            q += 8;
          }
        }
      }
      e += 4 + length;
    }
    entries.push(entry);
    p = extraEnd + commentLength;
  }
  return entries;
}

/** Writes the member `entry` of `file` to `dest` (through a temporary file, so a partial one never stays). */
export async function extractEntry(file: string, entry: ZipEntry, dest: string): Promise<void> {
  const local = await readAt(file, entry.offset, 30);
  if (local.readUInt32LE(0) !== LOCAL) throw notZip(file, `bad local header for ${entry.name}`);
  const start = entry.offset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
  await mkdir(dirname(dest), { recursive: true });
  const tmp = `${dest}.part`;
  let written = 0;
  if (entry.compressedSize === 0) await writeFile(tmp, '');
  else {
    const source = createReadStream(file, { start, end: start + entry.compressedSize - 1 });
    const out = createWriteStream(tmp);
    if (entry.method === 0) await pipeline(source, out);
    else if (entry.method === 8) await pipeline(source, createInflateRaw(), out);
    else throw notZip(file, `${entry.name} uses compression method ${entry.method}`);
    written = out.bytesWritten;
  }
  if (written !== entry.size) {
    throw notZip(file, `${entry.name} unpacked to ${written} bytes, expected ${entry.size}`);
  }
  if (/\.so(\.|$)/.test(entry.name)) await chmod(tmp, 0o755);
  await rename(tmp, dest);
}

/**
 * Extracts the members of `file` for which `target(name)` gives a path (relative to `dir`); returns how
 * many were written.
 */
export async function extractZip(
  file: string,
  dir: string,
  target: (name: string) => string | undefined,
): Promise<number> {
  let n = 0;
  for (const entry of await listZip(file)) {
    if (entry.name.endsWith('/') || entry.name.split('/').includes('..')) continue;
    const rel = target(entry.name);
    if (rel === undefined) continue;
    await extractEntry(file, entry, join(dir, rel));
    n++;
  }
  return n;
}

/** A member's text (small members: METADATA, RECORD), or undefined when absent. */
export async function readZipText(file: string, name: string): Promise<string | undefined> {
  const entry = (await listZip(file)).find((e) => e.name === name);
  if (entry === undefined) return undefined;
  const local = await readAt(file, entry.offset, 30);
  const start = entry.offset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
  const raw = await readAt(file, start, entry.compressedSize);
  return (entry.method === 8 ? inflateRawSync(raw) : raw).toString('utf8');
}
