import * as tf from '@tensorflow/tfjs';
import { initWeight } from '@fwdgrad/linear';
import { createRandom, type Random } from '@fwdgrad/random';
import { configSizes, type LocalMixerConfig, sliceConfig, startsMidway } from './config.js';
import { linearSites } from './context.js';

/** Weight and bias of one linear layer. */
export interface LinearParams<T extends tf.Tensor = tf.Tensor> {
  w: T;
  b: T;
}

/**
 * All parameters of a LocalMixer, in REFERENCE 0 order: the NL backbone layers, one local head per block,
 * the final projection (contrastive only), the final classifier.
 */
export interface LocalMixerParams<T extends tf.Tensor = tf.Variable> {
  /** Backbone linear layers, indexed by {@link LinearSite.index}. */
  backbone: LinearParams<T>[];
  /** Local head of each block: [C, K] (supervised) or [C, projectionDim] (contrastive). */
  heads: LinearParams<T>[];
  /** Contrastive only: the final projection [C, projectionDim]. */
  projection?: LinearParams<T>;
  /** Final classifier [C, K] (zero-initialised). */
  classifier: LinearParams<T>;
}

/** Shapes of all parameters, same structure as {@link LocalMixerParams}. */
export interface LocalMixerParamShapes {
  backbone: { w: number[]; b: number[] }[];
  heads: { w: number[]; b: number[] }[];
  projection?: { w: number[]; b: number[] };
  classifier: { w: number[]; b: number[] };
}

/** Parameter shapes of a configuration (REFERENCE 0 table). */
export function paramShapes(config: LocalMixerConfig): LocalMixerParamShapes {
  const s = configSizes(config);
  const { channels: C, hidden: Hd, groups: G, numClasses: K } = config;
  const P = s.numPatches;
  const Cg = s.groupChannels;
  const backbone = linearSites(config).map((site) => {
    if (site.layout === 'token') return { w: [P, P], b: [P] };
    if (site.layout === 'grouped') return { w: [G, s.groupHidden, Cg], b: [G, Cg] };
    // Dense: the patch embedding in block 0, the channel-mixing layer later.
    const inDim = site.block === 0 && !startsMidway(config) ? s.patchDim : C;
    return { w: [inDim, Hd], b: [Hd] };
  });
  const headOut = config.objective === 'contrastive' ? config.projectionDim : K;
  const heads = Array.from({ length: config.blocks }, () => ({ w: [C, headOut], b: [headOut] }));
  const out: LocalMixerParamShapes = { backbone, heads, classifier: { w: [C, K], b: [K] } };
  if (config.objective === 'contrastive') {
    out.projection = { w: [C, config.projectionDim], b: [config.projectionDim] };
  }
  return out;
}

/** Parameter counts by part; `total` is what paper Table 2 reports (see {@link countParameters}). */
export interface ParameterCounts {
  backbone: number;
  heads: number;
  projection: number;
  classifier: number;
  total: number;
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const pairSize = (p: { w: number[]; b: number[] }) => size(p.w) + size(p.b);

/** Parameter counts of a configuration by part (weights and biases). */
export function countParametersByPart(config: LocalMixerConfig): ParameterCounts {
  const shapes = paramShapes(config);
  const backbone = shapes.backbone.reduce((a, p) => a + pairSize(p), 0);
  const heads = shapes.heads.reduce((a, p) => a + pairSize(p), 0);
  const projection = shapes.projection ? pairSize(shapes.projection) : 0;
  const classifier = pairSize(shapes.classifier);
  return { backbone, heads, projection, classifier, total: backbone + heads + projection + classifier };
}

/**
 * Number of learnable parameters: backbone + local heads + (contrastive) projection + final classifier, weights
 * and biases. This convention reproduces paper Table 2 for S/1/1, M/1/16, M/8/16 and L/8/64 (supervised,
 * K = 10); see the README for L/32/64.
 */
export function countParameters(config: LocalMixerConfig): number {
  return countParametersByPart(config).total;
}

/**
 * Fresh parameters as `tf.Variable`s (the caller owns them; see {@link disposeParams}). Weights are drawn in
 * REFERENCE 0 order from one seeded stream (`createRandom(seed)` of `@fwdgrad/random`, or the given stream): backbone layers,
 * local heads, projection; biases are zero and the final classifier is zero-initialised. Same seed, same numbers.
 */
export function initParams(config: LocalMixerConfig, seed: number | Random): LocalMixerParams {
  const random = typeof seed === 'number' ? createRandom(seed) : seed;
  const shapes = paramShapes(config);
  const drawn = (p: { w: number[]; b: number[] }): LinearParams<tf.Variable> => {
    const w = initWeight(p.w, config.init, random);
    const out = { w: tf.variable(w), b: zeroVariable(p.b) };
    w.dispose();
    return out;
  };
  const backbone = shapes.backbone.map(drawn);
  const heads = shapes.heads.map(drawn);
  const projection = shapes.projection ? drawn(shapes.projection) : undefined;
  const classifier = { w: zeroVariable(shapes.classifier.w), b: zeroVariable(shapes.classifier.b) };
  const params: LocalMixerParams = { backbone, heads, classifier };
  if (projection) params.projection = projection;
  return params;
}

function zeroVariable(shape: number[]): tf.Variable {
  const z = tf.zeros(shape);
  const v = tf.variable(z);
  z.dispose();
  return v;
}

/**
 * The parameters of blocks `first`…`first + count − 1` (see {@link sliceConfig}): the same tensors, not
 * copies — the slice's backbone layers (indexed from 0), its blocks' local heads, and the whole network's
 * final classifier (and projection) so that a slice ending at the last block is complete.
 */
export function sliceParams<T extends tf.Tensor>(
  config: LocalMixerConfig,
  params: LocalMixerParams<T>,
  first: number,
  count: number,
): LocalMixerParams<T> {
  sliceConfig(config, first, count); // checks the range
  const sites = linearSites(config);
  const layers = sites.filter((s) => s.block >= first && s.block < first + count).map((s) => s.index);
  const out: LocalMixerParams<T> = {
    backbone: layers.map((i) => params.backbone[i]),
    heads: params.heads.slice(first, first + count),
    classifier: params.classifier,
  };
  if (params.projection) out.projection = params.projection;
  return out;
}

/** All parameter tensors in REFERENCE 0 order (backbone w,b…, heads w,b…, projection, classifier). */
export function flattenParams<T extends tf.Tensor>(params: LocalMixerParams<T>): T[] {
  const out: T[] = [];
  for (const p of params.backbone) out.push(p.w, p.b);
  for (const p of params.heads) out.push(p.w, p.b);
  if (params.projection) out.push(params.projection.w, params.projection.b);
  out.push(params.classifier.w, params.classifier.b);
  return out;
}

/** Disposes every tensor of a parameter set. */
export function disposeParams(params: LocalMixerParams<tf.Tensor>): void {
  for (const t of flattenParams(params)) t.dispose();
}

/**
 * Plain-tensor copies of the parameters (the caller owns them): e.g. a snapshot, or primals to pass to `jvp`.
 */
export function paramsToTensors(params: LocalMixerParams<tf.Tensor>): LocalMixerParams<tf.Tensor> {
  const copy = (p: LinearParams<tf.Tensor>): LinearParams<tf.Tensor> => ({
    w: tf.clone(p.w),
    b: tf.clone(p.b),
  });
  const out: LocalMixerParams<tf.Tensor> = {
    backbone: params.backbone.map(copy),
    heads: params.heads.map(copy),
    classifier: copy(params.classifier),
  };
  if (params.projection) out.projection = copy(params.projection);
  return out;
}
