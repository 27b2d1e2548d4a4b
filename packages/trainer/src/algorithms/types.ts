import type * as tf from '@tensorflow/tfjs';
import type { Random } from '@fwdgrad/random';
import type { Model } from '../model.js';

/** The paper's eleven learning rules (Table 3, section 6) plus the `readout` control. */
export const ALGORITHM_IDS = [
  'bp',
  'l-bp',
  'lg-bp',
  'fa',
  'l-fa',
  'lg-fa',
  'dfa',
  'fg-w',
  'fg-a',
  'lg-fg-w',
  'lg-fg-a',
  'readout',
] as const;
export type AlgorithmId = (typeof ALGORITHM_IDS)[number];

/** One training batch, as the algorithms see it. */
export interface StepBatch {
  /** Patchified, normalised inputs [B, P, D_in] (supervised), or both views stacked [2B, P, D_in]. */
  x: tf.Tensor;
  /** One-hot labels [B, K]. */
  labels: tf.Tensor;
  /** Number of examples B (contrastive: per view). */
  size: number;
  /**
   * Return the last block's output in {@link StepResult.output} (rules with local losses): for callers
   * that pass the activations on, such as a pipeline stage feeding the next one.
   */
  keepOutput?: boolean;
}

/** What one step of a learning rule produces. */
export interface StepResult {
  /** Update direction per parameter name (a gradient or a gradient estimate); caller disposes. */
  grads: Map<string, tf.Tensor>;
  /** Final classifier loss (batch mean cross-entropy, or contrastive loss). */
  loss: number;
  /** Σ of the block objectives (REFERENCE 1.1), when the rule has local losses. */
  localLoss?: number;
  /** Training accuracy of the final classifier on this batch (supervised). */
  accuracy?: number;
  /** The last block's output [N, P, G, C′] of this step's forward pass, when `batch.keepOutput`; caller disposes. */
  output?: tf.Tensor;
}

/** Where the local losses live (paper Figure 6): the ablation switches. */
export interface LossPlacementOptions {
  /** A loss after every block with a stop-gradient between blocks. */
  block: boolean;
  /** One replica per patch. */
  patch: boolean;
  /** One replica per channel group. */
  group: boolean;
}

/** Options of the forward-gradient rules (the paper's ablations are flags, not forks). */
export interface ForwardGradientOptions {
  /** Noise samples K per step, averaged (one batched jvp). */
  samples: number;
  /** Noise distribution. */
  noise: 'gaussian' | 'rademacher';
  /** Multiply the activity estimate by the ReLU derivative (paper §3.6). */
  reluMask: boolean;
  /** Backprop through the parameter-free normalisation inside each layer; false = paper's "NG". */
  normGradient: boolean;
}

/** Options every rule understands (rules ignore what does not concern them). */
export interface AlgorithmOptions extends ForwardGradientOptions {
  /** Local loss placement (local rules). */
  losses: LossPlacementOptions;
  /**
   * `paper` (default): FA = global feedback alignment, DFA = global output error through fixed
   * random matrices. `reference`: the authors' code (REFERENCE 1.3–1.4, §7): FA with local losses
   * and fixed random local heads, DFA with per-layer random readouts.
   */
  variant: 'paper' | 'reference';
  /** Replicated-loss implementation. */
  lossImpl: 'fused' | 'naive';
  /**
   * The local heads' update. `pooled` (default): the gradient of one replica, i.e. of the
   * ordinary pooled loss (paper Algorithm 1's comment "only the first patch/group gradients since
   * everything is the same"). This is what the authors' code applies: REFERENCE 3.1's fused VJP
   * gives the heads dw·P·G, and their update functions then divide the local-head gradients by G
   * (`same_head`) and by P (`avgpool_token`) in the backprop modes and take the gradient of the
   * mean over [B, P, G] in the forward-gradient modes (read in google-research
   * `local_forward_gradient`; REFERENCE 3.1 leaves this out). `replicas`: the gradient of the sum
   * over the P′·G′ replicas of each example, P′·G′ times larger — a head learning rate × P′·G′.
   * Measured here: MNIST M/1/16 (P·G = 16) LG-BP one epoch 4.64% test error with `replicas`, 6.06%
   * with `pooled`; with 16 patches × 16 groups (P·G = 256) the `replicas` heads grew from norm 3.6
   * to 270 in 78 steps. `headLr` raises the pooled heads' rate explicitly.
   */
  headGradient: 'pooled' | 'replicas';
}

export const DEFAULT_ALGORITHM_OPTIONS: AlgorithmOptions = {
  samples: 1,
  noise: 'gaussian',
  reluMask: true,
  normGradient: true,
  losses: { block: true, patch: true, group: true },
  variant: 'paper',
  lossImpl: 'fused',
  headGradient: 'pooled',
};

/**
 * A learning rule. It computes an update direction for the model's parameters from one batch;
 * the optimiser applies it. Rules own any fixed state (feedback matrices) and free it in
 * `dispose`.
 */
export interface Algorithm {
  readonly id: AlgorithmId;
  /** One line: what the rule is (paper section 6). */
  readonly description: string;
  /** Names of the parameters this rule updates. */
  trainable(model: Model): string[];
  step(model: Model, batch: StepBatch, random: Random): StepResult;
  /** Fixed tensors the rule owns (e.g. feedback matrices), for checkpoints. */
  state?(): Map<string, tf.Tensor>;
  dispose(): void;
}
