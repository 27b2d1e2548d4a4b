import { fetchDataset, verifyDataset } from '@fwdgrad/datasets/node';
import { nonNegativeInt, positiveNumber } from '@fwdgrad/cli-kit';
import { Argument, type Command } from 'commander';

const FETCHABLE = ['cifar10', 'mnist'] as const;

function formatBytes(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`;
}

export function registerData(program: Command): void {
  const data = program.command('data').description('download and check datasets');
  data
    .command('fetch')
    .description('download a dataset, verify its MD5 checksums and extract it')
    .addArgument(new Argument('<name>', 'dataset').choices([...FETCHABLE]))
    .requiredOption('--data-dir <dir>', 'folder to download into')
    .option('--base-url <url>', 'a mirror to download from')
    .option('--force', 'download again even if verified files are present')
    .option(
      '--timeout <s>',
      'give up on an attempt when the server sends nothing for this long',
      positiveNumber('--timeout'),
      30,
    )
    .option(
      '--retries <n>',
      'attempts after the first on network errors, timeouts and 5xx',
      nonNegativeInt('--retries'),
      3,
    )
    .action(
      async (
        name: (typeof FETCHABLE)[number],
        flags: { dataDir: string; baseUrl?: string; force?: boolean; timeout: number; retries: number },
      ) => {
        let last = 0;
        await fetchDataset(name, flags.dataDir, {
          baseUrl: flags.baseUrl,
          force: flags.force,
          timeoutMs: flags.timeout * 1000,
          retries: flags.retries,
          onProgress: (p) => {
            const now = Date.now();
            if (p.phase === 'download' && now - last < 1000) return;
            last = now;
            const size = p.totalBytes
              ? `${formatBytes(p.receivedBytes)} / ${formatBytes(p.totalBytes)}`
              : formatBytes(p.receivedBytes);
            process.stderr.write(`${name}: ${p.file} ${p.phase} ${p.phase === 'download' ? size : ''}\n`);
          },
        });
        console.log(`${name} is in ${flags.dataDir} (verified)`);
      },
    );
  data
    .command('verify')
    .description('check the dataset files on disk (sizes, headers, checksums)')
    .addArgument(new Argument('<name>', 'dataset').choices([...FETCHABLE]))
    .requiredOption('--data-dir <dir>', 'folder holding the dataset')
    .option('--json', 'print one JSON object')
    .action(async (name: (typeof FETCHABLE)[number], flags: { dataDir: string; json?: boolean }) => {
      const report = await verifyDataset(name, flags.dataDir);
      if (flags.json) console.log(JSON.stringify(report));
      else for (const c of report.checks) console.log(`${c.ok ? 'ok  ' : 'FAIL'} ${c.path}: ${c.message}`);
      if (!report.ok) {
        process.exitCode = 1;
      }
    });
}
