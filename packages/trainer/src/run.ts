import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import type { LocalMixerConfig, LocalMixerOptions } from '@fwdgrad/localmixer';
import type { AlgorithmId, AlgorithmOptions } from './algorithms/types.js';
import {
  ensureRunDir,
  listCheckpoints,
  loadLatestCheckpoint,
  readConfig,
  readMetrics,
  writeMetrics,
} from './checkpoint.js';
import type { Model } from './model.js';
import type { Optimizer } from './optim.js';
import { assignParams } from './params.js';
import type { ExperimentConfig } from './presets.js';

/** The configuration recorded in config.json; resuming requires the same. */
export interface RunConfig {
  experiment: ExperimentConfig;
  algorithm: AlgorithmId;
  algorithmOptions: Partial<AlgorithmOptions>;
  modelOverrides: LocalMixerOptions;
  model: LocalMixerConfig;
  seed: number;
  limitTrain: number | null;
  limitTest: number | null;
}

/** Where training continues: after `epoch` complete epochs, at optimiser step `step`. */
export interface ResumePoint {
  epoch: number;
  step: number;
  /** The checkpoint it was restored from, if any. */
  checkpoint: string | null;
}

/** Why two run configurations are not the same run, or null if they are. */
export function runSettingsDiffer(a: RunConfig, b: RunConfig): string | null {
  const keys: (keyof RunConfig)[] = ['algorithm', 'seed', 'limitTrain', 'limitTest'];
  for (const k of keys) {
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k]))
      return `${k}: ${JSON.stringify(a[k])} vs ${JSON.stringify(b[k])}`;
  }
  // the number of epochs may grow (continue a finished run); everything else must match
  if (JSON.stringify({ ...a.experiment, epochs: 0 }) !== JSON.stringify({ ...b.experiment, epochs: 0 })) {
    return 'the experiment settings differ';
  }
  if (JSON.stringify(a.model) !== JSON.stringify(b.model)) return 'the model configuration differs';
  if (JSON.stringify(a.algorithmOptions) !== JSON.stringify(b.algorithmOptions))
    return 'the algorithm options differ';
  return null;
}

/** Creates the run folder; never touches an existing run unless asked to resume it. */
export function claimRunDir(runDir: string, resume: boolean): void {
  ensureRunDir(runDir);
  const existing = listCheckpoints(runDir);
  if (!resume && (existing.length > 0 || existsSync(`${runDir}/metrics.jsonl`))) {
    throw new Error(
      `run folder ${runDir} already holds a run; pass --resume to continue it or choose another --run-dir`,
    );
  }
}

/**
 * Restores the newest checkpoint of a run with the same settings into `model` and `optimizer`
 * and drops the metrics rows of epochs after it (an interrupted epoch's rows are redone).
 */
export function resumeRun(
  runDir: string,
  runConfig: RunConfig,
  model: Model,
  optimizer: Optimizer,
  log: (line: string) => void,
): ResumePoint {
  const saved = readConfig<RunConfig>(runDir);
  if (saved !== null) {
    const diff = runSettingsDiffer(saved, runConfig);
    if (diff !== null) {
      throw new Error(`cannot resume ${runDir}: its settings differ (${diff}); resume with the same flags`);
    }
    if (saved.experiment.epochs !== runConfig.experiment.epochs) {
      log(
        `resuming with ${runConfig.experiment.epochs} epochs instead of ${saved.experiment.epochs}: the learning-rate schedule ` +
          'is recomputed for the new length, so the result differs from a run planned that long',
      );
    }
  }
  const ckpt = loadLatestCheckpoint(runDir);
  if (ckpt === null) return { epoch: 0, step: 0, checkpoint: null };
  assignParams(model.entries, ckpt.params);
  optimizer.loadState(ckpt.optimizer);
  tf.dispose([...Object.values(ckpt.params), ...Object.values(ckpt.optimizer)]);
  writeMetrics(
    runDir,
    readMetrics<{ epoch: number }>(runDir).filter((r) => r.epoch <= ckpt.epoch),
  );
  log(`resuming ${runDir} after epoch ${ckpt.epoch} (step ${ckpt.step})`);
  return { epoch: ckpt.epoch, step: ckpt.step, checkpoint: ckpt.file };
}
