import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { type ResultsFile, runSuite, type SuiteResult } from './harness.js';
import { SUITES } from './suites/index.js';
import type { Row } from './table.js';
import type { SuiteName } from './types.js';

const quiet = { write: () => true };

/** Runs a suite at the smoke budget into a fresh temporary folder, quietly; returns the result and the folder. */
export async function smoke(
  name: SuiteName,
  options: { backend?: 'cpu' | 'auto'; filter?: string[] } = {},
): Promise<{ result: SuiteResult; file: ResultsFile; printed: Row[]; cleanup: () => void }> {
  const out = mkdtempSync(join(tmpdir(), `bench-${name}-`));
  const lines: string[] = [];
  const result = await runSuite(SUITES[name], {
    budget: 'smoke',
    backend: options.backend ?? 'cpu',
    out,
    json: true,
    filter: options.filter,
    progress: false,
    stdout: { write: (s: string) => lines.push(s) },
    stderr: quiet,
  });
  const printed = lines
    .join('')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Row);
  const file = JSON.parse(readFileSync(result.files.json, 'utf8')) as ResultsFile;
  checkFiles(name, result, file, printed);
  return { result, file, printed, cleanup: () => rmSync(out, { recursive: true, force: true }) };
}

/** The checks every suite's outputs pass: files exist and parse, rows are the printed ones, plots are SVG. */
function checkFiles(name: string, result: SuiteResult, file: ResultsFile, printed: Row[]): void {
  expect(file.suite).toBe(name);
  expect(file.budget).toBe('smoke');
  expect(file.rows).toEqual(printed);
  expect(file.rows.length).toBeGreaterThan(0);
  for (const r of file.rows) {
    expect(r.suite).toBe(name);
    expect(typeof r.key).toBe('string');
  }
  expect(file.machine.node).toBe(process.version);
  expect(typeof file.machine.tfjs_version).toBe('string');
  expect(Array.isArray(file.seeds)).toBe(true);
  const md = readFileSync(result.files.markdown, 'utf8');
  expect(md.startsWith('# ')).toBe(true);
  expect(md).toMatch(/\| --- \|/);
  expect(readFileSync(result.files.latest, 'utf8')).toBe(md);
  expect(result.files.plots.length).toBeGreaterThan(0);
  for (const p of result.files.plots) {
    expect(existsSync(p)).toBe(true);
    const svg = readFileSync(p, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(md).toContain(p.split('/').pop());
  }
}

/** Asserts a finite number (> 0 when `positive`). */
export function num(v: unknown, positive = true): number {
  expect(typeof v).toBe('number');
  expect(Number.isFinite(v)).toBe(true);
  if (positive) expect(v as number).toBeGreaterThan(0);
  return v as number;
}

/** Asserts `actual` equals `expected` within a relative tolerance (ratios are stored to 3 significant digits). */
export function closeRel(actual: unknown, expected: number, rel = 0.005): void {
  expect(typeof actual).toBe('number');
  expect(Math.abs((actual as number) - expected)).toBeLessThanOrEqual(rel * Math.abs(expected));
}
