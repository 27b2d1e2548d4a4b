import type { BackendRequest, BackendSelection } from '@fwdgrad/trainer/node';
import type { Column, Row } from './table.js';

/**
 * How much work a suite does:
 * - `smoke`: seconds; tiny shapes and a few steps (CI checks that the outputs are well formed);
 * - `small`: a few minutes on a 2-core machine; reduced shapes where the full ones do not fit, said in the rows;
 * - `medium`: closer to the paper (e.g. one full MNIST epoch);
 * - `paper`: the paper's shapes and schedules (hours to days on a CPU).
 */
export const BUDGETS = ['smoke', 'small', 'medium', 'paper'] as const;
export type Budget = (typeof BUDGETS)[number];

/** The suites of issue 9, in the paper's order of tables and figures. */
export const SUITE_NAMES = [
  'variance',
  'fused',
  'jvp-overhead',
  'throughput',
  'table3-mnist',
  'ablations',
  'contrastive',
  'pipeline',
  'tfjs-layers',
  'backends',
] as const;
export type SuiteName = (typeof SUITE_NAMES)[number];

/** Options every suite receives (from the command line). */
export interface SuiteOptions {
  /** The backend the user asked for (`auto` = the fastest that loads). */
  backend: BackendRequest;
  /** Number of seeds for suites that repeat training (default: per budget). */
  seeds?: number;
  /** MNIST folder (default: the bundled copy). */
  dataDir?: string;
}

/** What a row's `run` receives. */
export interface RowContext {
  budget: Budget;
  options: SuiteOptions;
  /** The backend selected for the suite. */
  selection: BackendSelection;
  /** Rows already finished (this run and resumed ones), by key. */
  done: ReadonlyMap<string, Row>;
  /** A scratch folder of this suite (training run folders live here while a row runs). */
  workDir: string;
  /** True when the user passed --resume (training rows continue their run folders). */
  resume: boolean;
  /** Writes a progress line to stderr (nothing when progress is off). */
  log(line: string): void;
  /** True when progress output is on. */
  progress: boolean;
}

/** The figures of one row (the harness adds `suite` and `key`). */
export type Figures = Record<string, unknown>;

/** One measurement of a suite. */
export interface RowSpec {
  /** Unique within the suite's plan: resume and `--filter` use it. */
  key: string;
  /**
   * Measures and returns the row's figures (without `suite`/`key`, which the harness adds). A list
   * gives several rows measured together (their keys: `<key>|<item.key or index>`).
   */
  run(ctx: RowContext): Promise<Figures | Figures[]> | Figures | Figures[];
}

/** A suite's plan for one budget. */
export interface SuitePlan {
  /** Everything that determines the numbers (shapes, repeats, epochs...), recorded in the results. */
  config: Record<string, unknown>;
  /** Seeds used (recorded). */
  seeds: number[];
  rows: RowSpec[];
  /** Lines for the report: reductions made at this budget and other caveats. */
  notes: string[];
}

/** What a suite's report adds to the results files. */
export interface SuiteReport {
  /** Markdown (tables, goal checks) that follows the standard header. */
  markdown: string;
  /** SVG plots: written as `<timestamp>-<name>.svg`. */
  plots: { name: string; title: string; svg: string }[];
  /** Aggregates and goal checks (recorded in the JSON). */
  summary: Record<string, unknown>;
}

/** A suite: a plan per budget, the table columns, and a report over its rows. */
export interface Suite {
  name: SuiteName;
  /** What it reproduces, e.g. "Figure 5: naive vs fused replicated losses". */
  title: string;
  plan(budget: Budget, options: SuiteOptions): SuitePlan | Promise<SuitePlan>;
  /** Columns of the terminal table (and the default Markdown table). */
  columns: Column[];
  report(rows: Row[], budget: Budget): SuiteReport;
}
