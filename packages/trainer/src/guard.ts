/** Where a non-finite value was seen. */
export interface GuardContext {
  /** Optimiser step (0 for the first update). */
  step: number;
  epoch: number;
  /** What the value is (default `loss`). */
  what?: string;
  /** The last good checkpoint file, if one exists, to name it in the message. */
  checkpoint?: string | null;
}

/**
 * Training diverged (a NaN or infinite loss): issue 8 item 4's divergence guard. The run stops;
 * the checkpoints already written are complete and are kept, so `--resume` can restart from the
 * last good one (e.g. with a lower learning rate).
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
    const kept = checkpoint
      ? `the last good checkpoint (${checkpoint}) is kept`
      : 'the last good checkpoint in the run folder is kept (none was written yet)';
    super(
      `Training diverged: ${what} is ${value} at step ${context.step} (epoch ${context.epoch}). ` +
        `Stopped; ${kept}. Lower the learning rate, then resume or start again.`,
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
