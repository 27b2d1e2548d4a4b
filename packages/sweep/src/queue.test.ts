import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { connectRedis, enqueueJobs } from './queue.js';
import { expandGrid } from './spec.js';

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('the BullMQ queue', () => {
  it('says once, clearly, that Redis is unreachable', async () => {
    const url = `redis://127.0.0.1:${await closedPort()}`;
    await expect(connectRedis(url)).rejects.toThrow(
      new RegExp(`cannot reach Redis at ${url} \\(connect ECONNREFUSED .*\\); start redis-server`),
    );
    await expect(enqueueJobs(expandGrid({ algo: ['bp'] }), { url })).rejects.toThrow(/cannot reach Redis/);
  });

  it('refuses a URL that is not redis://', async () => {
    await expect(connectRedis('localhost:6379')).rejects.toThrow(
      /--queue expects a Redis URL such as redis:\/\/HOST:PORT/,
    );
    await expect(connectRedis('http://localhost:6379')).rejects.toThrow(/got 'http:\/\/localhost:6379'/);
  });
});
