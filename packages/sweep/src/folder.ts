import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listCheckpoints, readConfig, readMetrics } from '@fwdgrad/trainer/node';
import type { SweepRow } from './report.js';
import { parseSpec, type SweepJob, type SweepSpec } from './spec.js';

/*
 * A sweep's run folders are ordinary `fwdgrad train --run-dir` folders (config.json,
 * metrics.jsonl, checkpoint-<E>.bin) plus what the runner adds:
 *
 *   job.json     the job: its name, flag values and the train command's flags
 *   train.log    the train command's output (appended across attempts)
 *   result.json  the train command's JSON summary; present = the run is finished
 *   error.txt    why the last attempt failed (removed when an attempt starts)
 */

/** The train command's JSON summary (`fwdgrad train --json`), as recorded in result.json. */
export type RunResult = Record<string, unknown> & { test_error?: number; train_error?: number };

/** Where a run of a sweep stands. */
export type RunState = 'finished' | 'partial' | 'failed' | 'pending';

/** What the run folder of a job says about it. */
export interface RunStatus {
  job: SweepJob;
  runDir: string;
  state: RunState;
  /** Epochs completed (newest checkpoint). */
  epoch: number;
  /** Planned epochs (config.json), when the run has started. */
  epochs: number | null;
  result: RunResult | null;
  /** Why the last attempt failed. */
  error: string | null;
}

/** The run folder of a job under a sweep's root. */
export function runDirOf(root: string, job: SweepJob): string {
  return join(root, job.name);
}

/** Writes a file atomically (temporary file + rename), so readers on shared folders never see half of it. */
export function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

function readJson<T>(file: string): T | null {
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** The result of a finished run, or null. */
export function readResult(runDir: string): RunResult | null {
  return readJson<RunResult>(join(runDir, 'result.json'));
}

/** Reads a run folder's state. */
export function runStatus(root: string, job: SweepJob): RunStatus {
  const runDir = runDirOf(root, job);
  const result = readResult(runDir);
  const checkpoints = listCheckpoints(runDir);
  const epoch = checkpoints.length ? checkpoints[checkpoints.length - 1].epoch : 0;
  const config = readConfig<{ experiment?: { epochs?: number } }>(runDir);
  const epochs = config?.experiment?.epochs ?? null;
  const errorFile = join(runDir, 'error.txt');
  const error = existsSync(errorFile) ? readFileSync(errorFile, 'utf8').trim() : null;
  const state: RunState =
    result !== null ? 'finished' : error !== null ? 'failed' : epoch > 0 ? 'partial' : 'pending';
  return { job, runDir, state, epoch, epochs, result, error };
}

/**
 * Prepares a job's run folder for an attempt and says whether the train command must resume:
 * with a checkpoint it resumes from the newest; without one, leftovers of an attempt that died
 * in its first epoch are removed so the run starts clean.
 */
export function prepareRunDir(root: string, job: SweepJob): { runDir: string; resume: boolean } {
  const runDir = runDirOf(root, job);
  mkdirSync(runDir, { recursive: true });
  rmSync(join(runDir, 'error.txt'), { force: true });
  const resume = listCheckpoints(runDir).length > 0;
  if (!resume) {
    for (const f of ['config.json', 'metrics.jsonl']) rmSync(join(runDir, f), { force: true });
  }
  writeFileAtomic(
    join(runDir, 'job.json'),
    `${JSON.stringify({ name: job.name, values: job.values, args: job.args }, null, 2)}\n`,
  );
  return { runDir, resume };
}

interface SavedConfig {
  algorithm?: string;
  experiment?: { epochs?: number; model?: string; dataset?: string; objective?: string };
}

/**
 * The summary of a run that completed all its epochs but has no result.json — its train process
 * finished after the runner that started it died — rebuilt from config.json, metrics.jsonl and
 * train.log (`recovered: true`); null unless the newest checkpoint is the last epoch's.
 */
export function recoverResult(runDir: string): RunResult | null {
  const config = readConfig<SavedConfig>(runDir);
  const epochs = config?.experiment?.epochs;
  const checkpoints = listCheckpoints(runDir);
  if (
    epochs === undefined ||
    checkpoints.length === 0 ||
    checkpoints[checkpoints.length - 1].epoch < epochs
  ) {
    return null;
  }
  const rows = readMetrics<{
    epoch: number;
    test_error: number;
    train_error: number;
    examples_per_second: number;
    seconds: number;
  }>(runDir);
  const last = rows.find((r) => r.epoch === epochs);
  if (last === undefined) return null;
  const logFile = join(runDir, 'train.log');
  const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
  const backends = [...log.matchAll(/^training .*, backend (\S+)$/gm)];
  return {
    algo: config?.algorithm,
    model: config?.experiment?.model,
    dataset: config?.experiment?.dataset,
    objective: config?.experiment?.objective,
    epochs,
    test_error: last.test_error,
    train_error: last.train_error,
    examples_per_second: last.examples_per_second,
    // training time only (the rows' own seconds): the wall time of the attempts is not recorded
    seconds: rows.filter((r) => r.epoch <= epochs).reduce((s, r) => s + r.seconds, 0),
    backend: backends.length ? backends[backends.length - 1][1] : null,
    run_dir: runDir,
    recovered: true,
  };
}

/** Per-epoch metrics of a run (metrics.jsonl). */
export function runCurve(runDir: string): { epoch: number; test_error: number; train_error: number }[] {
  return readMetrics<{ epoch: number; test_error: number; train_error: number }>(runDir);
}

/** Reads a spec from a JSON or YAML file (by extension: `.yaml`/`.yml` are YAML, anything else JSON). */
export function loadSpec(file: string): SweepSpec {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read sweep spec ${file}: ${(err as Error).message}`);
  }
  return parseSpec(text, file);
}

/** The report rows of a sweep's jobs from their run folders (and their queue states, if given). */
export function sweepRows(
  jobs: readonly SweepJob[],
  root: string,
  queueStates?: ReadonlyMap<string, string | null>,
): SweepRow[] {
  return jobs.map((job) => {
    const s = runStatus(root, job);
    const row: SweepRow = {
      ...job.values,
      run: job.name,
      state: s.state,
      epochs_done: s.epoch,
      ...(s.epochs !== null ? { epochs_planned: s.epochs } : {}),
      ...(queueStates ? { queue_state: queueStates.get(job.name) ?? null } : {}),
      ...(s.error !== null ? { error: s.error } : {}),
    };
    // the summary's own `epochs` etc. come last: they are what the run did
    return s.result ? { ...row, ...s.result, state: s.state } : row;
  });
}
