import { runVarianceCommand } from '@fwdgrad/perturbation';
import { type Command, InvalidArgumentError, Option } from 'commander';

function powersList(value: string): number[] {
  const list = value.split(',').map((v) => Number(v.trim()));
  for (const n of list) {
    if (!Number.isInteger(n) || n < 1)
      throw new InvalidArgumentError(`expected a comma list of positive integers, got '${value}'`);
  }
  return list;
}

export function registerVariance(program: Command, positiveInt: (v: string) => number): void {
  program
    .command('variance')
    .description('the variance lab (paper appendix 10, Figure 8): empirical estimator variances vs Table 1')
    .option('--samples <n>', 'estimates per point', positiveInt, 5000)
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
