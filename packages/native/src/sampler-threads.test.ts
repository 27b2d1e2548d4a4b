import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { loadNative } from './addon.js';

// Tables that keep every draw on the ziggurat's fast path (a uniform on (−1, 1)): this test is about
// whose state a draw reads, not about the distribution (the trainer's tests compare the native
// sampler with jvp-core's).
const tables = {
  kn: new Int32Array(128).fill(0x7fffffff),
  wn: new Float64Array(128).fill(1 / 2 ** 31),
  fn: new Float64Array(128).fill(0.5),
  r: 3.442619855899,
};

// Two streams taking turns, each request followed by drawing the stream's next request ahead into a
// fresh buffer, which a later request of that size from that counter takes up (what nativeNormalFiller
// does, up to four buffers); returns a checksum per request.
const drawSource = `
  const { addon, tables, requests } = arguments[0];
  const states = [12345, 777];
  const ahead = [];
  const sums = [];
  requests.forEach((n, k) => {
    const s = k % 2;
    const hit = ahead.findIndex((a) => a.state === states[s] && a.buf.length === n);
    const out = hit >= 0 ? ahead.splice(hit, 1)[0].buf : new Float32Array(n);
    states[s] = addon.fillNormal(out, states[s], tables.kn, tables.wn, tables.fn, tables.r);
    if (ahead.length >= 4) addon.prefetchCancel(ahead.shift().buf);
    const buf = new Float32Array(n);
    if (addon.prefetchInto(buf, states[s])) ahead.push({ buf, state: states[s] });
    let sum = 0;
    for (let i = 0; i < n; i += 97) sum += out[i] * (i + 1);
    sums.push(sum);
  });
  for (const a of ahead) addon.prefetchCancel(a.buf);
  return sums;
`;
const requests = [...Array.from({ length: 12 }, () => 1 << 17), 70_000, 1 << 17, 1 << 17, 5000];

describe('native normal sampler on worker threads', () => {
  const status = loadNative();
  it.runIf(status.available)(
    'each thread has its own drawing-ahead state: concurrent streams equal the stream drawn alone',
    async () => {
      const addonPath = status.path as string;
      const draw = new Function(drawSource) as (a: unknown) => number[];
      const { createRequire } = await import('node:module');
      const addon = createRequire(import.meta.url)(addonPath);
      const alone = draw({ addon, tables, requests });
      const workerCode = `
        const { parentPort, workerData } = require('node:worker_threads');
        const addon = require(workerData.addonPath);
        const draw = new Function(workerData.drawSource);
        parentPort.postMessage(draw({ addon, tables: workerData.tables, requests: workerData.requests }));
      `;
      const workers = Array.from(
        { length: 3 },
        () => new Worker(workerCode, { eval: true, workerData: { addonPath, drawSource, tables, requests } }),
      );
      // the main thread draws at the same time as the workers
      const results = workers.map(
        (w) =>
          new Promise<number[]>((resolve, reject) => {
            w.once('message', resolve);
            w.once('error', reject);
          }),
      );
      const meanwhile = draw({ addon, tables, requests });
      const got = await Promise.all(results);
      await Promise.all(workers.map((w) => w.terminate()));
      expect(meanwhile).toEqual(alone);
      // and equal the draws made with no drawing ahead at all
      addon.setPrefetch(false);
      const plain = draw({ addon, tables, requests });
      addon.setPrefetch(true);
      expect(plain).toEqual(alone);
      for (const g of got) expect(g).toEqual(alone);
      expect(new Set(alone).size).toBe(alone.length);
    },
  );
});
