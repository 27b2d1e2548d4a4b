import * as tf from '@tensorflow/tfjs';

/**
 * The weight gradient of a linear kernel from its inputs and its output's gradient dy: what
 * `forwardVariableGrads` needs at each activity-perturbation site. tfjs's registered gradient of the
 * kernel is used, except for `Conv2D`'s filter, computed as a convolution: dW[i, j, ci, co] =
 * Σ_{n,h,w} x[n, h·s + i − pad, w·s + j − pad, ci] · dy[n, h, w, co] is the convolution of x (channels
 * as batch, examples as channels) with dy (examples as input channels) at dilation s. On tfjs's cpu backend
 * that is ~100× faster than its `Conv2DBackpropFilter` kernel (element-wise TensorBuffer reads), and equal
 * to it to float32 rounding (tested). `BatchMatMul` needs only the operand that is not the weight.
 */
export function linearWeightGradient(
  kernel: string,
  inputs: Record<string, tf.Tensor>,
  attrs: Record<string, unknown>,
  weightInput: string,
  dy: tf.Tensor,
): tf.Tensor {
  if (kernel === tf.Conv2D && weightInput === 'filter') {
    const fast = conv2dFilterGradient(inputs.x as tf.Tensor4D, dy as tf.Tensor4D, inputs.filter.shape, attrs);
    if (fast !== null) return fast;
  }
  let given = inputs;
  let g = dy;
  if (kernel === tf.BatchMatMul) {
    // a tf.layers Dense kernel runs [1, N, in]·[1, in, out]: with the batch axis of 1 dropped from the
    // other operand and dy, the product is already the weight's [in, out] (no weight-sized reshape)
    const other = weightInput === 'b' ? 'a' : 'b';
    const o = inputs[other];
    if (o !== undefined && o.rank === 3 && o.shape[0] === 1 && dy.rank === 3 && dy.shape[0] === 1) {
      given = { [other]: tf.reshape(o, o.shape.slice(1)) };
      g = tf.reshape(dy, dy.shape.slice(1));
    }
  }
  const config = tf.getGradient(kernel);
  if (config === undefined)
    throw new Error(`forwardVariableGrads: tfjs has no gradient for kernel '${kernel}'`);
  // a matmul's gradient with respect to one operand reads only the other one and dy: the weight itself
  // need not be given (forwardVariableGrads keeps only the other operand of a matmul site)
  const saved = (config.inputsToSave ?? []).map((key) => given[key]);
  const vjp = config.gradFunc(g, saved, attrs as tf.NamedAttrMap) as Record<string, () => tf.Tensor>;
  return vjp[weightInput]();
}

/** Conv2D's filter gradient as a dilated convolution (NHWC, no dilation); null where that does not apply. */
export function conv2dFilterGradient(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: number[],
  attrs: Record<string, unknown>,
): tf.Tensor | null {
  if (attrs.dataFormat === 'NCHW') return null;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape,
    filterShape as [number, number, number, number],
    attrs.strides as [number, number],
    (attrs.dilations ?? 1) as [number, number],
    attrs.pad as 'valid',
    attrs.dimRoundingMode as 'floor' | undefined,
  );
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) return null;
  return tf.tidy(() => {
    const { top, left } = info.padInfo;
    const sh = info.strideHeight;
    const sw = info.strideWidth;
    // the rows and columns of x (padded) that the convolution reads
    const needH = (info.outHeight - 1) * sh + info.filterHeight;
    const needW = (info.outWidth - 1) * sw + info.filterWidth;
    const hs = Math.min(x.shape[1], needH - top);
    const ws = Math.min(x.shape[2], needW - left);
    const cropped = hs < x.shape[1] || ws < x.shape[2] ? tf.slice(x, [0, 0, 0, 0], [-1, hs, ws, -1]) : x;
    const xp =
      top > 0 || left > 0 || needH > top + hs || needW > left + ws
        ? tf.pad(cropped, [
            [0, 0],
            [top, needH - top - hs],
            [left, needW - left - ws],
            [0, 0],
          ])
        : cropped;
    const xt = tf.transpose(xp, [3, 1, 2, 0]) as tf.Tensor4D; // [ci, H, W, N]
    const g = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D; // [oh, ow, N, co]
    const dw = tf.conv2d(xt, g, 1, 'valid', 'NHWC', [sh, sw]); // [ci, fh, fw, co]
    return tf.transpose(dw, [1, 2, 0, 3]);
  });
}
