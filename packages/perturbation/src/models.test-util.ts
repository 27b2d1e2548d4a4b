import * as tf from '@tensorflow/tfjs';
import { type Linearizable, layerNorm, layerNormFunction } from '@fwdgrad/jvp-core';
import { plainSites, type Sites } from './index.js';
import { rand } from './testing.test-util.js';

/** A small MLP 3 → 5 (LN, ReLU) → 2 with squared error, written once against Sites. Per-example losses [6]. */
export function smallMlp(seed = 1) {
  const x = rand([6, 3], seed);
  const y = rand([6, 2], seed + 1);
  const params = [
    rand([3, 5], seed + 2),
    rand([5], seed + 3, -0.3, 0.3),
    rand([5, 2], seed + 4),
    rand([2], seed + 5, -0.3, 0.3),
  ];
  const forward = ([w1, b1, w2, b2]: tf.Tensor[], sites: Sites) => {
    const h = sites.linear('hidden', x, w1, b1, { normalize: (z) => layerNorm(z, -1) });
    const out = sites.linear('out', h, w2, b2, { activation: 'none' });
    return tf.sum(tf.square(tf.sub(out, y)), 1);
  };
  const meanLoss = (...ps: tf.Tensor[]) => tf.mean(forward(ps, plainSites));
  const exact = () => tf.grads(meanLoss)(params);
  const dispose = () => tf.dispose([x, y, ...params]);
  return { x, y, params, forward, meanLoss, exact, dispose };
}

/**
 * A small mixer-like network exercising every layout: token mixing x[N, C, P]·W[P, P] (LN over channels),
 * a grouped layer (LN per group), a dense layer with a residual connection (LN), and a dense readout.
 * N = 4, C = 4, P = 3, G = 2. Per-example losses [4]. `linearizable`: the norms are jvp-core's
 * `layerNormFunction` (the estimate reuses their forward pass) instead of plain functions (tf.grad).
 */
export function smallMixer(seed = 1, linearizable = false) {
  const norm = (axis: number): Linearizable =>
    linearizable ? layerNormFunction(axis) : (z: tf.Tensor) => layerNorm(z, axis);
  const n = 4;
  const x = rand([n, 4, 3], seed); // [N, C, P]
  const y = rand([n, 2], seed + 1);
  const params = [
    rand([3, 3], seed + 2), // token W [P, P]
    rand([3], seed + 3, -0.3, 0.3),
    rand([2, 2, 3], seed + 4), // grouped W [G, C/G, 3]
    rand([2, 3], seed + 5, -0.3, 0.3),
    rand([6, 6], seed + 6, -0.5, 0.5), // dense with residual
    rand([6], seed + 7, -0.3, 0.3),
    rand([6, 2], seed + 8), // readout
    rand([2], seed + 9, -0.3, 0.3),
  ];
  const forward = ([wt, bt, wg, bg, wd, bd, wo, bo]: tf.Tensor[], sites: Sites) => {
    const t = sites.linear('token', x, wt, bt, { layout: 'token', normalize: norm(1) });
    const h = tf.reshape(tf.transpose(t, [0, 2, 1]), [n, 3, 2, 2]); // [N, P, G, C/G]
    const g = sites.linear('grouped', h, wg, bg, { layout: 'grouped', normalize: norm(-1) });
    const flatG = tf.reshape(g, [n, 3, 6]);
    const d = sites.linear('dense', flatG, wd, bd, { normalize: norm(-1), residual: flatG });
    const out = sites.linear('out', tf.mean(d, 1), wo, bo, { activation: 'none' });
    return tf.sum(tf.square(tf.sub(out, y)), 1);
  };
  const meanLoss = (...ps: tf.Tensor[]) => tf.mean(forward(ps, plainSites));
  const exact = () => tf.grads(meanLoss)(params);
  const dispose = () => tf.dispose([x, y, ...params]);
  /** Units per example of each site. */
  const units: Record<string, number[]> = { token: [4, 3], grouped: [3, 2, 3], dense: [3, 6], out: [2] };
  return { n, x, y, params, forward, meanLoss, exact, dispose, units };
}
