import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type ResultsFile, runSuite } from './harness.js';
import type { Suite } from './types.js';

const quiet = { write: () => true };

/** A suite of three rows that counts how often each row runs; row `b` can be made to throw. */
function fakeSuite(calls: Record<string, number>, opts: { failB?: boolean } = {}): Suite {
  const row = (key: string, value: number) => ({
    key,
    run: () => {
      calls[key] = (calls[key] ?? 0) + 1;
      if (key === 'b' && opts.failB) throw new Error('b exploded');
      return { value, square: value * value };
    },
  });
  return {
    name: 'fused',
    title: 'fake suite',
    plan: () => ({
      config: { n: 3 },
      seeds: [1],
      rows: [row('a', 1), row('b', 2), row('c', 3)],
      notes: ['a note'],
    }),
    columns: [
      { header: 'key', value: (r) => r.key },
      { header: 'value', value: (r) => r.value },
    ],
    report: (rows) => ({
      markdown: `rows: ${rows.length}`,
      plots: [{ name: 'p', title: 'plot', svg: '<svg xmlns="http://www.w3.org/2000/svg"></svg>\n' }],
      summary: { total: rows.reduce((s, r) => s + Number(r.value ?? 0), 0) },
    }),
  };
}

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'bench-harness-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('runSuite', () => {
  it('writes the JSON, Markdown, plots and latest copies, and prints one JSON line per row', async () => {
    const out = tmp();
    const lines: string[] = [];
    const calls: Record<string, number> = {};
    const result = await runSuite(fakeSuite(calls), {
      budget: 'smoke',
      backend: 'cpu',
      out,
      json: true,
      progress: false,
      stdout: { write: (s: string) => lines.push(s) },
      stderr: quiet,
      now: () => new Date(Date.UTC(2025, 0, 2, 3, 4, 5)),
    });
    const printed = lines
      .join('')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(printed.map((r) => [r.suite, r.key, r.square])).toEqual([
      ['fused', 'a', 1],
      ['fused', 'b', 4],
      ['fused', 'c', 9],
    ]);
    const dir = join(out, 'fused');
    expect(result.files.json).toBe(join(dir, '2025-01-02T03-04-05Z.json'));
    const file = JSON.parse(readFileSync(result.files.json, 'utf8')) as ResultsFile;
    expect(file.budget).toBe('smoke');
    expect(file.config).toEqual({ n: 3 });
    expect(file.summary).toEqual({ total: 6 });
    expect(file.machine.backend).toBe('cpu');
    expect(file.machine.cpus).toBeGreaterThan(0);
    expect(typeof file.machine.tfjs_version).toBe('string');
    expect(file.rows).toHaveLength(3);
    const md = readFileSync(result.files.markdown, 'utf8');
    expect(md).toContain('# fake suite');
    expect(md).toContain('backend cpu');
    expect(md).toContain('- a note');
    expect(md).toContain('![plot](2025-01-02T03-04-05Z-p.svg)');
    expect(readFileSync(join(dir, 'latest.md'), 'utf8')).toBe(md);
    expect(readFileSync(join(dir, 'latest-smoke.md'), 'utf8')).toBe(md);
    expect(existsSync(join(dir, '2025-01-02T03-04-05Z-p.svg'))).toBe(true);
    // the partial file and the work folder are gone once the suite completes
    expect(readdirSync(dir).filter((f) => f.startsWith('tmp-'))).toEqual([]);
  });

  it('records a throwing row as an error row and goes on', async () => {
    const calls: Record<string, number> = {};
    const result = await runSuite(fakeSuite(calls, { failB: true }), {
      budget: 'smoke',
      backend: 'cpu',
      out: tmp(),
      progress: false,
      stdout: quiet,
      stderr: quiet,
    });
    expect(result.failed).toBe(1);
    expect(result.rows[1]).toMatchObject({ key: 'b', error: 'b exploded' });
    expect(calls).toEqual({ a: 1, b: 1, c: 1 });
  });

  it('resumes an interrupted run without rerunning finished rows', async () => {
    const out = tmp();
    const calls: Record<string, number> = {};
    let printed = 0;
    // Interrupt after the second row is recorded (printing it fails, as a broken pipe would).
    const interrupted = runSuite(fakeSuite(calls), {
      budget: 'small',
      backend: 'cpu',
      out,
      json: true,
      progress: false,
      now: () => new Date(Date.UTC(2025, 5, 1, 12, 0, 0)),
      stderr: quiet,
      stdout: {
        write: () => {
          printed++;
          if (printed === 2) throw new Error('interrupted');
          return true;
        },
      },
    });
    await expect(interrupted).rejects.toThrow('interrupted');
    expect(calls).toEqual({ a: 1, b: 1 });
    expect(existsSync(join(out, 'fused', 'tmp-partial-small.jsonl'))).toBe(true);

    const lines: string[] = [];
    const result = await runSuite(fakeSuite(calls), {
      budget: 'small',
      backend: 'cpu',
      out,
      json: true,
      resume: true,
      progress: false,
      now: () => new Date(Date.UTC(2025, 5, 1, 13, 30, 0)),
      stderr: quiet,
      stdout: { write: (s: string) => lines.push(s) },
    });
    expect(calls).toEqual({ a: 1, b: 1, c: 1 });
    // the resumed run is the same run: first start time in the file name, wall time since then
    expect(result.files.json.endsWith('2025-06-01T12-00-00Z.json')).toBe(true);
    expect((JSON.parse(readFileSync(result.files.json, 'utf8')) as ResultsFile).seconds).toBe(5400);
    expect(result.rows.map((r) => r.key)).toEqual(['a', 'b', 'c']);
    // resumed rows are printed too, so the JSON output is complete
    expect(lines.join('').trim().split('\n')).toHaveLength(3);
  });

  it('does not retry a row the process died in twice, and refuses a partial file of other settings', async () => {
    const out = tmp();
    const calls: Record<string, number> = {};
    await expect(
      runSuite(fakeSuite(calls), {
        budget: 'small',
        backend: 'cpu',
        out,
        json: true,
        progress: false,
        stderr: quiet,
        stdout: {
          write: () => {
            throw new Error('stop');
          },
        },
      }),
    ).rejects.toThrow('stop');
    const partial = join(out, 'fused', 'tmp-partial-small.jsonl');
    // two starts of row b without a result: the process died in it twice
    appendFileSync(
      partial,
      `${JSON.stringify({ type: 'start', key: 'b' })}\n${JSON.stringify({ type: 'start', key: 'b' })}\n`,
    );
    const result = await runSuite(fakeSuite(calls), {
      budget: 'small',
      backend: 'cpu',
      out,
      resume: true,
      progress: false,
      stdout: quiet,
      stderr: quiet,
    });
    expect(calls).toEqual({ a: 1, c: 1 });
    expect(String(result.rows[1].error)).toMatch(/died twice/);

    // a partial file made with another configuration is not mixed in
    await expect(
      runSuite(fakeSuite(calls), {
        budget: 'small',
        backend: 'cpu',
        out,
        json: true,
        progress: false,
        stderr: quiet,
        stdout: {
          write: () => {
            throw new Error('stop');
          },
        },
      }),
    ).rejects.toThrow('stop');
    const other = fakeSuite(calls);
    other.plan = () => ({ config: { n: 4 }, seeds: [], rows: [{ key: 'a', run: () => ({}) }], notes: [] });
    await expect(
      runSuite(other, {
        budget: 'small',
        backend: 'cpu',
        out,
        resume: true,
        progress: false,
        stdout: quiet,
        stderr: quiet,
      }),
    ).rejects.toThrow(/other settings.*without --resume/);
  });

  it('filters rows by key and rejects a filter that matches nothing', async () => {
    const calls: Record<string, number> = {};
    const result = await runSuite(fakeSuite(calls), {
      budget: 'smoke',
      backend: 'cpu',
      out: tmp(),
      filter: ['c', 'a'],
      progress: false,
      stdout: quiet,
      stderr: quiet,
    });
    expect(result.rows.map((r) => r.key)).toEqual(['a', 'c']);
    await expect(
      runSuite(fakeSuite(calls), {
        budget: 'smoke',
        backend: 'cpu',
        out: tmp(),
        filter: ['zzz'],
        progress: false,
        stdout: quiet,
        stderr: quiet,
      }),
    ).rejects.toThrow(/matches no row.*a, b, c/);
  });
});
