import * as tf from '@tensorflow/tfjs';
import { linearSites, sliceConfig, sliceParams } from '@fwdgrad/localmixer';
import { createRandom, hashSeed } from '@fwdgrad/random';
import { createAlgorithm } from '../algorithms/registry.js';
import type { Algorithm } from '../algorithms/types.js';
import { checkFinite } from '../guard.js';
import { createModel, type Model, wrapModel } from '../model.js';
import { createOptimizer, type Optimizer } from '../optim.js';
import { assignParams, type NamedTensors, type ParamEntry } from '../params.js';
import {
  type ForwardMessage,
  fromWire,
  type StageSpec,
  type StepReport,
  toWire,
  type WireTensor,
} from './protocol.js';

/**
 * The seed of a stage's random source for `purpose` (1: the rule's fixed state, 2: a step's noise;
 * the sequential trainer's numbering). Stage 0 draws what the sequential trainer draws, so that one
 * stage is the sequential run; later stages have streams of their own.
 */
export function stageSeed(seed: number, stage: number, purpose: 1 | 2, step?: number): number {
  const parts = step === undefined ? [seed, purpose] : [seed, purpose, step];
  return stage === 0 ? hashSeed(...parts) : hashSeed(...parts, 0x5747, stage);
}

/**
 * One stage of a pipeline: some consecutive blocks of the network, their local heads and, on the
 * last stage, the final classifier, trained by the rule's own step function on the micro-batches
 * that reach it (the trainer's `Algorithm.step` on a model of the stage's blocks, see localmixer's
 * `sliceConfig`). It knows nothing of threads: whoever carries the messages calls {@link step}.
 *
 * Semantics (pipelined local learning): the stage learns from micro-batch t with its weights after
 * t − 1 updates, on input that stage s − 1 computed with its weights after t − 1 updates — which is
 * what the sequential rule does when no gradient crosses the stage boundary (LG-BP, LG-FA, LG-FG-W,
 * LG-FG-A: the same computation, only the noise streams of stages > 0 differ; L-BP and L-FA:
 * greedy at the stage boundaries). Stage s works on micro-batch t while stage s − 1 works on
 * t + 1, so the activations it receives were computed one micro-batch before its predecessor's
 * current weights.
 */
export class PipelineStage {
  readonly spec: StageSpec;
  readonly last: boolean;
  private readonly model: Model;
  private readonly algorithm: Algorithm;
  private readonly optimizer: Optimizer;
  private readonly entries: ParamEntry[];
  /** Local parameter name → the whole network's name. */
  private readonly globalNames: Map<string, string>;

  constructor(spec: StageSpec) {
    this.spec = spec;
    const { config, range, stage, stages, seed } = spec;
    this.last = stage === stages - 1;
    const whole = createModel(config, seed);
    const params = sliceParams(config, whole.params, range.first, range.count);
    const kept = new Set<tf.Tensor>([
      ...params.backbone.flatMap((p) => [p.w, p.b]),
      ...params.heads.flatMap((p) => [p.w, p.b]),
      params.classifier.w,
      params.classifier.b,
      ...(params.projection ? [params.projection.w, params.projection.b] : []),
    ]);
    for (const e of whole.entries) if (!kept.has(e.variable)) e.variable.dispose();
    this.model = wrapModel(sliceConfig(config, range.first, range.count), params);
    const layerOffset = linearSites(config).filter((s) => s.block < range.first).length;
    this.globalNames = new Map(
      this.model.entries.map((e) => {
        const [group, index, kind] = e.name.split('.');
        if (group === 'backbone') return [e.name, `backbone.${Number(index) + layerOffset}.${kind}`];
        if (group === 'head') return [e.name, `head.${Number(index) + range.first}.${kind}`];
        return [e.name, e.name];
      }),
    );
    this.algorithm = createAlgorithm(
      spec.algorithm,
      this.model,
      spec.algorithmOptions,
      createRandom(stageSeed(seed, stage, 1)),
    );
    const { kind, ...optimizerOptions } = spec.optimizer;
    this.optimizer = createOptimizer(kind, optimizerOptions);
    // the final layer belongs to the last stage; earlier stages' classifier reads their own last block
    const trainable = new Set(this.algorithm.trainable(this.model));
    this.entries = this.model.entries.filter(
      (e) => trainable.has(e.name) && (this.last || (e.group !== 'classifier' && e.group !== 'projection')),
    );
  }

  /**
   * Learns from one micro-batch; returns the report and, except on the last stage, the message for
   * the next stage (this stage's last block output on the micro-batch, before this update).
   * Throws the trainer's `DivergenceError` on a non-finite loss.
   */
  step(message: ForwardMessage): { report: StepReport; forward: ForwardMessage | null } {
    const started = performance.now();
    const x = fromWire(message.x);
    const labels = tf.tensor(message.labels.values.slice(), message.labels.shape, 'float32');
    const result = this.algorithm.step(
      this.model,
      { x, labels, size: message.size, keepOutput: !this.last },
      createRandom(stageSeed(this.spec.seed, this.spec.stage, 2, message.step)),
    );
    let forward: ForwardMessage | null = null;
    try {
      const where = { step: message.step, epoch: message.epoch, checkpoint: null };
      if (result.localLoss !== undefined) checkFinite(result.localLoss, { ...where, what: 'local loss' });
      if (this.last) checkFinite(result.loss, where);
      if (result.output !== undefined) {
        forward = { ...message, x: toWire(result.output) };
      }
      this.optimizer.apply(this.entries, result.grads, message.lr);
    } finally {
      tf.dispose([...result.grads.values(), x, labels, ...(result.output ? [result.output] : [])]);
    }
    return {
      report: {
        kind: 'stepped',
        stage: this.spec.stage,
        step: message.step,
        localLoss: result.localLoss ?? null,
        loss: this.last ? result.loss : null,
        accuracy: this.last ? (result.accuracy ?? null) : null,
        seconds: (performance.now() - started) / 1000,
      },
      forward,
    };
  }

  /** The stage's parameters and optimiser state, by the whole network's names (copies). */
  collect(): { params: Record<string, WireTensor>; optimizer: Record<string, WireTensor> } {
    const params: Record<string, WireTensor> = {};
    for (const e of this.model.entries) {
      if (!this.last && (e.group === 'classifier' || e.group === 'projection')) continue;
      params[this.globalNames.get(e.name) as string] = toWire(e.variable);
    }
    const optimizer: Record<string, WireTensor> = {};
    for (const [key, t] of Object.entries(this.optimizer.state())) {
      const cut = key.lastIndexOf('/') + 1;
      const name = this.globalNames.get(key.slice(cut)) ?? key.slice(cut);
      optimizer[key.slice(0, cut) + name] = toWire(t);
    }
    return { params, optimizer };
  }

  /**
   * Continues from a whole network's state (a checkpoint's, by the whole network's names): takes
   * the values of this stage's parameters — all but, on an earlier stage, the classifier it never
   * trains — and the momentum traces of the parameters it trains; ignores the other stages'.
   */
  restore(params: Record<string, WireTensor>, optimizer: Record<string, WireTensor>): void {
    const own = this.model.entries.filter(
      (e) => this.last || (e.group !== 'classifier' && e.group !== 'projection'),
    );
    const values: NamedTensors = {};
    const traces: NamedTensors = {};
    try {
      for (const e of own) {
        const w = params[this.globalNames.get(e.name) as string];
        if (w !== undefined) values[e.name] = fromWire(w);
      }
      assignParams(own, values);
      // optimiser state keys are '<kind>/<parameter name>' (see collect)
      const trained = new Map(this.entries.map((e) => [this.globalNames.get(e.name) as string, e.name]));
      for (const [key, w] of Object.entries(optimizer)) {
        const cut = key.lastIndexOf('/') + 1;
        const local = trained.get(key.slice(cut));
        if (local !== undefined) traces[key.slice(0, cut) + local] = fromWire(w);
      }
      this.optimizer.loadState(traces);
    } finally {
      tf.dispose([...Object.values(values), ...Object.values(traces)]);
    }
  }

  dispose(): void {
    this.algorithm.dispose();
    this.optimizer.dispose();
    this.model.dispose();
  }
}
