import { type Job, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { readResult, type RunResult, runDirOf } from './folder.js';
import { type JobOutcome, runJob, type TrainCommand } from './runner.js';
import type { SweepJob } from './spec.js';

/** The BullMQ queue fwdgrad sweeps use unless told otherwise. */
export const DEFAULT_QUEUE_NAME = 'fwdgrad-sweep';

/** Redis versions BullMQ runs on. */
const MIN_REDIS_MAJOR = 6;

/** The data of a queued job: the sweep job, placed under the worker's root. */
type QueuedData = Pick<SweepJob, 'name' | 'values' | 'axes' | 'args'>;

/**
 * Connects to Redis for BullMQ. An unreachable server or one older than Redis 6 gives one Error
 * that names the URL and the fix (ioredis alone would retry forever).
 */
export async function connectRedis(url: string): Promise<Redis> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    parsed = new URL('invalid:');
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new Error(`--queue expects a Redis URL such as redis://HOST:PORT, got '${url}'`);
  }
  const probe = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 5000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  let lastError: Error | null = null;
  probe.on('error', (err: Error) => {
    lastError = err;
  });
  let version: string;
  try {
    await probe.connect();
    const info = await probe.info('server');
    version = /redis_version:([0-9.]+)/.exec(info)?.[1] ?? '0';
  } catch (err) {
    probe.disconnect();
    const why = (lastError as Error | null)?.message ?? ((err as Error).message || String(err));
    throw new Error(
      `cannot reach Redis at ${url} (${why}); start redis-server (Redis ≥ ${MIN_REDIS_MAJOR}) there or fix --queue`,
    );
  }
  probe.disconnect();
  if (Number(version.split('.')[0]) < MIN_REDIS_MAJOR) {
    throw new Error(
      `Redis at ${url} is version ${version}; BullMQ needs Redis ≥ ${MIN_REDIS_MAJOR}: upgrade it`,
    );
  }
  // BullMQ's blocking commands need maxRetriesPerRequest null; reconnects are ioredis's default
  const client = new Redis(url, { maxRetriesPerRequest: null });
  client.on('error', () => {});
  return client;
}

/** What {@link enqueueJobs} did with each job. */
export interface EnqueueReport {
  added: string[];
  /** Failed earlier: retried. */
  retried: string[];
  /** Finished (result.json under `root`), or already waiting or running in the queue. */
  skipped: string[];
}

/** Options of {@link enqueueJobs}. */
export interface EnqueueOptions {
  /** Redis URL, `redis://HOST:PORT`. */
  url: string;
  queueName?: string;
  /** The shared root, when this machine sees it: finished runs there are not queued. */
  root?: string;
}

/**
 * Puts a sweep's jobs on the BullMQ queue (in order) and returns. Each job's id is its run
 * folder's name, so a job is queued once: re-submitting skips finished runs and jobs already
 * waiting or running, and retries failed ones.
 */
export async function enqueueJobs(
  jobs: readonly SweepJob[],
  options: EnqueueOptions,
): Promise<EnqueueReport> {
  const connection = await connectRedis(options.url);
  const queue = new Queue<QueuedData>(options.queueName ?? DEFAULT_QUEUE_NAME, { connection });
  const report: EnqueueReport = { added: [], retried: [], skipped: [] };
  try {
    for (const job of jobs) {
      const root = options.root;
      const existing = await queue.getJob(job.name);
      const state = existing ? await existing.getState() : null;
      if (root !== undefined && readResult(runDirOf(root, job)) !== null) {
        report.skipped.push(job.name);
      } else if (existing && state === 'failed') {
        await existing.retry('failed');
        report.retried.push(job.name);
      } else if (existing && state !== 'completed' && state !== 'unknown') {
        report.skipped.push(job.name);
      } else {
        // completed in the queue but not finished under the root (its folder was removed): again
        if (existing) await existing.remove();
        const data: QueuedData = { name: job.name, values: job.values, axes: job.axes, args: job.args };
        await queue.add(job.name, data, { jobId: job.name, attempts: 1 });
        report.added.push(job.name);
      }
    }
  } finally {
    await queue.close();
    connection.disconnect();
  }
  return report;
}

/** The queue's state of each job (`waiting`, `active`, `completed`, `failed`, …; null: not queued). */
export async function queueStates(
  jobs: readonly SweepJob[],
  options: { url: string; queueName?: string },
): Promise<Map<string, string | null>> {
  const connection = await connectRedis(options.url);
  const queue = new Queue(options.queueName ?? DEFAULT_QUEUE_NAME, { connection });
  const states = new Map<string, string | null>();
  try {
    for (const job of jobs) {
      const j = await queue.getJob(job.name);
      states.set(job.name, j ? await j.getState() : null);
    }
  } finally {
    await queue.close();
    connection.disconnect();
  }
  return states;
}

/** Options of {@link startWorker}. */
export interface WorkerOptions {
  url: string;
  queueName?: string;
  /** The shared root the run folders go under. */
  root: string;
  train: TrainCommand;
  /** Train processes at once (default 1). */
  workers?: number;
  /**
   * Seconds a job stays with a worker that stopped renewing its lock (killed, machine lost)
   * before another worker takes it over (default 30).
   */
  lockSeconds?: number;
  onStart?: (job: SweepJob) => void;
  onEnd?: (outcome: JobOutcome) => void;
  onError?: (err: Error) => void;
}

/** A running queue worker. */
export interface SweepWorker {
  /** Stops taking jobs; running train processes are stopped with it (their jobs go to others). */
  close(): Promise<void>;
}

/**
 * Takes jobs from the BullMQ queue and trains each in its run folder under `root` with the
 * train command. A job whose worker died is moved back by BullMQ's stalled-job check and taken
 * by another worker, which resumes it from the folder's newest checkpoint.
 */
export async function startWorker(options: WorkerOptions): Promise<SweepWorker> {
  const connection = await connectRedis(options.url);
  const lockMs = Math.round(1000 * (options.lockSeconds ?? 30));
  const worker = new Worker<QueuedData, RunResult | null>(
    options.queueName ?? DEFAULT_QUEUE_NAME,
    async (job: Job<QueuedData>) => {
      const sweepJob: SweepJob = { ...job.data };
      options.onStart?.(sweepJob);
      const outcome = await runJob(sweepJob, { root: options.root, train: options.train });
      options.onEnd?.(outcome);
      if (outcome.status === 'failed') throw new Error(outcome.error);
      return outcome.result;
    },
    {
      connection,
      concurrency: options.workers ?? 1,
      lockDuration: lockMs,
      stalledInterval: lockMs,
      // a job may lose its worker a few times (each time it resumes) before it is failed
      maxStalledCount: 5,
    },
  );
  worker.on('error', (err) => options.onError?.(err));
  await worker.waitUntilReady();
  return {
    close: async () => {
      await worker.close(true);
      connection.disconnect();
    },
  };
}
