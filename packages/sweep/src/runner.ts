import { spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareRunDir, readResult, type RunResult, runDirOf, writeFileAtomic } from './folder.js';
import type { SweepJob } from './spec.js';

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

/** Options of {@link runJob}. */
export interface RunJobOptions {
  root: string;
  train: TrainCommand;
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
 * Runs one job in its run folder under `root` with the train command, unless it is finished
 * (result.json present): resumes from the folder's newest checkpoint if it has one. On success
 * writes result.json (the command's JSON summary); on failure error.txt. Never throws for a
 * failed run; the outcome says why.
 */
export function runJob(job: SweepJob, options: RunJobOptions): Promise<JobOutcome> {
  const existing = readResult(runDirOf(options.root, job));
  if (existing !== null) {
    return Promise.resolve({
      job,
      runDir: runDirOf(options.root, job),
      status: 'skipped',
      result: existing,
      resumed: false,
    });
  }
  const { runDir, resume } = prepareRunDir(options.root, job);
  const argv = [
    ...options.train.args,
    ...job.args,
    '--run-dir',
    runDir,
    '--json',
    '--no-progress',
    ...(resume ? ['--resume'] : []),
  ];
  const log = createWriteStream(join(runDir, 'train.log'), { flags: 'a' });
  log.write(
    `# ${new Date().toISOString()} pid ${process.pid}: ${[options.train.command, ...argv].join(' ')}\n`,
  );
  return new Promise((resolve) => {
    const child = spawn(options.train.command, argv, {
      env: childEnv(options.train.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let lastStdout = '';
    const lastErr: string[] = [];
    const lines = (stream: NodeJS.ReadableStream, isOut: boolean) => {
      let buf = '';
      stream.on('data', (chunk: Buffer) => {
        log.write(chunk);
        buf += chunk.toString('utf8');
        const parts = buf.split('\n');
        buf = parts.pop() ?? '';
        for (const line of parts) handle(line, isOut);
      });
      stream.on('end', () => {
        if (buf !== '') handle(buf, isOut);
      });
    };
    const handle = (line: string, isOut: boolean) => {
      if (line.trim() === '') return;
      if (isOut) lastStdout = line;
      else {
        lastErr.push(line);
        if (lastErr.length > 5) lastErr.shift();
      }
      options.onLine?.(line, job);
    };
    lines(child.stdout, true);
    lines(child.stderr, false);
    const finish = (outcome: JobOutcome) => {
      log.end(() => resolve(outcome));
    };
    child.on('error', (err) => {
      const error = `cannot start the train command ${options.train.command}: ${err.message}`;
      writeFileAtomic(join(runDir, 'error.txt'), `${error}\n`);
      finish({ job, runDir, status: 'failed', result: null, resumed: resume, error });
    });
    child.on('close', (code, signal) => {
      let result: RunResult | null = null;
      if (code === 0) {
        try {
          result = JSON.parse(lastStdout) as RunResult;
        } catch {
          result = null;
        }
      }
      if (result !== null) {
        writeFileAtomic(join(runDir, 'result.json'), `${JSON.stringify(result, null, 2)}\n`);
        finish({ job, runDir, status: 'finished', result, resumed: resume });
        return;
      }
      const why =
        code === 0
          ? 'the train command printed no JSON summary as its last line'
          : `the train command ${signal ? `was killed by ${signal}` : `exited with ${code}`}${lastErr.length ? `: ${lastErr[lastErr.length - 1]}` : ''}`;
      writeFileAtomic(join(runDir, 'error.txt'), `${why}\n`);
      finish({ job, runDir, status: 'failed', result: null, resumed: resume, error: why });
    });
  });
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
