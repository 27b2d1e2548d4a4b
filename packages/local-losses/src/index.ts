/**
 * @fwdgrad/local-losses — replicated local losses of "Scaling Forward Gradient with Local Losses"
 * (Ren et al., ICLR 2023, section 4–5): supervised cross-entropy and contrastive InfoNCE with the
 * patch/group replicated aggregator, in a naive form (literal replicas) and a fused form (custom
 * JVP + custom gradient).
 */
export { poolFeatures, replicatedFeatures } from './aggregate.js';
export { replicatedCrossEntropy } from './cross-entropy.js';
export { CONTRASTIVE_PROJECTION_WIDTH, DEFAULT_TEMPERATURE, ntXent, replicatedInfoNce } from './info-nce.js';
export { createLocalLoss, type LocalLossOptions } from './local-loss.js';
export type {
  LocalLoss,
  LocalObjective,
  LossImpl,
  LossPlacement,
  ReplicatedInfoNceOptions,
  ReplicatedLossOptions,
  ReplicationOptions,
} from './types.js';
