import { describe, expect, it } from 'vitest';
import { type VariancePoint, type VarianceSweep, varianceFigure } from './index.js';

const estimators = [
  'weight-shared',
  'weight-independent',
  'activity-shared',
  'activity-independent',
  'backprop',
];

/**
 * Rows shaped like the variance lab's: every estimator on each sweep, variances that fall as 1/N on the batch
 * sweep and grow with p and q, theory for all but backprop (which has it on the batch sweep only, as in the paper).
 */
function labRows(batchSizes: number[], fanIns: number[], fanOuts: number[]): VariancePoint[] {
  const rows: VariancePoint[] = [];
  const add = (sweep: VarianceSweep, N: number, p: number, q: number) =>
    estimators.forEach((estimator, i) => {
      const v = ((i + 1) * p * q) / N;
      rows.push({
        estimator,
        N,
        p,
        q,
        empirical: v * 1.05,
        theory: estimator === 'backprop' && sweep !== 'batch' ? null : v,
        sweeps: [sweep],
      });
    });
  for (const N of batchSizes) add('batch', N, 4, 4);
  for (const p of fanIns) add('fan-in', 4, p, 4);
  for (const q of fanOuts) add('fan-out', 4, 4, q);
  return rows;
}

/** A minimal XML well-formedness check: tags balance and nest. */
function wellFormed(svg: string): boolean {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z][\w-]*)[^>]*?(\/?)>/g)) {
    const [, close, name, self] = m;
    if (self === '/') continue;
    if (close === '/') {
      if (stack.pop() !== name) return false;
    } else stack.push(name);
  }
  return stack.length === 0;
}

describe('varianceFigure (Figure 8)', () => {
  const rows = labRows([1, 2, 4, 8], [1, 4, 16], [1, 4, 16]);

  it('draws one log–log panel per sweep, empirical solid and theory dashed for each estimator', () => {
    const svg = varianceFigure(rows, { title: 'lab <test> & "quotes"' });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(wellFormed(svg)).toBe(true);
    expect(svg).toContain('lab &lt;test&gt; &amp; &quot;quotes&quot;');
    expect(svg.match(/class="panel"/g)?.length).toBe(3);
    for (const sweep of ['batch', 'fan-in', 'fan-out']) expect(svg).toContain(`data-sweep="${sweep}"`);
    // 5 empirical lines per panel; theory for the 4 forward-gradient estimators, + backprop on the batch panel.
    expect(svg.match(/class="empirical"/g)?.length).toBe(15);
    expect(svg.match(/class="theory"/g)?.length).toBe(13);
    // Every coordinate is a finite number inside the picture.
    const coords = [...svg.matchAll(/points="([^"]+)"/g)].flatMap((m) => m[1].split(/[ ,]/).map(Number));
    expect(coords.length).toBeGreaterThan(0);
    expect(coords.every((v) => Number.isFinite(v) && v >= 0 && v <= 1100)).toBe(true);
  });

  it('puts larger variances higher (log scale, SVG y grows downwards)', () => {
    const batchPanel = varianceFigure(rows.filter((r) => r.sweeps.includes('batch')));
    const line = batchPanel.match(/class="empirical" data-estimator="activity-independent" points="([^"]+)"/);
    const ys = (line?.[1] ?? '').split(' ').map((pt) => Number(pt.split(',')[1]));
    // The independent estimator's variance falls with N: its line goes down the page, i.e. y increases.
    expect(ys.length).toBe(4);
    for (let i = 1; i < ys.length; i++) expect(ys[i]).toBeGreaterThan(ys[i - 1]);
  });

  it('leaves out panels without rows', () => {
    const only: VariancePoint[] = rows.filter(
      (r) => r.sweeps.includes('fan-out') && !r.sweeps.includes('batch'),
    );
    const svg = varianceFigure(only);
    expect(svg.match(/class="panel"/g)?.length).toBe(1);
    expect(wellFormed(svg)).toBe(true);
  });
});
