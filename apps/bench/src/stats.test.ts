import { describe, expect, it } from 'vitest';
import { mean, median, quantile, round, std } from './stats.js';
import { formatBytes, formatCell, markdownTable, textTable } from './table.js';

describe('stats and tables', () => {
  it('quantiles interpolate between order statistics', () => {
    expect(quantile([4, 1, 3, 2], 0.5)).toBe(2.5);
    expect(quantile([4, 1, 3, 2, 5], 0.25)).toBe(2);
    expect(quantile([1, 2], 0.25)).toBe(1.25);
    expect(quantile([7], 0.75)).toBe(7);
    expect(quantile([Number.NaN], 0.5)).toBeNaN();
  });

  it('median, mean and sample std', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([Number.NaN, 5])).toBe(5);
    expect(Number.isNaN(median([]))).toBe(true);
    expect(mean([1, 2, 3, 6])).toBe(3);
    // sample std of 2, 4, 4, 4, 5, 5, 7, 9: sqrt(32 / 7)
    expect(std([2, 4, 4, 4, 5, 5, 7, 9])).toBeCloseTo(Math.sqrt(32 / 7), 12);
    expect(std([3])).toBe(0);
    expect(round(123.456, 4)).toBe(123.5);
    expect(round(0.00123456, 3)).toBe(0.00123);
  });

  it('formats cells, bytes and tables', () => {
    expect(formatCell(null)).toBe('—');
    expect(formatCell(0.123456)).toBe('0.1235');
    expect(formatCell(42)).toBe('42');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(256 * 2 ** 20)).toBe('256 MiB');
    expect(markdownTable(['a', 'b|c'], [['1', '2']])).toBe('| a | b\\|c |\n| --- | --- |\n| 1 | 2 |\n');
    expect(textTable(['x', 'long'], [['10', 'y']]).split('\n')[0]).toBe('x   long');
  });
});
