import * as tf from '@tensorflow/tfjs';
import { softmaxCrossEntropy, stopGradient } from '@fwdgrad/jvp-core';
import { feedbackLinear, initFeedback, randomReadoutLoss } from '@fwdgrad/baselines-fa';
import { ntXent, poolFeatures } from '@fwdgrad/local-losses';
import { exactContext, forwardBackbone, headFeatures, type LayerContext } from '@fwdgrad/localmixer';
import { createRandom, type Random } from '@fwdgrad/random';
import type { Model } from '../model.js';
import {
  blockReplicas,
  finalObjective,
  gradientsByName,
  isContrastive,
  type LinearFn,
  localLossOf,
  namesOf,
  Recorder,
  resultOf,
  scaleHeadGradients,
  trainedGroups,
} from './common.js';
import type { Algorithm, AlgorithmId, AlgorithmOptions, StepBatch } from './types.js';

/**
 * The rules whose update is a reverse-mode gradient of some objective (paper section 6 items
 * 1–2): the backprop family, the feedback-alignment family and the `readout` control. They
 * differ only in the LayerContext (plain or feedback linear layers, stop-gradient or not between
 * blocks), whether the blocks carry local losses and whether the final classifier reads
 * detached features.
 */
interface GradientRuleSpec {
  id: AlgorithmId;
  description: string;
  /** Linear layers send their backward signal through fixed random matrices. */
  feedback: boolean;
  /** Stop-gradient between blocks (local greedy). */
  stopBetweenBlocks: boolean;
  /** Blocks carry local losses. */
  local: boolean;
  /** The final classifier reads detached features (REFERENCE 1.1: all local modes). */
  detachedReadout: boolean;
  /** The backbone learns (false: `readout`, the frozen-random-features control). */
  trainBackbone: boolean;
}

const SPECS: Record<string, GradientRuleSpec> = {
  bp: {
    id: 'bp',
    description: 'Backprop: exact gradient of the final loss only',
    feedback: false,
    stopBetweenBlocks: false,
    local: false,
    detachedReadout: false,
    trainBackbone: true,
  },
  'l-bp': {
    id: 'l-bp',
    description: 'Local backprop: final + local losses, gradients flow across blocks',
    feedback: false,
    stopBetweenBlocks: false,
    local: true,
    detachedReadout: true,
    trainBackbone: true,
  },
  'lg-bp': {
    id: 'lg-bp',
    description: 'Local greedy backprop: local losses, stop-gradient after every block',
    feedback: false,
    stopBetweenBlocks: true,
    local: true,
    detachedReadout: true,
    trainBackbone: true,
  },
  readout: {
    id: 'readout',
    description: 'Control: backbone frozen at its random initialisation, only heads and classifier learn',
    feedback: false,
    stopBetweenBlocks: true,
    local: true,
    detachedReadout: true,
    trainBackbone: false,
  },
  fa: {
    id: 'fa',
    description: 'Feedback alignment: final loss, backward signal through fixed random matrices',
    feedback: true,
    stopBetweenBlocks: false,
    local: false,
    detachedReadout: false,
    trainBackbone: true,
  },
  'l-fa': {
    id: 'l-fa',
    description: 'Local feedback alignment: plus local losses, errors flow back across blocks',
    feedback: true,
    stopBetweenBlocks: false,
    local: true,
    detachedReadout: true,
    trainBackbone: true,
  },
  'lg-fa': {
    id: 'lg-fa',
    description: 'Local greedy feedback alignment: plus a stop-gradient after every block',
    feedback: true,
    stopBetweenBlocks: true,
    local: true,
    detachedReadout: true,
    trainBackbone: true,
  },
};

/** The authors' FA modes (REFERENCE 1.3, §7): FA includes local losses and a detached readout. */
function referenceSpec(spec: GradientRuleSpec): GradientRuleSpec {
  if (spec.id !== 'fa') return spec;
  return {
    ...spec,
    local: true,
    detachedReadout: true,
    description: `${spec.description} (authors' variant)`,
  };
}

/** Fixed feedback matrices of the FA family, drawn like their forward weights (REFERENCE 0). */
interface Feedback {
  backbone: tf.Tensor[];
  heads: tf.Tensor[];
  /** Of the final layer: the classifier (supervised) or the projection (contrastive). */
  final: tf.Tensor;
}

function drawFeedback(model: Model, random: Random): Feedback {
  const scheme = model.config.init;
  const draw = (w: tf.Tensor) => tf.keep(initFeedback(w, { seed: random, scheme }));
  return {
    backbone: model.params.backbone.map((p) => draw(p.w)),
    heads: model.params.heads.map((p) => draw(p.w)),
    final: draw((isContrastive(model) ? model.params.projection : model.params.classifier)?.w as tf.Tensor),
  };
}

function feedbackContext(base: LayerContext, feedback: Feedback): LayerContext {
  return {
    ...base,
    linear: (site, x, w, b) => feedbackLinear(x, w, b, feedback.backbone[site.index], site.layout),
  };
}

/**
 * The error a block receives from its local head under FA. The head learns from its exact
 * gradient on detached features (the fused replicas); the backbone receives the head's error
 * through the fixed matrix B_k:
 * - paper: δ = B_k·(softmax(x̄W + b) − y), the head being one more FA linear layer;
 * - reference (REFERENCE 1.3): the error of a fixed random head, softmax(x̄B_k + b) − y.
 * The value of the returned term is not part of the logged loss.
 */
function feedbackHeadSignal(
  model: Model,
  k: number,
  features: tf.Tensor,
  batch: StepBatch,
  b: tf.Tensor,
  variant: AlgorithmOptions['variant'],
): tf.Scalar {
  const head = model.params.heads[k];
  if (variant === 'reference' && !isContrastive(model)) {
    return randomReadoutLoss(features, b, batch.labels, { bias: head.b });
  }
  return tf.tidy(() => {
    const out = feedbackLinear(
      poolFeatures(features),
      stopGradient(head.w),
      stopGradient(head.b),
      b,
      'dense',
    );
    const perRow = isContrastive(model) ? ntXent(out) : softmaxCrossEntropy(batch.labels, out);
    return tf.mean(perRow) as tf.Scalar;
  });
}

class GradientRule implements Algorithm {
  readonly id: AlgorithmId;
  readonly description: string;
  private readonly spec: GradientRuleSpec;
  private readonly feedback: Feedback | null;

  constructor(
    spec: GradientRuleSpec,
    model: Model,
    private readonly options: AlgorithmOptions,
    random: Random,
  ) {
    this.spec = options.variant === 'reference' ? referenceSpec(spec) : spec;
    this.id = spec.id;
    this.description = this.spec.description;
    this.feedback = spec.feedback ? drawFeedback(model, random) : null;
  }

  trainable(model: Model): string[] {
    const { spec } = this;
    return namesOf(
      model,
      trainedGroups(model, { backbone: spec.trainBackbone, heads: spec.local, final: true }),
    );
  }

  step(model: Model, batch: StepBatch) {
    const { spec, feedback, options } = this;
    const rec = new Recorder();
    const base = exactContext({ stopGradientBetweenBlocks: spec.stopBetweenBlocks });
    const ctx = feedback ? feedbackContext(base, feedback) : base;
    const loss = spec.local ? localLossOf(model, options) : null;
    const objective = () => {
      let blocks = forwardBackbone(model.config, model.params, batch.x, ctx);
      if (!spec.trainBackbone) blocks = blocks.map((h) => stopGradient(h));
      let total: tf.Scalar = tf.scalar(0);
      if (loss !== null) {
        let local: tf.Scalar = tf.scalar(0);
        blocks.forEach((h, k) => {
          if (feedback) {
            // heads: exact gradient on detached features; backbone: the head's error through B_k
            local = tf.add(local, loss.reduce(blockReplicas(model, loss, k, stopGradient(h), batch)));
            const signal = feedbackHeadSignal(
              model,
              k,
              headFeatures(model.config, h),
              batch,
              feedback.heads[k],
              options.variant,
            );
            total = tf.add(total, signal);
          } else {
            local = tf.add(local, loss.reduce(blockReplicas(model, loss, k, h, batch)));
          }
        });
        rec.record('local', local);
        total = tf.add(total, local);
      }
      const last = blocks[blocks.length - 1];
      if (batch.keepOutput) rec.record('output', last);
      // under FA the final layer, when it trains the backbone, is one more feedback layer
      const linear: LinearFn | undefined =
        feedback && !spec.detachedReadout
          ? (x, w, b) => feedbackLinear(x, w, b, feedback.final, 'dense')
          : undefined;
      const { loss: fin, logits } = finalObjective(model, last, spec.detachedReadout, batch, linear);
      rec.record('loss', fin);
      if (logits !== null) rec.record('logits', logits);
      return tf.add(total, fin) as tf.Scalar;
    };
    const grads = gradientsByName(model, this.trainable(model), objective);
    if (loss !== null) scaleHeadGradients(model, grads, loss, options);
    return resultOf(grads, rec, batch.labels);
  }

  state(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    if (this.feedback) {
      this.feedback.backbone.forEach((b, i) => {
        out.set(`feedback.backbone.${i}`, b);
      });
      this.feedback.heads.forEach((b, k) => {
        out.set(`feedback.head.${k}`, b);
      });
      out.set('feedback.final', this.feedback.final);
    }
    return out;
  }

  dispose(): void {
    if (this.feedback) {
      tf.dispose([...this.feedback.backbone, ...this.feedback.heads, this.feedback.final]);
    }
  }
}

/** True for the ids implemented here. */
export function isGradientRule(id: string): boolean {
  return id in SPECS;
}

/** Creates one of bp, l-bp, lg-bp, fa, l-fa, lg-fa, readout. */
export function createGradientRule(
  id: AlgorithmId,
  model: Model,
  options: AlgorithmOptions,
  random: Random = createRandom(0),
): Algorithm {
  const spec = SPECS[id];
  if (spec === undefined) throw new Error(`not a gradient rule: '${id}'`);
  return new GradientRule(spec, model, options, random);
}
