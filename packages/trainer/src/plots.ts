import fs from 'node:fs';
import path from 'node:path';
import { linePlot, PALETTE } from '@fwdgrad/plot';
import { readMetrics } from './checkpoint.js';

/** The fields of a metrics.jsonl row the learning curves draw. */
export interface CurveRow {
  epoch: number;
  loss: number | null;
  test_error: number | null;
  train_error: number | null;
}

/** One run's rows under a legend name. */
export interface CurveRun {
  name: string;
  rows: readonly CurveRow[];
}

/** The learning-curve files of a run folder. */
export const CURVE_FILES = { loss: 'loss.svg', error: 'error.svg' } as const;

/**
 * Learning curves of one or more runs as SVG: `loss` (final loss per epoch) and `error` (test and
 * train error in %, per epoch; train dashed). One line per run and metric.
 */
export function learningCurvePlots(runs: readonly CurveRun[]): { loss: string; error: string } {
  const points = (rows: readonly CurveRow[], key: keyof CurveRow, scale = 1): [number, number][] =>
    rows.filter((r) => r[key] !== null).map((r) => [r.epoch, (r[key] as number) * scale]);
  const label = (run: CurveRun, what: string) => (runs.length > 1 ? `${run.name} ${what}` : what);
  const loss = linePlot({
    title: runs.length > 1 ? 'Loss' : `Loss — ${runs[0]?.name ?? ''}`,
    xLabel: 'epoch',
    yLabel: 'loss',
    series: runs.map((run) => ({ name: label(run, 'loss'), points: points(run.rows, 'loss') })),
  });
  const error = linePlot({
    title: runs.length > 1 ? 'Error' : `Error — ${runs[0]?.name ?? ''}`,
    xLabel: 'epoch',
    yLabel: 'error (%)',
    // one colour per run, shared by its test (solid) and train (dashed) lines
    series: runs.flatMap((run, i) => {
      const color = PALETTE[i % PALETTE.length];
      return [
        { name: label(run, 'test'), points: points(run.rows, 'test_error', 100), color },
        { name: label(run, 'train'), points: points(run.rows, 'train_error', 100), dashed: true, color },
      ];
    }),
  });
  return { loss, error };
}

/** Writes `loss.svg` and `error.svg` into `outDir` from run folders' metrics.jsonl. Returns the files. */
export function writeLearningCurves(outDir: string, runDirs: readonly string[]): string[] {
  const runs = runDirs.map((dir) => ({
    name: path.basename(path.resolve(dir)),
    rows: readMetrics<CurveRow>(dir),
  }));
  const plots = learningCurvePlots(runs);
  fs.mkdirSync(outDir, { recursive: true });
  const files: string[] = [];
  for (const key of ['loss', 'error'] as const) {
    const file = path.join(outDir, CURVE_FILES[key]);
    fs.writeFileSync(file, plots[key]);
    files.push(file);
  }
  return files;
}
