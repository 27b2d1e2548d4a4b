/**
 * @fwdgrad/bench — reproduction and performance suites for fwdgrad (issue 9): the paper's tables and
 * figures at a budget (variance, fused losses, Table 3, ablations, contrastive) and speed
 * (jvp overhead, training-step throughput). Private app; `pnpm bench <suite>` runs it.
 */
export {
  benchRoot,
  defaultOutDir,
  defaultTable,
  type ResultsFile,
  type RunOptions,
  runSuite,
  type SuiteResult,
  timestamp,
} from './harness.js';
export { type MachineInfo, machineInfo, machineLine } from './machine.js';
export { backendHealthy, measure, type Measured, medianMs, peakBytesOf } from './measure.js';
export { main, type MainOptions, USAGE_ERROR } from './program.js';
export * as paper from './paper.js';
export { mean, median, std } from './stats.js';
export { SUITES } from './suites/index.js';
export { M816_SHAPE } from './suites/fused.js';
export { localMixerBlockLoss, M816_BLOCK } from './suites/jvp-overhead.js';
export {
  gradients as layersGradients,
  LAYERS_RULES,
  type LayersRule,
  mnistCnn,
  mnistMlp,
  type TrainCnnOptions,
  testAccuracy,
  trainMnistCnn,
  trainStep,
} from './suites/tfjs-layers.js';
export type { Column, Row } from './table.js';
export {
  BUDGETS,
  type Budget,
  type Figures,
  type RowContext,
  type RowSpec,
  SUITE_NAMES,
  type Suite,
  type SuiteName,
  type SuiteOptions,
  type SuitePlan,
  type SuiteReport,
} from './types.js';
