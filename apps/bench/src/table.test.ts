import { describe, expect, it } from 'vitest';
import { cellsOf, columnsTable, field, fields, numbersOf, type Row } from './table.js';

const rows: Row[] = [
  { suite: 's', key: 'a', model: 'M/1/16', ms: 1.23456, error: undefined },
  { suite: 's', key: 'b', model: 'S/1/1', ms: 'n/a', error: 'boom' },
];

describe('field columns', () => {
  it('show a field as it is, headed by its name or the given header', () => {
    const cols = [...fields('model', 'error'), field('ms', 'ms/step')];
    expect(cols.map((c) => c.header)).toEqual(['model', 'error', 'ms/step']);
    expect(cellsOf(rows, cols)).toEqual([
      ['M/1/16', '—', '1.235'],
      ['S/1/1', 'boom', 'n/a'],
    ]);
  });

  it('columnsTable is the Markdown table of those cells', () => {
    const md = columnsTable(rows, fields('model', 'ms'));
    expect(md.split('\n').filter((l) => l.startsWith('|'))).toHaveLength(4);
    expect(md).toContain('1.235');
    expect(md).toContain('S/1/1');
  });

  it('numbersOf keeps numbers and maps anything else to null', () => {
    expect(numbersOf(rows, 'ms')).toEqual([1.23456, null]);
    expect(numbersOf(rows, 'missing')).toEqual([null, null]);
  });
});
