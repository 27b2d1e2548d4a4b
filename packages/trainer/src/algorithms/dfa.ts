import * as tf from '@tensorflow/tfjs';
import type { Random } from '@fwdgrad/random';
import {
  createDirectFeedback,
  type DirectFeedback,
  detach,
  initDirectFeedback,
  initFeedback,
  randomReadoutLoss,
} from '@fwdgrad/baselines-fa';
import { applyLinear } from '@fwdgrad/linear';
import { forwardBackbone, type LayerContext, linearSites, siteActivationShape } from '@fwdgrad/localmixer';
import type { Model } from '../model.js';
import {
  finalObjective,
  gradientsByName,
  isContrastive,
  namesOf,
  Recorder,
  resultOf,
  trainedGroups,
} from './common.js';
import type { Algorithm, AlgorithmOptions, StepBatch } from './types.js';

/**
 * Direct feedback alignment (paper section 6, Nøkland 2016) on LocalMixer.
 *
 * - `paper` (default): the global output error e = softmax(final logits) − y (with the loss's
 *   1/B) is projected to every backbone layer through a fixed random matrix B_j [K, units per
 *   token], shared by the tokens (scaled by 1/tokens, like the mean pooling it stands for), and
 *   flows back through that layer's own ReLU and normalisation to its weights. The classifier
 *   learns from its exact gradient.
 * - `reference` (REFERENCE 1.4, the authors' code): every layer learns from its own fixed random
 *   readout, ℓ_j = mean CE(mean-pooled post-activation · B_j, y), each layer cut from the next;
 *   the classifier reads detached features.
 */
class DirectFeedbackAlignment implements Algorithm {
  readonly id = 'dfa' as const;
  readonly description: string;
  private readonly matrices: tf.Tensor[];

  constructor(
    model: Model,
    private readonly options: AlgorithmOptions,
    random: Random,
  ) {
    const { config } = model;
    if (options.variant === 'reference' && isContrastive(model)) {
      throw new Error(
        "dfa: the authors' variant (per-layer random readouts of the labels) is supervised only",
      );
    }
    // the output error lives on the final layer's outputs: classes, or the contrastive projection
    const K = isContrastive(model) ? config.projectionDim : config.numClasses;
    const scheme = config.init;
    this.description =
      options.variant === 'reference'
        ? "Direct feedback alignment, authors' variant: per-layer fixed random readouts"
        : 'Direct feedback alignment: the output error projected to every layer by fixed random matrices';
    this.matrices = linearSites(config).map((site) => {
      const unit = siteActivationShape(config, site, 1).slice(2); // per-token unit shape
      if (options.variant === 'reference') {
        // B_j [features after pooling, K], drawn like a weight with that fan-in
        const features = siteActivationShape(config, site, 1)
          .slice(1)
          .reduce((a, d, i) => (i === 0 ? a : a * d), 1);
        return tf.keep(initFeedback([features, K], { seed: random, scheme }));
      }
      return tf.keep(initDirectFeedback(K, unit, { seed: random, scheme }));
    });
  }

  trainable(model: Model): string[] {
    return namesOf(model, trainedGroups(model, { backbone: true, heads: false, final: true }));
  }

  private context(model: Model, hub: DirectFeedback, readouts: tf.Scalar[], batch: StepBatch): LayerContext {
    const { config } = model;
    const reference = this.options.variant === 'reference';
    return {
      linear: (site, x, w, b) => applyLinear(site.layout, reference ? detach(x) : x, w, b),
      activate: (site, { prenorm, normalize, residual }) => {
        const z = normalize(prenorm);
        const res = residual === undefined ? undefined : reference ? detach(residual) : residual;
        const post = tf.relu(res === undefined ? z : tf.add(z, res));
        const B = this.matrices[site.index];
        if (reference) {
          // kept: forwardBackbone's tidy would free it before the objective sums it
          readouts.push(tf.keep(randomReadoutLoss(post, B, batch.labels)));
          return post;
        }
        // one projection per token, shared: scale by 1/tokens (P, or C for token mixing)
        const shared = siteActivationShape(config, site, 1)[1];
        return hub.hidden(post, B, { scale: 1 / shared });
      },
      blockBoundary: (_k, h) => h,
    };
  }

  step(model: Model, batch: StepBatch) {
    const rec = new Recorder();
    const hub = createDirectFeedback();
    const reference = this.options.variant === 'reference';
    const readouts: tf.Scalar[] = [];
    const objective = () => {
      const blocks = forwardBackbone(
        model.config,
        model.params,
        batch.x,
        this.context(model, hub, readouts, batch),
      );
      const last = blocks[blocks.length - 1];
      const { loss, logits } = reference
        ? finalObjective(model, last, true, batch)
        : finalObjective(model, last, false, batch, (x, w, b) => hub.output(tf.add(tf.matMul(x, w), b)));
      rec.record('loss', loss);
      if (logits !== null) rec.record('logits', logits);
      return readouts.reduce((acc: tf.Scalar, r) => tf.add(acc, r), loss) as tf.Scalar;
    };
    try {
      const grads = gradientsByName(model, this.trainable(model), objective);
      return resultOf(grads, rec, batch.labels);
    } finally {
      hub.dispose();
      tf.dispose(readouts);
    }
  }

  state(): Map<string, tf.Tensor> {
    return new Map(this.matrices.map((m, i) => [`feedback.dfa.${i}`, m]));
  }

  dispose(): void {
    tf.dispose(this.matrices);
  }
}

export function createDirectFeedbackAlignment(
  model: Model,
  options: AlgorithmOptions,
  random: Random,
): Algorithm {
  return new DirectFeedbackAlignment(model, options, random);
}
