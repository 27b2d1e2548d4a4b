import type * as tf from '@tensorflow/tfjs';

/**
 * Which implementation computes a replicated loss.
 * - `'fused'`: one pooled loss, tiled; hand-written JVP and VJP (REFERENCE 3.1). The default.
 * - `'naive'`: the literal replicas built with stop-gradient masks (paper eq. 4–5). Same values and
 *   derivatives, far more memory and compute; kept for tests and the memory benchmark (paper Figure 5).
 */
export type LossImpl = 'naive' | 'fused';

/**
 * Where the replicated losses live inside one block (paper section 4, Figure 6 ablation).
 *
 * The output of a replicated loss has shape `[R, P′, G′]` with `P′ = patchwise ? P : 1` and
 * `G′ = groupwise ? G : 1` (R = N supervised, 2N contrastive). Replica `(n, p, g)` has the value of the
 * ordinary pooled loss of example n and is differentiable only through the features it owns:
 * - `patchwise: true, groupwise: true` (the paper's choice): patch p and group g, coefficient 1/P (eq. 4–5);
 * - `patchwise: false`: all patches of its group(s), through the ordinary mean (coefficient 1 per replica);
 * - `groupwise: false`: all groups of its patch(es);
 * - both false: the ordinary pooled loss, `[R, 1, 1]`.
 *
 * In every case `Σ_{p′,g′} replica` has the same gradient with respect to the features as the ordinary
 * pooled loss; what changes is which features each replica's forward-gradient tangent sees.
 */
export interface ReplicationOptions {
  /** One replica per patch (eq. 5). Default true. */
  patchwise?: boolean;
  /** One replica per channel group (eq. 4). Default true. */
  groupwise?: boolean;
}

/**
 * The three switches of the paper's Figure 6 ablation. Only `patchwise` and `groupwise` are
 * implemented here (pass them as {@link ReplicationOptions}); `blockwise` belongs to the trainer:
 * `true` = every block has a local head and a stop-gradient after it (local greedy learning,
 * REFERENCE 1.1); `false` = only the last block carries a loss and gradients (or tangents) flow
 * through all blocks.
 */
export interface LossPlacement extends Required<ReplicationOptions> {
  /** A local loss after every block, stop-gradient between blocks (trainer's switch). */
  blockwise: boolean;
}

/** Options shared by both replicated losses. */
export interface ReplicatedLossOptions extends ReplicationOptions {
  /** Implementation; default `'fused'`. */
  impl?: LossImpl;
}

/** Options of {@link replicatedInfoNce}. */
export interface ReplicatedInfoNceOptions extends ReplicatedLossOptions {
  /** Softmax temperature T of NT-Xent; default 0.5 (REFERENCE 3.2). */
  temperature?: number;
}

/** The objective a {@link LocalLoss} computes. */
export type LocalObjective = 'supervised' | 'contrastive';

/**
 * What a trainer calls at the end of a block (DESIGN principle 5: the typed seam between
 * `local-losses` and `trainer`).
 *
 * Usage per block k (REFERENCE 1.1): `value = loss.replicas(features, w, b, labels)` gives
 * `[R, P′, G′]`; the block's scalar objective is `loss.reduce(value)` = Σ value / B (each element
 * divided by the batch size B, summed over patches and groups). Forward-gradient rules take the
 * tangent of `value` (or of `value / B`) as the per-replica loss tangent t_k.
 */
export interface LocalLoss {
  /** `'supervised'` (replicated cross-entropy) or `'contrastive'` (replicated InfoNCE). */
  readonly objective: LocalObjective;
  /** Implementation used. */
  readonly impl: LossImpl;
  /** Replica per patch (see {@link ReplicationOptions}). */
  readonly patchwise: boolean;
  /** Replica per group (see {@link ReplicationOptions}). */
  readonly groupwise: boolean;
  /** NT-Xent temperature (contrastive only; supervised: `undefined`). */
  readonly temperature: number | undefined;
  /**
   * The replicated losses.
   * @param features block output `[N, P, G, C′]` (supervised) or both views stacked `[2N, P, G, C′]`
   *   (contrastive: rows `:N` view 1, rows `N:` view 2, as REFERENCE 1.7 lays out tangents).
   * @param w head weight `[G·C′, K]` (K = classes, or the projection width, 128 in the paper).
   * @param b head bias `[K]`.
   * @param labels supervised only: one-hot / soft labels `[N, K]` or int32 class ids `[N]`.
   * @returns `[R, P′, G′]` (R = N or 2N); the caller owns it.
   */
  replicas(features: tf.Tensor, w: tf.Tensor, b: tf.Tensor, labels?: tf.Tensor): tf.Tensor;
  /**
   * {@link LocalLoss.replicas} together with the exact gradient of `reduce(replicas)` with respect to the
   * head's `w` and `b`, from the same evaluation of the head: the fused implementation builds it from the
   * pooled features and ∂ℓ/∂logits it computed anyway (no second head pass, no feature cotangent); the naive
   * one differentiates itself with `tf.grads`. Inside `jvp` the replicas carry their tangent exactly as with
   * `replicas`, and `dw`, `db` are plain tensors — what forward-gradient rules need: per-replica tangents for
   * the backbone and exact gradients for the heads on the same (detached) features (REFERENCE 1.1).
   * The caller owns all three tensors.
   * @example
   * const { replicas, dw, db } = loss.replicasWithHeadGradient(features, head.w, head.b, labels);
   * // dw, db equal tf.grads((w, b) => loss.reduce(loss.replicas(features, w, b, labels)))([head.w, head.b])
   */
  replicasWithHeadGradient(
    features: tf.Tensor,
    w: tf.Tensor,
    b: tf.Tensor,
    labels?: tf.Tensor,
  ): { replicas: tf.Tensor; dw: tf.Tensor; db: tf.Tensor };
  /** Batch size B for a replicas tensor with `rows` rows: `rows` (supervised) or `rows / 2` (contrastive). */
  batchSize(rows: number): number;
  /** REFERENCE 1.1 block objective: Σ replicas / B, a scalar the caller owns. */
  reduce(replicas: tf.Tensor): tf.Scalar;
}
