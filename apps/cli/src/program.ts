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
  return program;
}

/** Runs the CLI; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = createProgram();
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
      if (
        err.code === 'commander.helpDisplayed' ||
        err.code === 'commander.version' ||
        err.code === 'commander.help'
      ) {
        return 0;
      }
      return USAGE_ERROR;
    }
    console.error(`fwdgrad: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
