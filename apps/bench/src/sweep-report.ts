import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expandGrid, loadSpec, runCurve, sweepRows } from '@fwdgrad/sweep/node';
import { paperErrors } from './paper.js';
import { round } from './stats.js';
import { paperPair, table3Suite } from './suites/table3.js';
import type { Row } from './table.js';

/** Options of {@link table3FromSweep}. */
export interface SweepReportOptions {
  /** The sweep's spec file (its grid must name `algo`, and `model` or `preset`, and `seed`). */
  spec: string;
  /** The sweep's root (run folders). */
  root: string;
  /** Results folder: files go to `<out>/table3-mnist-sweep/`. */
  out: string;
  /** Commit the runs were made at (recorded in the report). */
  commit?: string;
  /** Extra notes for the report. */
  notes?: string[];
  /** File name stem (default: a UTC time stamp). */
  stamp?: string;
}

/**
 * The `table3-mnist` suite's report (ours beside the paper's Table 3, mean ± std over seeds, test
 * error bars and learning curves) over the finished runs of a `fwdgrad sweep` of the twelve rules:
 * a long reproduction runs as a sweep (resumable, on any number of machines) and is reported
 * like the bench's own rows. Unfinished runs are left out and counted.
 */
export function table3FromSweep(options: SweepReportOptions): { markdown: string; files: string[] } {
  const jobs = expandGrid(loadSpec(options.spec));
  const all = sweepRows(jobs, options.root);
  const rows: Row[] = all
    .filter((r) => r.state === 'finished')
    .map((r) => {
      const model = String(r.model);
      const algo = String(r.algo);
      const seed = Number(r.seed ?? 0);
      return {
        suite: 'table3-mnist',
        key: `${model}|${algo}|seed${seed}`,
        model,
        algo,
        seed,
        epochs: r.epochs,
        backend: r.backend,
        test_error: round(Number(r.test_error), 5),
        train_error: round(Number(r.train_error), 5),
        seconds: round(Number(r.seconds), 4),
        curve: runCurve(join(options.root, String(r.run))).map((m) => ({
          epoch: m.epoch,
          test_error: round(m.test_error, 5),
          train_error: round(m.train_error, 5),
        })),
        ...paperErrors(paperPair(model, algo)),
      };
    });
  const report = table3Suite.report(rows, 'paper');
  const stamp =
    options.stamp ??
    new Date()
      .toISOString()
      .replace(/\.\d+Z$/, 'Z')
      .replace(/:/g, '-');
  const dir = join(options.out, 'table3-mnist-sweep');
  mkdirSync(dir, { recursive: true });
  const count = (pred: (r: (typeof all)[number]) => boolean) => all.filter(pred).length;
  const seeds = [...new Set(jobs.map((j) => j.values.seed))];
  const perSeed = seeds
    .map(
      (s) =>
        `seed ${s}: ${count((r) => r.seed === s && r.state === 'finished')}/${count((r) => r.seed === s)}`,
    )
    .join(', ');
  const status = `${rows.length} of ${all.length} runs finished (${perSeed}); ${count((r) => r.state === 'partial')} partial, ${count((r) => r.state === 'failed')} failed, ${count((r) => r.state === 'pending')} not started.`;
  const files: string[] = [];
  const json = join(dir, `${stamp}.json`);
  writeFileSync(
    json,
    `${JSON.stringify({ suite: 'table3-mnist', spec: options.spec, root: options.root, commit: options.commit ?? null, status, rows, runs: all, summary: report.summary }, null, 2)}\n`,
  );
  files.push(json);
  for (const p of report.plots) {
    const f = join(dir, `${stamp}-${p.name}.svg`);
    writeFileSync(f, p.svg);
    files.push(f);
  }
  const markdown = [
    '# Table 3 (MNIST) as a sweep: every rule on S/1/1 and M/1/16',
    '',
    `Sweep \`${options.spec}\` under \`${options.root}\`${options.commit ? ` at commit \`${options.commit}\`` : ''}. ${status}`,
    `Raw numbers: [${stamp}.json](${stamp}.json).`,
    '',
    ...(options.notes?.length ? ['Notes:', '', ...options.notes.map((n) => `- ${n}`), ''] : []),
    report.markdown.trimEnd(),
    '',
    ...report.plots.flatMap((p) => [`![${p.title}](${stamp}-${p.name}.svg)`, '']),
  ].join('\n');
  const md = join(dir, `${stamp}.md`);
  writeFileSync(md, `${markdown.trimEnd()}\n`);
  files.push(md);
  writeFileSync(join(dir, 'latest.md'), `${markdown.trimEnd()}\n`);
  return { markdown, files };
}
