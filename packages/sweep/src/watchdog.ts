/*
 * Preloaded (`node --import`, through NODE_OPTIONS) into every train process a sweep runner
 * starts. The process kills itself when the runner that started it dies — even by SIGKILL, which
 * no handler sees — so that a killed worker leaves no orphan training on in a run folder that
 * another worker is about to resume. Training keeps the main thread busy for minutes, so the
 * check runs on a worker thread.
 */
import { Worker } from 'node:worker_threads';

const parent = Number(process.env.FWDGRAD_SWEEP_PARENT);
// The train command's own children must not inherit the watch (their parent is the train process).
delete process.env.FWDGRAD_SWEEP_PARENT;
if (process.env.FWDGRAD_SWEEP_NODE_OPTIONS !== undefined) {
  process.env.NODE_OPTIONS = process.env.FWDGRAD_SWEEP_NODE_OPTIONS;
  delete process.env.FWDGRAD_SWEEP_NODE_OPTIONS;
}
if (Number.isInteger(parent) && parent > 0) {
  const watcher = new Worker(
    `const { workerData } = require('node:worker_threads');
     setInterval(() => { if (process.ppid !== workerData) process.kill(process.pid, 'SIGKILL'); }, 100);`,
    { eval: true, workerData: parent },
  );
  watcher.unref();
}
