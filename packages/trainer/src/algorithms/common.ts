import * as tf from '@tensorflow/tfjs';
import { softmaxCrossEntropy, stopGradient } from '@fwdgrad/jvp-core';
import { createLocalLoss, type LocalLoss } from '@fwdgrad/local-losses';
import { classify, finalFeatures, headFeatures } from '@fwdgrad/localmixer';
import type { Model } from '../model.js';
import type { AlgorithmOptions, StepBatch, StepResult } from './types.js';

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

/** Logits of the final classifier on the last block output, detached or not. */
export function finalLogits(model: Model, last: tf.Tensor, detach: boolean): tf.Tensor {
  return tf.tidy(() =>
    classify(model.params, finalFeatures(model.config, detach ? stopGradient(last) : last)),
  );
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
  rec.dispose();
  return result;
}

/** Names of parameters by group. */
export function namesOf(
  model: Model,
  groups: ('backbone' | 'head' | 'classifier' | 'projection')[],
): string[] {
  return model.entries.filter((e) => groups.includes(e.group)).map((e) => e.name);
}
