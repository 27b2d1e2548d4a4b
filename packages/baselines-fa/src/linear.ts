import * as tf from '@tensorflow/tfjs';

/**
 * How a linear layer contracts its input with its weight (REFERENCE 0 and 2):
 * - `'dense'`: x [..., in], W [in, out], b [out]; y = x·W + b over the last axis.
 * - `'grouped'`: x [..., G, in/G], W [G, in/G, out/G], b [G, out/G]; one dense layer per group,
 *   the einsum 'npgc,gcd->npgd' of LocalMixer's grouped channel mixing.
 * - `'token'`: x [N, C, P], W [P, P], b [P]; dense over the last (token) axis, one layer shared by all
 *   channels (LocalMixer's token mixing, applied channel-major).
 */
export type LinearLayout = 'dense' | 'grouped' | 'token';

const LAYOUTS: readonly LinearLayout[] = ['dense', 'grouped', 'token'];

function fmt(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Checks that x, W, b (and the feedback matrix, when given) fit `layout`; throws an Error that names the
 * layout, both shapes and the fix otherwise.
 */
export function validateLinear(
  op: string,
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor | null,
  layout: LinearLayout,
  feedback?: tf.Tensor,
): void {
  if (!LAYOUTS.includes(layout)) {
    throw new Error(`${op}: unknown layout '${String(layout)}'; use one of ${LAYOUTS.join(', ')}.`);
  }
  const xs = x.shape as number[];
  const ws = w.shape as number[];
  const where = `${op}('${layout}')`;
  if (layout === 'dense') {
    if (w.rank !== 2) {
      throw new Error(
        `${where}: W must be [in, out] but has shape ${fmt(ws)}; use layout 'grouped' for [G, c, d].`,
      );
    }
    if (x.rank < 1 || xs[xs.length - 1] !== ws[0]) {
      throw new Error(
        `${where}: x has shape ${fmt(xs)} but W has shape ${fmt(ws)}; x's last axis must equal W's first ` +
          `axis (${ws[0]}). Reshape x to [..., ${ws[0]}] or transpose W.`,
      );
    }
  } else if (layout === 'grouped') {
    if (w.rank !== 3) {
      throw new Error(`${where}: W must be [G, in/G, out/G] but has shape ${fmt(ws)}.`);
    }
    if (x.rank < 2 || xs[xs.length - 2] !== ws[0] || xs[xs.length - 1] !== ws[1]) {
      throw new Error(
        `${where}: x has shape ${fmt(xs)} but W has shape ${fmt(ws)}; x must end in [G, in/G] = ` +
          `[${ws[0]},${ws[1]}]. Reshape x to [..., ${ws[0]}, ${ws[1]}].`,
      );
    }
  } else {
    if (w.rank !== 2 || ws[0] !== ws[1]) {
      throw new Error(`${where}: W must be square [P, P] but has shape ${fmt(ws)}.`);
    }
    if (x.rank !== 3 || xs[2] !== ws[0]) {
      throw new Error(
        `${where}: x has shape ${fmt(xs)} but W has shape ${fmt(ws)}; x must be channel-major [N, C, P] ` +
          `with P = ${ws[0]}. Transpose [N, P, C] inputs to [N, C, P] first.`,
      );
    }
  }
  if (b !== null) {
    const expected = layout === 'grouped' ? [ws[0], ws[2]] : [ws[ws.length - 1]];
    if (!sameShape(b.shape, expected)) {
      throw new Error(
        `${where}: b has shape ${fmt(b.shape)} but W has shape ${fmt(ws)}; b must be ${fmt(expected)}.`,
      );
    }
  }
  if (feedback !== undefined && !sameShape(feedback.shape, ws)) {
    throw new Error(
      `${where}: the feedback matrix B has shape ${fmt(feedback.shape)} but W has shape ${fmt(ws)}; ` +
        `B must have W's shape (create it with initFeedback(W, ...)).`,
    );
  }
}

/** Product of all axes but the last `keep`: the number of rows the layer sees. */
function rows(shape: readonly number[], keep: number): number {
  return shape.slice(0, shape.length - keep).reduce((a, d) => a * d, 1);
}

/** x [..., G, c] → [G, M, c], the batched-matMul view of a grouped layer (no Einsum on wasm). */
function groupsFirst(t: tf.Tensor): tf.Tensor3D {
  const s = t.shape;
  const m = rows(s, 2);
  return tf.transpose(tf.reshape(t, [m, s[s.length - 2], s[s.length - 1]]), [1, 0, 2]);
}

/** Inverse of {@link groupsFirst}: [G, M, d] → [...lead, G, d]. */
function groupsLast(t: tf.Tensor, lead: readonly number[]): tf.Tensor {
  return tf.reshape(tf.transpose(t, [1, 0, 2]), [...lead, t.shape[0] as number, t.shape[2] as number]);
}

/** The forward value x·W (+ b) for `layout`, made of ops every tfjs backend has. */
function forwardValue(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | null, layout: LinearLayout): tf.Tensor {
  const xs = x.shape;
  let y: tf.Tensor;
  if (layout === 'grouped') {
    y = groupsLast(tf.matMul(groupsFirst(x), w as tf.Tensor3D), xs.slice(0, xs.length - 2));
  } else {
    // 'dense' and 'token' both contract the last axis of x with W's first axis.
    const x2 = tf.reshape(x, [rows(xs, 1), xs[xs.length - 1]]) as tf.Tensor2D;
    y = tf.reshape(tf.matMul(x2, w as tf.Tensor2D), [...xs.slice(0, xs.length - 1), w.shape[1] as number]);
  }
  return b === null ? y : tf.add(y, b);
}

/**
 * The plain linear layer y = x·W + b for `layout`, differentiated exactly by tfjs autodiff. Use it
 * for backprop (and to get the true gradient when measuring alignment); swap in {@link feedbackLinear}
 * for feedback alignment. `b` may be null (no bias).
 */
export function linear(
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor | null,
  layout: LinearLayout = 'dense',
): tf.Tensor {
  validateLinear('linear', x, w, b, layout);
  return tf.tidy(() => forwardValue(x, w, b, layout));
}

/**
 * The three reverse-mode products of a linear layer with cotangent dy: the signal to x through
 * `backward` (W for backprop, B for FA), the weight gradient xᵀ·dy and the bias gradient Σ dy.
 */
function linearVjp(
  x: tf.Tensor,
  backward: tf.Tensor,
  dy: tf.Tensor,
  layout: LinearLayout,
): { dx: tf.Tensor; dw: tf.Tensor; db: tf.Tensor } {
  const xs = x.shape;
  if (layout === 'grouped') {
    const xg = groupsFirst(x); // [G, M, c]
    const dyg = groupsFirst(dy); // [G, M, d]
    const dx = tf.reshape(
      groupsLast(tf.matMul(dyg, backward as tf.Tensor3D, false, true), xs.slice(0, -2)),
      xs,
    );
    const dw = tf.matMul(xg, dyg, true, false); // [G, c, d]: per-group xᵀδ
    const db = tf.sum(dyg, 1); // [G, d]
    return { dx, dw, db };
  }
  const n = xs[xs.length - 1];
  const out = backward.shape[1] as number;
  const x2 = tf.reshape(x, [rows(xs, 1), n]) as tf.Tensor2D;
  const dy2 = tf.reshape(dy, [rows(xs, 1), out]) as tf.Tensor2D;
  const dx = tf.reshape(tf.matMul(dy2, backward as tf.Tensor2D, false, true), xs);
  const dw = tf.matMul(x2, dy2, true, false); // xᵀδ, the true weight gradient
  const db = tf.sum(dy2, 0);
  return { dx, dw, db };
}

/**
 * A linear layer trained by feedback alignment (Lillicrap et al. 2016; paper section 6 item 2;
 * REFERENCE 1.3).
 *
 * Forward value: x·W + b for `layout` (see {@link LinearLayout}), identical to {@link linear}.
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
  validateLinear('feedbackLinear', x, w, b, layout, feedback);
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
      value: forwardValue(xi, wi, bi, layout),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, fs] = saved;
        const { dx, dw, db } = linearVjp(xs, fs, dy, layout);
        const dFeedback = tf.zerosLike(fs);
        return b === null ? [dx, dw, dFeedback] : [dx, dw, db, dFeedback];
      },
    };
  });
  return b === null ? op(x, w, feedback) : op(x, w, b, feedback);
}
