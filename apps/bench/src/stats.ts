/** Small statistics helpers for the suites (no dependencies). */

/** Median of finite numbers (NaN for none); the robust centre of repeated timings. */
export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/**
 * The q-quantile (0 ≤ q ≤ 1) of finite numbers, linear between order statistics (NaN for none):
 * quantile(v, 0.5) is the median; 0.25 and 0.75 bound the middle half.
 */
export function quantile(values: readonly number[], q: number): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const pos = Math.min(1, Math.max(0, q)) * (v.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(v.length - 1, lo + 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

/** Arithmetic mean (NaN for none). */
export function mean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  return values.reduce((s, x) => s + x, 0) / values.length;
}

/** Sample standard deviation (n − 1 denominator; 0 for a single value, NaN for none). */
export function std(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  if (values.length === 1) return 0;
  const m = mean(values);
  return Math.sqrt(values.reduce((s, x) => s + (x - m) ** 2, 0) / (values.length - 1));
}

/**
 * Runs `f` `warmup` times untimed, then `repeats` times timed (wall clock, ms); returns every
 * timed sample and their median. `f` must finish its work before returning (read a result back on
 * asynchronous backends) so that the clock measures the computation.
 */
export function timeRepeats(
  f: () => void,
  repeats: number,
  warmup = 1,
): { samples: number[]; median: number } {
  for (let i = 0; i < warmup; i++) f();
  const samples: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    f();
    samples.push(performance.now() - t0);
  }
  return { samples, median: median(samples) };
}

/** Rounds to `digits` significant digits (keeps JSON and tables readable; NaN/null pass through). */
export function round(x: number, digits = 4): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const p = 10 ** (digits - Math.ceil(Math.log10(Math.abs(x))));
  return Math.round(x * p) / p;
}
