import { describe, expect, it } from 'vitest';
import {
  barPlot,
  escapeXml,
  formatTick,
  learningCurves,
  linearTicks,
  linePlot,
  logTicks,
  MAX_DEFAULT_MARKERS,
} from './svg.js';

const count = (s: string, tag: string) => (s.match(new RegExp(`<${tag}[ >]`, 'g')) ?? []).length;

describe('svg plots', () => {
  it('log ticks are decades over long ranges and 1-2-5 over short ones', () => {
    expect(logTicks(1, 1e6)).toEqual([1, 10, 100, 1000, 1e4, 1e5, 1e6]);
    expect(logTicks(1, 100)).toEqual([1, 2, 5, 10, 20, 50, 100]);
  });

  it('linear ticks are round numbers covering the range', () => {
    expect(linearTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(linearTicks(0, 37)).toEqual([0, 10, 20, 30, 40]);
  });

  it('formats ticks with SI suffixes and escapes text', () => {
    expect(formatTick(2_500_000)).toBe('2.5M');
    expect(formatTick(0.25)).toBe('0.25');
    expect(formatTick(1500)).toBe('1.5k');
    expect(escapeXml('a<b & "c"')).toBe('a&lt;b &amp; &quot;c&quot;');
  });

  it('draws one polyline per multi-point series, skips non-positive points on log axes', () => {
    const svg = linePlot({
      title: 'T <x>',
      xLabel: 'G',
      yLabel: 'bytes',
      xLog: true,
      yLog: true,
      xTicks: [1, 2, 4],
      series: [
        {
          name: 'naive',
          points: [
            [1, 10],
            [2, 40],
            [4, 160],
          ],
        },
        {
          name: 'fused',
          points: [
            [1, 5],
            [2, 0],
            [4, 6],
          ],
          dashed: true,
        },
      ],
    });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(count(svg, 'polyline')).toBe(2);
    // 3 + 2 markers: the zero on the log axis is dropped
    expect(count(svg, 'circle')).toBe(5);
    expect(svg).toContain('T &lt;x&gt;');
    expect(svg).toContain('stroke-dasharray');
    // the explicit x ticks are labelled
    for (const t of ['>1<', '>2<', '>4<']) expect(svg).toContain(t);
  });

  it('long series are lines without markers unless asked for', () => {
    const line = (n: number) => Array.from({ length: n }, (_, i): [number, number] => [i, i * i]);
    const long = MAX_DEFAULT_MARKERS + 1;
    const svg = (markers?: boolean) =>
      linePlot({
        title: 't',
        xLabel: 'x',
        yLabel: 'y',
        series: [
          { name: 'short', points: line(MAX_DEFAULT_MARKERS) },
          { name: 'long', points: line(long), markers },
        ],
      });
    expect(count(svg(), 'circle')).toBe(MAX_DEFAULT_MARKERS);
    expect(count(svg(true), 'circle')).toBe(MAX_DEFAULT_MARKERS + long);
    expect(count(svg(), 'polyline')).toBe(2);
  });

  it('draws grouped bars with whiskers, gaps for missing values and a reference line', () => {
    const svg = barPlot({
      title: 'bars',
      yLabel: 'ms',
      categories: ['a', 'b', 'c'],
      series: [
        { name: 's1', values: [1, 2, null], errors: [0.5, null, null] },
        { name: 's2', values: [3, Number.NaN, 4] },
      ],
      reference: { value: 2.5, label: 'goal' },
    });
    // 4 bars + 1 background rect + 2 legend swatches
    expect(count(svg, 'rect')).toBe(4 + 1 + 2);
    expect(svg).toContain('goal');
    // one whisker (a line with stroke #222)
    expect((svg.match(/stroke="#222"/g) ?? []).length).toBe(1);
  });

  it('learning curves are a line plot against the epoch', () => {
    const svg = learningCurves({
      title: 'c',
      yLabel: 'err',
      curves: [
        {
          name: 'x',
          points: [
            [1, 5],
            [2, 3],
          ],
        },
      ],
    });
    expect(svg).toContain('epoch');
    expect(count(svg, 'polyline')).toBe(1);
  });
});
