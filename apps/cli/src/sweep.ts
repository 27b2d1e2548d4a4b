import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  aggregateRows,
  cellsPlot,
  cellsTable,
  DEFAULT_QUEUE_NAME,
  enqueueJobs,
  expandGrid,
  type JobOutcome,
  loadSpec,
  markdownTable,
  queueStates,
  runLocal,
  type SweepRow,
  startWorker,
  sweepRows,
  type SweepJob,
  type SweepSpec,
  type TrainCommand,
} from '@fwdgrad/sweep/node';
import { positiveInt, positiveNumber } from '@fwdgrad/cli-kit';
import type { Command } from 'commander';

/** This CLI's `train` command as a process: `node <fwdgrad bin> train`. */
export function cliTrainCommand(): TrainCommand {
  for (const rel of ['./bin.js', '../dist/bin.js']) {
    const file = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(file)) return { command: process.execPath, args: [file, 'train'] };
  }
  throw new Error('cannot find the fwdgrad command (dist/bin.js); build the CLI first (pnpm build)');
}

/** A sweep's default root: `sweeps/<spec file name without extension>`. */
function defaultRoot(specFile: string): string {
  return join('sweeps', basename(specFile, extname(specFile)));
}

/**
 * Checks every spec key against the train command's flags, so a typo fails once, before any run
 * starts, instead of in every run.
 */
export function checkSpecFlags(spec: SweepSpec, train: Command): void {
  const longs = new Set(train.options.map((o) => o.long).filter((l): l is string => l !== undefined));
  for (const [key, value] of Object.entries(spec)) {
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      const flag = v === false ? (key.startsWith('no-') ? `--${key.slice(3)}` : `--no-${key}`) : `--${key}`;
      if (!longs.has(flag)) {
        throw new Error(
          `sweep spec: '${key}'${typeof v === 'boolean' ? ` = ${v}` : ''} is not a flag of fwdgrad train (${flag}); see fwdgrad train --help`,
        );
      }
    }
  }
}

function describeOutcome(o: JobOutcome): string {
  if (o.status === 'failed') return `${o.job.name}: FAILED (${o.error}); log: ${o.runDir}/train.log`;
  const r = o.result ?? {};
  const pct = (x: unknown) => (typeof x === 'number' ? `${(100 * x).toFixed(2)}%` : '—');
  return `${o.job.name}: ${o.status === 'skipped' ? 'already finished' : 'finished'}, test error ${pct(r.test_error)}, train error ${pct(r.train_error)}`;
}

interface SweepRunFlags {
  workers: number;
  root?: string;
  queue?: string;
  queueName: string;
}

interface WorkerFlags {
  queue: string;
  queueName: string;
  root: string;
  workers: number;
  lockSeconds: number;
}

/** Loads a spec and expands it, checking its flags against `train`. */
function loadJobs(specFile: string, program: Command): SweepJob[] {
  const spec = loadSpec(specFile);
  const train = program.commands.find((c) => c.name() === 'train');
  if (train !== undefined) checkSpecFlags(spec, train);
  return expandGrid(spec);
}

export function registerSweep(program: Command): void {
  const sweep = program
    .command('sweep')
    .description('sweeps of training runs: a grid of train flags, one run folder per run');
  registerSweepRead(sweep, program);
  sweep
    .command('run')
    .description(
      'run every point of a spec (JSON or YAML: train flags without dashes; a list is a grid axis) ' +
        'on this machine; finished runs are skipped, interrupted ones resumed',
    )
    .argument('<spec>', 'the spec file (.json, .yaml or .yml)')
    .option('--workers <n>', 'train processes at once', positiveInt('--workers'), 1)
    .option('--root <dir>', 'folder of the run folders (default sweeps/<spec name>)')
    .option(
      '--queue <url>',
      'enqueue the runs on BullMQ at redis://HOST:PORT and return (see fwdgrad worker)',
    )
    .option('--queue-name <name>', 'BullMQ queue name', DEFAULT_QUEUE_NAME)
    .action(async (specFile: string, flags: SweepRunFlags) => {
      const jobs = loadJobs(specFile, program);
      const root = flags.root ?? defaultRoot(specFile);
      if (flags.queue !== undefined) {
        const r = await enqueueJobs(jobs, { url: flags.queue, queueName: flags.queueName, root });
        process.stderr.write(
          `sweep ${specFile}: queued ${r.added.length} run${r.added.length === 1 ? '' : 's'} on ${flags.queue} (queue ${flags.queueName}), ` +
            `retried ${r.retried.length} failed, skipped ${r.skipped.length} finished or already queued; ` +
            `start workers with: fwdgrad worker --queue ${flags.queue} --root ${root}\n`,
        );
        return;
      }
      process.stderr.write(
        `sweep ${specFile}: ${jobs.length} run${jobs.length === 1 ? '' : 's'} under ${root}, ${flags.workers} worker${flags.workers === 1 ? '' : 's'}\n`,
      );
      let done = 0;
      const outcomes = await runLocal(jobs, {
        root,
        workers: flags.workers,
        train: cliTrainCommand(),
        onStart: (job) => process.stderr.write(`started ${job.name}\n`),
        onEnd: (o) => {
          done++;
          process.stderr.write(`[${done}/${jobs.length}] ${describeOutcome(o)}\n`);
        },
      });
      const failed = outcomes.filter((o) => o.status === 'failed');
      const skipped = outcomes.filter((o) => o.status === 'skipped').length;
      process.stderr.write(
        `sweep done: ${outcomes.length - failed.length} finished (${skipped} earlier), ${failed.length} failed\n`,
      );
      if (failed.length > 0) {
        throw new Error(
          `${failed.length} run${failed.length === 1 ? '' : 's'} failed (${failed.map((o) => o.job.name).join('; ')}); see their train.log, fix, and run the same command again to retry them`,
        );
      }
    });
}

interface SweepReadFlags {
  root?: string;
  queue?: string;
  queueName: string;
  json?: boolean;
  out?: string;
}

/** The rows of a sweep (with queue states when --queue is given). */
async function readRows(specFile: string, program: Command, flags: SweepReadFlags) {
  const jobs = loadJobs(specFile, program);
  const root = flags.root ?? defaultRoot(specFile);
  const states =
    flags.queue === undefined
      ? undefined
      : await queueStates(jobs, { url: flags.queue, queueName: flags.queueName });
  return { jobs, root, rows: sweepRows(jobs, root, states) };
}

const pct = (x: unknown) => (typeof x === 'number' ? (100 * x).toFixed(2) : '—');

function stateCell(r: SweepRow): string {
  if (r.state === 'finished') return 'finished';
  const planned = typeof r.epochs_planned === 'number' ? `/${r.epochs_planned}` : '';
  return r.state === 'pending' ? 'pending' : `${r.state} (epoch ${r.epochs_done}${planned})`;
}

function countsLine(rows: readonly SweepRow[]): string {
  const count = (s: string) => rows.filter((r) => r.state === s).length;
  return `${rows.length} runs: ${count('finished')} finished, ${count('partial')} partial, ${count('failed')} failed, ${count('pending')} not started`;
}

function registerSweepRead(sweep: Command, program: Command): void {
  const common = (cmd: Command) =>
    cmd
      .argument('<spec>', 'the spec file (.json, .yaml or .yml)')
      .option('--root <dir>', 'folder of the run folders (default sweeps/<spec name>)')
      .option('--queue <url>', "also show each run's BullMQ state (redis://HOST:PORT)")
      .option('--queue-name <name>', 'BullMQ queue name', DEFAULT_QUEUE_NAME)
      .option('--json', 'one JSON object per run');
  common(
    sweep.command('status').description('where each run of a sweep stands (from its run folder)'),
  ).action(async (specFile: string, flags: SweepReadFlags) => {
    const { rows } = await readRows(specFile, program, flags);
    if (flags.json) {
      for (const r of rows) console.log(JSON.stringify(r));
      return;
    }
    for (const r of rows) {
      const queue = r.queue_state !== undefined ? `  [queue: ${r.queue_state ?? 'not queued'}]` : '';
      const err =
        r.state === 'finished' ? `  test error ${pct(r.test_error)}%` : r.error ? `  ${r.error}` : '';
      console.log(`${stateCell(r).padEnd(22)} ${r.run}${err}${queue}`);
    }
    console.log(countsLine(rows));
  });
  common(
    sweep
      .command('report')
      .description(
        'per-run rows and the mean ± std over seeds of every cell, as a table and an SVG plot (written to --out)',
      ),
  )
    .option('--out <dir>', 'write report.json, report.md and report.svg here (default: the root)')
    .action(async (specFile: string, flags: SweepReadFlags) => {
      const { jobs, root, rows } = await readRows(specFile, program, flags);
      if (flags.json) {
        for (const r of rows) console.log(JSON.stringify(r));
      }
      const cells = aggregateRows(jobs, rows);
      const keys = Object.keys(jobs[0]?.axes ?? {});
      const runTable = markdownTable(
        [...keys, 'state', 'test error %', 'train error %', 'seconds'],
        rows.map((r) => [
          ...keys.map((k) => String(r[k])),
          stateCell(r),
          pct(r.test_error),
          pct(r.train_error),
          typeof r.seconds === 'number' ? r.seconds.toFixed(0) : '—',
        ]),
      );
      const aggregate = cellsTable(cells);
      const title = `${basename(specFile)}: test error, mean ± std over seeds`;
      const out = flags.out ?? root;
      mkdirSync(out, { recursive: true });
      writeFileSync(
        join(out, 'report.json'),
        `${JSON.stringify({ spec: specFile, root, rows, cells }, null, 2)}\n`,
      );
      writeFileSync(
        join(out, 'report.md'),
        `# ${basename(specFile)}\n\n${countsLine(rows)}.\n\n## Mean ± std over seeds\n\n${aggregate}\n\n![test error](report.svg)\n\n## Runs\n\n${runTable}\n`,
      );
      writeFileSync(join(out, 'report.svg'), cellsPlot(cells, title));
      if (!flags.json) {
        console.log(runTable);
        console.log();
        console.log(aggregate);
        console.log();
        console.log(countsLine(rows));
      }
      process.stderr.write(`wrote ${join(out, 'report.md')}, report.json and report.svg\n`);
    });
}

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description(
      'take sweep runs from a BullMQ queue and train them under --root (a folder shared by every worker, e.g. NFS)',
    )
    .requiredOption('--queue <url>', 'Redis URL, redis://HOST:PORT')
    .option('--queue-name <name>', 'BullMQ queue name', DEFAULT_QUEUE_NAME)
    .requiredOption('--root <dir>', 'the shared folder of the run folders (the sweep run --root)')
    .option('--workers <n>', 'train processes at once', positiveInt('--workers'), 1)
    .option(
      '--lock-seconds <s>',
      "seconds before a dead worker's run goes to another worker",
      positiveNumber('--lock-seconds'),
      30,
    )
    .action(async (flags: WorkerFlags) => {
      const train = cliTrainCommand();
      const worker = await startWorker({
        url: flags.queue,
        queueName: flags.queueName,
        root: flags.root,
        train,
        workers: flags.workers,
        lockSeconds: flags.lockSeconds,
        onStart: (job) => process.stderr.write(`started ${job.name}\n`),
        onEnd: (o) => process.stderr.write(`${describeOutcome(o)}\n`),
        onError: (err) => process.stderr.write(`worker: ${err.message}\n`),
      });
      process.stderr.write(
        `worker ${process.pid}: taking runs from ${flags.queue} (queue ${flags.queueName}) into ${flags.root}; Ctrl-C stops\n`,
      );
      // runs until stopped; a stopped worker's running jobs go to other workers after --lock-seconds
      await new Promise<void>((resolve) => {
        const stop = () => {
          worker.close().then(resolve, resolve);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
