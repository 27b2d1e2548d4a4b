import * as tf from '@tensorflow/tfjs';
import { loadDataset } from '@fwdgrad/datasets/node';
import { loadNative } from '@fwdgrad/native';
import { BACKEND_NAMES, type BackendRequest } from '../backend.js';
import { appendMetrics, saveCheckpoint, writeConfig } from '../checkpoint.js';
import { evaluateError, modelConfigFor } from '../evaluate.js';
import {
  checkTrainSettings,
  epochLine,
  trainSummary,
  runConfigOf,
  type EpochMetrics,
  type TrainOptions,
  type TrainSummary,
} from '../loop.js';
import { claimRunDir, type RunConfig } from '../run.js';
import { stepBatches } from '../step-batches.js';
import { createModel } from '../model.js';
import { assignParams } from '../params.js';
import { experimentSchedule } from '../presets.js';
import { createProgress } from '../progress.js';
import { startPipeline } from './pipeline.js';
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

/**
 * Trains a LocalMixer with a local rule whose blocks train at the same time on `parallelBlocks`
 * worker threads (see `PipelineStage` for the semantics). Writes a run folder like `train` (config,
 * metrics per epoch, a checkpoint of the whole network after each epoch, collected from the
 * stages); resuming a pipelined run is not supported yet.
 */
export async function trainPipelined(options: PipelineTrainOptions): Promise<PipelineSummary> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const exp = options.experiment;
  const seed = options.seed ?? 0;
  const algorithm = pipelineAlgorithm(options.algorithm);
  if (options.resume) {
    throw new Error(
      '--resume is not supported with --parallel-blocks yet; start a new run (another --run-dir)',
    );
  }
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
  const lock = claimRunDir(options.runDir, false);
  const schedule = experimentSchedule(exp, stepsPerEpoch);
  const runConfig: RunConfig & { parallelBlocks: { stages: StageRange[]; threadsPerStage: number } } = {
    ...runConfigOf(options, ds, config),
    algorithm,
    parallelBlocks: { stages: plan, threadsPerStage: threads },
  };
  writeConfig(options.runDir, runConfig);

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
  const pipeline = await startPipeline({ specs, backend, threadsPerStage: threads });
  log(
    `training ${algorithm} on ${ds.name}, LocalMixer ${exp.model}, ${trainCount} examples, batch ${exp.batchSize}, ` +
      `${exp.epochs} epochs, ${plan.length} stages on worker threads (blocks ${plan
        .map((r) => (r.count === 1 ? `${r.first}` : `${r.first}–${r.first + r.count - 1}`))
        .join(' | ')}; ${threads} thread${threads === 1 ? '' : 's'} each, backend ${pipeline.backends[0]})`,
  );
  const model = createModel(config, seed);
  const wallStart = performance.now();
  let summary: PipelineSummary | null = null;
  let step = 0;
  try {
    for (let epoch = 0; epoch < exp.epochs; epoch++) {
      const progress =
        options.progressStream === null
          ? null
          : createProgress({
              total: stepsPerEpoch * exp.batchSize,
              label: `epoch ${epoch + 1}/${exp.epochs}`,
              stream: options.progressStream,
            });
      const started = performance.now();
      let lr = schedule(step);
      for (const batch of stepBatches(exp, ds, config, { seed, epoch, limit: options.limitTrain })) {
        lr = schedule(step);
        const message = {
          kind: 'forward' as const,
          step,
          epoch: epoch + 1,
          lr,
          x: toWire(batch.x),
          labels: toWire(batch.labels),
          size: batch.size,
        };
        tf.dispose([batch.x, batch.labels]);
        await pipeline.send(message);
        step++;
        progress?.tick(batch.size);
      }
      const reports = await pipeline.drain();
      const trainSeconds = (performance.now() - started) / 1000;
      progress?.done();
      const mean = (f: (r: (typeof reports)[number]) => number) =>
        reports.reduce((a, r) => a + f(r), 0) / reports.length;
      const last = plan.length - 1;
      const { params, optimizer } = await pipeline.collect();
      assignParams(model.entries, params);
      const testError = evaluateError(model, ds, ds.test, options.limitTest, options.evalBatchSize);
      const trainError = evaluateError(model, ds, ds.train, options.limitTrain, options.evalBatchSize);
      const row: EpochMetrics & { stage_seconds: number[] } = {
        epoch: epoch + 1,
        step,
        loss: mean((r) => r[last].loss ?? Number.NaN),
        local_loss: mean((r) => r.reduce((a, s) => a + (s.localLoss ?? 0), 0)),
        readout_loss: null,
        alignment_deg: null,
        train_batch_accuracy: mean((r) => r[last].accuracy ?? Number.NaN),
        test_error: testError,
        train_error: trainError,
        lr,
        seconds: trainSeconds,
        examples_per_second: (stepsPerEpoch * exp.batchSize) / trainSeconds,
        live_tensors: tf.memory().numTensors,
        // compute seconds of each stage over the epoch (the slowest sets the pace)
        stage_seconds: plan.map((_, s) => reports.reduce((a, r) => a + r[s].seconds, 0)),
      };
      appendMetrics(options.runDir, row as unknown as Record<string, unknown>);
      saveCheckpoint(options.runDir, {
        epoch: epoch + 1,
        step,
        params,
        optimizer,
        extra: { seed, run: runConfig },
      });
      tf.dispose([...Object.values(params), ...Object.values(optimizer)]);
      log(
        `${epochLine(row, exp.epochs)} (stage compute ${row.stage_seconds.map((t) => `${t.toFixed(1)} s`).join(', ')})`,
      );
      summary = {
        ...trainSummary(options, ds, row, (performance.now() - wallStart) / 1000, pipeline.backends[0]),
        stages: plan,
        threads_per_stage: threads,
      };
    }
  } finally {
    await pipeline.close();
    model.dispose();
    lock.release();
    // the stages set the (process-wide) kernel threads to theirs
    if (mainThreads !== undefined) loadNative({ threads: mainThreads });
  }
  if (summary === null) throw new Error('nothing to train: --epochs is 0');
  return summary;
}
