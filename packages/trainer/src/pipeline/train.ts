import * as tf from '@tensorflow/tfjs';
import { loadDataset } from '@fwdgrad/datasets/node';
import { loadNative } from '@fwdgrad/native';
import { BACKEND_NAMES, type BackendRequest } from '../backend.js';
import { appendMetrics, saveCheckpoint, writeConfig } from '../checkpoint.js';
import { evaluateError, modelConfigFor } from '../evaluate.js';
import { DivergenceError } from '../guard.js';
import {
  checkTrainSettings,
  epochLine,
  epochRow,
  trainSummary,
  runConfigOf,
  STEPS_FILE,
  type StepMetrics,
  TrainingInterruptedError,
  type EpochMetrics,
  type TrainOptions,
  type TrainSummary,
} from '../loop.js';
import { createModel } from '../model.js';
import { writeLearningCurves } from '../plots.js';
import { assignParams, namedParams, type NamedTensors } from '../params.js';
import { experimentOptimizer, experimentSchedule } from '../presets.js';
import { createProgress } from '../progress.js';
import {
  type CheckpointExtra,
  claimRunDir,
  type PartialEpoch,
  type ResumePoint,
  type RunConfig,
  resumeRun,
  stagesText,
} from '../run.js';
import { stepBatches } from '../step-batches.js';
import { type Pipeline, PipelineStageError, startPipeline } from './pipeline.js';
import { pipelineAlgorithm, planStages, type StageRange } from './plan.js';
import { stageSpecs, toWire } from './protocol.js';

/** {@link trainPipelined}'s options: a training run's, plus the pipeline's. */
export interface PipelineTrainOptions extends TrainOptions {
  /** Stages (worker threads) the blocks are split into (`--parallel-blocks N`). */
  parallelBlocks: number;
  /** Threads of each stage's kernels (default 1). */
  threadsPerStage?: number;
}

/** What a pipelined run reports: a training summary plus its stages. */
export interface PipelineSummary extends TrainSummary {
  stages: StageRange[];
  threads_per_stage: number;
}

/** An epoch's sums so far (saved in the checkpoint of an interrupted epoch), with each stage's compute seconds. */
interface PipelineEpochTotals extends PartialEpoch {
  localLoss: number;
  stageSeconds: number[];
}

/**
 * Trains a LocalMixer with a local rule whose blocks train at the same time on `parallelBlocks`
 * worker threads (see `PipelineStage` for the semantics). Writes a run folder like `train` (config,
 * metrics per epoch, a checkpoint of the whole network after each epoch, collected from the
 * stages) and, like `train`, stops on `signal` and continues with `resume`: the coordinator stops
 * feeding micro-batches, lets the ones in flight pass every stage (the pipe drains), collects the
 * stages' parameters and optimiser state into a checkpoint and rejects with a
 * `TrainingInterruptedError`. Every stage has then learned from exactly the same steps, so a
 * resumed run (same seed and stages) continues with the same numbers as an uninterrupted one.
 */
export async function trainPipelined(options: PipelineTrainOptions): Promise<PipelineSummary> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const exp = options.experiment;
  const seed = options.seed ?? 0;
  const algorithm = pipelineAlgorithm(options.algorithm);
  if (exp.objective !== 'supervised') {
    throw new Error(
      '--parallel-blocks supports the supervised objective only; drop --parallel-blocks for contrastive runs',
    );
  }
  if (options.algorithmOptions?.losses?.block === false) {
    throw new Error(
      '--parallel-blocks needs a local loss after every block; keep "block" in --losses (or drop --parallel-blocks)',
    );
  }
  const ds = options.dataset ?? loadDataset(exp.dataset, { dataDir: options.dataDir });
  const config = modelConfigFor(exp, ds, options.modelOverrides);
  const plan = planStages(config, options.parallelBlocks);
  const threads = options.threadsPerStage ?? 1;

  const trainCount = options.limitTrain ?? ds.train.count;
  const stepsPerEpoch = checkTrainSettings(options, ds);
  const schedule = experimentSchedule(exp, stepsPerEpoch);
  let runConfig: RunConfig = {
    ...runConfigOf(options, ds, config),
    algorithm,
    parallelBlocks: { stages: plan, threadsPerStage: threads },
  };
  const specs = stageSpecs(plan, {
    config,
    algorithm,
    algorithmOptions: options.algorithmOptions ?? {},
    optimizer: {
      kind: exp.optimizer,
      momentum: exp.momentum,
      weightDecay: exp.weightDecay,
      headLr: exp.headLr,
      lastLayerLr: exp.lastLayerLr,
    },
    seed,
  });
  const backend = (BACKEND_NAMES as readonly string[]).includes(options.backend ?? '')
    ? (options.backend as BackendRequest)
    : 'auto';
  const mainThreads = loadNative().available ? loadNative().threads : undefined;

  const lock = claimRunDir(options.runDir, options.resume === true);
  // the whole network on the calling thread: what a checkpoint restores, what the epochs' errors evaluate
  const model = createModel(config, seed);
  let pipeline: Pipeline | null = null;
  let summary: PipelineSummary | null = null;
  let at: ResumePoint = { epoch: 0, step: 0, checkpoint: null };
  try {
    // the whole network's optimiser state on resume, handed to the stages with the parameters
    const holder = options.resume ? experimentOptimizer(exp) : null;
    try {
      if (holder !== null) {
        const resumed = resumeRun(options.runDir, runConfig, model, holder, log, {
          changeLr: options.changeLr,
        });
        at = resumed.at;
        runConfig = resumed.runConfig;
      }
      pipeline = await startPipeline({ specs, backend, threadsPerStage: threads });
      // each stage takes its own parameters and momentum traces
      if (holder !== null) await pipeline.restore(namedParams(model.entries), holder.state());
    } finally {
      holder?.dispose();
    }
    writeConfig(options.runDir, runConfig);
    const running = pipeline;
    log(
      `training ${algorithm} on ${ds.name}, LocalMixer ${exp.model}, ${trainCount} examples, batch ${exp.batchSize}, ` +
        `${exp.epochs} epochs; blocks trained ${stagesText(runConfig)} on worker threads, ` +
        `${threads} thread${threads === 1 ? '' : 's'} each, backend ${running.backends[0]}`,
    );
    const wallStart = performance.now();
    const last = plan.length - 1;
    /** Writes a checkpoint of the whole network from the stages' collected state, and frees it. */
    const checkpoint = (
      state: { params: NamedTensors; optimizer: NamedTensors },
      partial?: PipelineEpochTotals,
    ) => {
      try {
        const extra: CheckpointExtra & { partial?: PipelineEpochTotals } = {
          seed,
          run: runConfig,
          ...(partial ? { partial } : {}),
        };
        return saveCheckpoint(options.runDir, { epoch: at.epoch, step: at.step, ...state, extra });
      } finally {
        tf.dispose([...Object.values(state.params), ...Object.values(state.optimizer)]);
      }
    };

    for (let epoch = at.epoch; epoch < exp.epochs; epoch++) {
      const done = at.partial as PipelineEpochTotals | undefined;
      at.partial = undefined;
      const totals: PipelineEpochTotals = {
        steps: 0,
        loss: 0,
        localLoss: 0,
        accuracy: 0,
        seconds: 0,
        stageSeconds: plan.map(() => 0),
        ...done,
      };
      const progress =
        options.progressStream === null
          ? null
          : createProgress({
              total: (stepsPerEpoch - totals.steps) * exp.batchSize,
              label: `epoch ${epoch + 1}/${exp.epochs}`,
              stream: options.progressStream,
            });
      const started = performance.now();
      let lr = schedule(at.step);
      let index = 0;
      let sent = 0;
      let interrupted = false;
      for (const batch of stepBatches(exp, ds, config, { seed, epoch, limit: options.limitTrain })) {
        if (index++ < (done?.steps ?? 0)) {
          // taken before the interruption: the data order is replayed, not the step
          tf.dispose([batch.x, batch.labels]);
          continue;
        }
        lr = schedule(at.step);
        const message = {
          kind: 'forward' as const,
          step: at.step,
          epoch: epoch + 1,
          lr,
          x: toWire(batch.x),
          labels: toWire(batch.labels),
          size: batch.size,
        };
        tf.dispose([batch.x, batch.labels]);
        await running.send(message);
        at.step++;
        sent++;
        progress?.tick(batch.size);
        if (options.signal !== undefined) {
          // let signal handlers run, then stop feeding if asked to
          await new Promise((resolve) => setImmediate(resolve));
          if (options.signal.aborted && index < stepsPerEpoch) {
            interrupted = true;
            break;
          }
        }
      }
      // the micro-batches in flight pass every stage: each stage has learned from steps < at.step
      const reports = await running.drain();
      progress?.done();
      if (reports.length !== sent)
        throw new Error(`pipeline: ${reports.length} reports for ${sent} micro-batches`);
      // sums in step order, continuing an interrupted epoch's: the same numbers either way
      const logEvery = options.logEvery ?? 0;
      for (const r of reports) {
        const loss = r[last].loss ?? Number.NaN;
        const localLoss = r.reduce((a, s) => a + (s.localLoss ?? 0), 0);
        totals.loss += loss;
        totals.localLoss += localLoss;
        totals.accuracy += r[last].accuracy ?? Number.NaN;
        for (let s = 0; s < plan.length; s++) totals.stageSeconds[s] += r[s].seconds;
        // steps.jsonl rows (written when the micro-batches have drained)
        const step = r[0].step + 1;
        if (logEvery > 0 && step % logEvery === 0) {
          const row: StepMetrics = {
            step,
            epoch: epoch + 1,
            loss,
            local_loss: localLoss,
            train_batch_accuracy: r[last].accuracy,
            lr: schedule(step - 1),
          };
          appendMetrics(options.runDir, row as unknown as Record<string, unknown>, STEPS_FILE);
        }
      }
      totals.steps += sent;
      totals.seconds += (performance.now() - started) / 1000;
      // every stage's parameters and optimiser state after step at.step − 1 (the pipe is drained)
      const state = await running.collect();
      if (interrupted) {
        const file = checkpoint(state, totals);
        throw new TrainingInterruptedError(options.signal?.reason, file, at.step, options.runDir);
      }
      at.epoch = epoch + 1;
      let row: EpochMetrics & { stage_seconds: number[] };
      try {
        assignParams(model.entries, state.params);
        const testError = evaluateError(model, ds, ds.test, options.limitTest, options.evalBatchSize);
        const trainError = evaluateError(model, ds, ds.train, options.limitTrain, options.evalBatchSize);
        row = {
          ...epochRow(epoch, at.step, totals, stepsPerEpoch, exp.batchSize, {
            test_error: testError,
            train_error: trainError,
            lr,
            readout_loss: null,
            alignment_deg: null,
          }),
          // compute seconds of each stage over the epoch (the slowest sets the pace)
          stage_seconds: totals.stageSeconds,
        };
        // as the sequential trainer: the epoch's row, then its checkpoint (a run killed in between
        // redoes the epoch on resume and drops the row)
        appendMetrics(options.runDir, row as unknown as Record<string, unknown>);
      } catch (err) {
        tf.dispose([...Object.values(state.params), ...Object.values(state.optimizer)]);
        throw err;
      }
      at.checkpoint = checkpoint(state);
      if (options.plots !== false) writeLearningCurves(options.runDir, [options.runDir]);
      log(
        `${epochLine(row, exp.epochs)} (stage compute ${row.stage_seconds.map((t) => `${t.toFixed(1)} s`).join(', ')})`,
      );
      summary = {
        ...trainSummary(options, ds, row, (performance.now() - wallStart) / 1000, running.backends[0]),
        stages: plan,
        threads_per_stage: threads,
      };
      if (options.signal?.aborted && epoch + 1 < exp.epochs) {
        throw new TrainingInterruptedError(options.signal.reason, at.checkpoint, at.step, options.runDir);
      }
    }
  } catch (err) {
    // a stage's non-finite loss: the trainer's divergence error, naming the last checkpoint kept
    const d = err instanceof PipelineStageError ? err.divergence : null;
    if (err instanceof PipelineStageError && d !== null) {
      throw new DivergenceError(d.value, {
        step: d.step,
        epoch: d.epoch,
        what: `${d.what} of stage ${err.stage + 1}/${plan.length}`,
        checkpoint: at.checkpoint,
        lr: exp.lr,
      });
    }
    throw err;
  } finally {
    await pipeline?.close();
    model.dispose();
    lock.release();
    // the stages set the (process-wide) kernel threads to theirs
    if (mainThreads !== undefined) loadNative({ threads: mainThreads });
  }
  if (summary === null) {
    throw new Error(`nothing to train: the run in ${options.runDir} already completed ${exp.epochs} epochs`);
  }
  return summary;
}
