import * as tf from '@tensorflow/tfjs';
import { type Linearizable, stopGradient } from '@fwdgrad/jvp-core';
import { applyLinear, type LinearLayout } from '@fwdgrad/linear';
import { configSizes, type LocalMixerConfig, startsMidway } from './config.js';

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
   * b[G,out/G]; token: x[N,C,P]·W[P,P] + b[P]. `applyLinear` of `@fwdgrad/linear` is the plain implementation.
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

/**
 * The context of the exact rules (BP, L-BP, LG-BP): plain ops, gradients from tfjs autodiff, forward tangents
 * from jvp-core. With `stopGradientBetweenBlocks` (the local greedy rules, REFERENCE 1.1) each block boundary
 * is `stopGradient` from `@fwdgrad/jvp-core`, which cuts reverse-mode gradients and forward tangents alike;
 * otherwise the identity.
 */
export function exactContext(opts: { stopGradientBetweenBlocks?: boolean } = {}): LayerContext {
  const stop = opts.stopGradientBetweenBlocks === true;
  return {
    linear: (site, x, w, b) => applyLinear(site.layout, x, w, b, `LocalMixer layer ${site.index}`),
    activate: (_site, { prenorm, normalize, residual }) => {
      const z = normalize(prenorm);
      return tf.relu(residual === undefined ? z : tf.add(z, residual));
    },
    blockBoundary: (_block, h) => (stop ? stopGradient(h) : h),
  };
}
