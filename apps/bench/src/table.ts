/** Tables for the reports: Markdown (results files) and aligned plain text (the terminal). */
import { markdownTable as sweepMarkdownTable } from '@fwdgrad/sweep';

/** A row of measured figures, as printed with `--json` (always has `suite` and `key`). */
export type Row = Record<string, unknown> & { suite: string; key: string };

/** One column of a report table. */
export interface Column {
  header: string;
  /** The cell's value for a row; `undefined`/`null` print as an empty cell or `—`. */
  value: (row: Row) => unknown;
}

/** A column showing a row's field as it is, headed `header` (the field's name unless given). */
export function field(key: string, header: string = key): Column {
  return { header, value: (row) => row[key] };
}

/** Columns showing rows' fields as they are, each headed by its name. */
export function fields(...keys: string[]): Column[] {
  return keys.map((key) => field(key));
}

/** Formats a cell: numbers to 4 significant digits (integers as is), null as `—`. */
export function formatCell(v: unknown): string {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
    return String(Number(v.toPrecision(4)));
  }
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** A percentage cell from a fraction (0.0241 → `2.41`). */
export function pct(v: unknown, digits = 2): string | null {
  return typeof v === 'number' && Number.isFinite(v) ? (100 * v).toFixed(digits) : null;
}

/** A GitHub-flavoured Markdown table (the sweep reports' table, ending in a newline). */
export function markdownTable(headers: string[], cells: string[][]): string {
  return `${sweepMarkdownTable(headers, cells)}\n`;
}

/** Plain text with aligned columns, for the terminal. */
export function textTable(headers: string[], cells: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return `${[line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n')}\n`;
}

/** Cells of `rows` under `columns`. */
export function cellsOf(rows: Row[], columns: Column[]): string[][] {
  return rows.map((r) => columns.map((c) => formatCell(c.value(r))));
}

/** The Markdown table of `rows` under `columns`. */
export function columnsTable(rows: Row[], columns: Column[]): string {
  return markdownTable(
    columns.map((c) => c.header),
    cellsOf(rows, columns),
  );
}

/** The numeric values of field `key` of `rows` (null where a row has no number there), for a plot series. */
export function numbersOf(rows: Row[], key: string): (number | null)[] {
  return rows.map((r) => {
    const v = r[key];
    return typeof v === 'number' ? v : null;
  });
}

/** Bytes as `512 B`, `10.6 KiB`, `256 MiB`, `1.5 GiB`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : Number(v.toPrecision(3))} ${units[u]}`;
}
