import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expandGrid, loadSpec, runJob } from '@fwdgrad/sweep/node';
import { resolveExperiment } from '@fwdgrad/trainer';
import { selectBackend, train } from '@fwdgrad/trainer/node';
import { afterAll, describe, expect, it } from 'vitest';
import { table3FromSweep } from './sweep-report.js';
import { mnist } from './training.js';

const dir = mkdtempSync(join(tmpdir(), 'bench-sweep-report-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sweep-report: the table3-mnist report over a sweep', () => {
  it('reports the finished runs of a sweep beside the paper, counting the unfinished ones', async () => {
    await selectBackend('cpu');
    const spec = join(dir, 'table3.json');
    writeFileSync(
      spec,
      JSON.stringify({ seed: [0, 1], algo: ['bp', 'lg-fg-a'], preset: 'mnist-s11', epochs: 1 }),
    );
    const root = join(dir, 'root');
    const jobs = expandGrid(loadSpec(spec));
    // the sweep's first three runs, trained in this process (a tiny slice of MNIST); the fourth never ran
    for (const job of jobs.slice(0, 3)) {
      const outcome = await runJob(job, {
        root,
        execute: async (j, attempt) => ({
          ...(await train({
            experiment: resolveExperiment('mnist-s11', { epochs: 1, batchSize: 32 }),
            algorithm: j.values.algo as 'bp' | 'lg-fg-a',
            dataset: mnist(),
            seed: Number(j.values.seed),
            limitTrain: 128,
            limitTest: 128,
            runDir: attempt.runDir,
            progressStream: null,
            log: attempt.log,
          })),
        }),
      });
      expect(outcome.status).toBe('finished');
    }
    const out = join(dir, 'results');
    const { files } = table3FromSweep({ spec, root, out, commit: 'abc1234', stamp: 'T' });
    const file = JSON.parse(readFileSync(join(out, 'table3-mnist-sweep', 'T.json'), 'utf8'));
    expect(file.rows.map((r: { key: string }) => r.key)).toEqual([
      'S/1/1|bp|seed0',
      'S/1/1|lg-fg-a|seed0',
      'S/1/1|bp|seed1',
    ]);
    const results = jobs
      .slice(0, 3)
      .map((j) => JSON.parse(readFileSync(join(root, j.name, 'result.json'), 'utf8')).test_error as number);
    expect(file.rows.map((r: { test_error: number }) => r.test_error)).toEqual(
      results.map((x) => Number(x.toPrecision(5))),
    );
    expect(file.rows[0].paper_test_error).toBeCloseTo(0.0266, 6);
    expect(file.rows[0].curve).toHaveLength(1);
    expect(file.status).toBe(
      '3 of 4 runs finished (seed 0: 2/2, seed 1: 1/2); 0 partial, 0 failed, 1 not started.',
    );
    const md = readFileSync(join(out, 'table3-mnist-sweep', 'T.md'), 'utf8');
    expect(md).toContain('at commit `abc1234`');
    expect(md).toMatch(
      /\| S\/1\/1 \| bp \| [0-9.]+ ± [0-9.]+ \| [0-9.]+ ± [0-9.]+ \| 2\.66 \| 0\.00 \| 2 \|/,
    );
    expect(md).toMatch(/\| S\/1\/1 \| lg-fg-a \| [0-9.]+ \| [0-9.]+ \| 3\.24 \| 1\.53 \| 1 \|/);
    // the test-error bars (learning curves need more than one epoch)
    expect(files.filter((f) => f.endsWith('.svg')).map((f) => readFileSync(f, 'utf8').slice(0, 4))).toEqual([
      '<svg',
    ]);
  });
});
