/** Where progress is written: `process.stderr` or anything with `write` (tests use a fake). */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  /** Terminal width, used to fit the line. */
  columns?: number;
}

/** Options of {@link createProgress}. */
export interface ProgressOptions {
  /** Examples in this pass (e.g. the epoch's training examples). */
  total: number;
  /** Text before the bar, e.g. `epoch 3/200`. */
  label: string;
  /** Default `process.stderr`. */
  stream?: ProgressStream;
  /** Redraw one line in place (terminal) or print plain periodic lines; default `stream.isTTY`. */
  isTTY?: boolean;
  /** Time between plain lines when not on a terminal, in ms (default 10 000). */
  intervalMs?: number;
  /** Minimum ms between in-place redraws on a terminal (default 100), so fast ticks stay cheap. */
  redrawMs?: number;
  /** Clock in ms (default `performance.now`); injectable for tests. */
  now?: () => number;
}

/** Metrics reported with a tick (values of the batch just processed). */
export interface TickMetrics {
  loss?: number;
  /** Accuracy in [0, 1]. */
  acc?: number;
}

/** What {@link Progress.done} returns: the pass in numbers. */
export interface ProgressSummary {
  examples: number;
  seconds: number;
  examplesPerSecond: number;
  /** Example-weighted mean of the ticks' losses (NaN if none were given). */
  loss: number;
  /** Example-weighted mean of the ticks' accuracies (NaN if none were given). */
  acc: number;
}

/** A progress display for one pass over the data. */
export interface Progress {
  /** `n` more examples processed, with that batch's loss and accuracy. */
  tick(n: number, metrics?: TickMetrics): void;
  /** Writes the final line and returns the pass's summary. */
  done(): ProgressSummary;
}

/** Formats seconds as `1h02m03s`, `2m05s` or `7s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const pad = (v: number) => String(v).padStart(2, '0');
  if (h > 0) return `${h}h${pad(m)}m${pad(r)}s`;
  if (m > 0) return `${m}m${pad(r)}s`;
  return `${r}s`;
}

const BAR_WIDTH = 20;

/**
 * A one-line progress display with running loss, accuracy, examples/s and ETA (issue 8 item 4).
 * On a terminal the line is redrawn in place (`\r` + clear line); otherwise a plain line is
 * printed every `intervalMs` (10 s) plus a final line, so logs stay readable.
 *
 * The loss and accuracy shown are example-weighted running means over the pass.
 *
 * @example
 * const bar = createProgress({ total: 50000, label: 'epoch 1/200' });
 * for (const batch of batches) bar.tick(batch.size, { loss, acc });
 * const { examplesPerSecond } = bar.done();
 */
export function createProgress(options: ProgressOptions): Progress {
  const { total, label } = options;
  if (!Number.isFinite(total) || total < 0) {
    throw new Error(`Progress total = ${total} is invalid; use the number of examples (≥ 0).`);
  }
  const stream: ProgressStream = options.stream ?? process.stderr;
  const tty = options.isTTY ?? stream.isTTY === true;
  const intervalMs = options.intervalMs ?? 10_000;
  const redrawMs = options.redrawMs ?? 100;
  const now = options.now ?? (() => performance.now());

  const start = now();
  let lastWrite = start;
  let examples = 0;
  let lossSum = 0;
  let lossCount = 0;
  let accSum = 0;
  let accCount = 0;
  let finished: ProgressSummary | null = null;
  let drawn = false;

  function summary(): ProgressSummary {
    const seconds = (now() - start) / 1000;
    return {
      examples,
      seconds,
      examplesPerSecond: seconds > 0 ? examples / seconds : 0,
      loss: lossCount > 0 ? lossSum / lossCount : Number.NaN,
      acc: accCount > 0 ? accSum / accCount : Number.NaN,
    };
  }

  function line(final: boolean): string {
    const s = summary();
    const frac = total > 0 ? Math.min(examples / total, 1) : 1;
    const parts: string[] = [label];
    if (tty) {
      const filled = Math.round(frac * BAR_WIDTH);
      parts.push(`[${'='.repeat(filled)}${' '.repeat(BAR_WIDTH - filled)}]`);
    }
    parts.push(`${examples}/${total} (${Math.floor(frac * 100)}%)`);
    if (lossCount > 0) parts.push(`loss ${s.loss.toFixed(4)}`);
    if (accCount > 0) parts.push(`acc ${(s.acc * 100).toFixed(2)}%`);
    parts.push(`${Math.round(s.examplesPerSecond)} ex/s`);
    if (final) parts.push(`in ${formatDuration(s.seconds)}`);
    else {
      const eta = s.examplesPerSecond > 0 ? (total - examples) / s.examplesPerSecond : Number.NaN;
      parts.push(`ETA ${formatDuration(eta)}`);
    }
    let text = parts.join(' ');
    if (tty && stream.columns && text.length > stream.columns - 1) text = text.slice(0, stream.columns - 1);
    return text;
  }

  function draw(final: boolean): void {
    if (tty) {
      stream.write(`\r\x1b[2K${line(final)}${final ? '\n' : ''}`);
    } else {
      stream.write(`${line(final)}\n`);
    }
    drawn = true;
    lastWrite = now();
  }

  return {
    tick(n, metrics = {}) {
      if (finished !== null)
        throw new Error(`Progress '${label}' is done; create a new one for the next pass.`);
      if (!Number.isFinite(n) || n < 0) {
        throw new Error(`Progress tick n = ${n} is invalid; pass the number of examples just processed.`);
      }
      examples += n;
      // Weighted by the batch's examples so the mean is the pass's per-example mean.
      if (metrics.loss !== undefined) {
        lossSum += metrics.loss * n;
        lossCount += n;
      }
      if (metrics.acc !== undefined) {
        accSum += metrics.acc * n;
        accCount += n;
      }
      const elapsed = now() - lastWrite;
      if (tty ? !drawn || elapsed >= redrawMs : elapsed >= intervalMs) draw(false);
    },
    done() {
      if (finished === null) {
        draw(true);
        finished = summary();
      }
      return { ...finished };
    },
  };
}
