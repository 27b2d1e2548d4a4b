// Browser-safe: grid specs and report aggregation. Run folders, the local runner and the BullMQ
// queue read files and start processes: they are in `@fwdgrad/sweep/node` (./node.ts).
export {
  expandGrid,
  type FlagValue,
  flagArgs,
  parseSpec,
  RUNNER_FLAGS,
  type SweepJob,
  type SweepSpec,
  validateSpec,
} from './spec.js';
export {
  aggregateRows,
  cellsPlot,
  cellsTable,
  type MeanStd,
  markdownTable,
  meanStd,
  pctMeanStd,
  type SweepCell,
  type SweepRow,
} from './report.js';
