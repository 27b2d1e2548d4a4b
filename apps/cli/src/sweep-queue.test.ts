import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliTrainCommand } from './sweep.js';

/*
 * The BullMQ path against a real Redis: a redis-server (Debian package `redis-server`; .ci/run
 * installs it) on a free loopback port with persistence off, two `fwdgrad worker` processes, one
 * killed with SIGKILL in the middle of a run.
 */

const bin = cliTrainCommand().args[0];
const env = { ...process.env, FWDGRAD_THREADS: '1' };
const dir = mkdtempSync(join(tmpdir(), 'fwdgrad-queue-'));
let redis: ChildProcess | null = null;
let url = '';
const workers: ChildProcess[] = [];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function until(what: string, ok: () => boolean, timeoutMs: number, everyMs = 20): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

beforeAll(async () => {
  const which = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (which.status !== 0) {
    throw new Error(
      'redis-server is not installed; install it (apt-get install redis-server) to run this test',
    );
  }
  const port = await freePort();
  url = `redis://127.0.0.1:${port}`;
  redis = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  redis.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await until(
    'redis-server to accept connections',
    () => out.includes('Ready to accept connections'),
    20_000,
  );
});

afterAll(async () => {
  for (const w of workers) w.kill('SIGKILL');
  if (redis !== null) {
    const r = redis;
    await new Promise<void>((resolve) => {
      r.once('exit', () => resolve());
      r.kill('SIGTERM');
    });
  }
  rmSync(dir, { recursive: true, force: true });
});

function fwdgrad(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function startWorker(root: string): { proc: ChildProcess; log: () => string } {
  const proc = spawn(
    process.execPath,
    [bin, 'worker', '--queue', url, '--root', root, '--lock-seconds', '2'],
    {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  workers.push(proc);
  let log = '';
  proc.stderr?.on('data', (d: Buffer) => {
    log += d.toString();
  });
  return { proc, log: () => log };
}

function payloadSha(file: string): string {
  const buf = readFileSync(file);
  return JSON.parse(buf.subarray(44, 44 + buf.readUInt32LE(8)).toString('utf8')).payloadSha256;
}

describe('fwdgrad sweep run --queue and fwdgrad worker (BullMQ)', () => {
  it('a run whose worker is SIGKILLed goes to the other worker, which resumes it; every run ends as in a local sequential sweep', async () => {
    const spec = join(dir, 'tiny.json');
    writeFileSync(
      spec,
      JSON.stringify({
        seed: [0, 1],
        algo: ['bp', 'lg-fg-a'],
        model: 'S/1/1',
        epochs: 2,
        'limit-train': 2048,
        'limit-test': 512,
      }),
    );
    const root = join(dir, 'shared');
    const names = ['seed=0,algo=bp', 'seed=0,algo=lg-fg-a', 'seed=1,algo=bp', 'seed=1,algo=lg-fg-a'];

    const queued = fwdgrad(['sweep', 'run', spec, '--queue', url, '--root', root]);
    expect(queued.code, queued.err).toBe(0);
    expect(queued.err).toMatch(/queued 4 runs/);
    // re-submitting queues nothing twice
    expect(fwdgrad(['sweep', 'run', spec, '--queue', url, '--root', root]).err).toMatch(
      /queued 0 runs .* skipped 4 finished or already queued/,
    );

    const a = startWorker(root);
    const b = startWorker(root);
    // a run worker A is training (started, not finished), once it has its first checkpoint. Runs are
    // short: on a fast machine epoch 2 may end between two polls, so the victim is any unfinished
    // run of A's, and the resumption is checked against the newest checkpoint it left.
    const unfinished = (n: string) =>
      existsSync(join(root, n, 'checkpoint-1.bin')) && !existsSync(join(root, n, 'result.json'));
    let victim = '';
    await until(
      'worker A to finish epoch 1 of a run',
      () => {
        const started = [...a.log().matchAll(/started (\S+)/g)].map((m) => m[1]);
        victim = started.reverse().find(unfinished) ?? '';
        return victim !== '';
      },
      120_000,
    );
    a.proc.kill('SIGKILL');
    await new Promise<void>((resolve) =>
      a.proc.exitCode !== null ? resolve() : a.proc.once('exit', () => resolve()),
    );
    const left = existsSync(join(root, victim, 'checkpoint-2.bin')) ? 2 : 1;
    expect(existsSync(join(root, victim, 'result.json'))).toBe(false);

    await until(
      'every run to finish',
      () => names.every((n) => existsSync(join(root, n, 'result.json'))),
      240_000,
      200,
    );
    b.proc.kill('SIGTERM');
    expect(b.log()).toContain(`started ${victim}`);
    expect(readFileSync(join(root, victim, 'train.log'), 'utf8')).toMatch(
      new RegExp(`resuming .* after epoch ${left}`),
    );

    const status = fwdgrad(['sweep', 'status', spec, '--root', root, '--queue', url]);
    expect(status.out.match(/^finished .*\[queue: completed\]$/gm)).toHaveLength(4);

    // the same sweep run locally, one run after the other
    const localRoot = join(dir, 'local');
    const local = fwdgrad(['sweep', 'run', spec, '--root', localRoot, '--workers', '1']);
    expect(local.code, local.err).toBe(0);
    for (const n of names) {
      const q = JSON.parse(readFileSync(join(root, n, 'result.json'), 'utf8'));
      const l = JSON.parse(readFileSync(join(localRoot, n, 'result.json'), 'utf8'));
      expect([n, q.test_error, q.train_error]).toEqual([n, l.test_error, l.train_error]);
      expect(payloadSha(join(root, n, 'checkpoint-2.bin'))).toBe(
        payloadSha(join(localRoot, n, 'checkpoint-2.bin')),
      );
    }
  });
});
