import { cpus } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import {
  BACKEND_NAMES,
  type BackendRequest,
  backendPackages,
  describeSelection,
  selectBackend,
} from '@fwdgrad/trainer';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { registerData } from './data.js';
import { registerEval } from './eval.js';
import { registerTrain } from './train.js';
import { registerSweep } from './sweep.js';
import { registerVariance } from './variance.js';

/** Exit code for usage errors (unknown flag, bad value), as in most Unix tools. */
export const USAGE_ERROR = 2;

const BACKEND_CHOICES = ['auto', ...BACKEND_NAMES];

function backendOption(): Option {
  return new Option('--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES).default('auto');
}

/** Parses a positive integer flag value or rejects it with a message naming the flag. */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new InvalidArgumentError(`expected a positive integer, got '${value}'`);
  return n;
}

async function info(opts: { backend: BackendRequest; json?: boolean }): Promise<void> {
  const sel = await selectBackend(opts.backend);
  const natives = backendPackages(sel);
  const report = {
    backend: sel.name,
    tfjs_backend: sel.tfjsBackend,
    tfjs_version: tf.version.tfjs,
    node: process.version,
    cores: cpus().length,
    attempts: sel.attempts,
    kernel_patches: sel.kernelPatches,
    native: sel.native,
    packages: natives,
  };
  if (opts.json) {
    console.log(JSON.stringify(report));
    return;
  }
  console.log(describeSelection(sel));
  console.log(`tfjs: ${report.tfjs_version}   node: ${report.node}   cores: ${report.cores}`);
  console.log('packages:');
  for (const p of natives) {
    const state = !p.installed
      ? 'not installed'
      : p.loads === undefined
        ? 'installed'
        : p.loads
          ? 'loads'
          : 'installed, does not load';
    console.log(`  ${p.package}${p.version ? `@${p.version}` : ''}: ${state}`);
  }
  const n = sel.native;
  console.log(
    n.available
      ? `native kernels (@fwdgrad/native): built (${n.buildFlags?.join(' ') ?? 'flags unknown'}); BLAS: ${n.blas ?? 'none found, built-in C product'}; threads: ${n.threads}`
      : `native kernels (@fwdgrad/native): unavailable (${n.reason})`,
  );
}

/** Builds the `fwdgrad` command. Commands exit with 2 on usage errors. */
export function createProgram(): Command {
  const program = new Command('fwdgrad')
    .description('Forward gradient learning with local losses (Ren et al., ICLR 2023) on TensorFlow.js')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('info')
    .description(
      'show the tfjs backend chosen, why the others were not, tfjs version, cores and native packages',
    )
    .addOption(backendOption())
    .option('--json', 'print one JSON object')
    .action(info);

  registerTrain(program, backendOption);
  registerEval(program, backendOption, positiveInt);
  registerData(program);
  registerVariance(program, positiveInt);
  registerSweep(program, positiveInt);
  return program;
}

/**
 * Parses `argv` with a commander program and returns the process exit code: 0, 2 for usage
 * errors (unknown flag, bad value; commander has already printed why), 1 for a failure, printed
 * as one `name: message` line. Shared by the `fwdgrad` and `fwdgrad-bench` commands.
 */
export async function runProgram(program: Command, argv: string[], name: string): Promise<number> {
  const override = (cmd: Command) => {
    cmd.exitOverride();
    cmd.commands.forEach(override);
  };
  override(program);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      const help = ['commander.helpDisplayed', 'commander.version', 'commander.help'];
      return help.includes(err.code) ? 0 : USAGE_ERROR;
    }
    console.error(`${name}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

/** Runs the CLI; returns the process exit code. */
export function main(argv: string[]): Promise<number> {
  return runProgram(createProgram(), argv, 'fwdgrad');
}
