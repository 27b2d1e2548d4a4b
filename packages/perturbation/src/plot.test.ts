import { describe, expect, it } from 'vitest';
import { runVarianceLab, type VarianceRow, varianceLabSvg } from './index.js';

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

describe('varianceLabSvg (Figure 8)', () => {
  const rows = runVarianceLab({
    batchSizes: [1, 2, 4, 8],
    fanIns: [1, 4, 16],
    fanOuts: [1, 4, 16],
    samples: 200,
    dataSize: 100,
  });

  it('draws one log–log panel per sweep, empirical solid and theory dashed for each estimator', () => {
    const svg = varianceLabSvg(rows, { title: 'lab <test> & "quotes"' });
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
    const batchPanel = varianceLabSvg(rows.filter((r) => r.sweeps.includes('batch')));
    const line = batchPanel.match(/class="empirical" data-estimator="activity-independent" points="([^"]+)"/);
    const ys = (line?.[1] ?? '').split(' ').map((pt) => Number(pt.split(',')[1]));
    // The independent estimator's variance falls with N: its line goes down the page, i.e. y increases.
    expect(ys.length).toBe(4);
    for (let i = 1; i < ys.length; i++) expect(ys[i]).toBeGreaterThan(ys[i - 1]);
  });

  it('leaves out panels without rows', () => {
    const only: VarianceRow[] = rows.filter(
      (r) => r.sweeps.includes('fan-out') && !r.sweeps.includes('batch'),
    );
    const svg = varianceLabSvg(only);
    expect(svg.match(/class="panel"/g)?.length).toBe(1);
    expect(wellFormed(svg)).toBe(true);
  });
});
