import * as tf from '@tensorflow/tfjs';
import { groupedMatMul, type Linearizable, stopGradient } from '@fwdgrad/jvp-core';
import { configSizes, type LocalMixerConfig, startsMidway } from './config.js';

/**
 * How a linear layer contracts its input (REFERENCE 0):
 * - `'dense'`: x[..., in]·W[in, out] + b[out] (patch embedding, dense channel mixing);
 * - `'grouped'`: x[..., G, in/G] × W[G, in/G, out/G] + b[G, out/G], each group its own map (`'npgc,gcd->npgd'`);
 * - `'token'`: token mixing, x[N, C, P]·W[P, P] + b[P], one map shared by all channels.
 */
export type LinearLayout = 'dense' | 'grouped' | 'token';

/** One backbone linear layer. */
export interface LinearSite {
  /** Backbone layer index 0..NL−1 in REFERENCE 0 order (also the index into `params.backbone`). */
  index: number;
  /** Block of the layer. */
  block: number;
  /** Layer within the block: block 0 has 0 (dense) and 1 (grouped); blocks ≥ 1 have 0 (token), 1 (dense), 2 (grouped). */
  layer: number;
  /** How the layer contracts its input. */
  layout: LinearLayout;
}

/**
 * What the forward pass asks of a learning rule (DESIGN principle 1). The LocalMixer forward pass is written
 * once against this interface; learning rules differ only in the context they pass, and the model never asks
 * which rule runs.
 */
export interface LayerContext {
  /**
   * The linear map of a site. dense: x[..., in]·W[in,out] + b[out]; grouped: x[N,P,G,in/G] × W[G,in/G,out/G] +
   * b[G,out/G]; token: x[N,C,P]·W[P,P] + b[P]. {@link applyLinear} is the plain implementation.
   */
  linear(site: LinearSite, x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor;
  /**
   * After a linear layer: returns relu(normalize(prenorm) [+ residual]). `pre` is the linear's input, `prenorm`
   * its output, `normalize` this site's post-linear normalisation (identity when post-linear normalisation is off;
   * linearisable when it is a norm, so that an activity estimate can reuse its forward pass for the VJP),
   * `residual` the raw block input of the last layer of blocks ≥ 1. Activity perturbation adds its noise tangent
   * after `normalize` and before the residual and ReLU (REFERENCE 1.6) and records pre, prenorm and the output.
   * The forward pass runs inside `tf.tidy`: a context that stores tensors must `tf.keep` them.
   */
  activate(
    site: LinearSite,
    a: { pre: tf.Tensor; prenorm: tf.Tensor; normalize: Linearizable; residual?: tf.Tensor },
  ): tf.Tensor;
  /**
   * Block boundary: applied to block `block`'s output on its way into block `block + 1` (identity for BP/L-BP,
   * stopGradient for the local greedy rules). Not applied to the outputs that {@link forwardBackbone} returns
   * for the local losses, nor after the last block.
   */
  blockBoundary(block: number, h: tf.Tensor): tf.Tensor;
}

/**
 * The backbone linear sites of a configuration in REFERENCE 0 order (NL = 2 + 3·(NBLK−1) of them). In a slice
 * without block 0 ({@link sliceConfig}) every block is a mixer block: 3·NBLK sites, indices and blocks counted
 * from the slice's start.
 */
export function linearSites(config: LocalMixerConfig): LinearSite[] {
  const midway = startsMidway(config);
  const sites: LinearSite[] = midway
    ? []
    : [
        { index: 0, block: 0, layer: 0, layout: 'dense' },
        { index: 1, block: 0, layer: 1, layout: 'grouped' },
      ];
  for (let block = midway ? 0 : 1; block < config.blocks; block++) {
    const layouts: LinearLayout[] = ['token', 'dense', 'grouped'];
    layouts.forEach((layout, layer) => {
      sites.push({ index: sites.length, block, layer, layout });
    });
  }
  return sites;
}

/**
 * The shape of a site's activation (its linear output, the post-linear normalisation and the ReLU) for a
 * batch of `batch` examples: the shape of the activity-perturbation noise of REFERENCE 1.6.
 */
export function siteActivationShape(config: LocalMixerConfig, site: LinearSite, batch: number): number[] {
  const s = configSizes(config);
  const P = s.numPatches;
  if (site.layout === 'token') return [batch, config.channels, P];
  if (site.layout === 'dense') return [batch, P, config.hidden];
  return [batch, P, config.groups, s.groupChannels];
}

function denseLinear(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const lead = x.shape.slice(0, -1);
  const inDim = x.shape[x.rank - 1];
  const outDim = w.shape[1] as number;
  const y = tf.matMul(tf.reshape(x, [-1, inDim]), w);
  return tf.add(tf.reshape(y, [...lead, outDim]), b);
}

function groupedLinear(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor {
  // 'npgc,gcd->npgd' without Einsum (the wasm backend has none): jvp-core's grouped product, G strided
  // products on x's own layout where the backend has the kernel (@fwdgrad/native), else transpose →
  // batched matMul → transpose.
  return tf.add(groupedMatMul(x, w, 'nn'), b);
}

/**
 * The plain linear map of a layout (see {@link LinearLayout}); checks that x, w and b fit. Token mixing is the
 * dense contraction over the last (token) axis of x[N, C, P].
 */
export function applyLinear(layout: LinearLayout, x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const fail = (expected: string) => {
    throw new Error(
      `LocalMixer ${layout} linear: input ${JSON.stringify(x.shape)}, weight ${JSON.stringify(w.shape)} and bias ` +
        `${JSON.stringify(b.shape)} do not fit; expected ${expected}.`,
    );
  };
  if (layout === 'grouped') {
    const [g, ci] = x.shape.slice(-2);
    if (x.rank < 3 || w.rank !== 3 || w.shape[0] !== g || w.shape[1] !== ci)
      fail('x[..., G, in/G], w[G, in/G, out/G]');
    if (b.rank !== 2 || b.shape[0] !== g || b.shape[1] !== w.shape[2]) fail('b[G, out/G]');
    return groupedLinear(x, w, b);
  }
  if (w.rank !== 2 || x.rank < 2 || x.shape[x.rank - 1] !== w.shape[0]) fail('x[..., in], w[in, out]');
  if (b.rank !== 1 || b.shape[0] !== w.shape[1]) fail('b[out]');
  if (layout === 'token' && w.shape[0] !== w.shape[1]) fail('a square token-mixing weight w[P, P]');
  return denseLinear(x, w, b);
}

/**
 * The context of the exact rules (BP, L-BP, LG-BP): plain ops, gradients from tfjs autodiff, forward tangents
 * from jvp-core. With `stopGradientBetweenBlocks` (the local greedy rules, REFERENCE 1.1) each block boundary
 * is `stopGradient` from `@fwdgrad/jvp-core`, which cuts reverse-mode gradients and forward tangents alike;
 * otherwise the identity.
 */
export function exactContext(opts: { stopGradientBetweenBlocks?: boolean } = {}): LayerContext {
  const stop = opts.stopGradientBetweenBlocks === true;
  return {
    linear: (site, x, w, b) => applyLinear(site.layout, x, w, b),
    activate: (_site, { prenorm, normalize, residual }) => {
      const z = normalize(prenorm);
      return tf.relu(residual === undefined ? z : tf.add(z, residual));
    },
    blockBoundary: (_block, h) => (stop ? stopGradient(h) : h),
  };
}
