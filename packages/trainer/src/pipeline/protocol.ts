import * as tf from '@tensorflow/tfjs';
import type { LocalMixerConfig } from '@fwdgrad/localmixer';
import type { AlgorithmOptions } from '../algorithms/types.js';
import type { OptimizerKind, OptimizerOptions } from '../optim.js';
import type { PipelineAlgorithmId, StageRange } from './plan.js';

/**
 * The messages between a pipeline's coordinator and its stages, and between neighbouring stages.
 * Everything is plain data (numbers, strings, float32 arrays) so that a stage can live on a worker
 * thread (arrays transferred, not copied), in another process or on another machine (arrays
 * serialised): the stages share no JavaScript object, and nothing flows backward.
 */

/** A tensor on the wire: its shape and float32 values. */
export interface WireTensor {
  shape: number[];
  values: Float32Array;
}

/** A copy of a tensor's values (the backend keeps its own buffer), ready to be transferred. */
export function toWire(t: tf.Tensor): WireTensor {
  return { shape: [...t.shape], values: new Float32Array(t.dataSync()) };
}

/** A tensor over the received values (which it then owns: do not transfer them again). */
export function fromWire(w: WireTensor): tf.Tensor {
  return tf.tensor(w.values, w.shape, 'float32');
}

/** The buffers to transfer with a message holding these tensors. */
export function transfers(...ws: WireTensor[]): ArrayBuffer[] {
  return ws.map((w) => w.values.buffer as ArrayBuffer);
}

/** What a stage needs to build its blocks, rule and optimiser. */
export interface StageSpec {
  /** This stage's index and the number of stages. */
  stage: number;
  stages: number;
  /** The blocks this stage trains. */
  range: StageRange;
  /** The whole network (every stage initialises it from the seed and keeps its blocks). */
  config: LocalMixerConfig;
  algorithm: PipelineAlgorithmId;
  algorithmOptions: Partial<AlgorithmOptions>;
  optimizer: { kind: OptimizerKind } & OptimizerOptions;
  seed: number;
}

/** The specs of a pipeline's stages: one per range of `plan`, each with the settings all stages share. */
export function stageSpecs(
  plan: readonly StageRange[],
  shared: Omit<StageSpec, 'stage' | 'stages' | 'range'>,
): StageSpec[] {
  return plan.map((range, stage) => ({ ...shared, stage, stages: plan.length, range }));
}

/**
 * One micro-batch flowing forward: into stage 0 the patchified inputs, into stage s > 0 the output
 * of stage s − 1's last block, computed with that stage's weights before it learned from this
 * micro-batch. Labels travel along (every stage's local losses need them); so do the step number
 * (the stage's noise stream) and the learning rate of the schedule at that step.
 */
export interface ForwardMessage {
  kind: 'forward';
  step: number;
  /** The epoch (1-based, as reported), for messages. */
  epoch: number;
  lr: number;
  x: WireTensor;
  labels: WireTensor;
  size: number;
}

/** From the coordinator to a stage. */
export type ControlMessage =
  | { kind: 'init'; spec: StageSpec }
  /** Send the stage's parameters and optimiser state (after the micro-batches sent so far). */
  | { kind: 'collect' }
  /**
   * Continue from a whole network's parameters and optimiser state (a checkpoint's, by the whole
   * network's names; each stage takes its own). Sent before any micro-batch.
   */
  | { kind: 'restore'; params: Record<string, WireTensor>; optimizer: Record<string, WireTensor> }
  /** Use this many kernel threads from now on (native: process-wide, see @fwdgrad/native). */
  | { kind: 'threads'; threads: number }
  | { kind: 'close' };

/** What a stage learned from one micro-batch, for the coordinator's metrics. */
export interface StepReport {
  kind: 'stepped';
  stage: number;
  step: number;
  /** Σ of this stage's block objectives. */
  localLoss: number | null;
  /** Last stage only: the final classifier's loss and training accuracy on the micro-batch. */
  loss: number | null;
  accuracy: number | null;
  /** Seconds the stage computed (excluding waiting for its input). */
  seconds: number;
  /**
   * CPU seconds of the stage's thread over the step, where the system tells (Linux), else null:
   * unlike `seconds` it does not grow when other work takes turns on the core.
   */
  cpuSeconds?: number | null;
  /** Set by the coordinator: when the report arrived (its `performance.now()`, ms). */
  received?: number;
}

/** From a stage to the coordinator. */
export type StageMessage =
  | { kind: 'ready'; stage: number; backend: string }
  | { kind: 'threads-set'; stage: number }
  | { kind: 'restored'; stage: number }
  | StepReport
  /** Parameters and optimiser state by the whole network's names. */
  | {
      kind: 'collected';
      stage: number;
      params: Record<string, WireTensor>;
      optimizer: Record<string, WireTensor>;
    }
  | {
      kind: 'failed';
      stage: number;
      message: string;
      /** Set when the stage's loss was not finite (the trainer's `DivergenceError`). */
      divergence?: { value: number; step: number; epoch: number; what: string };
    };
