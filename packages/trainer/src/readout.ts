import * as tf from '@tensorflow/tfjs';
import { batches, type Dataset } from '@fwdgrad/datasets';
import { softmaxCrossEntropy } from '@fwdgrad/jvp-core';
import { classify, finalFeatures, forwardBackbone, patchify } from '@fwdgrad/localmixer';
import type { Model } from './model.js';

/**
 * The online linear readout of the contrastive protocol (REFERENCE 4): one epoch of plain SGD
 * (lr 0.01) of the final classifier on un-augmented training data, input LN(stopgrad(mean_P(final
 * block))); its state is the classifier, kept across epochs. Returns the mean readout loss.
 */
export function trainReadout(
  model: Model,
  ds: Dataset,
  opts: { seed: number; epoch: number; limit?: number; batchSize: number; lr?: number },
): number {
  const lr = opts.lr ?? 0.01;
  const { w, b } = model.params.classifier;
  let sum = 0;
  let n = 0;
  for (const batch of batches(ds.train, {
    batchSize: opts.batchSize,
    seed: opts.seed,
    epoch: opts.epoch,
    shuffle: true,
    limit: opts.limit,
    normalize: ds,
  })) {
    tf.tidy(() => {
      const blocks = forwardBackbone(model.config, model.params, patchify(batch.images, model.config));
      const features = finalFeatures(model.config, blocks[blocks.length - 1]);
      const labels = tf.oneHot(batch.labels, ds.numClasses).toFloat();
      const { value, grads } = tf.variableGrads(
        () => tf.mean(softmaxCrossEntropy(labels, classify(model.params, features))) as tf.Scalar,
        [w, b],
      );
      sum += value.dataSync()[0];
      n++;
      w.assign(tf.sub(w, tf.mul(lr, grads[w.name])));
      b.assign(tf.sub(b, tf.mul(lr, grads[b.name])));
    });
    tf.dispose([batch.images, batch.labels]);
  }
  return n === 0 ? Number.NaN : sum / n;
}
