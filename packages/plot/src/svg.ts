/**
 * A tiny, dependency-free SVG plotting module (the CLI's, the bench's and the web app's): line plots
 * with linear or log axes (Figure 5's memory/time lines, learning curves) and grouped bar charts
 * (Table 3 errors, step times). Output is a standalone SVG document string; no DOM, no Node API.
 */

/** Colour-blind-friendly palette (Tableau 10), cycled over series. */
export const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
];

/** Series longer than this are drawn without markers unless `markers: true`. */
export const MAX_DEFAULT_MARKERS = 60;

/** One line of a {@link linePlot}: points [x, y]; non-finite (or, on a log axis, non-positive) points are skipped. */
export interface LineSeries {
  name: string;
  points: [number, number][];
  /** Dashed stroke (e.g. a theory line beside measurements). */
  dashed?: boolean;
  /**
   * Draw a marker at each point. Default: only for series of at most {@link MAX_DEFAULT_MARKERS} points
   * (a 1000-epoch learning curve is a line; thousands of circles only make the file heavy).
   */
  markers?: boolean;
  /** Stroke colour (default: the palette, by position). */
  color?: string;
}

/** Options of {@link linePlot}. */
export interface LinePlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  xLog?: boolean;
  yLog?: boolean;
  /** Explicit x ticks (e.g. the swept values 1, 2, 4, 8, 16); default: automatic. */
  xTicks?: number[];
  width?: number;
  height?: number;
}

/** One series of a {@link barPlot}: one value per category (null = missing, drawn as nothing). */
export interface BarSeries {
  name: string;
  values: (number | null)[];
  /** Optional ± error per value (drawn as a whisker). */
  errors?: (number | null)[];
}

/** Options of {@link barPlot}. */
export interface BarPlotOptions {
  title: string;
  yLabel: string;
  /** The groups along the x axis. */
  categories: string[];
  /** One bar per series inside each group. */
  series: BarSeries[];
  yLog?: boolean;
  /** A horizontal reference line (e.g. ratio 1 or a goal). */
  reference?: { value: number; label: string };
  width?: number;
  height?: number;
}

const MARGIN = { left: 72, right: 170, top: 40, bottom: 56 };

/** Escapes text for SVG/XML content and attributes. */
export function escapeXml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** Formats a tick value compactly: 3 significant digits, k/M/G suffixes from 10³ up, e-notation when tiny. */
export function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  const trim = (x: number) => String(Number(x.toPrecision(3)));
  if (a >= 1e9) return `${trim(v / 1e9)}G`;
  if (a >= 1e6) return `${trim(v / 1e6)}M`;
  if (a >= 1e3) return `${trim(v / 1e3)}k`;
  if (a < 1e-3) return v.toExponential(0);
  return trim(v);
}

/** "Nice" linear ticks covering [lo, hi] (steps of 1, 2 or 5 × 10^k), the outer ones at or beyond the ends. */
export function linearTicks(lo: number, hi: number, target = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  // From the last tick at or below lo to the first at or above hi, so the axis ends on labelled ticks.
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const out: number[] = [];
  for (let i = first; i <= last; i++) {
    const v = i * step;
    out.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  }
  return out;
}

/** Ticks of a log axis over [lo, hi] (both > 0): powers of ten, plus 2 and 5 multiples when the range is short. */
export function logTicks(lo: number, hi: number): number[] {
  const a = Math.floor(Math.log10(lo));
  const b = Math.ceil(Math.log10(hi));
  const mults = b - a <= 3 ? [1, 2, 5] : [1];
  const out: number[] = [];
  for (let e = a; e <= b; e++) {
    for (const m of mults) {
      const v = m * 10 ** e;
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(Number(v.toPrecision(12)));
    }
  }
  if (out.length < 2) return [lo, hi];
  return out;
}

interface Axis {
  lo: number;
  hi: number;
  log: boolean;
  ticks: number[];
}

function makeAxis(values: number[], log: boolean, includeZero: boolean): Axis {
  const vals = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  if (vals.length === 0) return { lo: log ? 1 : 0, hi: log ? 10 : 1, log, ticks: log ? [1, 10] : [0, 1] };
  let lo = Math.min(...vals);
  let hi = Math.max(...vals);
  if (log) {
    if (lo === hi) {
      lo /= 2;
      hi *= 2;
    }
    // Snap to whole decades when the range is long, so the axis reads like the paper's log-log figures.
    const span = Math.log10(hi) - Math.log10(lo);
    if (span > 1) {
      lo = 10 ** Math.floor(Math.log10(lo));
      hi = 10 ** Math.ceil(Math.log10(hi));
    } else {
      lo /= 1.2;
      hi *= 1.2;
    }
    return { lo, hi, log, ticks: logTicks(lo, hi) };
  }
  if (includeZero) {
    lo = Math.min(0, lo);
    hi = Math.max(0, hi);
  }
  if (lo === hi) {
    lo -= 1;
    hi += 1;
  }
  const ticks = linearTicks(lo, hi);
  return { lo: Math.min(lo, ticks[0]), hi: Math.max(hi, ticks[ticks.length - 1]), log, ticks };
}

function scale(axis: Axis, from: number, to: number): (v: number) => number {
  if (axis.log) {
    const a = Math.log10(axis.lo);
    const b = Math.log10(axis.hi);
    return (v) => from + ((Math.log10(v) - a) / (b - a)) * (to - from);
  }
  return (v) => from + ((v - axis.lo) / (axis.hi - axis.lo)) * (to - from);
}

function header(width: number, height: number, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
  ];
}

function yAxis(
  lines: string[],
  axis: Axis,
  y: (v: number) => number,
  x0: number,
  x1: number,
  label: string,
  top: number,
  bottom: number,
) {
  for (const t of axis.ticks) {
    const yy = y(t).toFixed(1);
    lines.push(`<line x1="${x0}" x2="${x1}" y1="${yy}" y2="${yy}" stroke="#e5e5e5"/>`);
    lines.push(
      `<text x="${x0 - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${formatTick(t)}</text>`,
    );
  }
  lines.push(`<line x1="${x0}" x2="${x0}" y1="${top}" y2="${bottom}" stroke="#333"/>`);
  const cy = (top + bottom) / 2;
  lines.push(
    `<text x="16" y="${cy}" text-anchor="middle" transform="rotate(-90 16 ${cy})">${escapeXml(label)}${axis.log ? ' (log)' : ''}</text>`,
  );
}

function legend(
  lines: string[],
  x: number,
  y: number,
  entries: { name: string; color: string; dashed?: boolean; bar?: boolean }[],
) {
  entries.forEach((e, i) => {
    const yy = y + i * 18;
    if (e.bar) {
      lines.push(`<rect x="${x}" y="${yy - 6}" width="14" height="12" fill="${e.color}"/>`);
    } else {
      lines.push(
        `<line x1="${x}" x2="${x + 18}" y1="${yy}" y2="${yy}" stroke="${e.color}" stroke-width="2"${e.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
      );
    }
    lines.push(`<text x="${x + 24}" y="${yy}" dominant-baseline="middle">${escapeXml(e.name)}</text>`);
  });
}

/**
 * A line plot, one polyline (with markers) per series; `xLog`/`yLog` give log axes (decade ticks),
 * as in the paper's log-log variance figure. Returns an SVG document.
 */
export function linePlot(o: LinePlotOptions): string {
  const width = o.width ?? 720;
  const height = o.height ?? 420;
  const ok = (p: [number, number]) =>
    Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!o.xLog || p[0] > 0) && (!o.yLog || p[1] > 0);
  const series = o.series.map((s) => ({ ...s, points: s.points.filter(ok) }));
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const xa = makeAxis(xs, o.xLog ?? false, false);
  if (o.xTicks && o.xTicks.length > 0) {
    const ticks = o.xTicks.filter((t) => Number.isFinite(t) && (!o.xLog || t > 0));
    if (ticks.length > 0) {
      // The axis spans the given ticks (and the data), with a little room at both ends.
      const lo = Math.min(...ticks, ...xs.filter((v) => !o.xLog || v > 0));
      const hi = Math.max(...ticks, ...xs);
      const pad = o.xLog ? (hi / lo) ** 0.04 : (hi - lo) * 0.04 || 1;
      xa.ticks = ticks;
      xa.lo = o.xLog ? lo / pad : lo - pad;
      xa.hi = o.xLog ? hi * pad : hi + pad;
    }
  }
  const ya = makeAxis(ys, o.yLog ?? false, !o.yLog);
  const x0 = MARGIN.left;
  const x1 = width - MARGIN.right;
  const top = MARGIN.top;
  const bottom = height - MARGIN.bottom;
  const x = scale(xa, x0, x1);
  const y = scale(ya, bottom, top);
  const lines = header(width, height, o.title);
  yAxis(lines, ya, y, x0, x1, o.yLabel, top, bottom);
  for (const t of xa.ticks) {
    const xx = x(t).toFixed(1);
    lines.push(`<line x1="${xx}" x2="${xx}" y1="${top}" y2="${bottom}" stroke="#f0f0f0"/>`);
    lines.push(`<text x="${xx}" y="${bottom + 16}" text-anchor="middle">${formatTick(t)}</text>`);
  }
  lines.push(`<line x1="${x0}" x2="${x1}" y1="${bottom}" y2="${bottom}" stroke="#333"/>`);
  lines.push(
    `<text x="${(x0 + x1) / 2}" y="${height - 14}" text-anchor="middle">${escapeXml(o.xLabel)}${xa.log ? ' (log)' : ''}</text>`,
  );
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    if (pts.length > 1) {
      const d = pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ');
      lines.push(
        `<polyline points="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
      );
    }
    if ((s.markers ?? pts.length <= MAX_DEFAULT_MARKERS) || pts.length === 1) {
      for (const p of pts) {
        lines.push(`<circle cx="${x(p[0]).toFixed(1)}" cy="${y(p[1]).toFixed(1)}" r="3" fill="${color}"/>`);
      }
    }
  });
  legend(
    lines,
    x1 + 16,
    top + 8,
    series.map((s, i) => ({ name: s.name, color: s.color ?? PALETTE[i % PALETTE.length], dashed: s.dashed })),
  );
  lines.push('</svg>');
  return `${lines.join('\n')}\n`;
}

/**
 * Learning curves: a metric (e.g. test error) against the epoch, one line per run. A thin wrapper
 * over {@link linePlot} with linear axes.
 */
export function learningCurves(o: {
  title: string;
  yLabel: string;
  xLabel?: string;
  curves: { name: string; points: [number, number][] }[];
}): string {
  return linePlot({ title: o.title, xLabel: o.xLabel ?? 'epoch', yLabel: o.yLabel, series: o.curves });
}

/**
 * A grouped bar chart: for each category one bar per series, optional ± whiskers and a horizontal
 * reference line. Missing values (null, non-finite, or ≤ 0 on a log axis) leave a gap.
 */
export function barPlot(o: BarPlotOptions): string {
  const width = o.width ?? Math.max(720, 120 + o.categories.length * (24 + 14 * o.series.length));
  const height = o.height ?? 420;
  const ok = (v: number | null | undefined): v is number =>
    v != null && Number.isFinite(v) && (!o.yLog || v > 0);
  const vals: number[] = [];
  for (const s of o.series) {
    s.values.forEach((v, i) => {
      if (!ok(v)) return;
      const e = s.errors?.[i];
      vals.push(v, ...(ok(e) ? [v + e, Math.max(v - e, o.yLog ? v / 2 : v - e)] : []));
    });
  }
  if (o.reference) vals.push(o.reference.value);
  const ya = makeAxis(vals, o.yLog ?? false, !o.yLog);
  const x0 = MARGIN.left;
  const x1 = width - MARGIN.right;
  const top = MARGIN.top;
  const bottom = height - MARGIN.bottom - 20;
  const y = scale(ya, bottom, top);
  const base = ya.log ? bottom : y(Math.max(ya.lo, Math.min(0, ya.hi)));
  const lines = header(width, height, o.title);
  yAxis(lines, ya, y, x0, x1, o.yLabel, top, bottom);
  const groupWidth = (x1 - x0) / Math.max(1, o.categories.length);
  const barWidth = (groupWidth * 0.8) / Math.max(1, o.series.length);
  o.categories.forEach((cat, ci) => {
    const gx = x0 + ci * groupWidth + groupWidth * 0.1;
    o.series.forEach((s, si) => {
      const v = s.values[ci];
      if (!ok(v)) return;
      const color = PALETTE[si % PALETTE.length];
      const bx = gx + si * barWidth;
      const yv = y(v);
      const h = Math.abs(base - yv);
      lines.push(
        `<rect x="${bx.toFixed(1)}" y="${Math.min(yv, base).toFixed(1)}" width="${(barWidth * 0.92).toFixed(1)}" height="${h.toFixed(1)}" fill="${color}"><title>${escapeXml(`${s.name} ${cat}: ${v}`)}</title></rect>`,
      );
      const e = s.errors?.[ci];
      if (ok(e) && e > 0) {
        const cx = (bx + barWidth * 0.46).toFixed(1);
        const lo = o.yLog ? Math.max(v - e, v / 10) : v - e;
        lines.push(
          `<line x1="${cx}" x2="${cx}" y1="${y(lo).toFixed(1)}" y2="${y(v + e).toFixed(1)}" stroke="#222" stroke-width="1.2"/>`,
        );
      }
    });
    const lx = x0 + (ci + 0.5) * groupWidth;
    lines.push(
      `<text x="${lx.toFixed(1)}" y="${bottom + 14}" text-anchor="end" transform="rotate(-30 ${lx.toFixed(1)} ${bottom + 14})">${escapeXml(cat)}</text>`,
    );
  });
  lines.push(`<line x1="${x0}" x2="${x1}" y1="${base.toFixed(1)}" y2="${base.toFixed(1)}" stroke="#333"/>`);
  if (o.reference && ok(o.reference.value)) {
    const ry = y(o.reference.value).toFixed(1);
    lines.push(`<line x1="${x0}" x2="${x1}" y1="${ry}" y2="${ry}" stroke="#c00" stroke-dasharray="6 4"/>`);
    lines.push(
      `<text x="${x1 - 4}" y="${Number(ry) - 5}" text-anchor="end" fill="#c00">${escapeXml(o.reference.label)}</text>`,
    );
  }
  legend(
    lines,
    x1 + 16,
    top + 8,
    o.series.map((s, i) => ({ name: s.name, color: PALETTE[i % PALETTE.length], bar: true })),
  );
  lines.push('</svg>');
  return `${lines.join('\n')}\n`;
}
