/** Where a non-finite value was seen. */
export interface GuardContext {
  /** Optimiser step (0 for the first update). */
  step: number;
  epoch: number;
  /** What the value is (default `loss`). */
  what?: string;
  /** The last good checkpoint file, if one exists, to name it in the message. */
  checkpoint?: string | null;
  /** The run's learning rate, to suggest a lower one. */
  lr?: number;
}

/**
 * Training diverged (a NaN or infinite loss): issue 8 item 4's divergence guard. The run stops;
 * the checkpoints already written are complete and are kept, so `--resume --lr X` can restart
 * from the last good one with a lower learning rate. `epoch` counts from 1.
 */
export class DivergenceError extends Error {
  readonly step: number;
  readonly epoch: number;
  readonly value: number;
  readonly what: string;
  readonly checkpoint: string | null;

  constructor(value: number, context: GuardContext) {
    const what = context.what ?? 'loss';
    const checkpoint = context.checkpoint ?? null;
    const lower = context.lr === undefined ? '<lower>' : String(context.lr / 10);
    const next = checkpoint
      ? `The last good checkpoint (${checkpoint}) is kept: continue from it with a lower learning rate, ` +
        `--resume --lr ${lower} (the change is recorded in the run's config.json "history").`
      : `No checkpoint was written yet: start again with a lower learning rate, e.g. --lr ${lower}.`;
    super(
      `Training diverged: ${what} is ${value} at step ${context.step} (epoch ${context.epoch}). Stopped. ${next}`,
    );
    this.name = 'DivergenceError';
    this.step = context.step;
    this.epoch = context.epoch;
    this.value = value;
    this.what = what;
    this.checkpoint = checkpoint;
  }
}

/**
 * Returns `value` if it is finite; otherwise throws a {@link DivergenceError} naming the step
 * (DESIGN "never a silent NaN run").
 *
 * @example
 * const loss = checkFinite(lossTensor.dataSync()[0], { step, epoch });
 */
export function checkFinite(value: number, context: GuardContext): number {
  if (!Number.isFinite(value)) throw new DivergenceError(value, context);
  return value;
}
