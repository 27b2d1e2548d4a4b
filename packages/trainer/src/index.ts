/**
 * @fwdgrad/trainer — the learning rules (thin callers of the estimators), models, optimisers, schedules,
 * presets, data batches for a step and evaluation. Browser-safe: backend selection, the training loop with
 * its run folders and checkpoints are in `@fwdgrad/trainer/node`; blocks in parallel in `@fwdgrad/trainer/pipeline`.
 */
export * from './algorithms/index.js';
export { blockParamNames, createModel, type Model, modelEntries, wrapModel } from './model.js';
export { evaluateError, modelConfigFor } from './evaluate.js';
export { stepBatches } from './step-batches.js';
export {
  assignParams,
  namedParams,
  type NamedTensors,
  type ParamEntry,
  type ParamGroup,
  type ParamKind,
  validateParams,
} from './params.js';
export { createOptimizer, type Optimizer, type OptimizerKind, type OptimizerOptions } from './optim.js';
export {
  createSchedule,
  SCHEDULE_KINDS,
  type Schedule,
  type ScheduleKind,
  type ScheduleOptions,
  scaleLr,
} from './schedule.js';
export {
  createProgress,
  formatDuration,
  type Progress,
  type ProgressOptions,
  type ProgressStream,
  type ProgressSummary,
  type TickMetrics,
} from './progress.js';
export { checkFinite, DivergenceError, type GuardContext } from './guard.js';
export {
  type AugmentationConfig,
  type AugmentationKind,
  type DatasetName,
  type ExperimentConfig,
  type ExperimentOverrides,
  experimentOptimizer,
  experimentSchedule,
  type LrScaling,
  type ModelSize,
  type ObjectiveKind,
  PRESET_EXPERIMENTS,
  PRESET_NAMES,
  PRESETS,
  type PresetName,
  peakLr,
  resolveExperiment,
  validateExperiment,
} from './presets.js';
