import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  prepareRunDir,
  readResult,
  recoverResult,
  type RunResult,
  runDirOf,
  writeFileAtomic,
} from './folder.js';
import type { SweepJob } from './spec.js';
import { lockFile } from '@fwdgrad/trainer/node';

/**
 * The command that trains one run: `command ...args <job flags> --run-dir DIR --json
 * --no-progress [--resume]` must train into DIR (resuming from its newest checkpoint with
 * `--resume`) and print its JSON summary as the last line of stdout — what `fwdgrad train` does.
 */
export interface TrainCommand {
  command: string;
  args: string[];
  /** Extra environment (e.g. FWDGRAD_THREADS=1). */
  env?: Record<string, string>;
}

/** How one attempt at a job ended. */
export interface JobOutcome {
  job: SweepJob;
  runDir: string;
  /** `skipped`: it was already finished. */
  status: 'finished' | 'skipped' | 'failed';
  result: RunResult | null;
  /** Whether this attempt resumed from a checkpoint. */
  resumed: boolean;
  error?: string;
}

/** Where and how an attempt at a job runs. */
export interface AttemptContext {
  runDir: string;
  /** The folder holds a checkpoint: continue from the newest. */
  resume: boolean;
  /** Writes a line to the run's train.log (and to `onLine`). */
  log: (line: string) => void;
}

/**
 * Trains one job into `ctx.runDir` and resolves with its summary (what result.json records), or
 * rejects with an Error saying why not. {@link processExecutor} runs a train command in a child
 * process; an in-process executor (calling the trainer's `train()`) suits a caller that trains
 * one run at a time, as the bench does.
 */
export type Executor = (job: SweepJob, ctx: AttemptContext) => Promise<RunResult>;

/** Options of {@link runJob}. */
export interface RunJobOptions {
  root: string;
  /** The train command (run in a child process), unless `execute` is given. */
  train?: TrainCommand;
  /** Runs the attempt instead of a train command. */
  execute?: Executor;
  /** Called with each line the train command prints (stdout and stderr), besides train.log. */
  onLine?: (line: string, job: SweepJob) => void;
}

/** The watchdog module preloaded into train processes (built beside this file). */
function watchdogUrl(): string | null {
  for (const rel of ['./watchdog.js', '../dist/watchdog.js']) {
    const url = new URL(rel, import.meta.url);
    if (existsSync(fileURLToPath(url))) return url.href;
  }
  return null;
}

/** The environment of a train process: the watchdog preloaded, tied to this process. */
function childEnv(extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  const url = watchdogUrl();
  if (url !== null) {
    env.FWDGRAD_SWEEP_PARENT = String(process.pid);
    env.FWDGRAD_SWEEP_NODE_OPTIONS = env.NODE_OPTIONS ?? '';
    env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --import=${JSON.stringify(url)}`.trim();
  }
  return env;
}

/**
 * Runs attempts with a train command in a child process: `command ...args <job flags> --run-dir
 * DIR --json --no-progress [--resume]`; the last line of its stdout is the result. The child
 * dies with this process (a preloaded watchdog).
 */
export function processExecutor(train: TrainCommand): Executor {
  return (job, ctx) => {
    const argv = [
      ...train.args,
      ...job.args,
      '--run-dir',
      ctx.runDir,
      '--json',
      '--no-progress',
      ...(ctx.resume ? ['--resume'] : []),
    ];
    ctx.log(`# ${new Date().toISOString()} pid ${process.pid}: ${[train.command, ...argv].join(' ')}`);
    return new Promise((resolve, reject) => {
      const child = spawn(train.command, argv, {
        env: childEnv(train.env),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let lastStdout = '';
      let lastErr = '';
      const lines = (stream: NodeJS.ReadableStream, isOut: boolean) => {
        let buf = '';
        const handle = (line: string) => {
          if (line.trim() === '') return;
          if (isOut) lastStdout = line;
          else lastErr = line;
          ctx.log(line);
        };
        stream.on('data', (chunk: Buffer) => {
          buf += chunk.toString('utf8');
          const parts = buf.split('\n');
          buf = parts.pop() ?? '';
          for (const line of parts) handle(line);
        });
        stream.on('end', () => handle(buf));
      };
      lines(child.stdout, true);
      lines(child.stderr, false);
      child.on('error', (err) =>
        reject(new Error(`cannot start the train command ${train.command}: ${err.message}`)),
      );
      child.on('close', (code, signal) => {
        if (code === 0) {
          try {
            resolve(JSON.parse(lastStdout) as RunResult);
          } catch {
            reject(new Error('the train command printed no JSON summary as its last line'));
          }
          return;
        }
        reject(
          new Error(
            `the train command ${signal ? `was killed by ${signal}` : `exited with ${code}`}${lastErr ? `: ${lastErr}` : ''}`,
          ),
        );
      });
    });
  };
}

/**
 * Runs one job in its run folder under `root` (with the train command, or `execute`), unless it
 * is finished (result.json present): resumes from the folder's newest checkpoint if it has one.
 * On success writes result.json (the summary); on failure error.txt. Never throws for a failed
 * run; the outcome says why.
 */
export async function runJob(job: SweepJob, options: RunJobOptions): Promise<JobOutcome> {
  const existing = readResult(runDirOf(options.root, job));
  if (existing !== null) {
    return { job, runDir: runDirOf(options.root, job), status: 'skipped', result: existing, resumed: false };
  }
  if (options.execute === undefined && options.train === undefined) {
    throw new Error('runJob needs a train command (train) or an executor (execute)');
  }
  const execute = options.execute ?? processExecutor(options.train as TrainCommand);
  const finishedUnrecorded = recoverResult(runDirOf(options.root, job));
  if (finishedUnrecorded !== null) {
    const runDir = runDirOf(options.root, job);
    writeFileAtomic(join(runDir, 'result.json'), `${JSON.stringify(finishedUnrecorded, null, 2)}\n`);
    return { job, runDir, status: 'finished', result: finishedUnrecorded, resumed: true };
  }
  const { runDir, resume } = prepareRunDir(options.root, job);
  const log = createWriteStream(join(runDir, 'train.log'), { flags: 'a' });
  const ctx: AttemptContext = {
    runDir,
    resume,
    log: (line) => {
      log.write(`${line}\n`);
      options.onLine?.(line, job);
    },
  };
  let outcome: JobOutcome;
  try {
    const result = await execute(job, ctx);
    writeFileAtomic(join(runDir, 'result.json'), `${JSON.stringify(result, null, 2)}\n`);
    outcome = { job, runDir, status: 'finished', result, resumed: resume };
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    writeFileAtomic(join(runDir, 'error.txt'), `${error}\n`);
    outcome = { job, runDir, status: 'failed', result: null, resumed: resume, error };
  }
  await new Promise<void>((resolve) => log.end(() => resolve()));
  return outcome;
}

/** Options of {@link runLocal}. */
export interface RunLocalOptions extends RunJobOptions {
  /** Train processes at once (default 1). */
  workers?: number;
  /** Called when a job starts (not for finished ones) and when it ends. */
  onStart?: (job: SweepJob, resume: boolean) => void;
  onEnd?: (outcome: JobOutcome) => void;
}

/**
 * The embedded runner: runs the jobs on this machine, `workers` train processes at a time, in
 * the jobs' order; finished runs are skipped, interrupted ones resumed. Resolves with every
 * job's outcome, in the jobs' order.
 */
export async function runLocal(jobs: readonly SweepJob[], options: RunLocalOptions): Promise<JobOutcome[]> {
  const workers = options.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 1) {
    throw new Error(`workers must be a positive integer, got ${workers}`);
  }
  const release = lockRoot(options.root);
  try {
    return await runAll(jobs, options, workers);
  } finally {
    release();
  }
}

/**
 * Takes the root's runner lock (`<root>/.runner.lock`, the trainer's {@link lockFile}): one local
 * runner per root, so two never train one folder. A lock whose process is gone (same host) is taken
 * over. Returns the release.
 */
export function lockRoot(root: string): () => void {
  mkdirSync(root, { recursive: true });
  const lock = lockFile(join(root, '.runner.lock'), (h, file) =>
    h !== null && h.host !== hostname()
      ? `a sweep runner on ${h.host} (pid ${h.pid}) holds ${file}; use one runner per root (or fwdgrad worker with --queue for several machines), or delete the file if that runner is gone`
      : `another sweep runner (${h === null ? 'one that is starting' : `pid ${h.pid}, started ${h.since}`}) is running the runs under ${root}; wait for it or stop it${h === null ? '' : ` (kill ${h.pid})`} first`,
  );
  return lock.release;
}

async function runAll(
  jobs: readonly SweepJob[],
  options: RunLocalOptions,
  workers: number,
): Promise<JobOutcome[]> {
  const outcomes: JobOutcome[] = new Array(jobs.length);
  let next = 0;
  const loop = async () => {
    while (next < jobs.length) {
      const i = next++;
      const job = jobs[i];
      if (readResult(runDirOf(options.root, job)) === null) options.onStart?.(job, false);
      const outcome = await runJob(job, options);
      outcomes[i] = outcome;
      options.onEnd?.(outcome);
    }
  };
  await Promise.all(Array.from({ length: Math.min(workers, jobs.length) }, loop));
  return outcomes;
}
