/** Learning-rate schedules of the paper's experiments (appendix 11, REFERENCE §4). */
export type ScheduleKind = 'constant' | 'linear' | 'warmup-cosine' | 'staircase';

export const SCHEDULE_KINDS: readonly ScheduleKind[] = ['constant', 'linear', 'warmup-cosine', 'staircase'];

/** Options of {@link createSchedule}. */
export interface ScheduleOptions {
  kind: ScheduleKind;
  /** The peak learning rate (after any batch-size scaling, see {@link scaleLr}). */
  baseLr: number;
  /** Number of optimiser steps of the whole run (epochs × steps per epoch). */
  totalSteps: number;
  /** Linear warm-up from 0 over this many steps (any kind; default 0; may be fractional). */
  warmupSteps?: number;
}

/** Maps an optimiser step (0 for the first update) to its learning rate. */
export type Schedule = (step: number) => number;

/**
 * Creates a learning-rate schedule. `step` counts the updates already made (0 for the first),
 * as optax's step counter does; the decaying schedules reach 0 at `step = totalSteps`, the
 * end of training, so every one of the `totalSteps` updates has a positive rate.
 *
 * - warm-up (any kind, `warmupSteps` > 0): lr = baseLr · step / warmupSteps for step < warmupSteps
 *   (optax `linear_schedule` from 0, so the very first update has lr 0);
 * - `constant`: baseLr;
 * - `linear`: baseLr · (1 − s/S) with s = step − warmup, S = totalSteps − warmup (REFERENCE §4
 *   "linear to 0");
 * - `warmup-cosine`: baseLr · ½(1 + cos(π·s/S)) (REFERENCE §4 warmup_cosine, optax
 *   `warmup_cosine_decay_schedule` with end value 0);
 * - `staircase`: baseLr, × 0.1 from step ⌊0.5·totalSteps⌋, × 0.01 from step ⌊0.8·totalSteps⌋
 *   (REFERENCE §4, optax `piecewise_constant_schedule`).
 *
 * Steps past `totalSteps` keep the final value (0 for linear and cosine).
 *
 * @example
 * const lr = createSchedule({ kind: 'warmup-cosine', baseLr: 1.0, totalSteps: 1000, warmupSteps: 100 });
 * lr(0); // 0
 * lr(100); // 1.0
 * lr(550); // 0.5
 */
export function createSchedule(options: ScheduleOptions): Schedule {
  const { kind, baseLr, totalSteps } = options;
  const warmup = options.warmupSteps ?? 0;
  if (!SCHEDULE_KINDS.includes(kind)) {
    throw new Error(`Unknown schedule '${String(kind)}'; use one of ${SCHEDULE_KINDS.join(', ')}.`);
  }
  if (!Number.isFinite(baseLr) || baseLr < 0) {
    throw new Error(`Schedule baseLr = ${baseLr} is invalid; use a finite number ≥ 0.`);
  }
  if (!Number.isInteger(totalSteps) || totalSteps < 1) {
    throw new Error(`Schedule totalSteps = ${totalSteps} is invalid; use a whole number ≥ 1.`);
  }
  // Fractional warm-ups are fine (e.g. warmupEpochs × stepsPerEpoch); the ramp is linear in step.
  if (!Number.isFinite(warmup) || warmup < 0 || warmup >= totalSteps) {
    throw new Error(
      `Schedule warmupSteps = ${warmup} is invalid with totalSteps = ${totalSteps}; ` +
        `use a number in [0, ${totalSteps}) (fewer warm-up epochs or more epochs).`,
    );
  }
  const decaySteps = totalSteps - warmup;
  const first = Math.floor(0.5 * totalSteps);
  const second = Math.floor(0.8 * totalSteps);

  return (step: number): number => {
    if (!Number.isFinite(step) || step < 0) {
      throw new Error(`Schedule step ${step} is invalid; steps count from 0.`);
    }
    if (step < warmup) return (baseLr * step) / warmup;
    const progress = Math.min((step - warmup) / decaySteps, 1);
    switch (kind) {
      case 'constant':
        return baseLr;
      case 'linear':
        return baseLr * (1 - progress);
      case 'warmup-cosine':
        return baseLr * 0.5 * (1 + Math.cos(Math.PI * progress));
      case 'staircase': {
        let lr = baseLr;
        if (step >= first) lr *= 0.1;
        if (step >= second) lr *= 0.1;
        return lr;
      }
    }
  };
}

/**
 * Linear learning-rate scaling with the batch size: lr × batchSize / base (REFERENCE §4,
 * "contrastive linear lr scaling": peak lr = lr × global batch / 256).
 *
 * @example scaleLr(0.1, 2048) // 0.8
 */
export function scaleLr(lr: number, batchSize: number, base = 256): number {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`scaleLr: batchSize = ${batchSize} is invalid; use a whole number ≥ 1.`);
  }
  if (!Number.isFinite(base) || base <= 0) {
    throw new Error(`scaleLr: base = ${base} is invalid; use a number > 0 (the authors use 256).`);
  }
  return (lr * batchSize) / base;
}
