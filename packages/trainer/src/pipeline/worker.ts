import { readFileSync } from 'node:fs';
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { loadNative } from '@fwdgrad/native';
import { type BackendRequest, selectBackend } from '../backend.js';
import { DivergenceError } from '../guard.js';
import type { ControlMessage, ForwardMessage, StageMessage } from './protocol.js';
import { transfers } from './protocol.js';
import { PipelineStage } from './stage.js';

/**
 * The entry of a pipeline stage on a worker thread: its own tfjs instance and backend (native
 * kernels with the thread count of the coordinator's `FWDGRAD_THREADS`), micro-batches in on
 * `input`, block outputs out on `output` (to the next stage), reports and parameters to the
 * coordinator on the parent port. Nothing comes back from the next stage.
 */
interface StageWorkerData {
  backend: BackendRequest;
  input: MessagePort;
  output: MessagePort | null;
}

const control = parentPort;
if (control === null) throw new Error('the pipeline stage entry runs on a worker thread');
const { backend, input, output } = workerData as StageWorkerData;
let stage: PipelineStage | null = null;
let stageIndex = -1;

const report = (m: StageMessage, transfer: ArrayBuffer[] = []) => control.postMessage(m, transfer);
const fail = (err: unknown) =>
  report({
    kind: 'failed',
    stage: stageIndex,
    message: err instanceof Error ? err.message : String(err),
    ...(err instanceof DivergenceError
      ? { divergence: { value: err.value, step: err.step, epoch: err.epoch, what: err.what } }
      : {}),
  });

const selection = selectBackend(backend);

/** This thread's CPU seconds (user + system) from /proc/thread-self/stat (Linux), or null. */
function threadCpuSeconds(): number | null {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    // fields after "pid (comm) ": state is field 3, utime 14 and stime 15, in clock ticks (100 per second)
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

control.on('message', async (m: ControlMessage) => {
  try {
    if (m.kind === 'init') {
      stageIndex = m.spec.stage;
      const sel = await selection;
      stage = new PipelineStage(m.spec);
      report({ kind: 'ready', stage: stageIndex, backend: sel.name });
    } else if (m.kind === 'collect') {
      if (stage === null) throw new Error('collect before init');
      const { params, optimizer } = stage.collect();
      report({ kind: 'collected', stage: stageIndex, params, optimizer }, [
        ...transfers(...Object.values(params)),
        ...transfers(...Object.values(optimizer)),
      ]);
    } else if (m.kind === 'restore') {
      if (stage === null) throw new Error('restore before init');
      stage.restore(m.params, m.optimizer);
      report({ kind: 'restored', stage: stageIndex });
    } else if (m.kind === 'threads') {
      if (loadNative().available) loadNative({ threads: m.threads });
      report({ kind: 'threads-set', stage: stageIndex });
    } else if (m.kind === 'close') {
      stage?.dispose();
      stage = null;
      input.close();
      output?.close();
      control.close();
    }
  } catch (err) {
    fail(err);
  }
});

// Micro-batches are handled one at a time, in the order they arrive (message handlers never
// interleave), so a stage's numbers do not depend on timing.
input.on('message', (m: ForwardMessage) => {
  try {
    if (stage === null) throw new Error('micro-batch before init');
    const cpu = threadCpuSeconds();
    const { report: stepped, forward } = stage.step(m);
    if (cpu !== null) stepped.cpuSeconds = (threadCpuSeconds() as number) - cpu;
    if (forward !== null && output !== null)
      output.postMessage(forward, transfers(forward.x, forward.labels));
    report(stepped);
  } catch (err) {
    fail(err);
  }
});
