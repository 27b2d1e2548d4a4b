import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { type BackendSelection, selectBackend } from '@fwdgrad/trainer/node';
import { type MachineInfo, machineInfo, machineLine } from './machine.js';
import { backendHealthy } from './measure.js';
import { cellsOf, columnsTable, type Row, textTable } from './table.js';
import type { Budget, RowContext, Suite, SuiteOptions, SuitePlan } from './types.js';

/** The bench package folder (`apps/bench`), from this module's location (src/ or dist/; tsup shims it in CJS). */
export function benchRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..');
}

/** Default results folder: `apps/bench/results`, wherever the command is run from. */
export function defaultOutDir(): string {
  return join(benchRoot(), 'results');
}

/** Options of {@link runSuite}. */
export interface RunOptions extends SuiteOptions {
  budget: Budget;
  /** Results folder; files go to `<out>/<suite>/`. */
  out: string;
  /** Print one JSON object per row on `stdout` (else a table at the end). */
  json?: boolean;
  /** Reuse the rows of an interrupted run with the same settings (the partial file). */
  resume?: boolean;
  /** Run only rows whose key contains one of these substrings. */
  filter?: string[];
  /** Progress lines on stderr (default true). */
  progress?: boolean;
  /** Where rows and tables are printed (default process.stdout). */
  stdout?: { write(s: string): unknown };
  /** Where progress goes (default process.stderr). */
  stderr?: { write(s: string): unknown };
  /** Rows already printed by a parent process (after a restart): not printed again. */
  quietResumed?: boolean;
  /**
   * Called when a row left the tfjs backend unusable (e.g. a WebAssembly out-of-memory abort): the
   * failed row is already recorded; the command line restarts itself with `--resume`. Without it
   * the harness throws.
   */
  onBackendBroken?: (reason: string) => Promise<never> | never;
  /** Clock for the timestamp (tests). */
  now?: () => Date;
}

/** What {@link runSuite} returns. */
export interface SuiteResult {
  rows: Row[];
  files: { json: string; markdown: string; latest: string; plots: string[] };
  summary: Record<string, unknown>;
  /** Rows that recorded an `error`. */
  failed: number;
}

/** The results file format (`results/<suite>/<timestamp>.json`). */
export interface ResultsFile {
  suite: string;
  title: string;
  budget: Budget;
  started: string;
  finished: string;
  seconds: number;
  config: Record<string, unknown>;
  seeds: number[];
  notes: string[];
  machine: MachineInfo;
  filter: string[] | null;
  rows: Row[];
  summary: Record<string, unknown>;
}

type PartialLine =
  | { type: 'header'; suite: string; budget: Budget; config: string; backend: string; started: string }
  | { type: 'start'; key: string }
  | { type: 'row'; key: string; rows: Row[] };

/** File-name-safe UTC timestamp, e.g. `2025-11-27T17-35-45Z`. */
export function timestamp(d: Date): string {
  return d
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/:/g, '-');
}

function errorText(err: unknown): string {
  const msg =
    err instanceof Error ? `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}` : String(err);
  return msg.split('\n')[0].slice(0, 500);
}

function readPartial(file: string): PartialLine[] {
  if (!existsSync(file)) return [];
  const out: PartialLine[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      out.push(JSON.parse(line) as PartialLine);
    } catch {
      // a line cut short by a crash: ignore it (its row is rerun)
    }
  }
  return out;
}

/**
 * Runs a suite at a budget: selects the backend, runs the plan's rows in order (skipping rows a
 * resumed partial file already holds), appends each finished row to
 * `<out>/<suite>/tmp-partial-<budget>.jsonl`, prints rows (`--json`) or a table, and writes
 * `<timestamp>.json`, `<timestamp>.md`, the SVG plots, `latest.md` and `latest-<budget>.md`.
 *
 * A row that throws is recorded with an `error` field and the suite goes on; a row that was
 * started twice without finishing (the process died) is recorded as failed instead of retried.
 */
export async function runSuite(suite: Suite, options: RunOptions): Promise<SuiteResult> {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const progress = options.progress ?? true;
  const log = (line: string) => {
    if (progress) stderr.write(`${line}\n`);
  };
  const clock = options.now ?? (() => new Date());
  let started = clock();
  const t0 = performance.now();
  const selection: BackendSelection = await selectBackend(options.backend);
  log(`[${suite.name}] budget ${options.budget}, backend ${selection.name}`);
  const plan: SuitePlan = await suite.plan(options.budget, options);
  const keys = new Set<string>();
  for (const r of plan.rows) {
    if (keys.has(r.key))
      throw new Error(`suite ${suite.name}: duplicate row key '${r.key}' (a bug in the suite)`);
    keys.add(r.key);
  }
  const filter = options.filter?.filter((f) => f.length > 0);
  const rows = filter?.length ? plan.rows.filter((r) => filter.some((f) => r.key.includes(f))) : plan.rows;
  if (rows.length === 0) {
    throw new Error(
      `--filter ${filter?.join(',')} matches no row of suite ${suite.name}; its rows are: ${plan.rows.map((r) => r.key).join(', ')}`,
    );
  }

  const dir = join(options.out, suite.name);
  const workDir = join(dir, 'tmp-work');
  // Training rows keep their run folders here until they finish; a fresh run starts from nothing.
  if (!options.resume) rmSync(workDir, { recursive: true, force: true });
  mkdirSync(workDir, { recursive: true });
  const partialFile = join(dir, `tmp-partial-${options.budget}.jsonl`);
  const header: PartialLine = {
    type: 'header',
    suite: suite.name,
    budget: options.budget,
    config: JSON.stringify(plan.config),
    backend: selection.name,
    started: started.toISOString(),
  };
  const done = new Map<string, Row>();
  const doneSpecs = new Map<string, Row[]>();
  const starts = new Map<string, number>();
  const previous = options.resume ? readPartial(partialFile) : [];
  if (previous.length > 0) {
    const h = previous[0];
    if (h.type !== 'header' || h.config !== header.config || h.backend !== header.backend) {
      throw new Error(
        `cannot resume from ${partialFile}: it was made with other settings ` +
          `(${h.type === 'header' ? `backend ${h.backend}, config ${h.config}` : 'no header'}); ` +
          'rerun without --resume to start over',
      );
    }
    // A resumed run is the same run: it keeps the first start (file names, total time).
    started = new Date(h.started);
    for (const line of previous) {
      if (line.type === 'row') {
        doneSpecs.set(line.key, line.rows);
        for (const r of line.rows) done.set(r.key, r);
      }
      if (line.type === 'start') starts.set(line.key, (starts.get(line.key) ?? 0) + 1);
    }
    log(`[${suite.name}] resuming: ${doneSpecs.size} rows already done in ${partialFile}`);
  } else {
    if (!options.resume && existsSync(partialFile)) {
      log(
        `[${suite.name}] starting over (an earlier unfinished run is in ${partialFile}; use --resume to continue it)`,
      );
    }
    writeFileSync(partialFile, `${JSON.stringify(header)}\n`);
  }
  const append = (line: PartialLine) => appendFileSync(partialFile, `${JSON.stringify(line)}\n`);
  const emit = (row: Row) => {
    if (options.json) stdout.write(`${JSON.stringify(row)}\n`);
  };

  const ctx: RowContext = {
    budget: options.budget,
    options,
    selection,
    done,
    workDir,
    resume: options.resume ?? false,
    log,
    progress,
  };
  const results: Row[] = [];
  let ran = 0;
  const toRun = rows.filter((r) => !doneSpecs.has(r.key)).length;
  for (const spec of rows) {
    const prior = doneSpecs.get(spec.key);
    if (prior !== undefined) {
      for (const r of prior) {
        results.push(r);
        if (!options.quietResumed) emit(r);
      }
      continue;
    }
    let made: Row[];
    if ((starts.get(spec.key) ?? 0) >= 2) {
      made = [
        {
          suite: suite.name,
          key: spec.key,
          error:
            'the process died twice while running this row; not retried (rerun without --resume to try again)',
        },
      ];
    } else {
      append({ type: 'start', key: spec.key });
      log(`[${suite.name} ${ran + 1}/${toRun}] ${spec.key} ...`);
      const rowStart = performance.now();
      try {
        const figures = await spec.run(ctx);
        made = Array.isArray(figures)
          ? figures.map((f, i) => ({ suite: suite.name, ...f, key: `${spec.key}|${f.key ?? i}` }))
          : [{ suite: suite.name, key: spec.key, ...figures }];
      } catch (err) {
        made = [{ suite: suite.name, key: spec.key, error: errorText(err) }];
      }
      const failedHere = made.find((r) => r.error !== undefined)?.error;
      const secs = (performance.now() - rowStart) / 1000;
      const elapsed = (performance.now() - t0) / 1000;
      const eta = ((elapsed / (ran + 1)) * (toRun - ran - 1)).toFixed(0);
      log(
        `[${suite.name} ${ran + 1}/${toRun}] ${spec.key}: ${failedHere ? `FAILED (${failedHere})` : 'done'} ` +
          `in ${secs.toFixed(1)} s (elapsed ${elapsed.toFixed(0)} s, about ${eta} s left)`,
      );
    }
    ran++;
    // Recorded before it is printed: an interruption after this line never loses the row.
    append({ type: 'row', key: spec.key, rows: made });
    doneSpecs.set(spec.key, made);
    for (const r of made) {
      done.set(r.key, r);
      results.push(r);
      emit(r);
    }
    if (!backendHealthy()) {
      const cause = made.find((r) => r.error !== undefined || r.naive_error !== undefined);
      const reason =
        `backend ${tf.getBackend()} is unusable after row '${spec.key}' ` +
        `(${String(cause?.error ?? cause?.naive_error ?? 'see the row')})`;
      if (options.onBackendBroken) await options.onBackendBroken(reason);
      throw new Error(`${reason}; rerun with --resume to continue with a fresh process`);
    }
  }

  // Reports: JSON (raw), Markdown, SVG plots, latest copies.
  const machine = machineInfo(selection);
  const report = suite.report(results, options.budget);
  const stamp = timestamp(started);
  const finished = new Date(Math.max(started.getTime(), clock().getTime()));
  const file: ResultsFile = {
    suite: suite.name,
    title: suite.title,
    budget: options.budget,
    started: started.toISOString(),
    finished: finished.toISOString(),
    // Wall time since the run first started (a resumed run includes the time it was stopped).
    seconds: Math.round((finished.getTime() - started.getTime()) / 100) / 10,
    config: plan.config,
    seeds: plan.seeds,
    notes: plan.notes,
    machine,
    filter: filter?.length ? filter : null,
    rows: results,
    summary: report.summary,
  };
  const jsonFile = join(dir, `${stamp}.json`);
  writeFileSync(jsonFile, `${JSON.stringify(file, null, 2)}\n`);
  const plotFiles: string[] = [];
  for (const p of report.plots) {
    const f = join(dir, `${stamp}-${p.name}.svg`);
    writeFileSync(f, p.svg);
    plotFiles.push(f);
  }
  const failed = results.filter((r) => r.error !== undefined).length;
  const md = [
    `# ${suite.title}`,
    '',
    `Suite \`${suite.name}\`, budget \`${options.budget}\`, ${stamp} (${file.seconds} s).`,
    `Machine: ${machineLine(machine)}.`,
    machine.git_commit
      ? `Commit: ${machine.git_commit}${machine.git_dirty ? ' (with local changes)' : ''}.`
      : '',
    filter?.length ? `Rows filtered by: ${filter.join(', ')}.` : '',
    `Raw numbers: [${stamp}.json](${stamp}.json).`,
    '',
    ...(plan.notes.length ? ['Notes:', '', ...plan.notes.map((n) => `- ${n}`), ''] : []),
    failed > 0 ? `**${failed} row(s) failed** (see the \`error\` column).\n` : '',
    report.markdown.trimEnd(),
    '',
    ...report.plots.flatMap((p) => [`![${p.title}](${stamp}-${p.name}.svg)`, '']),
  ]
    .filter((l, i, a) => !(l === '' && a[i - 1] === ''))
    .join('\n');
  const mdFile = join(dir, `${stamp}.md`);
  writeFileSync(mdFile, `${md.replace(/\n{3,}/g, '\n\n').trimEnd()}\n`);
  const latest = join(dir, 'latest.md');
  copyFileSync(mdFile, latest);
  copyFileSync(mdFile, join(dir, `latest-${options.budget}.md`));
  rmSync(partialFile, { force: true });
  rmSync(workDir, { recursive: true, force: true });

  if (!options.json) {
    stdout.write(`\n${suite.title} (budget ${options.budget}, backend ${selection.name})\n\n`);
    stdout.write(
      textTable(
        suite.columns.map((c) => c.header),
        cellsOf(results, suite.columns),
      ),
    );
  }
  log(
    `[${suite.name}] wrote ${jsonFile}, ${mdFile}${plotFiles.length ? `, ${plotFiles.length} plot(s)` : ''}`,
  );
  if (failed > 0) stderr.write(`[${suite.name}] ${failed} row(s) failed; see the 'error' field\n`);
  return {
    rows: results,
    files: { json: jsonFile, markdown: mdFile, latest, plots: plotFiles },
    summary: report.summary,
    failed,
  };
}

/** The default Markdown table of a suite's rows (its terminal columns). */
export function defaultTable(suite: Suite, rows: Row[]): string {
  return columnsTable(rows, suite.columns);
}
