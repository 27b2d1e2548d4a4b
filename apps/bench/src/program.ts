import { spawnSync } from 'node:child_process';
import { BACKEND_NAMES, type BackendRequest } from '@fwdgrad/trainer/node';
import { commaList, positiveInt, runProgram, USAGE_ERROR } from '@fwdgrad/cli-kit';
import { Command, Option } from 'commander';
import { defaultOutDir, runSuite } from './harness.js';
import { SUITES } from './suites/index.js';
import { table3FromSweep } from './sweep-report.js';
import { BUDGETS, type Budget, SUITE_NAMES } from './types.js';

/** Exit code for usage errors (unknown flag, bad value), as the `fwdgrad` CLI's. */
export { USAGE_ERROR };

/** How many times a run may restart itself after a backend became unusable (each restart makes progress). */
const MAX_RESTARTS = 50;
const RESTARTS_ENV = 'FWDGRAD_BENCH_RESTARTS';

interface Flags {
  budget: Budget;
  json?: boolean;
  out: string;
  backend: BackendRequest;
  resume?: boolean;
  filter?: string[];
  seeds?: number;
  dataDir?: string;
  progress: boolean;
}

/** Options of {@link main}. */
export interface MainOptions {
  /**
   * Restart the process with `--resume` when a row leaves the backend unusable (e.g. the WebAssembly
   * heap was exhausted): the command line sets it; library callers get an error instead.
   */
  restartOnBrokenBackend?: boolean;
}

function restart(argv: string[]): never {
  const count = Number(process.env[RESTARTS_ENV] ?? '0') + 1;
  if (count > MAX_RESTARTS) {
    throw new Error(`the backend broke ${MAX_RESTARTS} times; giving up (rerun with --resume)`);
  }
  process.stderr.write(`fwdgrad-bench: restarting in a fresh process (--resume), restart ${count}\n`);
  const args = argv.includes('--resume') ? argv : [...argv, '--resume'];
  const child = spawnSync(process.execPath, [process.argv[1], ...args], {
    stdio: 'inherit',
    env: { ...process.env, [RESTARTS_ENV]: String(count) },
  });
  process.exit(child.status ?? 1);
}

/** Builds the `fwdgrad-bench` command: one sub-command per suite, with the same options. */
export function createProgram(argv: string[] = [], options: MainOptions = {}): Command {
  const program = new Command('fwdgrad-bench')
    .description(
      'Reproduce the tables and figures of "Scaling Forward Gradient with Local Losses" at a budget, and measure speed',
    )
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  for (const name of SUITE_NAMES) {
    const suite = SUITES[name];
    program
      .command(name)
      .description(suite.title)
      .addOption(
        new Option('--budget <budget>', 'how much work to do').choices([...BUDGETS]).default('small'),
      )
      .option('--json', 'print one JSON object per measured row (instead of a table at the end)')
      .option('--out <dir>', 'results folder (files go to <dir>/<suite>/)', defaultOutDir())
      .addOption(
        new Option('--backend <name>', 'tfjs backend').choices(['auto', ...BACKEND_NAMES]).default('auto'),
      )
      .option('--resume', 'continue an interrupted run of this suite and budget (skips its finished rows)')
      .option(
        '--filter <list>',
        'run only rows whose key contains one of these comma-separated strings',
        commaList,
      )
      .option(
        '--seeds <n>',
        'number of seeds for the training suites (default: per budget)',
        positiveInt('--seeds'),
      )
      .option('--data-dir <dir>', 'MNIST folder in IDX format (default: the bundled copy)')
      .option('--no-progress', 'no progress lines on stderr')
      .action(async (flags: Flags) => {
        const result = await runSuite(suite, {
          budget: flags.budget,
          backend: flags.backend,
          out: flags.out,
          json: flags.json,
          resume: flags.resume,
          filter: flags.filter,
          seeds: flags.seeds,
          dataDir: flags.dataDir,
          progress: flags.progress,
          quietResumed: process.env[RESTARTS_ENV] !== undefined,
          onBackendBroken: options.restartOnBrokenBackend ? () => restart(argv) : undefined,
        });
        if (!flags.json) process.stdout.write(`\nresults: ${result.files.markdown}\n`);
      });
  }
  program
    .command('sweep-report')
    .description(
      "the table3-mnist report (ours beside the paper's Table 3) over the finished runs of a fwdgrad sweep of the rules",
    )
    .requiredOption('--spec <file>', 'the sweep spec (grid of seed, model or preset, algo)')
    .requiredOption('--root <dir>', "the sweep's root folder")
    .option('--out <dir>', 'results folder (files go to <dir>/table3-mnist-sweep/)', defaultOutDir())
    .option('--commit <rev>', 'the commit the runs were made at (recorded in the report)')
    .option('--note <text...>', 'notes for the report')
    .action((flags: { spec: string; root: string; out: string; commit?: string; note?: string[] }) => {
      const { files } = table3FromSweep({
        spec: flags.spec,
        root: flags.root,
        out: flags.out,
        commit: flags.commit,
        notes: flags.note,
      });
      process.stdout.write(`${files.join('\n')}\n`);
    });
  program
    .command('list')
    .description('list the suites')
    .action(() => {
      for (const name of SUITE_NAMES) process.stdout.write(`${name.padEnd(14)} ${SUITES[name].title}\n`);
    });
  return program;
}

/** Runs the bench command line; returns the process exit code (2 for usage errors). */
export async function main(argv: string[], options: MainOptions = {}): Promise<number> {
  const program = createProgram(argv, options);
  if (argv.length === 0) {
    program.outputHelp({ error: true });
    return USAGE_ERROR;
  }
  return runProgram(program, argv, 'fwdgrad-bench');
}
