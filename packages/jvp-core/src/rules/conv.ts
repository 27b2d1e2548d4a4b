import * as tf from '@tensorflow/tfjs';
import { defLinear, foldBatch, linearOutput, withBias } from './helpers.js';
import type { JvpRuleContext, RuleTable } from './registry.js';

/**
 * Convolutions, transposed convolutions, pooling and resizing on NHWC images. Convolutions are bilinear:
 * d conv(x, f) = conv(dx, f) + conv(x, df), each term one call of the kernel itself (with the node's own
 * attributes). With batched tangents K joins the examples axis (dx) or the output channels (df).
 */

function run(kernel: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown>): tf.Tensor {
  return tf.engine().runKernel(kernel, inputs as tf.NamedTensorMap, attrs as tf.NamedAttrMap) as tf.Tensor;
}

/** The unfused attributes of a fused kernel. */
function plain(attrs: Record<string, unknown>): Record<string, unknown> {
  const { activation: _a, leakyreluAlpha: _l, ...rest } = attrs;
  return rest;
}

/**
 * conv(x, df) for a batched df [K, ...filter]: the K filters become K·out output channels of one call,
 * then K moves to the front. `outAxis` is the filter axis whose channels reach the output (3 for
 * convolutions; 2 for the transposed convolution), `channels` the output's channel axis.
 */
function batchedFilter(
  c: JvpRuleContext,
  df: tf.Tensor,
  outAxis: number,
  channels: number,
  conv: (filter: tf.Tensor, extra: number) => tf.Tensor,
): tf.Tensor {
  const k = c.k;
  const fShape = df.shape.slice(1);
  // [K, f0, f1, f2, f3] → K just before filter axis outAxis, merged with it
  const perm = [1, 2, 3, 4];
  perm.splice(outAxis, 0, 0);
  const merged = fShape.slice();
  merged[outAxis] *= k;
  const out = conv(tf.reshape(tf.transpose(df, perm), merged), k);
  const shape = out.shape.slice();
  shape.splice(channels, 1, k, out.shape[channels] / k);
  const rest = shape.map((_, i) => i).filter((i) => i !== channels);
  return tf.transpose(tf.reshape(out, shape), [channels, ...rest]);
}

function channelAxis(c: JvpRuleContext): number {
  return c.attrs.dataFormat === 'NCHW' ? 1 : 3;
}

function convTerms(c: JvpRuleContext): (tf.Tensor | null)[] {
  const { x, filter } = c.inputs;
  const { x: dx, filter: df } = c.tangents;
  const attrs = plain(c.attrs);
  return [
    dx && foldBatch(c, dx, (u) => run(tf.Conv2D, { x: u, filter }, attrs)),
    df &&
      (c.batched
        ? batchedFilter(c, df, 3, channelAxis(c), (f) => run(tf.Conv2D, { x, filter: f }, attrs))
        : run(tf.Conv2D, { x, filter: df }, attrs)),
  ];
}

function depthwiseTerms(c: JvpRuleContext): (tf.Tensor | null)[] {
  const { x, filter } = c.inputs;
  const { x: dx, filter: df } = c.tangents;
  const attrs = plain(c.attrs);
  const kernel = tf.DepthwiseConv2dNative;
  let right: tf.Tensor | null = null;
  if (df !== null) {
    if (!c.batched) right = run(kernel, { x, filter: df }, attrs);
    else {
      if (channelAxis(c) !== 3) throw new Error('jvp: batched depthwise convolution JVPs need NHWC');
      // the output channel of (ci, m) is ci·M + m: K·M multipliers per input channel, then K to the front
      const [k, fh, fw, ci, m] = df.shape;
      const f = tf.reshape(tf.transpose(df, [1, 2, 3, 0, 4]), [fh, fw, ci, k * m]);
      const out = run(kernel, { x, filter: f }, attrs);
      const [n, oh, ow] = out.shape;
      right = tf.reshape(tf.transpose(tf.reshape(out, [n, oh, ow, ci, k, m]), [4, 0, 1, 2, 3, 5]), [
        k,
        n,
        oh,
        ow,
        ci * m,
      ]);
    }
  }
  return [dx && foldBatch(c, dx, (u) => run(kernel, { x: u, filter }, attrs)), right];
}

/**
 * Max pooling: the tangent of the window's first maximal element (row-major, as tfjs's MaxPoolGrad), by
 * comparing each of the window's fh·fw strided views of x with the output. Everything stays rank 4 and
 * finite (K folded into the batch axis; padding marked by a mask, not −∞): tfjs's WebGL backend cannot
 * compile Pad or StridedSlice of rank 5 nor a −∞ pad value, and its WebGPU backend pads rank 5 wrongly.
 * On the cpu backend (tfjs's StridedSlice is slow there) `MaxPoolWithArgmax`'s flat indices gather the
 * tangent instead: the same first maximum.
 */
function maxPoolTangent(c: JvpRuleContext): tf.Tensor | null {
  const dx = c.tangents.x;
  if (dx === null) return null;
  const x = c.inputs.x as tf.Tensor4D;
  if (
    typeof c.attrs.pad === 'string' &&
    c.attrs.dimRoundingMode == null &&
    tf.getBackend() === 'cpu' &&
    tf.getKernel('MaxPoolWithArgmax', 'cpu')
  ) {
    const [pooled, indexes] = tf.engine().runKernel('MaxPoolWithArgmax', { x }, {
      filterSize: c.attrs.filterSize,
      strides: c.attrs.strides,
      pad: c.attrs.pad,
      includeBatchInIndex: true,
    } as tf.NamedAttrMap) as tf.Tensor[];
    pooled.dispose();
    const flat = tf.reshape(dx, c.batched ? [c.k, x.size] : [x.size]);
    return tf.gather(flat, indexes, c.batched ? 1 : 0);
  }
  const y = c.outputs[0];
  const info = tf.backend_util.computePool2DInfo(
    x.shape,
    c.attrs.filterSize as [number, number],
    c.attrs.strides as [number, number],
    1,
    c.attrs.pad as 'valid',
    c.attrs.dimRoundingMode as 'floor' | undefined,
  );
  const { top, bottom, left, right } = info.padInfo;
  if (
    tf.getBackend() === 'tensorflow' &&
    top + bottom + left + right === 0 &&
    info.strideHeight === info.filterHeight &&
    info.strideWidth === info.filterWidth
  ) {
    return maxPoolTiledTangent(c, x, dx, info.filterHeight * info.filterWidth);
  }
  const [n, h, w, ch] = x.shape;
  const { outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw } = info;
  const pads: [number, number][] = [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
  const k = c.batched ? c.k : 1;
  const xp = tf.pad(x, pads);
  const inside = tf.pad(tf.onesLike(x), pads);
  const dxp = tf.pad(c.batched ? tf.reshape(dx, [k * n, h, w, ch]) : dx, pads);
  let taken: tf.Tensor = tf.zeros(y.shape, 'bool');
  let out: tf.Tensor | null = null;
  for (let i = 0; i < info.filterHeight; i++) {
    for (let j = 0; j < info.filterWidth; j++) {
      const end = [n, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, ch];
      const view = (t: tf.Tensor, examples: number) =>
        tf.stridedSlice(t, [0, i, j, 0], [examples, ...end.slice(1)], [1, sh, sw, 1]);
      const max = tf.logicalAnd(tf.equal(view(xp, n), y), tf.greater(view(inside, n), 0));
      const hit = tf.logicalAnd(max, tf.logicalNot(taken));
      taken = tf.logicalOr(taken, hit);
      const ds = view(dxp, k * n);
      const term = tf.mul(c.batched ? tf.reshape(ds, [k, n, oh, ow, ch]) : ds, tf.cast(hit, 'float32'));
      out = out === null ? term : tf.add(out, term);
    }
  }
  return out;
}

/**
 * Max pooling over windows that tile the input (stride = window, no padding: the common 2×2 / 2). Each input
 * entry lies in one window, so the backend's own MaxPoolGrad of ones marks each window's maximum (the one its
 * reverse mode picks at a tie: the first, row-major, on tfjs-node) with a 1, and the window sums of mask·dx
 * are the tangent (an average pool times the window's size). On tfjs-node, whose kernels each cost a
 * TensorFlow op call, this replaces three strided views (and their comparisons) per window element: the JVP of a 2×2 pool of
 * [32, 26, 26, 8] took 19.4 ms that way (the machine busy; the pool itself 0.25 ms).
 */
function maxPoolTiledTangent(c: JvpRuleContext, x: tf.Tensor4D, dx: tf.Tensor, size: number): tf.Tensor {
  const y = c.outputs[0];
  const attrs = c.attrs;
  const mask = run(tf.MaxPoolGrad, { dy: tf.onesLike(y), input: x, output: y }, attrs);
  const k = c.batched ? c.k : 1;
  const [n, h, w, ch] = x.shape;
  const masked = tf.mul(dx, mask);
  const pooled = run(
    tf.AvgPool,
    { x: c.batched ? tf.reshape(masked, [k * n, h, w, ch]) : masked },
    {
      filterSize: attrs.filterSize,
      strides: attrs.strides,
      pad: attrs.pad,
      dimRoundingMode: attrs.dimRoundingMode,
    },
  );
  const sums = tf.mul(pooled, size);
  return c.batched ? tf.reshape(sums, [k, ...y.shape]) : sums;
}

export const convRules: RuleTable = {
  [tf.Conv2D]: (c) => linearOutput(c, convTerms(c)),
  [tf.FusedConv2D]: (c) =>
    linearOutput(c, [...convTerms(c), c.tangents.bias ?? null], () =>
      withBias(run(tf.Conv2D, { x: c.inputs.x, filter: c.inputs.filter }, plain(c.attrs)), c),
    ),
  [tf.DepthwiseConv2dNative]: (c) => linearOutput(c, depthwiseTerms(c)),
  [tf.FusedDepthwiseConv2D]: (c) =>
    linearOutput(c, [...depthwiseTerms(c), c.tangents.bias ?? null], () =>
      withBias(run(tf.DepthwiseConv2dNative, { x: c.inputs.x, filter: c.inputs.filter }, plain(c.attrs)), c),
    ),
  // conv2dTranspose: y = conv2DBackpropInput(dy, filter), linear in both
  [tf.Conv2DBackpropInput]: (c) => {
    const { dy, filter } = c.inputs;
    const { dy: ddy, filter: df } = c.tangents;
    const shape = c.attrs.inputShape as number[];
    const withShape = (s: number[]) => ({ ...c.attrs, inputShape: s });
    const ch = channelAxis(c);
    return linearOutput(c, [
      ddy &&
        foldBatch(c, ddy, (u) =>
          run(tf.Conv2DBackpropInput, { dy: u, filter }, withShape([u.shape[0], ...shape.slice(1)])),
        ),
      df &&
        (c.batched
          ? batchedFilter(c, df, 2, ch, (f, k) =>
              run(
                tf.Conv2DBackpropInput,
                { dy, filter: f },
                withShape(shape.map((d, i) => (i === ch ? d * k : d))),
              ),
            )
          : run(tf.Conv2DBackpropInput, { dy, filter: df }, c.attrs)),
    ]);
  },
  [tf.MaxPool]: maxPoolTangent,
  [tf.AvgPool]: defLinear('x', (t, c) => run(tf.AvgPool, { x: t }, c.attrs), 'fold'),
  [tf.ResizeNearestNeighbor]: defLinear(
    'images',
    (t, c) => run(tf.ResizeNearestNeighbor, { images: t }, c.attrs),
    'fold',
  ),
  [tf.ResizeBilinear]: defLinear('images', (t, c) => run(tf.ResizeBilinear, { images: t }, c.attrs), 'fold'),
};
