import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar';
import { createRandom } from '@fwdgrad/random';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CIFAR10_FOLDER, CIFAR10_TEST_FILE } from '../cifar10.js';
import { loadCifar10 } from './cifar10.js';
import { type FetchProgress, fetchDataset, verifyDataset } from './fetch.js';
import { encodeIdx, IDX_FILES } from '../idx.js';
import { loadMnist } from './idx.js';
import { tempDirs, writeCifarFixture } from '../fixtures.test-util.js';

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');
const tmp = tempDirs('fetch-');

/** Local server on 127.0.0.1: serves `files` by path, counts requests, and `/broken/*` breaks mid-body. */
let server: Server;
let base: string;
const files = new Map<string, Buffer>();
const requests: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = req.url ?? '';
    requests.push(url);
    if (url.startsWith('/silent/')) return; // never answers
    if (url.startsWith('/flaky/') && requests.filter((r) => r === url).length === 1) {
      res.writeHead(503, 'Service Unavailable');
      res.end();
      return;
    }
    if (url.startsWith('/broken/')) {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000, 7));
      setTimeout(() => res.destroy(), 20);
      return;
    }
    const body = files.get(url.replace(/^\/flaky/, ''));
    if (body === undefined) {
      res.writeHead(404, 'Not Found');
      res.end();
      return;
    }
    res.writeHead(200, { 'content-length': String(body.length) });
    // Two chunks, so progress is usually reported more than once.
    const half = Math.floor(body.length / 2);
    res.write(body.subarray(0, half));
    setTimeout(() => res.end(body.subarray(half)), 5);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** A tar.gz of a tiny CIFAR-10 folder (optionally without the test batch). */
async function makeCifarArchive(withTest = true) {
  const src = tmp('src');
  const fx = writeCifarFixture(join(src, CIFAR10_FOLDER));
  if (!withTest) rmSync(join(src, CIFAR10_FOLDER, CIFAR10_TEST_FILE));
  const archive = join(src, 'cifar-10-binary.tar.gz');
  await tar.c({ gzip: true, file: archive, cwd: src }, [CIFAR10_FOLDER]);
  return { bytes: readFileSync(archive), fx };
}

const leftovers = (dir: string) =>
  readdirSync(dir).filter((f) => f.includes('.part') || f.startsWith('.extract'));

describe('fetchDataset cifar10 against a local server', () => {
  it('downloads, verifies, extracts, reports progress, and skips a second time', async () => {
    const { bytes, fx } = await makeCifarArchive();
    files.set('/c1/cifar-10-binary.tar.gz', bytes);
    const dir = tmp('c1');
    const events: FetchProgress[] = [];
    const expectedMd5 = { 'cifar-10-binary.tar.gz': md5(bytes) };
    const report = await fetchDataset('cifar10', dir, {
      baseUrl: `${base}/c1/`,
      expectedMd5,
      onProgress: (p) => events.push(p),
    });
    expect(report.files).toEqual([
      {
        name: 'cifar-10-binary.tar.gz',
        path: join(dir, 'cifar-10-binary.tar.gz'),
        bytes: bytes.length,
        md5: md5(bytes),
        downloaded: true,
      },
    ]);
    expect(report.extractedTo).toBe(join(dir, CIFAR10_FOLDER));
    const downloads = events.filter((e) => e.phase === 'download');
    expect(downloads.length).toBeGreaterThanOrEqual(1);
    for (let i = 1; i < downloads.length; i++) {
      expect(downloads[i].receivedBytes).toBeGreaterThan(downloads[i - 1].receivedBytes);
    }
    expect(downloads.at(-1)).toMatchObject({ receivedBytes: bytes.length, totalBytes: bytes.length });
    expect(events.map((e) => e.phase).filter((p) => p !== 'download')).toEqual([
      'verified',
      'extract',
      'extracted',
    ]);
    expect(leftovers(dir)).toEqual([]);
    const ds = loadCifar10(dir);
    expect(Array.from(ds.test.images)).toEqual(Array.from(fx.test.images));
    expect(Array.from(ds.train.labels)).toEqual(fx.train.flatMap((s) => Array.from(s.labels)));

    const before = requests.length;
    const again = await fetchDataset('cifar10', dir, { baseUrl: `${base}/c1/`, expectedMd5 });
    expect(requests.length).toBe(before);
    expect(again.files[0].downloaded).toBe(false);

    // verify: the archive MD5 matches, but these tiny batches are not the official 10000 records.
    const v = await verifyDataset('cifar10', dir, { expectedMd5 });
    expect(v.ok).toBe(false);
    expect(v.checks[0]).toMatchObject({ ok: true, message: `MD5 ${md5(bytes)} matches` });
    expect(v.checks[1].message).toMatch(
      /wrong size: expected 30730000 bytes \(10000 records of 3073\), got 6146/,
    );
    expect(v.checks).toHaveLength(7);
  });

  it('deletes the partial file on a checksum mismatch and says so', async () => {
    const { bytes } = await makeCifarArchive();
    files.set('/c2/cifar-10-binary.tar.gz', bytes);
    const dir = tmp('c2');
    // Default (official) MD5: our generated archive cannot match it.
    await expect(fetchDataset('cifar10', dir, { baseUrl: `${base}/c2` })).rejects.toThrow(
      new RegExp(
        `Checksum mismatch for ${base}/c2/cifar-10-binary.tar.gz: expected MD5 c32a1d4ab5d03f1284b67883e8d87530, ` +
          `got ${md5(bytes)} \\(${bytes.length} bytes\\)\\. The partial file .*\\.part was deleted`,
      ),
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it('reports HTTP errors naming the URL and status, writing nothing', async () => {
    const dir = tmp('c3');
    await expect(fetchDataset('cifar10', dir, { baseUrl: `${base}/nothing-here/` })).rejects.toThrow(
      new RegExp(`Download of ${base}/nothing-here/cifar-10-binary.tar.gz failed: HTTP 404 Not Found`),
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it('deletes the partial file when the connection breaks', async () => {
    const dir = tmp('c4');
    const quick = { retries: 1, retryDelayMs: 10 };
    await expect(fetchDataset('cifar10', dir, { baseUrl: `${base}/broken/`, ...quick })).rejects.toThrow(
      /broke off after \d+ bytes .*the partial file .*\.part was deleted\. Retry the fetch\. \(2 attempts\)/,
    );
    expect(requests.filter((r) => r === '/broken/cifar-10-binary.tar.gz')).toHaveLength(2);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('gives up on a silent server after the timeout and its retries', async () => {
    const dir = tmp('c6');
    const started = Date.now();
    await expect(
      fetchDataset('cifar10', dir, {
        baseUrl: `${base}/silent/`,
        timeoutMs: 200,
        retries: 2,
        retryDelayMs: 10,
      }),
    ).rejects.toThrow(
      /cifar-10-binary\.tar\.gz failed: the server sent nothing for 0\.2 s\..* \(3 attempts\)/,
    );
    expect(Date.now() - started).toBeLessThan(5000);
    expect(requests.filter((r) => r === '/silent/cifar-10-binary.tar.gz')).toHaveLength(3);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('retries a server error, and removes what killed fetches left behind', async () => {
    const { bytes } = await makeCifarArchive();
    files.set('/c7/cifar-10-binary.tar.gz', bytes);
    const dir = tmp('c7');
    // a fetch killed mid-download and another killed mid-extraction (pids that do not exist)
    writeFileSync(join(dir, 'cifar-10-binary.tar.gz.download-99999999.part'), 'partial');
    mkdirSync(join(dir, '.extract-99999998', CIFAR10_FOLDER), { recursive: true });
    const report = await fetchDataset('cifar10', dir, {
      baseUrl: `${base}/flaky/c7/`,
      expectedMd5: { 'cifar-10-binary.tar.gz': md5(bytes) },
      retryDelayMs: 10,
    });
    expect(report.files[0].downloaded).toBe(true);
    expect(requests.filter((r) => r === '/flaky/c7/cifar-10-binary.tar.gz')).toHaveLength(2);
    expect(leftovers(dir)).toEqual([]);
  });

  it('refuses an archive without the expected files and leaves no half-extracted folder', async () => {
    const { bytes } = await makeCifarArchive(false);
    files.set('/c5/cifar-10-binary.tar.gz', bytes);
    const dir = tmp('c5');
    await expect(
      fetchDataset('cifar10', dir, {
        baseUrl: `${base}/c5/`,
        expectedMd5: { 'cifar-10-binary.tar.gz': md5(bytes) },
      }),
    ).rejects.toThrow(/does not contain the expected files: missing cifar-10-batches-bin\/test_batch\.bin/);
    expect(existsSync(join(dir, CIFAR10_FOLDER))).toBe(false);
    expect(leftovers(dir)).toEqual([]);
  });
});

describe('a hostile archive', () => {
  it('is refused for its real reason (not a clean-up error) and leaves no temporary folder', async () => {
    // large entries still being written when the '..' entry is refused made the clean-up fail with
    // ENOTEMPTY in about a third of the tries
    const src = tmp('evil-src');
    const rng = createRandom(3);
    mkdirSync(join(src, 'inner', CIFAR10_FOLDER), { recursive: true });
    for (const i of [1, 2, 3]) {
      writeFileSync(
        join(src, 'inner', CIFAR10_FOLDER, `big${i}.bin`),
        Uint8Array.from({ length: 1 << 20 }, () => rng.int(256)),
      );
    }
    writeFileSync(join(src, 'evil.txt'), 'outside');
    const archive = join(src, 'inner', 'cifar-10-binary.tar.gz');
    await tar.c({ gzip: true, file: archive, cwd: join(src, 'inner'), preservePaths: true }, [
      CIFAR10_FOLDER,
      '../evil.txt',
      CIFAR10_FOLDER,
    ]);
    const bytes = readFileSync(archive);
    files.set('/evil/cifar-10-binary.tar.gz', bytes);
    for (let i = 0; i < 4; i++) {
      const dir = tmp(`evil-${i}`);
      await expect(
        fetchDataset('cifar10', dir, {
          baseUrl: `${base}/evil/`,
          expectedMd5: { 'cifar-10-binary.tar.gz': md5(bytes) },
        }),
      ).rejects.toThrow(/was refused: .*path contains '\.\.'.*Nothing was extracted/);
      expect(leftovers(dir)).toEqual([]);
      expect(existsSync(join(dir, '..', 'evil.txt'))).toBe(false);
    }
  });
});

describe('fetchDataset mnist against a local server', () => {
  it('downloads the four .gz idx files, verified, and loadMnist reads them', async () => {
    const rng = createRandom(5);
    const trainImages = Uint8Array.from({ length: 3 * 784 }, () => rng.int(256));
    const raw: Record<string, Uint8Array> = {
      [IDX_FILES.trainImages]: encodeIdx([3, 28, 28], trainImages),
      [IDX_FILES.trainLabels]: encodeIdx([3], new Uint8Array([4, 0, 9])),
      [IDX_FILES.testImages]: encodeIdx([2, 28, 28], new Uint8Array(2 * 784).fill(17)),
      [IDX_FILES.testLabels]: encodeIdx([2], new Uint8Array([1, 2])),
    };
    const expectedMd5: Record<string, string> = {};
    for (const [name, bytes] of Object.entries(raw)) {
      const gz = gzipSync(bytes);
      files.set(`/m/${name}.gz`, gz);
      expectedMd5[`${name}.gz`] = md5(gz);
    }
    const dir = tmp('m');
    const report = await fetchDataset('mnist', dir, { baseUrl: `${base}/m/`, expectedMd5 });
    expect(report.files.map((f) => [f.name, f.downloaded])).toEqual(
      Object.keys(raw).map((n) => [`${n}.gz`, true]),
    );
    expect(report.extractedTo).toBeUndefined();
    const ds = loadMnist({ dataDir: dir });
    expect(ds.train.count).toBe(3);
    expect(Array.from(ds.train.images)).toEqual(Array.from(trainImages));
    expect(Array.from(ds.test.labels)).toEqual([1, 2]);

    const v = await verifyDataset('mnist', dir, { expectedMd5 });
    expect(v.ok).toBe(false);
    expect(v.checks[0].message).toMatch(/dims \[3, 28, 28\], expected \[60000, 28, 28\]/);
    // A corrupted .gz fails its official MD5.
    writeFileSync(
      join(dir, `${IDX_FILES.testLabels}.gz`),
      gzipSync(raw[IDX_FILES.testLabels]).subarray(0, 10),
    );
    const v2 = await verifyDataset('mnist', dir);
    expect(v2.checks[3].message).toMatch(
      /MD5 mismatch: expected ec29112dd5afa0611ce80d1b7f02629c, got [0-9a-f]{32}/,
    );
  });

  it('verify reports missing files with the fetch command', async () => {
    const dir = tmp('m2');
    const v = await verifyDataset('mnist', dir);
    expect(v.ok).toBe(false);
    expect(v.checks[0].message).toBe(
      `missing (nor train-images-idx3-ubyte.gz); run \`fwdgrad data fetch mnist --data-dir ${dir}\``,
    );
    const c = await verifyDataset('cifar10', dir);
    expect(c.checks[0].message).toBe(`missing; run \`fwdgrad data fetch cifar10 --data-dir ${dir}\``);
  });
});
