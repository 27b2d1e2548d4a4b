import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { LocalMixerConfig, LocalMixerOptions } from '@fwdgrad/localmixer';
import type { AlgorithmId, AlgorithmOptions } from './algorithms/types.js';
import {
  ensureRunDir,
  type LoadedCheckpoint,
  listCheckpoints,
  loadLatestCheckpoint,
  readConfig,
  readMetrics,
  writeMetrics,
} from './checkpoint.js';
import { lockRunDir, type RunLock } from './lock.js';
import type { Model } from './model.js';
import type { Optimizer } from './optim.js';
import { assignParams } from './params.js';
import type { ExperimentConfig } from './presets.js';

/** Where a run's data comes from: the loader (`mnist`, `idx`, `cifar10`, `image-folder`) and folder. */
export interface DataSource {
  loader: string;
  /** The data folder, or null for bundled data (MNIST) and datasets passed in memory. */
  dir: string | null;
}

/** A deliberate change of a run's settings on resume (e.g. a lower learning rate after divergence). */
export interface RunChange {
  /** The optimiser step from which the change applies. */
  step: number;
  /** Epochs completed before it. */
  epoch: number;
  setting: 'lr';
  from: number;
  to: number;
  /** ISO time of the resume that made it. */
  at: string;
}

/**
 * The settings of a run, recorded in config.json and in every checkpoint (the checkpoint is the
 * authority: resuming compares against the checkpoint it continues from).
 */
export interface RunConfig {
  experiment: ExperimentConfig;
  algorithm: AlgorithmId;
  algorithmOptions: Partial<AlgorithmOptions>;
  modelOverrides: LocalMixerOptions;
  model: LocalMixerConfig;
  data: DataSource;
  seed: number;
  limitTrain: number | null;
  limitTest: number | null;
  /** Changes made on resume, oldest first. */
  history: RunChange[];
  /**
   * Pipelined runs (`@fwdgrad/trainer/pipeline`): the blocks of each stage (first block and count)
   * and the kernel threads per stage. Absent for sequential runs.
   */
  parallelBlocks?: { stages: { first: number; count: number }[]; threadsPerStage: number };
}

/** How a run's blocks were trained, for messages: `sequentially` or `on 2 stages (blocks 0–1 | 2–3)`. */
export function stagesText(run: Pick<RunConfig, 'parallelBlocks'>): string {
  const stages = run.parallelBlocks?.stages;
  if (stages === undefined) return 'sequentially';
  const ranges = stages.map((r) => (r.count === 1 ? `${r.first}` : `${r.first}–${r.first + r.count - 1}`));
  return `on ${stages.length} stage${stages.length === 1 ? '' : 's'} (blocks ${ranges.join(' | ')})`;
}

/** An epoch interrupted after some of its steps (saved in the checkpoint on SIGINT/SIGTERM). */
export interface PartialEpoch {
  /** Steps of the epoch already taken. */
  steps: number;
  loss: number;
  localLoss: number | null;
  accuracy: number;
  seconds: number;
}

/** What a checkpoint's `extra` holds. */
export interface CheckpointExtra {
  seed: number;
  run: RunConfig;
  partial?: PartialEpoch;
}

/** Where training continues: after `epoch` complete epochs, at optimiser step `step`. */
export interface ResumePoint {
  epoch: number;
  step: number;
  /** The checkpoint it was restored from, if any. */
  checkpoint: string | null;
  /** The steps already taken in epoch `epoch + 1`, when the run was interrupted inside it. */
  partial?: PartialEpoch;
}

/** Options of {@link runSettingsDiffer} and {@link resumeRun}. */
export interface ResumeOptions {
  /** Accept a different learning rate (recorded in the run's history). */
  changeLr?: boolean;
}

/** Why two run configurations are not the same run, or null if they are. */
export function runSettingsDiffer(
  saved: RunConfig,
  now: RunConfig,
  options: ResumeOptions = {},
): string | null {
  const keys = ['algorithm', 'seed', 'limitTrain', 'limitTest', 'data'] as const;
  for (const k of keys) {
    // runs recorded before `data` was: nothing to compare
    if (saved[k] === undefined) continue;
    if (JSON.stringify(saved[k]) !== JSON.stringify(now[k]))
      return `${k}: ${JSON.stringify(saved[k])} vs ${JSON.stringify(now[k])}`;
  }
  // the number of epochs may grow (continue a finished run); the learning rate may change when asked
  const comparable = (e: ExperimentConfig) => ({ ...e, epochs: 0, lr: options.changeLr ? 0 : e.lr });
  const a = comparable(saved.experiment);
  const b = comparable(now.experiment);
  for (const k of Object.keys({ ...a, ...b }) as (keyof ExperimentConfig)[]) {
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) {
      const hint =
        k === 'lr' ? ` (pass --lr ${a.lr} to continue at the run's rate, or another --lr to change it)` : '';
      return `experiment ${k}: ${JSON.stringify(a[k])} vs ${JSON.stringify(b[k])}${hint}`;
    }
  }
  if (JSON.stringify(saved.model) !== JSON.stringify(now.model)) return 'the model configuration differs';
  // the stages decide the noise streams (and L-BP/L-FA's gradient cuts): another split is another run
  if (JSON.stringify(saved.parallelBlocks?.stages) !== JSON.stringify(now.parallelBlocks?.stages)) {
    const n = saved.parallelBlocks?.stages.length;
    return (
      `the run was trained ${stagesText(saved)}, not ${stagesText(now)}; resume it ` +
      (n === undefined ? 'without --parallel-blocks' : `with --parallel-blocks ${n}`)
    );
  }
  if (JSON.stringify(saved.algorithmOptions) !== JSON.stringify(now.algorithmOptions))
    return 'the algorithm options differ';
  return null;
}

/** The per-step rows file of a run folder (`logEvery`). */
export const STEPS_FILE = 'steps.jsonl';

/** Temporary files of interrupted atomic writes (`.<name>.tmp-<pid>-<hex>`). */
const STRAY_TMP_RE = /^\..+\.tmp-\d+-[0-9a-f]+$/;

/**
 * Creates the run folder and takes its lock (see {@link lockRunDir}); removes the temporary files
 * of writes a killed process left; never touches an existing run unless asked to resume it, and
 * refuses to resume a folder with nothing to resume. The caller releases the lock.
 */
export function claimRunDir(runDir: string, resume: boolean): RunLock {
  if (resume && !fs.existsSync(runDir)) {
    throw new Error(`nothing to resume: the run folder ${runDir} does not exist; check --run-dir`);
  }
  ensureRunDir(runDir);
  const lock = lockRunDir(runDir);
  try {
    for (const name of fs.readdirSync(runDir)) {
      if (STRAY_TMP_RE.test(name)) fs.rmSync(path.join(runDir, name), { force: true });
    }
    const hasCheckpoint = listCheckpoints(runDir).length > 0;
    if (!resume && (hasCheckpoint || fs.existsSync(path.join(runDir, 'metrics.jsonl')))) {
      throw new Error(
        `run folder ${runDir} already holds a run; pass --resume to continue it or choose another --run-dir`,
      );
    }
    if (resume && !hasCheckpoint) {
      throw new Error(
        `nothing to resume in ${runDir}: it has no checkpoint (none is written before the first epoch ` +
          'ends or the run is interrupted); start it again without --resume',
      );
    }
  } catch (err) {
    lock.release();
    throw err;
  }
  return lock;
}

function savedSettings(runDir: string, ckpt: LoadedCheckpoint): RunConfig | null {
  const extra = ckpt.extra as Partial<CheckpointExtra> | null;
  if (extra?.run !== undefined) return extra.run;
  // checkpoints written before they carried their settings: config.json
  return readConfig<RunConfig>(runDir);
}

/**
 * Restores the newest checkpoint of a run with the same settings (those recorded in the
 * checkpoint) into `model` and `optimizer`, and drops the metrics rows of epochs after it and the
 * `steps.jsonl` rows of steps after it (they are redone). Returns where to continue and the run's
 * settings with a learning-rate change recorded in its history.
 */
export function resumeRun(
  runDir: string,
  runConfig: RunConfig,
  model: Model,
  optimizer: Optimizer,
  log: (line: string) => void,
  options: ResumeOptions = {},
): { at: ResumePoint; runConfig: RunConfig } {
  const ckpt = loadLatestCheckpoint(runDir);
  if (ckpt === null) throw new Error(`nothing to resume in ${runDir}: it has no checkpoint`);
  let next = runConfig;
  try {
    const saved = savedSettings(runDir, ckpt);
    if (saved !== null) {
      const diff = runSettingsDiffer(saved, runConfig, options);
      if (diff !== null) {
        throw new Error(`cannot resume ${runDir}: its settings differ (${diff}); resume with the same flags`);
      }
      if (saved.experiment.epochs !== runConfig.experiment.epochs) {
        log(
          `resuming with ${runConfig.experiment.epochs} epochs instead of ${saved.experiment.epochs}: the learning-rate schedule ` +
            'is recomputed for the new length, so the result differs from a run planned that long',
        );
      }
      const history = [...(saved.history ?? [])];
      if (saved.experiment.lr !== runConfig.experiment.lr) {
        history.push({
          step: ckpt.step,
          epoch: ckpt.epoch,
          setting: 'lr',
          from: saved.experiment.lr,
          to: runConfig.experiment.lr,
          at: new Date().toISOString(),
        });
        log(
          `learning rate changed from ${saved.experiment.lr} to ${runConfig.experiment.lr} at step ${ckpt.step} ` +
            '(recorded in config.json "history")',
        );
      }
      next = { ...runConfig, history };
    }
    assignParams(model.entries, ckpt.params);
    optimizer.loadState(ckpt.optimizer);
  } finally {
    tf.dispose([...Object.values(ckpt.params), ...Object.values(ckpt.optimizer)]);
  }
  // rows after the checkpoint are redone: the epochs' and the steps' (`logEvery`)
  writeMetrics(
    runDir,
    readMetrics<{ epoch: number }>(runDir).filter((r) => r.epoch <= ckpt.epoch),
  );
  writeMetrics(
    runDir,
    readMetrics<{ step: number }>(runDir, STEPS_FILE).filter((r) => r.step <= ckpt.step),
    STEPS_FILE,
  );
  const partial = (ckpt.extra as Partial<CheckpointExtra> | null)?.partial;
  log(
    `resuming ${runDir} after epoch ${ckpt.epoch}${partial ? ` and ${partial.steps} steps of epoch ${ckpt.epoch + 1}` : ''} (step ${ckpt.step})`,
  );
  return { at: { epoch: ckpt.epoch, step: ckpt.step, checkpoint: ckpt.file, partial }, runConfig: next };
}
