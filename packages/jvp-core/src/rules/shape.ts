import * as tf from '@tensorflow/tfjs';
import { axesOf, axisOf, defLinear, fit, lead, lift, tangentShape } from './helpers.js';
import type { JvpRuleContext, RuleTable } from './registry.js';

/** Shape and data-movement kernels: all linear in their data input, so most are one `defLinear`. */

const toOutputShape = defLinear('x', (t, c) => tf.reshape(t, tangentShape(c, c.outputs[0].shape)));

function zerosFor(c: JvpRuleContext, key: string): tf.Tensor {
  return c.tangents[key] ?? tf.zeros(tangentShape(c, c.inputs[key].shape));
}

export const shapeRules: RuleTable = {
  [tf.Reshape]: toOutputShape,
  [tf.ExpandDims]: defLinear('input', (t, c) => tf.reshape(t, tangentShape(c, c.outputs[0].shape))),
  [tf.Transpose]: defLinear('x', (t, c) => {
    const perm = c.attrs.perm as number[];
    return tf.transpose(t, c.batched ? [0, ...perm.map((p) => p + 1)] : perm);
  }),
  [tf.Slice]: defLinear('x', (t, c) => {
    const [begin, size] = tf.slice_util.parseSliceParams(
      c.inputs.x,
      c.attrs.begin as number | number[],
      c.attrs.size as number | number[] | undefined,
    );
    return c.batched ? tf.slice(t, [0, ...begin], [-1, ...size]) : tf.slice(t, begin, size);
  }),
  [tf.StridedSlice]: defLinear(
    'x',
    (t, c) => {
      const a = c.attrs as Record<string, number | number[]>;
      return tf.stridedSlice(
        t,
        a.begin as number[],
        a.end as number[],
        a.strides as number[],
        a.beginMask as number,
        a.endMask as number,
        a.ellipsisMask as number,
        a.newAxisMask as number,
        a.shrinkAxisMask as number,
      );
    },
    'map',
  ),
  [tf.Concat]: (c) =>
    tf.concat(
      Object.keys(c.inputs).map((key) => zerosFor(c, key)),
      axisOf(c, c.attrs.axis as number, c.outputs[0].rank),
    ),
  [tf.Pack]: (c) =>
    tf.stack(
      Object.keys(c.inputs).map((key) => zerosFor(c, key)),
      axisOf(c, c.attrs.axis as number, c.outputs[0].rank),
    ),
  [tf.Unpack]: defLinear('value', (t, c) =>
    tf.unstack(t, axisOf(c, c.attrs.axis as number, c.inputs.value.rank)),
  ),
  [tf.SplitV]: defLinear('x', (t, c) => {
    const axis = axisOf(c, c.attrs.axis as number, c.inputs.x.rank);
    return tf.split(
      t,
      c.outputs.map((o) => o.shape[axis - lead(c)]),
      axis,
    );
  }),
  [tf.Tile]: defLinear('x', (t, c) => {
    const reps = c.attrs.reps as number[];
    return tf.tile(t, c.batched ? [1, ...reps] : reps);
  }),
  [tf.BroadcastTo]: defLinear('x', (t, c) => fit(c, lift(c, t, c.outputs[0].rank))),
  [tf.PadV2]: defLinear('x', (t, c) => {
    const paddings = c.attrs.paddings as [number, number][];
    return tf.pad(t, c.batched ? [[0, 0], ...paddings] : paddings, 0);
  }),
  [tf.Reverse]: defLinear('x', (t, c) => tf.reverse(t, axesOf(c, c.attrs.dims, c.inputs.x.rank))),
  [tf.GatherV2]: (c) => {
    const batchDims = (c.attrs.batchDims as number) ?? 0;
    const axis = c.attrs.axis as number;
    const gather = defLinear(
      'x',
      (t, cc) =>
        batchDims === 0
          ? tf.gather(t, cc.inputs.indices, axisOf(cc, axis, cc.inputs.x.rank))
          : tf.gather(t, cc.inputs.indices, axis, batchDims),
      batchDims === 0 ? 'lead' : 'map',
    );
    return gather(c);
  },
};
