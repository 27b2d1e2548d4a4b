import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import {
  BACKEND_NAMES,
  type BackendRequest,
  backendPackages,
  describeSelection,
  selectBackend,
} from '@fwdgrad/trainer/node';
import { runProgram } from '@fwdgrad/cli-kit';
import { Command, Option } from 'commander';
import { registerData } from './data.js';
import { registerEval } from './eval.js';
import { registerRunTools } from './runs.js';
import { registerTrain } from './train.js';
import { registerSetup } from './setup.js';
import { registerSweep, registerWorker } from './sweep.js';
import { registerVariance } from './variance.js';

const BACKEND_CHOICES = ['auto', ...BACKEND_NAMES];

function backendOption(): Option {
  return new Option('--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES).default('auto');
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

/** This package's version (from its package.json, beside dist/ and src/). */
function cliVersion(): string {
  try {
    const here = typeof __dirname === 'string' ? __dirname : dirname(fileURLToPath(import.meta.url));
    return (JSON.parse(readFileSync(join(here, '..', 'package.json'), 'utf8')) as { version: string })
      .version;
  } catch {
    return 'unknown';
  }
}

/** Builds the `fwdgrad` command. Commands exit with 2 on usage errors. */
export function createProgram(): Command {
  const program = new Command('fwdgrad')
    .description('Forward gradient learning with local losses (Ren et al., ICLR 2023) on TensorFlow.js')
    .version(cliVersion(), '-V, --version', 'print the version of fwdgrad')
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
  registerEval(program, backendOption);
  registerData(program);
  registerRunTools(program);
  registerVariance(program);
  registerSweep(program);
  registerWorker(program);
  registerSetup(program);
  return program;
}

/** Runs the CLI; returns the process exit code. */
export function main(argv: string[]): Promise<number> {
  return runProgram(createProgram(), argv, 'fwdgrad');
}
