import * as tf from '@tensorflow/tfjs';

function fmt(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/**
 * Reverse-mode stop-gradient: the value of x, with an all-zero gradient. Use it between blocks for the
 * local greedy variants (LG-FA) and between layers for the authors' DFA (REFERENCE 1.1, 1.4). It acts on
 * tfjs reverse mode only (`@fwdgrad/jvp-core`'s `stopGradient` also cuts forward-mode tangents).
 */
export function detach<T extends tf.Tensor>(x: T): T {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xi = args[0] as tf.Tensor;
    return { value: tf.clone(xi), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) };
  });
  return op(x) as T;
}

/** Where a DFA layer finds the output error at backward time; {@link createDirectFeedback} is one. */
export interface OutputErrorRef {
  /** The output error e [N, K], or null when none has been captured yet. */
  readonly current: tf.Tensor | null;
}

/** Options of {@link directFeedback}. */
export interface DirectFeedbackOptions {
  /** Multiplies the injected signal (e.g. 1/P to share one projection among P tokens). Default 1. */
  scale?: number;
}

function isRef(e: tf.Tensor | OutputErrorRef): e is OutputErrorRef {
  return !(e instanceof tf.Tensor);
}

function checkFeedback(op: string, h: tf.Tensor, feedback: tf.Tensor): void {
  const tail = feedback.shape.slice(1);
  const hs = h.shape;
  const suffix = hs.slice(hs.length - tail.length);
  if (
    feedback.rank < 2 ||
    h.rank < 2 ||
    tail.length > hs.length - 1 ||
    !suffix.every((d, i) => d === tail[i])
  ) {
    throw new Error(
      `${op}: the feedback matrix has shape ${fmt(feedback.shape)} but the layer output h has shape ` +
        `${fmt(hs)}; it must be [K, ...s] with s a suffix of h's non-batch axes (e.g. [K, ${hs[hs.length - 1]}]). ` +
        `Create it with initDirectFeedback(K, [${hs.slice(1).join(', ')}] or a suffix of it, seed).`,
    );
  }
}

/**
 * The DFA signal e·B_j, reshaped to [N, ...s] and broadcast over h's remaining middle axes.
 */
function projectError(
  e: tf.Tensor,
  feedback: tf.Tensor,
  hShape: readonly number[],
  scale: number,
): tf.Tensor {
  const k = feedback.shape[0];
  if (e.rank !== 2 || e.shape[0] !== hShape[0] || e.shape[1] !== k) {
    throw new Error(
      `directFeedback: the output error has shape ${fmt(e.shape)} but the layer output has shape ` +
        `${fmt(hShape)} and the feedback matrix projects K = ${k} classes; the error must be ` +
        `[${hShape[0]}, ${k}] (same batch, K classes).`,
    );
  }
  const tail = feedback.shape.slice(1);
  const width = tail.reduce((a, d) => a * d, 1);
  const projected = tf.matMul(e as tf.Tensor2D, tf.reshape(feedback, [k, width]) as tf.Tensor2D);
  const ones = new Array<number>(hShape.length - 1 - tail.length).fill(1);
  const signal = tf.broadcastTo(tf.reshape(projected, [hShape[0], ...ones, ...tail]), [...hShape]);
  return scale === 1 ? signal : tf.mul(signal, scale);
}

/**
 * Direct feedback alignment at one layer (Nøkland 2016; paper section 6, "DFA"): identity in the forward
 * pass; in reverse mode it ignores the cotangent arriving from the layers above and injects e·B_j
 * instead, where e [N, K] is the output error and `feedback` = B_j [K, ...s] a fixed random matrix.
 *
 * Put it on a layer's output after its activation, `h = directFeedback(relu(norm(linear(x))), Bj, ref)`:
 * the injected signal then flows back through the layer's own exact local derivatives (ReLU, norm) to its
 * weights, giving the DFA update δ_j = (e·B_j) ⊙ f′(a_j), ΔW_j ∝ xᵀδ_j; and, since the op discards what
 * comes from above, no stop-gradient between layers is needed. s must be a suffix of h's non-batch axes:
 * `[K, out]` for an MLP layer; for a token layer [N, P, C] a `[K, C]` matrix is shared across the P
 * tokens (broadcast), a `[K, P, C]` one gives each token its own projection.
 *
 * `error` is either the tensor e itself (computed beforehand, e.g. softmax(logits) − y from a previous
 * pass) or a reference read when the backward pass reaches this layer — normally a
 * {@link createDirectFeedback} hub whose `output()` captured e from the same pass. B_j gets an all-zero
 * gradient. The returned tensor is owned by the caller.
 */
export function directFeedback(
  h: tf.Tensor,
  feedback: tf.Tensor,
  error: tf.Tensor | OutputErrorRef,
  options: DirectFeedbackOptions = {},
): tf.Tensor {
  checkFeedback('directFeedback', h, feedback);
  const scale = options.scale ?? 1;
  if (!Number.isFinite(scale)) {
    throw new Error(`directFeedback: scale must be a finite number, got ${scale}.`);
  }
  const explicit = isRef(error) ? null : error;
  if (explicit !== null) {
    // Validate the explicit error now rather than in the middle of a backward pass.
    if (explicit.rank !== 2 || explicit.shape[0] !== h.shape[0] || explicit.shape[1] !== feedback.shape[0]) {
      throw new Error(
        `directFeedback: the output error has shape ${fmt(explicit.shape)} but h has shape ${fmt(h.shape)} ` +
          `and the feedback matrix ${fmt(feedback.shape)}; the error must be [${h.shape[0]}, ${feedback.shape[0]}].`,
      );
    }
  }
  const hShape = h.shape;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [hi, fi] = args as tf.Tensor[];
    // Saved: intermediates of a tf.grads forward pass are disposed before the backward pass runs.
    save(explicit === null ? [fi] : [fi, explicit]);
    return {
      value: tf.clone(hi),
      gradFunc: (_dy: tf.Tensor, saved: tf.Tensor[]) => {
        const fs = saved[0];
        let e: tf.Tensor | null = saved[1] ?? null;
        if (e === null) {
          e = (error as OutputErrorRef).current;
          if (e === null) {
            throw new Error(
              'directFeedback: no output error was captured before this layer was reached in the backward ' +
                'pass; wrap the final logits with dfa.output(logits) (same DirectFeedback hub) so that the ' +
                'loss depends on them, or pass the error tensor explicitly.',
            );
          }
        }
        return [projectError(e, fs, hShape, scale), tf.zerosLike(fs)];
      },
    };
  });
  return op(h, feedback);
}

/**
 * A hub that wires direct feedback alignment into any tfjs network with one reverse-mode pass:
 *
 * ```ts
 * const dfa = createDirectFeedback();
 * const loss = () => {
 *   const h1 = dfa.hidden(tf.relu(linear(x, W1, b1)), B1);
 *   const h2 = dfa.hidden(tf.relu(linear(h1, W2, b2)), B2);
 *   const logits = dfa.output(linear(h2, W3, b3));
 *   return tf.losses.softmaxCrossEntropy(y, logits);
 * };
 * const { grads } = tf.variableGrads(loss); // W3, b3: exact; W1, b1, W2, b2: DFA
 * ```
 *
 * `output(logits)` is the identity; in the backward pass it records the cotangent reaching the logits as
 * the output error e and passes it on unchanged, so the output layer gets its exact gradient. For a
 * batch-mean cross-entropy that cotangent is (softmax(logits) − y)/N: the paper's e (Nøkland 2016)
 * with the loss's own batch averaging, so learning rates carry over from backprop. tfjs runs the backward
 * pass in reverse order of the forward pass, so e is known before any `hidden()` layer is reached.
 */
export interface DirectFeedback extends OutputErrorRef {
  /** Identity on the final logits [N, K]; records the output error e during the backward pass. */
  output(logits: tf.Tensor): tf.Tensor;
  /** {@link directFeedback} of h with this hub's error. */
  hidden(h: tf.Tensor, feedback: tf.Tensor, options?: DirectFeedbackOptions): tf.Tensor;
  /** The last captured output error e [N, K] (owned by the hub; cleared by the next `output()`). */
  readonly error: tf.Tensor | null;
  /** Frees the captured error. */
  dispose(): void;
}

/** Creates a {@link DirectFeedback} hub (see there for the wiring). */
export function createDirectFeedback(): DirectFeedback {
  let captured: tf.Tensor | null = null;
  const clear = () => {
    captured?.dispose();
    captured = null;
  };
  const hub: DirectFeedback = {
    get current() {
      return captured;
    },
    get error() {
      return captured;
    },
    output(logits: tf.Tensor): tf.Tensor {
      if (logits.rank !== 2) {
        throw new Error(
          `DirectFeedback.output: the final logits must be [N, K] but have shape ${fmt(logits.shape)}; ` +
            `reshape them to [N, K] before wrapping.`,
        );
      }
      // A new forward pass: the previous error belongs to the previous pass.
      clear();
      const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
        const li = args[0] as tf.Tensor;
        return {
          value: tf.clone(li),
          gradFunc: (dy: tf.Tensor) => {
            clear();
            captured = tf.keep(tf.clone(dy));
            return [tf.clone(dy)];
          },
        };
      });
      return op(logits);
    },
    hidden(h: tf.Tensor, feedback: tf.Tensor, options?: DirectFeedbackOptions): tf.Tensor {
      return directFeedback(h, feedback, hub, options);
    },
    dispose: clear,
  };
  return hub;
}

/** Options of {@link randomReadoutLoss}. */
export interface RandomReadoutOptions {
  /**
   * Non-batch axes of h to average before the readout. Default: [1] for rank ≥ 3 (patches for
   * [N, P, ...] layers, channels for token mixing [N, C, P], as REFERENCE 1.4), none for rank 2.
   */
  poolAxes?: number[];
  /** A bias [K] added to the logits, treated as a constant (e.g. the local head's b, REFERENCE 1.3). */
  bias?: tf.Tensor | null;
}

/**
 * The authors' fixed-random-readout loss (REFERENCE 1.3, 1.4): ℓ = mean_n CE(a·B + b, y), with
 * a = mean of h over `poolAxes`, flattened to [N, F], and B [F, K] fixed (zero gradient).
 *
 * - Their DFA (`direct_feedback_alignment`, 1.4): one per backbone layer j with h = the layer's
 *   post-activation, B = a fixed random [out_dim, K], the layer's input detached (see {@link detach}),
 *   so each layer learns from its own random-readout error softmax(a·B) − y through its own norm and
 *   ReLU. Not the paper's DFA (use {@link createDirectFeedback} for that).
 * - Their FA local heads (1.3): h = the block output, B = a fixed random head [C, K] and `bias` the
 *   learned head's bias; the backbone learns from softmax(x̄·B + b) − y while the learned head W is
 *   trained on detached features and plays no part in training the backbone.
 *
 * `labels` are one-hot [N, K]. Returns a scalar the caller owns.
 */
export function randomReadoutLoss(
  h: tf.Tensor,
  feedback: tf.Tensor,
  labels: tf.Tensor,
  options: RandomReadoutOptions = {},
): tf.Scalar {
  const poolAxes = options.poolAxes ?? (h.rank >= 3 ? [1] : []);
  for (const a of poolAxes) {
    if (!Number.isInteger(a) || a < 1 || a >= h.rank) {
      throw new Error(
        `randomReadoutLoss: pool axis ${a} is not a non-batch axis of h with shape ${fmt(h.shape)}; ` +
          `use axes in 1..${h.rank - 1}.`,
      );
    }
  }
  const n = h.shape[0];
  const features = h.shape.reduce((acc, d, i) => (i === 0 || poolAxes.includes(i) ? acc : acc * d), 1);
  if (feedback.rank !== 2 || feedback.shape[0] !== features) {
    throw new Error(
      `randomReadoutLoss: h has shape ${fmt(h.shape)}, which pooled over axes [${poolAxes.join(',')}] gives ` +
        `${features} features, but the readout matrix has shape ${fmt(feedback.shape)}; it must be ` +
        `[${features}, K].`,
    );
  }
  const k = feedback.shape[1];
  if (labels.rank !== 2 || labels.shape[0] !== n || labels.shape[1] !== k) {
    throw new Error(
      `randomReadoutLoss: labels have shape ${fmt(labels.shape)} but must be one-hot [${n}, ${k}] ` +
        `(batch of h, K columns of the readout ${fmt(feedback.shape)}).`,
    );
  }
  const bias = options.bias ?? null;
  if (bias !== null && (bias.rank !== 1 || bias.shape[0] !== k)) {
    throw new Error(`randomReadoutLoss: bias has shape ${fmt(bias.shape)} but must be [${k}].`);
  }
  return tf.tidy(() => {
    const pooled = poolAxes.length > 0 ? tf.mean(h, poolAxes) : h;
    const a = tf.reshape(pooled, [n, features]) as tf.Tensor2D;
    let logits: tf.Tensor = tf.matMul(a, detach(feedback) as tf.Tensor2D);
    if (bias !== null) logits = tf.add(logits, detach(bias));
    // mean_n CE(logits, y) = −mean_n Σ_k y log softmax
    return tf.neg(tf.mean(tf.sum(tf.mul(labels, tf.logSoftmax(logits)), -1))) as tf.Scalar;
  });
}
