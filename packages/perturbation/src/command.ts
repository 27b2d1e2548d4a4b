import { runVarianceLab, type VarianceLabOptions, type VarianceRow, varianceJsonLines } from './lab.js';
import { varianceLabSvg } from './plot.js';

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
 * line — and, given `outDir`, writes the Figure 8 plot `variance.svg` and the rows as `variance.jsonl` there
 * (Node only: uses `node:fs`).
 */
export async function runVarianceCommand(
  options: VarianceCommandOptions = {},
): Promise<VarianceCommandResult> {
  const { json = false, outDir, print = (line: string) => console.log(line), ...lab } = options;
  const rows = runVarianceLab(lab);
  for (const line of json ? varianceJsonLines(rows) : table(rows)) print(line);
  const files: string[] = [];
  if (outDir !== undefined) {
    const fs = await import('node:fs/promises');
    const path = await import('node:path');
    await fs.mkdir(outDir, { recursive: true });
    const svg = path.join(outDir, 'variance.svg');
    await fs.writeFile(
      svg,
      varianceLabSvg(rows, {
        title: `Forward-gradient variance: empirical vs Table 1 (${lab.noise ?? 'gaussian'} noise, ${lab.samples ?? 5000} samples)`,
      }),
    );
    const jsonl = path.join(outDir, 'variance.jsonl');
    await fs.writeFile(jsonl, `${varianceJsonLines(rows).join('\n')}\n`);
    files.push(svg, jsonl);
  }
  return { rows, files };
}
