import { positiveInt } from '@fwdgrad/cli-kit';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  labEstimators,
  runVarianceLab,
  type VarianceLabOptions,
  type VarianceRow,
  varianceJsonLines,
} from '@fwdgrad/perturbation';
import { varianceFigure } from '@fwdgrad/plot';
import { type Command, InvalidArgumentError, Option } from 'commander';

/** Options of {@link runVarianceCommand}: the lab's options plus output. */
export interface VarianceCommandOptions extends VarianceLabOptions {
  /** Print one JSON object per line (`--json`); otherwise a readable table. */
  json?: boolean;
  /** Folder to write `variance.svg` (Figure 8) and `variance.jsonl` into; nothing is written when absent. */
  outDir?: string;
  /** Where lines go. Default `console.log`. */
  print?: (line: string) => void;
}

/** What {@link runVarianceCommand} produced. */
export interface VarianceCommandResult {
  rows: VarianceRow[];
  /** Paths written (empty without `outDir`). */
  files: string[];
}

function table(rows: readonly VarianceRow[]): string[] {
  const head =
    `${'estimator'.padEnd(22)}${'N'.padStart(6)}${'p'.padStart(5)}${'q'.padStart(5)}` +
    `${'empirical'.padStart(13)}${'theory'.padStart(13)}${'ratio'.padStart(8)}`;
  return [
    head,
    ...rows.map(
      (r) =>
        `${r.estimator.padEnd(22)}${String(r.N).padStart(6)}${String(r.p).padStart(5)}${String(r.q).padStart(5)}` +
        `${r.empirical.toExponential(3).padStart(13)}${(r.theory === null ? '—' : r.theory.toExponential(3)).padStart(13)}` +
        `${(r.theory === null ? '' : (r.empirical / r.theory).toFixed(3)).padStart(8)}`,
    ),
  ];
}

/**
 * The `fwdgrad variance` command as a function (the CLI wires its flags to these options): runs the variance
 * lab, prints its rows — with `json`, exactly one `{"estimator","N","p","q","empirical","theory"}` object per
 * line — and, given `outDir`, writes the Figure 8 plot `variance.svg` and the rows as `variance.jsonl` there.
 */
export async function runVarianceCommand(
  options: VarianceCommandOptions = {},
): Promise<VarianceCommandResult> {
  const { json = false, outDir, print = (line: string) => console.log(line), ...lab } = options;
  const rows = runVarianceLab(lab);
  for (const line of json ? varianceJsonLines(rows) : table(rows)) print(line);
  const files: string[] = [];
  if (outDir !== undefined) {
    await mkdir(outDir, { recursive: true });
    const svg = join(outDir, 'variance.svg');
    await writeFile(
      svg,
      varianceFigure(rows, {
        estimators: labEstimators,
        title: `Forward-gradient variance: empirical vs Table 1 (${lab.noise ?? 'gaussian'} noise, ${lab.samples ?? 5000} samples)`,
      }),
    );
    const jsonl = join(outDir, 'variance.jsonl');
    await writeFile(jsonl, `${varianceJsonLines(rows).join('\n')}\n`);
    files.push(svg, jsonl);
  }
  return { rows, files };
}

function powersList(value: string): number[] {
  const list = value.split(',').map((v) => Number(v.trim()));
  for (const n of list) {
    if (!Number.isInteger(n) || n < 1)
      throw new InvalidArgumentError(`expected a comma list of positive integers, got '${value}'`);
  }
  return list;
}

export function registerVariance(program: Command): void {
  program
    .command('variance')
    .description('the variance lab (paper appendix 10, Figure 8): empirical estimator variances vs Table 1')
    .option('--samples <n>', 'estimates per point', positiveInt('--samples'), 5000)
    .option('--batch-sizes <list>', 'batch-size sweep (default 1,2,4,…,4096)', powersList)
    .option('--fan-ins <list>', 'fan-in sweep at N = 4 (default 1,2,…,256)', powersList)
    .option('--fan-outs <list>', 'fan-out sweep at N = 4 (default 1,2,…,256)', powersList)
    .addOption(
      new Option('--noise <kind>', 'noise distribution')
        .choices(['gaussian', 'rademacher'])
        .default('gaussian'),
    )
    .option('--seed <n>', 'random seed', (v) => Number.parseInt(v, 10), 0)
    .option('--out <dir>', 'write variance.svg (Figure 8) and variance.jsonl here', 'results/variance')
    .option('--json', 'one JSON object per line')
    .action(
      async (flags: {
        samples: number;
        batchSizes?: number[];
        fanIns?: number[];
        fanOuts?: number[];
        noise: 'gaussian' | 'rademacher';
        seed: number;
        out: string;
        json?: boolean;
      }) => {
        const { files } = await runVarianceCommand({
          samples: flags.samples,
          batchSizes: flags.batchSizes,
          fanIns: flags.fanIns,
          fanOuts: flags.fanOuts,
          noise: flags.noise,
          seed: flags.seed,
          json: flags.json,
          outDir: flags.out,
          onProgress: flags.json
            ? undefined
            : ({ done, total }) => process.stderr.write(`\rvariance lab: ${done}/${total} points`),
        });
        if (!flags.json) process.stderr.write(`\nwrote ${files.join(', ')}\n`);
      },
    );
}
