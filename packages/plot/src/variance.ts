import { escapeXml, PALETTE } from './svg.js';

/** The sweeps of the variance lab (paper appendix 10): batch size N, fan-in p, fan-out q. */
export type VarianceSweep = 'batch' | 'fan-in' | 'fan-out';

/**
 * One measured point of the variance lab, as `@fwdgrad/perturbation`'s `runVarianceLab` returns it
 * (its `VarianceRow` fits this shape; the plot needs nothing else).
 */
export interface VariancePoint {
  estimator: string;
  N: number;
  p: number;
  q: number;
  /** Measured variance (drawn solid with dots; non-positive values are left out on the log axis). */
  empirical: number;
  /** Table 1's prediction (dashed), or null where there is none. */
  theory: number | null;
  /** The sweeps this point belongs to. */
  sweeps: readonly VarianceSweep[];
}

/** Options of {@link varianceFigure}. */
export interface VarianceFigureOptions {
  /** Width and height of one panel in px. Default 340 × 300. */
  panelWidth?: number;
  panelHeight?: number;
  /** A title above the panels. */
  title?: string;
  /** Legend order and colours (by position in {@link PALETTE}); default: the estimators in order of appearance. */
  estimators?: readonly string[];
}

const panels: { sweep: VarianceSweep; axis: 'N' | 'p' | 'q'; label: string }[] = [
  { sweep: 'batch', axis: 'N', label: 'batch size N' },
  { sweep: 'fan-in', axis: 'p', label: 'fan-in p' },
  { sweep: 'fan-out', axis: 'q', label: 'fan-out q' },
];

const fmt = (v: number) => (Math.round(v * 10) / 10).toString();

function superscript(exp: number): string {
  const digits: Record<string, string> = {
    '-': '⁻',
    '0': '⁰',
    '1': '¹',
    '2': '²',
    '3': '³',
    '4': '⁴',
    '5': '⁵',
    '6': '⁶',
    '7': '⁷',
    '8': '⁸',
    '9': '⁹',
  };
  return String(exp)
    .split('')
    .map((c) => digits[c] ?? c)
    .join('');
}

/**
 * An SVG like the paper's Figure 8: one log–log panel per sweep (batch size, fan-in, fan-out), the empirical
 * variance of each estimator as a solid line with dots and Table 1's prediction as a dashed line of the same
 * colour. Pure string building, no dependency. Panels without rows are left out.
 */
export function varianceFigure(rows: readonly VariancePoint[], options: VarianceFigureOptions = {}): string {
  const estimators = options.estimators ?? [...new Set(rows.map((r) => r.estimator))];
  const colorOf = (estimator: string) => PALETTE[Math.max(0, estimators.indexOf(estimator)) % PALETTE.length];
  const pw = options.panelWidth ?? 340;
  const ph = options.panelHeight ?? 300;
  const margin = { left: 62, right: 14, top: 34, bottom: 46 };
  const used = panels.filter((panel) => rows.some((r) => r.sweeps.includes(panel.sweep)));
  const titleHeight = options.title === undefined ? 0 : 28;
  const width = Math.max(1, used.length) * pw;
  const perRow = Math.max(1, Math.floor((width - 20) / 170));
  const legendRows = Math.ceil(estimators.length / perRow) + 1;
  const legendHeight = 14 + legendRows * 20;
  const height = titleHeight + ph + legendHeight;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      'font-family="Helvetica, Arial, sans-serif" font-size="11">',
  );
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="white"/>`);
  if (options.title !== undefined) {
    out.push(
      `<text x="${width / 2}" y="19" text-anchor="middle" font-size="14">${escapeXml(options.title)}</text>`,
    );
  }
  used.forEach((panel, pi) => {
    const sel = rows.filter((r) => r.sweeps.includes(panel.sweep));
    const x0 = pi * pw + margin.left;
    const y0 = titleHeight + margin.top;
    const w = pw - margin.left - margin.right;
    const h = ph - margin.top - margin.bottom;
    const xs = sel.map((r) => r[panel.axis]);
    const ys = sel
      .flatMap((r) => [r.empirical, r.theory ?? Number.NaN])
      .filter((v) => Number.isFinite(v) && v > 0);
    const lx = [Math.log2(Math.min(...xs)), Math.log2(Math.max(...xs))];
    if (lx[1] === lx[0]) lx[1] = lx[0] + 1;
    const ly =
      ys.length === 0
        ? [0, 1]
        : [Math.floor(Math.log10(Math.min(...ys))), Math.ceil(Math.log10(Math.max(...ys)))];
    if (ly[1] === ly[0]) ly[1] = ly[0] + 1;
    const sx = (v: number) => x0 + ((Math.log2(v) - lx[0]) / (lx[1] - lx[0])) * w;
    const sy = (v: number) => y0 + h - ((Math.log10(v) - ly[0]) / (ly[1] - ly[0])) * h;
    const fixed =
      panel.sweep === 'batch'
        ? `p = ${sel[0].p}, q = ${sel[0].q}`
        : panel.sweep === 'fan-in'
          ? `N = ${sel[0].N}, q = ${sel[0].q}`
          : `N = ${sel[0].N}, p = ${sel[0].p}`;
    out.push(`<g class="panel" data-sweep="${panel.sweep}">`);
    out.push(
      `<text x="${fmt(x0 + w / 2)}" y="${fmt(y0 - 12)}" text-anchor="middle" font-size="12">` +
        `${escapeXml(`variance vs ${panel.label} (${fixed})`)}</text>`,
    );
    // Grid and ticks: decades on y, powers of two on x (every other label when crowded).
    for (let e = ly[0]; e <= ly[1]; e++) {
      const y = fmt(sy(10 ** e));
      out.push(`<line x1="${fmt(x0)}" y1="${y}" x2="${fmt(x0 + w)}" y2="${y}" stroke="#e5e5e5"/>`);
      out.push(
        `<text x="${fmt(x0 - 6)}" y="${y}" text-anchor="end" dominant-baseline="middle">10${superscript(e)}</text>`,
      );
    }
    const step = lx[1] - lx[0] > 8 ? 2 : 1;
    for (let e = Math.ceil(lx[0]); e <= lx[1]; e++) {
      const x = fmt(sx(2 ** e));
      out.push(`<line x1="${x}" y1="${fmt(y0)}" x2="${x}" y2="${fmt(y0 + h)}" stroke="#f0f0f0"/>`);
      if ((e - Math.ceil(lx[0])) % step === 0) {
        out.push(`<text x="${x}" y="${fmt(y0 + h + 14)}" text-anchor="middle">${2 ** e}</text>`);
      }
    }
    out.push(
      `<rect x="${fmt(x0)}" y="${fmt(y0)}" width="${fmt(w)}" height="${fmt(h)}" fill="none" stroke="#333"/>`,
    );
    out.push(
      `<text x="${fmt(x0 + w / 2)}" y="${fmt(y0 + h + 34)}" text-anchor="middle">${panel.label}</text>`,
    );
    out.push(
      `<text x="${fmt(x0 - 46)}" y="${fmt(y0 + h / 2)}" text-anchor="middle" ` +
        `transform="rotate(-90 ${fmt(x0 - 46)} ${fmt(y0 + h / 2)})">variance</text>`,
    );
    for (const estimator of estimators) {
      const line = sel.filter((r) => r.estimator === estimator).sort((a, b) => a[panel.axis] - b[panel.axis]);
      const emp = line.filter((r) => r.empirical > 0);
      const th = line.filter((r) => r.theory !== null && r.theory > 0);
      const color = colorOf(estimator);
      if (th.length > 1) {
        const pts = th.map((r) => `${fmt(sx(r[panel.axis]))},${fmt(sy(r.theory as number))}`).join(' ');
        out.push(
          `<polyline class="theory" data-estimator="${estimator}" points="${pts}" fill="none" stroke="${color}" ` +
            'stroke-width="1.5" stroke-dasharray="5,3"/>',
        );
      }
      if (emp.length > 0) {
        const pts = emp.map((r) => `${fmt(sx(r[panel.axis]))},${fmt(sy(r.empirical))}`).join(' ');
        out.push(
          `<polyline class="empirical" data-estimator="${estimator}" points="${pts}" fill="none" ` +
            `stroke="${color}" stroke-width="1.5"/>`,
        );
        for (const r of emp) {
          out.push(
            `<circle cx="${fmt(sx(r[panel.axis]))}" cy="${fmt(sy(r.empirical))}" r="2.5" fill="${color}"/>`,
          );
        }
      }
    }
    out.push('</g>');
  });
  // Legend: one entry per estimator, then the line styles.
  const ly0 = titleHeight + ph + 14;
  const entries: string[] = [];
  estimators.forEach((estimator, i) => {
    const x = 20 + (i % perRow) * 170;
    const y = ly0 + Math.floor(i / perRow) * 20;
    entries.push(
      `<line x1="${x}" y1="${y}" x2="${x + 22}" y2="${y}" stroke="${colorOf(estimator)}" stroke-width="2"/>` +
        `<text x="${x + 28}" y="${y}" dominant-baseline="middle">${estimator}</text>`,
    );
  });
  const ys = ly0 + (legendRows - 1) * 20;
  entries.push(
    `<line x1="20" y1="${ys}" x2="42" y2="${ys}" stroke="#333" stroke-width="1.5"/>` +
      `<text x="48" y="${ys}" dominant-baseline="middle">empirical</text>` +
      `<line x1="130" y1="${ys}" x2="152" y2="${ys}" stroke="#333" stroke-width="1.5" ` +
      'stroke-dasharray="5,3"/>' +
      `<text x="158" y="${ys}" dominant-baseline="middle">theory (Table 1)</text>`,
  );
  out.push(`<g class="legend">${entries.join('')}</g>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
