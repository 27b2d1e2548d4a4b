/**
 * @fwdgrad/trainer/node — the Node-only half: backend selection (native, tfjs-node, wasm, cpu; WebGPU through
 * Dawn), the training loop `train` with its run folder (config, metrics, checkpoints, resume, lock, learning
 * curves, weight export).
 */
export {
  BACKEND_NAMES,
  type BackendAttempt,
  type BackendName,
  type BackendRequest,
  type BackendSelection,
  backendPackages,
  type BackendPackage,
  autoOrder,
  cudaAvailable,
  describeSelection,
  NODE_MIN_STEP_WORK,
  type SelectOptions,
  selectBackend,
  stepWork,
} from './backend.js';
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
export { LOCK_FILE, type LockHolder, type LockInUse, lockFile, lockRunDir, type RunLock } from './lock.js';
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
