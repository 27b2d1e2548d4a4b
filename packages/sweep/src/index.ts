export {
  expandGrid,
  type FlagValue,
  flagArgs,
  loadSpec,
  RUNNER_FLAGS,
  type SweepJob,
  type SweepSpec,
  validateSpec,
} from './spec.js';
export {
  prepareRunDir,
  readResult,
  type RunResult,
  type RunState,
  type RunStatus,
  runCurve,
  runDirOf,
  runStatus,
  writeFileAtomic,
} from './folder.js';
export {
  type JobOutcome,
  type RunJobOptions,
  type RunLocalOptions,
  runJob,
  runLocal,
  type TrainCommand,
} from './runner.js';
export {
  connectRedis,
  DEFAULT_QUEUE_NAME,
  type EnqueueOptions,
  type EnqueueReport,
  enqueueJobs,
  queueStates,
  type SweepWorker,
  startWorker,
  type WorkerOptions,
} from './queue.js';
