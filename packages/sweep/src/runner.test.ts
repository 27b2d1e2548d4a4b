import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveExperiment } from '@fwdgrad/trainer';
import { selectBackend, train } from '@fwdgrad/trainer/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runStatus } from './folder.js';
import { type Executor, lockRoot, runJob } from './runner.js';
import { expandGrid } from './spec.js';

const dir = mkdtempSync(join(tmpdir(), 'fwdgrad-runner-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(async () => {
  await selectBackend('cpu');
});

/** Trains a job in this process with the trainer (S/1/1, 128 examples, 2 epochs); counts its calls. */
function inProcess(): { execute: Executor; calls: () => number } {
  let calls = 0;
  const execute: Executor = async (job, attempt) => {
    calls++;
    const summary = await train({
      experiment: resolveExperiment('mnist-s11', { epochs: 2, batchSize: 32 }),
      algorithm: job.values.algo as 'bp',
      seed: Number(job.values.seed ?? 0),
      limitTrain: 128,
      limitTest: 128,
      runDir: attempt.runDir,
      resume: attempt.resume,
      progressStream: null,
      log: attempt.log,
    });
    return { ...summary };
  };
  return { execute, calls: () => calls };
}

function payloadSha(file: string): string {
  const buf = readFileSync(file);
  return JSON.parse(buf.subarray(44, 44 + buf.readUInt32LE(8)).toString('utf8')).payloadSha256;
}

describe('runJob', () => {
  it('trains into the run folder, skips it once finished, resumes it bit-exactly, and recovers an unrecorded finish', async () => {
    const root = join(dir, 'a');
    const [job] = expandGrid({ algo: ['bp'], seed: 3 });
    const ex = inProcess();
    const first = await runJob(job, { root, execute: ex.execute });
    expect(first.status).toBe('finished');
    expect(first.resumed).toBe(false);
    const runDir = join(root, 'algo=bp');
    const saved = JSON.parse(readFileSync(join(runDir, 'result.json'), 'utf8'));
    expect(saved.test_error).toBe(first.result?.test_error);
    expect(JSON.parse(readFileSync(join(runDir, 'job.json'), 'utf8')).values).toEqual({
      algo: 'bp',
      seed: 3,
    });
    const finalSha = payloadSha(join(runDir, 'checkpoint-2.bin'));

    expect((await runJob(job, { root, execute: ex.execute })).status).toBe('skipped');
    expect(ex.calls()).toBe(1);

    // killed during epoch 2: resumed from checkpoint 1 to the same parameters
    rmSync(join(runDir, 'result.json'));
    rmSync(join(runDir, 'checkpoint-2.bin'));
    expect(runStatus(root, job)).toMatchObject({ state: 'partial', epoch: 1, epochs: 2 });
    const resumed = await runJob(job, { root, execute: ex.execute });
    expect([resumed.status, resumed.resumed, ex.calls()]).toEqual(['finished', true, 2]);
    expect(resumed.result?.test_error).toBe(saved.test_error);
    expect(payloadSha(join(runDir, 'checkpoint-2.bin'))).toBe(finalSha);

    // its train process finished after its runner died: the result is rebuilt, nothing retrained
    rmSync(join(runDir, 'result.json'));
    const recovered = await runJob(job, { root, execute: ex.execute });
    expect(ex.calls()).toBe(2);
    expect(recovered.status).toBe('finished');
    expect(recovered.result).toMatchObject({
      recovered: true,
      algo: 'bp',
      model: 'S/1/1',
      epochs: 2,
      test_error: saved.test_error,
      train_error: saved.train_error,
      backend: 'cpu',
    });
  });

  it('records a failure in error.txt and starts a run without a checkpoint clean', async () => {
    const root = join(dir, 'b');
    const [job] = expandGrid({ algo: ['bp'] });
    const failing = await runJob(job, {
      root,
      execute: async () => {
        throw new Error('batch size 512 is larger than the 128 training examples');
      },
    });
    expect(failing.status).toBe('failed');
    expect(runStatus(root, job)).toMatchObject({ state: 'failed', error: failing.error });
    const ok = await runJob(job, { root, execute: inProcess().execute });
    expect(ok.status).toBe('finished');
    expect(existsSync(join(root, 'algo=bp', 'error.txt'))).toBe(false);
  });
});

describe('processExecutor', () => {
  const node = process.execPath;
  /** A script file to run as a train command (arguments after a script go to the script). */
  const script = (name: string, code: string) => {
    const file = join(dir, name);
    writeFileSync(file, code);
    return file;
  };

  it("takes the command's last stdout line as the result and reports a failing command's last stderr line", async () => {
    const root = join(dir, 'c');
    const [job] = expandGrid({ lr: [0.5] });
    const ok = await runJob(job, {
      root,
      train: {
        command: node,
        args: [
          script(
            'ok.cjs',
            'console.log("noise"); console.log(JSON.stringify({ test_error: 0.25, argv: process.argv.slice(2) }))',
          ),
        ],
      },
    });
    expect([ok.status, ok.error]).toEqual(['finished', undefined]);
    expect(ok.result?.test_error).toBe(0.25);
    expect(ok.result?.argv).toEqual([
      '--lr',
      '0.5',
      '--run-dir',
      join(root, 'lr=0.5'),
      '--json',
      '--no-progress',
    ]);
    const [bad] = expandGrid({ lr: [0.7] });
    const failed = await runJob(bad, {
      root,
      train: {
        command: node,
        args: [script('bad.cjs', 'console.error("fwdgrad: --lr is too large"); process.exit(1)')],
      },
    });
    expect(failed.error).toBe('the train command exited with 1: fwdgrad: --lr is too large');
  });

  it('a train process dies with the runner that started it, even when the runner is SIGKILLed', async () => {
    const root = join(dir, 'd');
    const pidFile = join(dir, 'train.pid');
    const sweepEntry = fileURLToPath(new URL('../dist/node.js', import.meta.url));
    const trainer = script(
      'sleeper.cjs',
      `require("fs").writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); setInterval(() => {}, 1000);`,
    );
    const runner = spawn(
      node,
      [
        '--input-type=module',
        '-e',
        `import { runJob, expandGrid } from ${JSON.stringify(sweepEntry)};
         await runJob(expandGrid({ algo: 'bp' })[0], { root: ${JSON.stringify(root)}, train: { command: ${JSON.stringify(node)}, args: [${JSON.stringify(trainer)}] } });`,
      ],
      { stdio: 'ignore' },
    );
    const until = async (ok: () => boolean, ms: number) => {
      const end = Date.now() + ms;
      while (!ok() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      return ok();
    };
    // the file exists (empty) before the pid is written into it: wait for the pid itself
    const pidOf = () => (existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0);
    expect(await until(() => pidOf() > 0, 30_000)).toBe(true);
    const pid = pidOf();
    // A killed process that its new parent has not reaped yet is a zombie: dead, though kill(pid, 0)
    // still finds it.
    const alive = () => {
      try {
        return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    expect(alive()).toBe(true);
    runner.kill('SIGKILL');
    // The watchdog checks every 0.1 s once its worker thread has started; under a loaded CI machine
    // starting that thread can take seconds, hence the generous bound.
    expect(await until(() => !alive(), 30_000)).toBe(true);
  });
});

describe('lockRoot', () => {
  it('lets one runner use a root at a time and takes over the lock of a runner that is gone', () => {
    const root = join(dir, 'lock');
    const release = lockRoot(root);
    expect(() => lockRoot(root)).toThrow(
      new RegExp(
        `another sweep runner \\(pid ${process.pid}, started .*\\) is running the runs under ${root}`,
      ),
    );
    release();
    const again = lockRoot(root);
    again();
    // a lock left by a process that no longer exists
    writeFileSync(
      join(root, '.runner.lock'),
      JSON.stringify({ host: hostname(), pid: 2 ** 22 + 12345, started: 'x' }),
    );
    const takeover = lockRoot(root);
    expect(JSON.parse(readFileSync(join(root, '.runner.lock'), 'utf8')).pid).toBe(process.pid);
    takeover();
    writeFileSync(join(root, '.runner.lock'), JSON.stringify({ host: 'elsewhere', pid: 1 }));
    expect(() => lockRoot(root)).toThrow(/a sweep runner on elsewhere \(pid 1\) holds/);
  });
});
