/**
 * Downloading and checking dataset files: `fwdgrad data fetch|verify` call these.
 *
 * A download streams to a temporary name next to its destination, is checked against its MD5,
 * and only then renamed into place; a mismatch deletes the temporary file. Archives are
 * extracted into a temporary folder and moved into place once every expected file is there, so
 * nothing is ever half-written under the final names.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as tar from 'tar';
import {
  CIFAR10_FOLDER,
  CIFAR10_RECORD_BYTES,
  CIFAR10_RECORDS_PER_FILE,
  CIFAR10_TEST_FILE,
  CIFAR10_TRAIN_FILES,
} from '../cifar10.js';
import { isGzip } from '../files.js';
import { IDX_FILES, parseIdx } from '../idx.js';
import { fetchCommand } from '../types.js';
import { resolveCifar10Dir } from './cifar10.js';
import { findMaybeGzip } from './files.js';

/** Names of the datasets that can be fetched. */
export type FetchableDataset = 'cifar10' | 'mnist';

/** One file of a dataset's download. */
export interface RemoteFile {
  /** File name, appended to the base URL and used on disk. */
  name: string;
  /** Expected MD5 (hex) of the downloaded bytes. */
  md5: string;
}

/** Where a dataset comes from and what it unpacks to. */
export interface DatasetSource {
  /** Base URL the file names are appended to. */
  baseUrl: string;
  files: RemoteFile[];
  /** For archives: the folder they extract to and the files that must be in it. */
  extract?: { folder: string; expect: string[] };
}

/**
 * Official sources. CIFAR-10: the binary archive from the authors' page (MD5 from that page).
 * MNIST: the gzipped idx files from the ossci-datasets mirror torchvision uses (yann.lecun.com
 * often refuses downloads), with the per-file MD5s torchvision checks.
 */
export const DATASET_SOURCES: Record<FetchableDataset, DatasetSource> = {
  cifar10: {
    baseUrl: 'https://www.cs.toronto.edu/~kriz/',
    files: [{ name: 'cifar-10-binary.tar.gz', md5: 'c32a1d4ab5d03f1284b67883e8d87530' }],
    extract: { folder: CIFAR10_FOLDER, expect: [...CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE] },
  },
  mnist: {
    baseUrl: 'https://ossci-datasets.s3.amazonaws.com/mnist/',
    files: [
      { name: 'train-images-idx3-ubyte.gz', md5: 'f68b3c2dcbeaaa9fbdd348bbdeb94873' },
      { name: 'train-labels-idx1-ubyte.gz', md5: 'd53e105ee54ea40749a09fcbcd1e9432' },
      { name: 't10k-images-idx3-ubyte.gz', md5: '9fb629c4189551a2d022fa330f9573f3' },
      { name: 't10k-labels-idx1-ubyte.gz', md5: 'ec29112dd5afa0611ce80d1b7f02629c' },
    ],
  },
};

/** A progress report during {@link fetchDataset}. */
export interface FetchProgress {
  dataset: FetchableDataset;
  /** File being handled. */
  file: string;
  /** `download` repeats as bytes arrive; the others are reported once per file. */
  phase: 'download' | 'verified' | 'skipped' | 'extract' | 'extracted';
  receivedBytes: number;
  /** From Content-Length, when the server sends it. */
  totalBytes?: number;
}

/** Options for {@link fetchDataset}. */
export interface FetchOptions {
  /** Base URL (a mirror, or a local server in tests); file names are appended to it. */
  baseUrl?: string;
  /** Called as bytes arrive and at each phase. */
  onProgress?: (progress: FetchProgress) => void;
  /** Override the expected MD5 per file name (for mirrors of other archives, and tests). */
  expectedMd5?: Record<string, string>;
  /** Download again even when a verified file is already on disk. */
  force?: boolean;
  /** Per-attempt idle timeout and retries of each download (see {@link downloadVerified}). */
  timeoutMs?: number;
  retries?: number;
  retryDelayMs?: number;
}

/** What {@link fetchDataset} did. */
export interface FetchReport {
  dataset: FetchableDataset;
  dir: string;
  files: { name: string; path: string; bytes: number; md5: string; downloaded: boolean }[];
  /** Folder an archive was extracted to, if any. */
  extractedTo?: string;
}

function sourceOf(name: string): DatasetSource {
  const source = (DATASET_SOURCES as Record<string, DatasetSource | undefined>)[name];
  if (source === undefined) {
    throw new Error(`Unknown dataset '${name}': expected one of ${Object.keys(DATASET_SOURCES).join(', ')}.`);
  }
  return source;
}

/** MD5 (hex) of a file, streamed. */
export async function md5File(path: string): Promise<string> {
  const hash = createHash('md5');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function joinUrl(base: string, name: string): string {
  return base.endsWith('/') ? base + name : `${base}/${name}`;
}

/** Options of {@link downloadVerified}. */
export interface DownloadOptions {
  /** Called as bytes arrive. */
  onBytes?: (received: number, total: number | undefined) => void;
  /** Give up on an attempt when the server sends nothing for this long (ms; default 30 s). */
  timeoutMs?: number;
  /** Attempts after the first when the network fails, times out, breaks off or answers 5xx (default 3). */
  retries?: number;
  /** Wait before the first retry (ms, doubled each time; default 1 s). */
  retryDelayMs?: number;
}

/** A failure worth another attempt (network, timeout, broken or truncated transfer, HTTP 5xx). */
class TransientError extends Error {}

async function downloadOnce(url: string, tmp: string, dest: string, options: DownloadOptions) {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  // an idle timeout: re-armed by every chunk, so a slow but live download is never cut
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
  };
  const silent = () => `the server sent nothing for ${timeoutMs / 1000} s`;
  arm();
  try {
    let response: Response;
    try {
      response = await fetch(url, { signal: controller.signal });
    } catch (e) {
      const cause = timedOut
        ? silent()
        : ((e as Error & { cause?: Error }).cause?.message ?? (e as Error).message);
      throw new TransientError(
        `Download of ${url} failed: ${cause}. Check the network, point --base-url at a mirror, or place the ` +
          `file at ${dest} yourself.`,
      );
    }
    if (!response.ok || response.body === null) {
      const message =
        `Download of ${url} failed: HTTP ${response.status} ${response.statusText}. Point --base-url at a mirror ` +
        `or place the file at ${dest} yourself.`;
      throw response.status >= 500 ? new TransientError(message) : new Error(message);
    }
    const lengthHeader = response.headers.get('content-length');
    const total = lengthHeader === null ? undefined : Number(lengthHeader);
    const hash = createHash('md5');
    let received = 0;
    const fh = await open(tmp, 'w');
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        arm();
        hash.update(chunk);
        await fh.write(chunk);
        received += chunk.length;
        options.onBytes?.(received, total);
      }
    } catch (e) {
      await fh.close();
      await rm(tmp, { force: true });
      throw new TransientError(
        `Download of ${url} broke off after ${received} bytes (${timedOut ? silent() : (e as Error).message}); ` +
          `the partial file ${tmp} was deleted. Retry the fetch.`,
      );
    }
    await fh.close();
    if (total !== undefined && received !== total) {
      await rm(tmp, { force: true });
      throw new TransientError(
        `Download of ${url} is truncated: expected ${total} bytes, got ${received}; the partial file ${tmp} was ` +
          'deleted. Retry the fetch.',
      );
    }
    return { received, md5: hash.digest('hex') };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Downloads `url` to `dest` through a temporary file, verifying its MD5 before renaming.
 * Returns the byte count. A server silent for `timeoutMs` ends the attempt; network failures,
 * timeouts, broken transfers and HTTP 5xx are retried (`retries`, with doubling delays). On an MD5
 * mismatch the temporary file is deleted and an error says so.
 */
export async function downloadVerified(
  url: string,
  dest: string,
  md5: string,
  options: DownloadOptions = {},
): Promise<number> {
  const tmp = `${dest}.download-${process.pid}.part`;
  const retries = options.retries ?? 3;
  let delay = options.retryDelayMs ?? 1000;
  let got: { received: number; md5: string };
  for (let attempt = 0; ; attempt++) {
    try {
      got = await downloadOnce(url, tmp, dest, options);
      break;
    } catch (e) {
      await rm(tmp, { force: true });
      if (!(e instanceof TransientError)) throw e;
      if (attempt >= retries) {
        throw new Error(attempt === 0 ? e.message : `${e.message} (${attempt + 1} attempts)`);
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay *= 2;
    }
  }
  if (got.md5 !== md5.toLowerCase()) {
    await rm(tmp, { force: true });
    throw new Error(
      `Checksum mismatch for ${url}: expected MD5 ${md5}, got ${got.md5} (${got.received} bytes). The partial file ` +
        `${tmp} was deleted and nothing was written to ${dest}. Retry, or check that --base-url serves the ` +
        'official file.',
    );
  }
  await rename(tmp, dest);
  return got.received;
}

/** Leftovers of a fetch that was killed: `<file>.download-<pid>.part` and `.extract-<pid>` of dead processes. */
const STRAY_RE = /(?:\.download-(\d+)\.part|^\.extract-(\d+))$/;

async function removeStrays(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const m = STRAY_RE.exec(name);
    const pid = Number(m?.[1] ?? m?.[2]);
    if (m === null || pid === process.pid) continue;
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (e) {
      alive = (e as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) await rm(join(dir, name), { recursive: true, force: true });
  }
}

async function extractArchive(
  archive: string,
  dir: string,
  extract: NonNullable<DatasetSource['extract']>,
): Promise<string> {
  const tmpDir = join(dir, `.extract-${process.pid}`);
  await rm(tmpDir, { recursive: true, force: true });
  await mkdir(tmpDir, { recursive: true });
  try {
    // tar strips absolute paths and '..' entries by default, so the archive cannot write outside tmpDir.
    try {
      await tar.x({ file: archive, cwd: tmpDir, strict: true });
    } catch (e) {
      throw new Error(
        `Archive ${archive} was refused: ${(e as Error).message}. Nothing was extracted; delete it and fetch ` +
          'again from the official source.',
      );
    }
    const missing = extract.expect.filter((f) => !existsSync(join(tmpDir, extract.folder, f)));
    if (missing.length > 0) {
      throw new Error(
        `Archive ${archive} does not contain the expected files: missing ${missing
          .map((f) => `${extract.folder}/${f}`)
          .join(', ')}. Delete it and fetch again.`,
      );
    }
    const target = join(dir, extract.folder);
    await rm(target, { recursive: true, force: true });
    await rename(join(tmpDir, extract.folder), target);
    return target;
  } finally {
    // a rejected archive can leave tar's last writes landing while the folder is removed
    // (ENOTEMPTY): retry, and never let the clean-up hide why the extraction failed
    await rm(tmpDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }).catch(() => {});
  }
}

/**
 * Downloads a dataset into `dir`, verifying every file's MD5, and extracts archives
 * (CIFAR-10 → `dir/cifar-10-batches-bin`; MNIST stays as the four `.gz` idx files, which
 * {@link loadMnist} reads directly). Files already present with the right MD5 are not downloaded
 * again unless `force`.
 */
export async function fetchDataset(
  name: FetchableDataset,
  dir: string,
  options: FetchOptions = {},
): Promise<FetchReport> {
  const source = sourceOf(name);
  const baseUrl = options.baseUrl ?? source.baseUrl;
  const report: FetchReport = { dataset: name, dir, files: [] };
  await mkdir(dir, { recursive: true });
  await removeStrays(dir);
  let anyDownloaded = false;
  for (const file of source.files) {
    const md5 = options.expectedMd5?.[file.name] ?? file.md5;
    const dest = join(dir, file.name);
    const progress = (phase: FetchProgress['phase'], receivedBytes: number, totalBytes?: number): void => {
      options.onProgress?.({ dataset: name, file: file.name, phase, receivedBytes, totalBytes });
    };
    if (!options.force && existsSync(dest) && (await md5File(dest)) === md5.toLowerCase()) {
      const bytes = (await stat(dest)).size;
      progress('skipped', bytes, bytes);
      report.files.push({ name: file.name, path: dest, bytes, md5, downloaded: false });
      continue;
    }
    const bytes = await downloadVerified(joinUrl(baseUrl, file.name), dest, md5, {
      onBytes: (r, t) => progress('download', r, t),
      timeoutMs: options.timeoutMs,
      retries: options.retries,
      retryDelayMs: options.retryDelayMs,
    });
    progress('verified', bytes, bytes);
    report.files.push({ name: file.name, path: dest, bytes, md5, downloaded: true });
    anyDownloaded = true;
  }
  if (source.extract !== undefined) {
    const target = join(dir, source.extract.folder);
    const complete = source.extract.expect.every((f) => existsSync(join(target, f)));
    const archive = report.files[0];
    if (anyDownloaded || options.force || !complete) {
      options.onProgress?.({ dataset: name, file: archive.name, phase: 'extract', receivedBytes: 0 });
      await extractArchive(archive.path, dir, source.extract);
      options.onProgress?.({
        dataset: name,
        file: archive.name,
        phase: 'extracted',
        receivedBytes: archive.bytes,
      });
    }
    report.extractedTo = target;
  }
  return report;
}

/** One check made by {@link verifyDataset}. */
export interface VerifyCheck {
  /** File checked. */
  path: string;
  ok: boolean;
  /** What was found (and, on failure, what was expected and the fix). */
  message: string;
}

/** What {@link verifyDataset} found on disk. */
export interface VerifyReport {
  dataset: FetchableDataset;
  dir: string;
  /** True when every check passed. */
  ok: boolean;
  checks: VerifyCheck[];
}

/** Options for {@link verifyDataset}. */
export interface VerifyOptions {
  /** Override expected MD5s per file name. */
  expectedMd5?: Record<string, string>;
}

async function verifyCifar10(dir: string, options: VerifyOptions): Promise<VerifyCheck[]> {
  const checks: VerifyCheck[] = [];
  const source = DATASET_SOURCES.cifar10;
  const archiveName = source.files[0].name;
  const archive = join(dir, archiveName);
  if (existsSync(archive)) {
    const expected = options.expectedMd5?.[archiveName] ?? source.files[0].md5;
    const actual = await md5File(archive);
    checks.push({
      path: archive,
      ok: actual === expected,
      message:
        actual === expected
          ? `MD5 ${actual} matches`
          : `MD5 mismatch: expected ${expected}, got ${actual}; delete it and run \`${fetchCommand('cifar10', dir)}\``,
    });
  }
  const binDir = resolveCifar10Dir(dir) ?? join(dir, CIFAR10_FOLDER);
  const expectedBytes = CIFAR10_RECORDS_PER_FILE * CIFAR10_RECORD_BYTES;
  for (const f of [...CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE]) {
    const path = join(binDir, f);
    if (!existsSync(path)) {
      checks.push({ path, ok: false, message: `missing; run \`${fetchCommand('cifar10', dir)}\`` });
      continue;
    }
    const bytes = await readFile(path);
    if (bytes.length !== expectedBytes) {
      checks.push({
        path,
        ok: false,
        message:
          `wrong size: expected ${expectedBytes} bytes (${CIFAR10_RECORDS_PER_FILE} records of ` +
          `${CIFAR10_RECORD_BYTES}), got ${bytes.length}; run \`${fetchCommand('cifar10', dir)}\` again`,
      });
      continue;
    }
    let bad = -1;
    for (let n = 0; n < CIFAR10_RECORDS_PER_FILE; n++) {
      if (bytes[n * CIFAR10_RECORD_BYTES] > 9) {
        bad = n;
        break;
      }
    }
    checks.push(
      bad < 0
        ? { path, ok: true, message: `${CIFAR10_RECORDS_PER_FILE} records, labels 0..9` }
        : {
            path,
            ok: false,
            message: `record ${bad} has label ${bytes[bad * CIFAR10_RECORD_BYTES]}, expected 0..9; the file is corrupt`,
          },
    );
  }
  return checks;
}

const MNIST_DIMS: Record<string, number[]> = {
  [IDX_FILES.trainImages]: [60000, 28, 28],
  [IDX_FILES.trainLabels]: [60000],
  [IDX_FILES.testImages]: [10000, 28, 28],
  [IDX_FILES.testLabels]: [10000],
};

async function verifyMnist(dir: string, options: VerifyOptions): Promise<VerifyCheck[]> {
  const checks: VerifyCheck[] = [];
  for (const [base, dims] of Object.entries(MNIST_DIMS)) {
    const path = findMaybeGzip(dir, base);
    if (path === undefined) {
      checks.push({
        path: join(dir, base),
        ok: false,
        message: `missing (nor ${base}.gz); run \`${fetchCommand('mnist', dir)}\``,
      });
      continue;
    }
    const raw = await readFile(path);
    const parts: string[] = [];
    if (isGzip(raw)) {
      // The official MD5s are of the .gz files; raw files are checked by header, size and labels.
      const remote = DATASET_SOURCES.mnist.files.find((f) => f.name === `${base}.gz`)!;
      const expected = options.expectedMd5?.[remote.name] ?? remote.md5;
      const actual = createHash('md5').update(raw).digest('hex');
      if (actual !== expected) {
        checks.push({
          path,
          ok: false,
          message: `MD5 mismatch: expected ${expected}, got ${actual}; delete it and run \`${fetchCommand('mnist', dir)}\``,
        });
        continue;
      }
      parts.push(`MD5 ${actual} matches`);
    }
    try {
      const bytes = isGzip(raw) ? gunzipSync(raw) : raw;
      const idx = parseIdx(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path);
      if (idx.dims.join('x') !== dims.join('x')) {
        throw new Error(`dims [${idx.dims.join(', ')}], expected [${dims.join(', ')}]`);
      }
      if (dims.length === 1) {
        const bad = idx.data.findIndex((v) => v > 9);
        if (bad >= 0) throw new Error(`label ${idx.data[bad]} at index ${bad}, expected 0..9`);
        parts.push(`${dims[0]} labels 0..9`);
      } else {
        parts.push(`${dims[0]} images of ${dims[1]}x${dims[2]}`);
      }
      checks.push({ path, ok: true, message: parts.join(', ') });
    } catch (e) {
      checks.push({
        path,
        ok: false,
        message: `${(e as Error).message}; run \`${fetchCommand('mnist', dir)}\` again`,
      });
    }
  }
  return checks;
}

/**
 * Checks a dataset on disk without changing anything. CIFAR-10: the archive's MD5 when it is
 * present, and each `.bin` file's size (10000 records of 3073 bytes) and labels. MNIST: each
 * `.gz` file's MD5, and each file's IDX header, dimensions (60000/10000 × 28×28) and labels.
 */
export async function verifyDataset(
  name: FetchableDataset,
  dir: string,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  sourceOf(name);
  const checks = name === 'cifar10' ? await verifyCifar10(dir, options) : await verifyMnist(dir, options);
  return { dataset: name, dir, ok: checks.every((c) => c.ok), checks };
}
