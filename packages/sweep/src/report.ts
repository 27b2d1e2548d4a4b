import { barPlot } from '@fwdgrad/plot';
import type { FlagValue, SweepJob } from './spec.js';

/**
 * One run of a sweep as a report row: the run's flag values under their flag names, its state,
 * and — once finished — the train command's JSON summary fields (`test_error`, `train_error`,
 * `seconds`, …). Unfinished runs have no `test_error`.
 */
export type SweepRow = Record<string, unknown> & {
  run: string;
  state: string;
  epochs_done: number;
};

/** Mean, sample standard deviation (n − 1; 0 for one value) and count. */
export interface MeanStd {
  mean: number;
  std: number;
  n: number;
}

/** Mean ± sample std of the finite numbers in `values`; null when there are none. */
export function meanStd(values: readonly unknown[]): MeanStd | null {
  const v = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  if (v.length === 0) return null;
  const mean = v.reduce((s, x) => s + x, 0) / v.length;
  const std = v.length < 2 ? 0 : Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / (v.length - 1));
  return { mean, std, n: v.length };
}

/** `2.41 ± 0.12` (percent) from a fraction's mean ± std; one value without ±; `—` for none. */
export function pctMeanStd(s: MeanStd | null): string {
  if (s === null) return '—';
  return s.n > 1 ? `${(100 * s.mean).toFixed(2)} ± ${(100 * s.std).toFixed(2)}` : (100 * s.mean).toFixed(2);
}

/** One cell of a sweep: the runs that differ only in the averaged-over axis (the seed). */
export interface SweepCell {
  /** The cell's grid values (every axis but the averaged one), in spec order. */
  values: Record<string, FlagValue>;
  runs: number;
  finished: number;
  test_error: MeanStd | null;
  train_error: MeanStd | null;
}

/**
 * Groups the rows by every grid axis except `over` (default `seed`) and averages the finished
 * runs' errors. Cells keep the grid's order.
 */
export function aggregateRows(
  jobs: readonly SweepJob[],
  rows: readonly SweepRow[],
  over = 'seed',
): SweepCell[] {
  const cells = new Map<string, { values: Record<string, FlagValue>; rows: SweepRow[] }>();
  jobs.forEach((job, i) => {
    const values: Record<string, FlagValue> = {};
    for (const [k, v] of Object.entries(job.axes)) if (k !== over) values[k] = v;
    const key = JSON.stringify(values);
    let cell = cells.get(key);
    if (cell === undefined) {
      cell = { values, rows: [] };
      cells.set(key, cell);
    }
    cell.rows.push(rows[i]);
  });
  return [...cells.values()].map(({ values, rows: rs }) => {
    const done = rs.filter((r) => r.state === 'finished');
    return {
      values,
      runs: rs.length,
      finished: done.length,
      test_error: meanStd(done.map((r) => r.test_error)),
      train_error: meanStd(done.map((r) => r.train_error)),
    };
  });
}

/** A GitHub-flavoured Markdown table. */
export function markdownTable(headers: readonly string[], cells: readonly (readonly string[])[]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [
    `| ${headers.map(esc).join(' | ')} |`,
    `| ${headers.map(() => '---').join(' | ')} |`,
    ...cells.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

/** The aggregate as a Markdown table: the cell's values, errors in % (mean ± std), runs finished. */
export function cellsTable(cells: readonly SweepCell[], over = 'seed'): string {
  const keys = cells.length ? Object.keys(cells[0].values) : [];
  return markdownTable(
    [...keys, 'test error %', 'train error %', `${over}s finished`],
    cells.map((c) => [
      ...keys.map((k) => String(c.values[k])),
      pctMeanStd(c.test_error),
      pctMeanStd(c.train_error),
      `${c.finished}/${c.runs}`,
    ]),
  );
}

/**
 * The aggregate as an SVG bar plot of the test error (mean ± std, %): the last axis along x, one
 * series per combination of the other axes.
 */
export function cellsPlot(cells: readonly SweepCell[], title: string): string {
  const keys = cells.length ? Object.keys(cells[0].values) : [];
  const xKey = keys[keys.length - 1];
  const seriesKeys = keys.slice(0, -1);
  const categories = [...new Set(cells.map((c) => (xKey === undefined ? 'all' : String(c.values[xKey]))))];
  const seriesNames = [
    ...new Set(cells.map((c) => seriesKeys.map((k) => String(c.values[k])).join(' ') || 'test error')),
  ];
  const series = seriesNames.map((name) => {
    const mine = cells.filter(
      (c) => (seriesKeys.map((k) => String(c.values[k])).join(' ') || 'test error') === name,
    );
    const at = (cat: string) =>
      mine.find((c) => (xKey === undefined ? 'all' : String(c.values[xKey])) === cat);
    return {
      name,
      values: categories.map((cat) => {
        const t = at(cat)?.test_error;
        return t ? 100 * t.mean : null;
      }),
      errors: categories.map((cat) => {
        const t = at(cat)?.test_error;
        return t ? 100 * t.std : null;
      }),
    };
  });
  return barPlot({ title, yLabel: 'test error % (mean ± std)', categories, series });
}
