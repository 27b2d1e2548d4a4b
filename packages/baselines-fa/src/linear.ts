import * as tf from '@tensorflow/tfjs';
import {
  applyLinear,
  checkLinearShapes,
  type LinearLayout,
  linearInputCotangent,
  linearParamGradients,
} from '@fwdgrad/linear';

/**
 * A linear layer trained by feedback alignment (Lillicrap et al. 2016; paper section 6 item 2;
 * REFERENCE 1.3).
 *
 * Forward value: x·W + b for `layout` (`LinearLayout` of `@fwdgrad/linear`), the very `applyLinear` that
 * backprop uses.
 * Reverse mode (tf.grad, tf.grads, tf.variableGrads, optimizer.minimize): with cotangent δ at the output,
 * - x receives δ·Bᵀ — the signal goes back through the fixed matrix `feedback` (B, W's shape) instead
 *   of W;
 * - W receives xᵀδ, its true gradient given δ; b receives Σδ;
 * - B receives an all-zero gradient: it is a fixed matrix and never learns.
 *
 * Only the linear op is custom, so every other op of the network (normalisation, ReLU, residual
 * additions, losses) keeps its exact derivative: swap the linear op of any tfjs network for this one and
 * use tf.grads as usual to get FA updates. Keep B out of the optimiser (a plain tensor, or a variable
 * created with `trainable = false`) so no weight decay touches it.
 *
 * With B = W the result is exactly backprop. Throws if the shapes do not fit `layout` or B's shape differs
 * from W's. The returned tensor is owned by the caller.
 *
 * @param x layer input (see {@link LinearLayout} for the shapes of each layout)
 * @param w forward weight
 * @param b bias, or null for none
 * @param feedback the fixed backward matrix B, same shape as `w` (create it with `initFeedback`)
 * @param layout 'dense' (default), 'grouped' or 'token'
 */
export function feedbackLinear(
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor | null,
  feedback: tf.Tensor,
  layout: LinearLayout = 'dense',
): tf.Tensor {
  checkLinearShapes('feedbackLinear', layout, x, w, b);
  if (feedback.rank !== w.rank || feedback.shape.some((d, i) => d !== w.shape[i])) {
    throw new Error(
      `feedbackLinear (${layout} layer): the feedback matrix B has shape [${feedback.shape.join(',')}] but W has ` +
        `shape [${w.shape.join(',')}]; B must have W's shape (create it with initFeedback(W, ...)).`,
    );
  }
  // x, W, b and B are all inputs of the custom op, so B gets its (zero) gradient from here rather than
  // none at all. x and B are saved through `save`: intermediates of a tf.grads forward pass are disposed
  // before the backward pass runs.
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [xi, wi, a, c] = args as tf.Tensor[];
    const bi = b === null ? null : a;
    const fi = b === null ? a : c;
    save([xi, fi]);
    return {
      value: applyLinear(layout, xi, wi, bi, 'feedbackLinear'),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, fs] = saved;
        // x gets δ·Bᵀ; W and b their true gradients given δ
        const dx = linearInputCotangent(layout, dy, fs, xs.shape);
        const { dw, db } = linearParamGradients(layout, xs, dy);
        const dFeedback = tf.zerosLike(fs);
        return b === null ? [dx, dw, dFeedback] : [dx, dw, db, dFeedback];
      },
    };
  });
  return b === null ? op(x, w, feedback) : op(x, w, b, feedback);
}
