// Everything of `@fwdgrad/sweep`, plus the Node-only parts: run folders, the local runner, the
// BullMQ queue.
export * from './index.js';
export {
  loadSpec,
  prepareRunDir,
  readResult,
  recoverResult,
  type RunResult,
  type RunState,
  type RunStatus,
  runCurve,
  runDirOf,
  runStatus,
  sweepRows,
  writeFileAtomic,
} from './folder.js';
export {
  type AttemptContext,
  type Executor,
  type JobOutcome,
  lockRoot,
  processExecutor,
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
