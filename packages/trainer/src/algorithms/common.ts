import * as tf from '@tensorflow/tfjs';
import { softmaxCrossEntropy, stopGradient } from '@fwdgrad/jvp-core';
import { createLocalLoss, type LocalLoss, ntXent } from '@fwdgrad/local-losses';
import { configSizes, finalFeatures, headFeatures } from '@fwdgrad/localmixer';
import type { Model } from '../model.js';
import type { AlgorithmOptions, StepBatch, StepResult } from './types.js';

type Group = 'backbone' | 'head' | 'classifier' | 'projection';

/** The local loss every block carries under `options` (REFERENCE 1.1, paper Figure 6 switches). */
export function localLossOf(model: Model, options: AlgorithmOptions): LocalLoss {
  return createLocalLoss({
    objective: model.config.objective,
    impl: options.lossImpl,
    patchwise: options.losses.patch,
    groupwise: options.losses.group,
  });
}

/** Replicated local losses of block k ([B, P′, G′], not yet divided by B). */
export function blockReplicas(
  model: Model,
  loss: LocalLoss,
  k: number,
  blockOut: tf.Tensor,
  batch: StepBatch,
) {
  const head = model.params.heads[k];
  return tf.tidy(() => loss.replicas(headFeatures(model.config, blockOut), head.w, head.b, batch.labels));
}

/**
 * {@link blockReplicas} with the exact gradient of the block's `loss.reduce` for its head (REFERENCE 1.1),
 * from the same head evaluation; the caller owns the three tensors.
 */
export function blockReplicasWithHeadGradient(
  model: Model,
  loss: LocalLoss,
  k: number,
  blockOut: tf.Tensor,
  batch: StepBatch,
): { replicas: tf.Tensor; dw: tf.Tensor; db: tf.Tensor } {
  const head = model.params.heads[k];
  return tf.tidy(() =>
    loss.replicasWithHeadGradient(headFeatures(model.config, blockOut), head.w, head.b, batch.labels),
  );
}

/** A linear map (x·w + b by default; feedback alignment passes its own). */
export type LinearFn = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.Tensor;
const plainLinear: LinearFn = (x, w, b) => tf.add(tf.matMul(x, w), b);

/** True when the model is trained with the contrastive objective (REFERENCE 1.7, 4). */
export function isContrastive(model: Model): boolean {
  return model.config.objective === 'contrastive';
}

/**
 * The final objective per row, on the last block output (detached or not), REFERENCE 2:
 * supervised — cross-entropy of the final classifier on finalFeatures, [B], with its logits;
 * contrastive — NT-Xent of the final projection of mean_P(x) over both views, [2B] (the
 * classifier is then trained by the linear readout, not here).
 */
export function finalPerRow(
  model: Model,
  last: tf.Tensor,
  detach: boolean,
  batch: StepBatch,
  linear: LinearFn = plainLinear,
): { perRow: tf.Tensor; logits: tf.Tensor | null } {
  const h = detach ? stopGradient(last) : last;
  if (!isContrastive(model)) {
    const logits = linear(
      finalFeatures(model.config, h),
      model.params.classifier.w,
      model.params.classifier.b,
    );
    return { perRow: softmaxCrossEntropy(batch.labels, logits), logits };
  }
  const proj = model.params.projection;
  if (proj === undefined) throw new Error('a contrastive LocalMixer needs its final projection');
  const [n, P] = h.shape;
  const pooled = tf.mean(tf.reshape(h, [n, P, model.config.channels]), 1);
  return { perRow: ntXent(linear(pooled, proj.w, proj.b)), logits: null };
}

/**
 * The supervised classifier's exact gradient on the detached last block output, without a tape
 * (forward-gradient rules: the final layer learns by backprop on detached features, REFERENCE 1.1):
 * logits = f·W + b on f = finalFeatures(last); loss = mean_n CE(y_n, logits_n); with
 * r = softmax·Σy − y (∂CE_n/∂logits_n), dW = fᵀ·r / B and db = Σ_n r_n / B — what `tf.grads` of
 * {@link finalObjective} gives, at a fraction of its bookkeeping on small steps. The caller owns
 * everything returned.
 */
export function classifierGradient(
  model: Model,
  last: tf.Tensor,
  batch: StepBatch,
): { loss: tf.Scalar; logits: tf.Tensor; dw: tf.Tensor; db: tf.Tensor } {
  if (isContrastive(model))
    throw new Error('classifierGradient: the model is contrastive (no supervised head)');
  return tf.tidy(() => {
    const { w, b } = model.params.classifier;
    const f = finalFeatures(model.config, stopGradient(last));
    const logits = tf.add(tf.matMul(f, w), b);
    const logp = tf.logSoftmax(logits);
    const y = batch.labels;
    const n = f.shape[0] as number;
    const loss = tf.div(tf.neg(tf.sum(tf.mul(y, logp))), n) as tf.Scalar;
    const r = tf.div(tf.sub(tf.mul(tf.exp(logp), tf.sum(y, 1, true)), y), n);
    return { loss, logits, dw: tf.matMul(f, r, true, false), db: tf.sum(r, 0) };
  });
}

/** The batch mean of {@link finalPerRow}, and the logits (supervised). */
export function finalObjective(
  model: Model,
  last: tf.Tensor,
  detach: boolean,
  batch: StepBatch,
  linear?: LinearFn,
): { loss: tf.Scalar; logits: tf.Tensor | null } {
  const { perRow, logits } = finalPerRow(model, last, detach, batch, linear);
  return { loss: tf.mean(perRow) as tf.Scalar, logits };
}

/** Batch-mean cross-entropy of logits against one-hot labels. */
export function meanCrossEntropy(labels: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(softmaxCrossEntropy(labels, logits)) as tf.Scalar);
}

/** Fraction of rows whose arg-max logit is the label. */
export function accuracyOf(labels: tf.Tensor, logits: tf.Tensor): number {
  return tf.tidy(
    () => tf.mean(tf.cast(tf.equal(tf.argMax(logits, -1), tf.argMax(labels, -1)), 'float32')).dataSync()[0],
  );
}

/**
 * Runs `tf.variableGrads` of a scalar objective over the named parameters and returns the
 * gradients by name. `objective` may record side values (kept tensors) for logging.
 */
export function gradientsByName(
  model: Model,
  names: string[],
  objective: () => tf.Scalar,
): Map<string, tf.Tensor> {
  const vars = names.map((n) => model.entry(n).variable);
  const { value, grads } = tf.variableGrads(objective, vars);
  value.dispose();
  const out = new Map<string, tf.Tensor>();
  names.forEach((n, i) => {
    const g = grads[vars[i].name];
    out.set(n, g ?? tf.zerosLike(vars[i]));
  });
  return out;
}

/** Scalars recorded inside a gradient computation, read after it. */
export class Recorder {
  private readonly kept = new Map<string, tf.Tensor>();
  record(name: string, t: tf.Tensor): void {
    this.kept.get(name)?.dispose();
    this.kept.set(name, tf.keep(tf.clone(t)));
  }
  read(name: string): number | undefined {
    const t = this.kept.get(name);
    return t === undefined ? undefined : t.dataSync()[0];
  }
  tensor(name: string): tf.Tensor | undefined {
    return this.kept.get(name);
  }
  /** Hands a recorded tensor over to the caller (who then owns it). */
  take(name: string): tf.Tensor | undefined {
    const t = this.kept.get(name);
    this.kept.delete(name);
    return t;
  }
  dispose(): void {
    for (const t of this.kept.values()) t.dispose();
    this.kept.clear();
  }
}

/** Builds a StepResult from recorded values. */
export function resultOf(grads: Map<string, tf.Tensor>, rec: Recorder, labels: tf.Tensor): StepResult {
  const logits = rec.tensor('logits');
  const result: StepResult = {
    grads,
    loss: rec.read('loss') ?? Number.NaN,
    localLoss: rec.read('local'),
    accuracy: logits ? accuracyOf(labels, logits) : undefined,
  };
  const output = rec.take('output');
  if (output !== undefined) result.output = output;
  rec.dispose();
  return result;
}

/** Names of parameters by group. */
export function namesOf(model: Model, groups: Group[]): string[] {
  return model.entries.filter((e) => groups.includes(e.group)).map((e) => e.name);
}

/**
 * The groups a rule trains in its main step: the final layer is the classifier (supervised) or
 * the projection (contrastive, whose classifier the linear readout trains).
 */
export function trainedGroups(
  model: Model,
  { backbone, heads, final }: { backbone: boolean; heads: boolean; final: boolean },
): Group[] {
  const groups: Group[] = [];
  if (backbone) groups.push('backbone');
  if (heads) groups.push('head');
  if (final) groups.push(isContrastive(model) ? 'projection' : 'classifier');
  return groups;
}

/**
 * Applies `options.headGradient` to the local heads' gradients (in place): with `pooled` they are
 * divided by the number of replicas per example, P′·G′ (see {@link AlgorithmOptions}).
 */
export function scaleHeadGradients(
  model: Model,
  grads: Map<string, tf.Tensor>,
  loss: LocalLoss,
  options: AlgorithmOptions,
): void {
  if (options.headGradient === 'replicas') return;
  const { numPatches } = configSizes(model.config);
  const replicas = (loss.patchwise ? numPatches : 1) * (loss.groupwise ? model.config.groups : 1);
  if (replicas === 1) return;
  for (const [name, g] of grads) {
    if (!name.startsWith('head.')) continue;
    grads.set(name, tf.div(g, replicas));
    g.dispose();
  }
}
