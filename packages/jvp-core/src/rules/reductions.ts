import * as tf from '@tensorflow/tfjs';
import { axesOf, axisOf, defLinear, lead } from './helpers.js';
import type { JvpRule, RuleTable } from './registry.js';

/** Reductions and normalising maps over an axis (softmax). */

function extremum(axisAttr: string): JvpRule {
  // Consistent with tfjs's gradient of Max/Min: the tangent of every element equal to the extremum
  // flows to the output (ties add up).
  return (c) => {
    const dx = c.tangents.x;
    if (dx === null) return null;
    const x = c.inputs.x;
    const axes = axesOf(c, c.attrs[axisAttr], x.rank).map((a) => a - lead(c));
    const yKeep = tf.reshape(
      c.outputs[0],
      x.shape.map((d, i) => (axes.includes(i) ? 1 : d)),
    );
    // the extremum tiled to x's shape first: tfjs's cpu Equal is a plain loop on equal shapes but an
    // index computation per element when it broadcasts (0.15 ms on a [128, 10] softmax's max, more than
    // every other kernel of its JVP together)
    const mask = tf.cast(tf.equal(x, tf.broadcastTo(yKeep, x.shape)), 'float32');
    return tf.sum(tf.mul(dx, mask), axesOf(c, c.attrs[axisAttr], x.rank), c.attrs.keepDims as boolean);
  };
}

export const reductionRules: RuleTable = {
  [tf.Sum]: defLinear('x', (t, c) =>
    tf.sum(t, axesOf(c, c.attrs.axis, c.inputs.x.rank), c.attrs.keepDims as boolean),
  ),
  [tf.Mean]: defLinear('x', (t, c) =>
    tf.mean(t, axesOf(c, c.attrs.axis, c.inputs.x.rank), c.attrs.keepDims as boolean),
  ),
  [tf.Max]: extremum('reductionIndices'),
  [tf.Min]: extremum('axis'),
  [tf.Softmax]: (c) => {
    // dy = y ⊙ (dx − Σ dx ⊙ y)
    const dx = c.tangents.logits;
    if (dx === null) return null;
    const y = c.outputs[0];
    const axis = axisOf(c, c.attrs.dim as number, y.rank);
    return tf.mul(y, tf.sub(dx, tf.sum(tf.mul(dx, y), axis, true)));
  },
};
