import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import type * as tf from '@tensorflow/tfjs';
import type { BackendRequest } from '../backend.js';
import type { NamedTensors } from '../params.js';
import type { StageRange } from './plan.js';
import {
  type ControlMessage,
  type ForwardMessage,
  fromWire,
  type StageMessage,
  type StageSpec,
  type StepReport,
  toWire,
  transfers,
  type WireTensor,
} from './protocol.js';

/** A stage's failure as the coordinator sees it (`divergence` set when its loss was not finite). */
export class PipelineStageError extends Error {
  readonly stage: number;
  readonly divergence: { value: number; step: number; epoch: number; what: string } | null;
  constructor(m: StageMessage & { kind: 'failed' }, stages: number) {
    super(`pipeline stage ${m.stage + 1}/${stages}: ${m.message}`);
    this.name = 'PipelineStageError';
    this.stage = m.stage;
    this.divergence = m.divergence ?? null;
  }
}

/** A running pipeline: stages on worker threads, fed micro-batches by the caller. */
export interface Pipeline {
  readonly stages: readonly StageRange[];
  /** The backend each stage selected. */
  readonly backends: readonly string[];
  /**
   * Sends a micro-batch into stage 0 (its arrays are transferred: the caller loses them). Resolves once
   * fewer than `inFlight` micro-batches are in the pipe, so a loop over `send` never floods it.
   */
  send(message: ForwardMessage): Promise<void>;
  /**
   * Waits until every micro-batch sent has passed every stage; returns their reports, one array per
   * micro-batch in the order sent, one report per stage in stage order, and forgets them.
   */
  drain(): Promise<StepReport[][]>;
  /** Every stage's parameters and optimiser state (after draining), as tensors of the caller's tfjs. */
  collect(): Promise<{ params: NamedTensors; optimizer: NamedTensors }>;
  /**
   * Hands every stage the whole network's parameters and optimiser state (a checkpoint's, by the
   * whole network's names; copied, the caller keeps them) to continue from; each stage takes its
   * own. Call before sending micro-batches (or after {@link drain}).
   */
  restore(params: NamedTensors, optimizer: NamedTensors): Promise<void>;
  /**
   * Sets the stages' kernel threads (between micro-batches). The native kernels' count is
   * process-wide: with stages on threads of one process, the last call wins for all of them.
   */
  setThreads(threads: number): Promise<void>;
  /** Stops the stages. */
  close(): Promise<void>;
}

export interface PipelineOptions {
  /** One spec per stage (see {@link StageSpec}); the stages' ranges must tile the network. */
  specs: StageSpec[];
  /** The backend the stages select (default `auto`; `native` for the C kernels). */
  backend?: BackendRequest;
  /** Threads of each stage's kernels (`FWDGRAD_THREADS` of its worker; default 1). */
  threadsPerStage?: number;
  /** Micro-batches in the pipe at most (default: 2 per stage). */
  inFlight?: number;
}

/** The built worker entry (dist/pipeline-worker.js), also when this module runs from its sources. */
function workerEntry(): URL {
  const here = new URL('./pipeline-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  const built = new URL('../../dist/pipeline-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new Error(
    `the pipeline stage entry is missing (${fileURLToPath(here)}); build @fwdgrad/trainer first ` +
      '(pnpm --filter @fwdgrad/trainer build)',
  );
}

/**
 * Starts one worker thread per stage and connects them in a chain: the caller → stage 0 → stage 1
 * → … through message channels that carry only {@link ForwardMessage}s, forward. Resolves when every
 * stage has built its blocks.
 */
export async function startPipeline(options: PipelineOptions): Promise<Pipeline> {
  const { specs } = options;
  const n = specs.length;
  const threads = options.threadsPerStage ?? 1;
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(`threads per stage must be a positive integer, got ${threads}`);
  }
  const inFlight = options.inFlight ?? 2 * n;
  const channels = specs.map(() => new MessageChannel());
  const feed = channels[0].port1;
  const entry = workerEntry();
  const workers = specs.map((_, s) => {
    const input = channels[s].port2;
    const output: MessagePort | null = s < n - 1 ? channels[s + 1].port1 : null;
    return new Worker(entry, {
      workerData: { backend: options.backend ?? 'auto', input, output },
      transferList: output ? [input, output] : [input],
      env: { ...process.env, FWDGRAD_THREADS: String(threads) },
    });
  });

  let failure: Error | null = null;
  let closing = false;
  const ready = new Array<string | null>(n).fill(null);
  let reports = new Map<number, StepReport[]>();
  let order: number[] = [];
  let reported = 0;
  let passed = 0; // micro-batches the last stage has reported
  let sent = 0;
  let collected: (StageMessage & { kind: 'collected' })[] = [];
  let threadsSet = 0;
  let restored = 0;
  let waiters: (() => void)[] = [];
  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  const until = (done: () => boolean) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (failure !== null) reject(failure);
        else if (done()) resolve();
        else waiters.push(check);
      };
      check();
    });

  workers.forEach((w, s) => {
    w.on('message', (m: StageMessage) => {
      if (m.kind === 'ready') ready[s] = m.backend;
      else if (m.kind === 'stepped') {
        m.received = performance.now();
        const list = reports.get(m.step) ?? [];
        list[m.stage] = m;
        reports.set(m.step, list);
        reported++;
        if (m.stage === n - 1) passed++;
      } else if (m.kind === 'collected') collected.push(m);
      else if (m.kind === 'threads-set') threadsSet++;
      else if (m.kind === 'restored') restored++;
      else if (m.kind === 'failed') failure ??= new PipelineStageError(m, n);
      wake();
    });
    w.on('error', (err) => {
      failure ??= new Error(`pipeline stage ${s + 1}/${n} failed: ${err.message}`);
      wake();
    });
    w.on('exit', (code) => {
      if (!closing) failure ??= new Error(`pipeline stage ${s + 1}/${n} exited (code ${code})`);
      wake();
    });
  });
  const post = (s: number, m: ControlMessage) => workers[s].postMessage(m);

  const close = async () => {
    if (closing) return;
    closing = true;
    workers.forEach((_, s) => {
      post(s, { kind: 'close' });
    });
    feed.close();
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => {
              void w.terminate().then(() => resolve());
            }, 10_000);
            w.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
  };

  specs.forEach((spec, s) => {
    post(s, { kind: 'init', spec });
  });
  try {
    await until(() => ready.every((r) => r !== null));
  } catch (err) {
    await close();
    throw err;
  }

  const pipeline: Pipeline = {
    stages: specs.map((s) => s.range),
    backends: ready as string[],
    async send(message) {
      if (failure !== null) throw failure;
      feed.postMessage(message, transfers(message.x, message.labels));
      order.push(message.step);
      sent++;
      await until(() => sent - passed < inFlight);
    },
    async drain() {
      await until(() => reported === sent * n);
      const out = order.map((step) => reports.get(step) as StepReport[]);
      reports = new Map();
      order = [];
      reported = 0;
      passed = 0;
      sent = 0;
      return out;
    },
    async collect() {
      await pipeline.drain();
      collected = [];
      workers.forEach((_, s) => {
        post(s, { kind: 'collect' });
      });
      await until(() => collected.length === n);
      const params: NamedTensors = {};
      const optimizer: NamedTensors = {};
      const own = (into: NamedTensors, from: Record<string, WireTensor>) => {
        for (const [name, w] of Object.entries(from)) into[name] = fromWire(w) as tf.Tensor;
      };
      for (const m of collected) {
        own(params, m.params);
        own(optimizer, m.optimizer);
      }
      collected = [];
      return { params, optimizer };
    },
    async restore(params, optimizerState) {
      await pipeline.drain();
      const wire = (from: NamedTensors) =>
        Object.fromEntries(Object.entries(from).map(([name, t]) => [name, toWire(t)]));
      const message: ControlMessage = {
        kind: 'restore',
        params: wire(params),
        optimizer: wire(optimizerState),
      };
      restored = 0;
      workers.forEach((_, s) => {
        post(s, message);
      });
      await until(() => restored === n);
    },
    async setThreads(count) {
      await pipeline.drain();
      threadsSet = 0;
      workers.forEach((_, s) => {
        post(s, { kind: 'threads', threads: count });
      });
      await until(() => threadsSet === n);
    },
    close,
  };
  return pipeline;
}
