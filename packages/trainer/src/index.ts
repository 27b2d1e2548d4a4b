export {
  BACKEND_NAMES,
  type BackendAttempt,
  type BackendName,
  type BackendRequest,
  type BackendSelection,
  backendPackages,
  type BackendPackage,
  cudaAvailable,
  describeSelection,
  selectBackend,
} from './backend.js';
export * from './algorithms/index.js';
export { blockParamNames, createModel, type Model, modelEntries, wrapModel } from './model.js';
export {
  checkTrainSettings,
  type EpochMetrics,
  STEPS_FILE,
  type StepMetrics,
  TrainingInterruptedError,
  type TrainOptions,
  TrainSettingsError,
  type TrainSummary,
  train,
} from './loop.js';
export { type ExportedWeights, exportWeights } from './export.js';
export { LOCK_FILE, type LockHolder, lockRunDir, type RunLock } from './lock.js';
export {
  CURVE_FILES,
  type CurveRow,
  type CurveRun,
  learningCurvePlots,
  writeLearningCurves,
} from './plots.js';
export {
  type CheckpointExtra,
  type DataSource,
  type PartialEpoch,
  type RunChange,
  type RunConfig,
  runSettingsDiffer,
} from './run.js';
export { evaluateError, modelConfigFor } from './evaluate.js';
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
  appendMetrics,
  type CheckpointData,
  checkpointPath,
  ensureRunDir,
  listCheckpoints,
  type LoadedCheckpoint,
  loadCheckpoint,
  loadLatestCheckpoint,
  readConfig,
  readMetrics,
  type SaveCheckpointOptions,
  saveCheckpoint,
  writeConfig,
  writeMetrics,
} from './checkpoint.js';
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
