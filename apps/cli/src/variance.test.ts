import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { runVarianceCommand } from './variance.js';

it('runVarianceCommand prints one JSON object per line and writes the plot and the rows', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fwdgrad-variance-'));
  try {
    const lines: string[] = [];
    const out = join(dir, 'nested', 'out');
    const { rows, files } = await runVarianceCommand({
      batchSizes: [1, 8],
      fanIns: [2],
      fanOuts: [2],
      samples: 100,
      dataSize: 50,
      json: true,
      outDir: out,
      print: (l) => lines.push(l),
    });
    expect(lines.length).toBe(rows.length);
    expect(lines.map((l) => Object.keys(JSON.parse(l)).join())).toEqual(
      rows.map(() => 'estimator,N,p,q,empirical,theory'),
    );
    expect(files).toEqual([join(out, 'variance.svg'), join(out, 'variance.jsonl')]);
    expect((await readFile(files[0], 'utf8')).startsWith('<svg')).toBe(true);
    expect((await readFile(files[1], 'utf8')).trim().split('\n')).toEqual(lines);
    // Without --json: a table with a header and the empirical/theory ratio.
    const table: string[] = [];
    await runVarianceCommand({
      batchSizes: [2],
      fanIns: [4],
      fanOuts: [4],
      samples: 50,
      dataSize: 20,
      print: (l) => table.push(l),
    });
    expect(table[0]).toMatch(/^estimator\s+N\s+p\s+q\s+empirical\s+theory\s+ratio$/);
    expect(table.length).toBe(11); // header + (2, 4, 4) and (4, 4, 4) × 5 estimators
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
