import * as tf from '@tensorflow/tfjs';
import { crossEntropyReplicas } from './cross-entropy.js';
import type { HeadGradientOut } from './fused.js';
import { DEFAULT_TEMPERATURE, infoNceReplicas } from './info-nce.js';
import type { LocalLoss, LocalObjective, ReplicatedInfoNceOptions } from './types.js';
import { checkImpl, resolveReplication } from './validate.js';

/** Options of {@link createLocalLoss}. */
export interface LocalLossOptions extends ReplicatedInfoNceOptions {
  /** `'supervised'` (replicated cross-entropy) or `'contrastive'` (replicated InfoNCE). */
  objective: LocalObjective;
}

/**
 * Builds the {@link LocalLoss} a trainer attaches to every block.
 *
 * @example
 * const loss = createLocalLoss({ objective: 'supervised' });        // fused, patchwise + groupwise
 * const replicas = loss.replicas(blockOut, head.w, head.b, labels);  // [N, P, G]
 * const objective = loss.reduce(replicas);                          // Σ / N  (REFERENCE 1.1)
 */
export function createLocalLoss(options: LocalLossOptions): LocalLoss {
  const { objective } = options;
  if (objective !== 'supervised' && objective !== 'contrastive') {
    throw new Error(
      `createLocalLoss: objective must be 'supervised' or 'contrastive', got ${JSON.stringify(objective)}.`,
    );
  }
  const impl = checkImpl('createLocalLoss', options.impl);
  const { patchwise, groupwise } = resolveReplication(options);
  const temperature = objective === 'contrastive' ? (options.temperature ?? DEFAULT_TEMPERATURE) : undefined;
  const batchSize = (rows: number): number => (objective === 'contrastive' ? rows / 2 : rows);
  const evaluate = (
    features: tf.Tensor,
    w: tf.Tensor,
    b: tf.Tensor,
    labels: tf.Tensor | undefined,
    head?: HeadGradientOut,
  ): tf.Tensor => {
    if (objective === 'supervised') {
      if (labels === undefined) {
        throw new Error(
          'LocalLoss.replicas: the supervised loss needs labels ([N, K] one-hot or int32 [N]); pass them as the 4th argument.',
        );
      }
      return crossEntropyReplicas(features, w, b, labels, { impl, patchwise, groupwise }, head);
    }
    const rows = features.shape[0] as number;
    if (features.rank !== 4 || rows % 2 !== 0) {
      throw new Error(
        `LocalLoss.replicas: contrastive features must stack both views as [2N, P, G, C′], got [${features.shape.join(', ')}]; ` +
          'concatenate view 1 and view 2 along axis 0.',
      );
    }
    return tf.tidy(() => {
      const [v1, v2] = tf.split(features, 2, 0) as [tf.Tensor, tf.Tensor];
      return infoNceReplicas(v1, v2, w, b, { impl, patchwise, groupwise, temperature }, head);
    });
  };
  return {
    objective,
    impl,
    patchwise,
    groupwise,
    temperature,
    batchSize,
    replicas: (features, w, b, labels) => evaluate(features, w, b, labels),
    replicasWithHeadGradient(features, w, b, labels) {
      // reduce = Σ replicas / B (REFERENCE 1.1); B from the rows the features have
      const head: HeadGradientOut = { scale: 1 / batchSize(features.shape[0] as number) };
      const replicas = evaluate(features, w, b, labels, head);
      const { dw, db } = head as Required<HeadGradientOut>;
      return { replicas, dw, db };
    },
    reduce(replicas) {
      const B = batchSize(replicas.shape[0] as number);
      return tf.tidy(() => tf.div(tf.sum(replicas), B) as tf.Scalar);
    },
  };
}
