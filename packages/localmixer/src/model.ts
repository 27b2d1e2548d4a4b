import * as tf from '@tensorflow/tfjs';
import { type Linearizable, layerNorm } from '@fwdgrad/jvp-core';
import { configSizes, type LocalMixerConfig, startsMidway } from './config.js';
import { exactContext, type LayerContext, type LinearSite, linearSites } from './context.js';
import { normalizer, normalizeWith } from './norm.js';

/**
 * The post-linear "normalisation" of placements without one; its VJP is the cotangent itself (an alias),
 * so an activity estimate never differentiates it with `tf.grad`.
 */
const identity: Linearizable = Object.assign((z: tf.Tensor) => z, {
  linearize: (z: tf.Tensor) => ({ y: z, vjp: (g: tf.Tensor) => tf.reshape(g, g.shape), dispose: () => {} }),
});
import { type LinearParams, type LocalMixerParams, paramShapes } from './params.js';

const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** Per-channel normalisation applied by {@link patchify} before cutting patches (REFERENCE 5 statistics). */
export interface ImageNormalization {
  /** Per-channel mean (one entry per image channel). */
  mean: number[];
  /** Per-channel standard deviation. */
  std: number[];
}

function checkImages(config: LocalMixerConfig, images: tf.Tensor, what: string): void {
  const [h, w, c] = config.imageShape;
  if (images.rank !== 4 || images.shape[1] !== h || images.shape[2] !== w || images.shape[3] !== c) {
    throw new Error(
      `LocalMixer ${what}: images have shape ${fmt(images.shape)} but the config expects [N, ${h}, ${w}, ${c}] ` +
        `(NHWC); resize the images or set imageShape to [${images.shape.slice(1).join(', ')}].`,
    );
  }
}

/**
 * Cuts images [N, H, W, C] into the config's np×np grid of non-overlapping patches: [N, P, D_in], each patch
 * flattened in (h, w, c) order, tokens in row-major order (REFERENCE 2 "Preprocessing"). With `normalization`
 * each channel is first mapped to (x − mean)/std.
 */
export function patchify(
  images: tf.Tensor,
  config: LocalMixerConfig,
  normalization?: ImageNormalization,
): tf.Tensor {
  checkImages(config, images, 'patchify');
  const [h, w, c] = config.imageShape;
  if (normalization && (normalization.mean.length !== c || normalization.std.length !== c)) {
    throw new Error(
      `LocalMixer patchify: normalization has ${normalization.mean.length} means and ${normalization.std.length} ` +
        `stds but the images have ${c} channels; give one of each per channel.`,
    );
  }
  const np = config.patchesPerSide;
  const ph = h / np;
  const pw = w / np;
  const n = images.shape[0];
  return tf.tidy(() => {
    let x = tf.cast(images, 'float32');
    if (normalization) x = tf.div(tf.sub(x, tf.tensor1d(normalization.mean)), tf.tensor1d(normalization.std));
    // [N, np, ph, np, pw, C] → [N, np(row), np(col), ph, pw, C] → [N, P, ph·pw·C]
    const grid = tf.transpose(tf.reshape(x, [n, np, ph, np, pw, c]), [0, 1, 3, 2, 4, 5]);
    return tf.reshape(grid, [n, np * np, ph * pw * c]);
  });
}

/** Inverse of {@link patchify} without normalisation: patches [N, P, D_in] → images [N, H, W, C]. */
export function unpatchify(patches: tf.Tensor, config: LocalMixerConfig): tf.Tensor {
  const s = configSizes(config);
  const [h, w, c] = config.imageShape;
  checkPatches(config, patches, 'unpatchify');
  const np = config.patchesPerSide;
  const [ph, pw] = s.patchSize;
  const n = patches.shape[0];
  return tf.tidy(() =>
    tf.reshape(tf.transpose(tf.reshape(patches, [n, np, np, ph, pw, c]), [0, 1, 3, 2, 4, 5]), [n, h, w, c]),
  );
}

function checkPatches(config: LocalMixerConfig, x: tf.Tensor, what: string): void {
  const s = configSizes(config);
  if (x.rank !== 3 || x.shape[1] !== s.numPatches || x.shape[2] !== s.patchDim) {
    throw new Error(
      `LocalMixer ${what}: input has shape ${fmt(x.shape)} but the config expects [N, ${s.numPatches}, ${s.patchDim}] ` +
        `(N, P = ${config.patchesPerSide}², D_in = patch pixels × channels); pass images through patchify(images, config).`,
    );
  }
}

function checkBackbone(config: LocalMixerConfig, backbone: LinearParams[]): void {
  const shapes = paramShapes(config).backbone;
  if (!Array.isArray(backbone) || backbone.length !== shapes.length) {
    throw new Error(
      `LocalMixer forwardBackbone: params.backbone has ${backbone?.length} layers but the config (${config.blocks} blocks) ` +
        `needs ${shapes.length} (2 + 3·(blocks − 1)); create them with initParams(config, seed).`,
    );
  }
  shapes.forEach((s, i) => {
    const p = backbone[i];
    if (fmt(p.w.shape) !== fmt(s.w) || fmt(p.b.shape) !== fmt(s.b)) {
      throw new Error(
        `LocalMixer forwardBackbone: backbone layer ${i} has weight ${fmt(p.w.shape)} and bias ${fmt(p.b.shape)} ` +
          `but the config needs ${fmt(s.w)} and ${fmt(s.b)}; were the parameters made for another config?`,
      );
    }
  });
}

/**
 * Block 0 (REFERENCE 2, no residual): [LN] → dense patch embedding → LN over Hd → ReLU → groups → [LN per group]
 * → grouped linear → LN per group → ReLU. Returns [N, P, G, C′].
 */
function block0(
  config: LocalMixerConfig,
  sites: LinearSite[],
  params: LinearParams[],
  x: tf.Tensor,
  ctx: LayerContext,
) {
  const { begin, middle, postLinear } = config.placement;
  const kind = config.norm;
  const [n, P] = x.shape;
  const G = config.groups;
  const post = (axes: number[]) => (postLinear ? normalizer(kind, axes) : identity);

  const s0 = sites[0];
  const pre0 = begin ? normalizeWith(kind, x, [-1]) : x;
  const z0 = ctx.linear(s0, pre0, params[s0.index].w, params[s0.index].b); // [N, P, Hd]
  const h0 = ctx.activate(s0, { pre: pre0, prenorm: z0, normalize: post([-1]) });

  const s1 = sites[1];
  const grouped = tf.reshape(h0, [n, P, G, config.hidden / G]);
  const pre1 = middle ? normalizeWith(kind, grouped, [-1]) : grouped;
  const z1 = ctx.linear(s1, pre1, params[s1.index].w, params[s1.index].b); // [N, P, G, C′]
  return ctx.activate(s1, { pre: pre1, prenorm: z1, normalize: post([-1]) });
}

/**
 * Mixer block k ≥ 1 (REFERENCE 2): token mixing on [N, C, P] (LN over channels), dense channel mixing (LN over
 * Hd), grouped channel mixing (LN per group), the raw block input added before the last ReLU.
 */
function mixerBlock(
  config: LocalMixerConfig,
  sites: LinearSite[],
  params: LinearParams[],
  input: tf.Tensor,
  ctx: LayerContext,
) {
  const { begin, middle, postLinear } = config.placement;
  const kind = config.norm;
  const [n, P, G] = input.shape;
  const C = config.channels;
  const post = (axes: number[]) => (postLinear ? normalizer(kind, axes) : identity);
  const [sTok, sDense, sGroup] = sites;

  // Token mixing: one [P, P] map shared by all channels, applied channel-major.
  let h = tf.reshape(input, [n, P, C]);
  if (begin) h = normalizeWith(kind, h, [-1]);
  const preTok = tf.transpose(h, [0, 2, 1]); // [N, C, P]
  const zTok = ctx.linear(sTok, preTok, params[sTok.index].w, params[sTok.index].b);
  // The local norm of the token-mixing output is over the channels of each token: axis 1 of [N, C, P].
  const hTok = ctx.activate(sTok, { pre: preTok, prenorm: zTok, normalize: post([1]) });

  // Dense channel mixing.
  let preDense = tf.transpose(hTok, [0, 2, 1]); // [N, P, C]
  if (middle) preDense = normalizeWith(kind, preDense, [-1]);
  const zDense = ctx.linear(sDense, preDense, params[sDense.index].w, params[sDense.index].b); // [N, P, Hd]
  const hDense = ctx.activate(sDense, { pre: preDense, prenorm: zDense, normalize: post([-1]) });

  // Grouped channel mixing with the residual.
  let preGroup = tf.reshape(hDense, [n, P, G, config.hidden / G]);
  if (middle) preGroup = normalizeWith(kind, preGroup, [-1]);
  const zGroup = ctx.linear(sGroup, preGroup, params[sGroup.index].w, params[sGroup.index].b); // [N, P, G, C′]
  return ctx.activate(sGroup, { pre: preGroup, prenorm: zGroup, normalize: post([-1]), residual: input });
}

/**
 * The LocalMixer backbone on patches x [N, P, D_in] (from {@link patchify}) — or, for a slice without block 0
 * ({@link sliceConfig}), on the previous block's output [N, P, G, C′]. Every backbone linear layer goes
 * through `ctx.linear` and `ctx.activate` exactly once, in REFERENCE 0 order; between blocks the output passes
 * `ctx.blockBoundary(k, ·)` on its way into block k + 1.
 *
 * Returns one tensor per block, [N, P, G, C′]: the block's own output, taken before the boundary, which is what
 * the block's local loss and head read (so a block's loss differentiates through that block even when the
 * boundary is a stop-gradient, REFERENCE 1.1 / Algorithm 2). The final classifier of the local rules reads
 * detached features: the caller applies `stopGradient` to the last output for that readout. The caller owns
 * the outputs; intermediates are disposed (a context that stores tensors must `tf.keep` them).
 */
export function forwardBackbone(
  config: LocalMixerConfig,
  params: Pick<LocalMixerParams<tf.Tensor>, 'backbone'>,
  x: tf.Tensor,
  ctx: LayerContext = exactContext(),
): tf.Tensor[] {
  const midway = startsMidway(config);
  if (midway) checkBlockOutput(config, x, 'forwardBackbone (a slice starting at a mixer block)');
  else checkPatches(config, x, 'forwardBackbone');
  checkBackbone(config, params.backbone);
  const sites = linearSites(config);
  return tf.tidy(() => {
    const outputs: tf.Tensor[] = [];
    let h = x;
    for (let k = 0; k < config.blocks; k++) {
      const blockSites = sites.filter((s) => s.block === k);
      const out =
        k === 0 && !midway
          ? block0(config, blockSites, params.backbone, h, ctx)
          : mixerBlock(config, blockSites, params.backbone, h, ctx);
      outputs.push(out);
      if (k < config.blocks - 1) h = ctx.blockBoundary(k, out);
    }
    return outputs;
  });
}

function checkBlockOutput(config: LocalMixerConfig, h: tf.Tensor, what: string): void {
  const s = configSizes(config);
  if (
    h.rank !== 4 ||
    h.shape[1] !== s.numPatches ||
    h.shape[2] !== config.groups ||
    h.shape[3] !== s.groupChannels
  ) {
    throw new Error(
      `LocalMixer ${what}: block output has shape ${fmt(h.shape)} but the config gives [N, ${s.numPatches}, ` +
        `${config.groups}, ${s.groupChannels}] ([N, P, G, C′]); pass an output of forwardBackbone for this config.`,
    );
  }
}

/**
 * The input of a block's local loss and head: the block output [N, P, G, C′], with `interLn` normalised per group
 * of each patch (REFERENCE 2 `inter_ln`; Algorithm 2 normalises before every local projection). Pooling over P
 * and concatenating the groups happen inside the local loss (`@fwdgrad/local-losses`). The caller owns the result.
 */
export function headFeatures(config: LocalMixerConfig, blockOutput: tf.Tensor): tf.Tensor {
  checkBlockOutput(config, blockOutput, 'headFeatures');
  return config.interLn ? layerNorm(blockOutput, [-1 + blockOutput.rank]) : tf.clone(blockOutput);
}

/**
 * Features of the final classifier: the last block output averaged over patches, [N, C], then layer-normalised
 * over C when `lastLayerLn` is on or the objective is contrastive (REFERENCE 2/4: the contrastive readout reads
 * LN(mean_P(final block))). The caller owns the result; apply `stopGradient` first for a detached readout.
 */
export function finalFeatures(config: LocalMixerConfig, lastBlockOutput: tf.Tensor): tf.Tensor {
  checkBlockOutput(config, lastBlockOutput, 'finalFeatures');
  return tf.tidy(() => {
    const [n, P] = lastBlockOutput.shape;
    const pooled = tf.mean(tf.reshape(lastBlockOutput, [n, P, config.channels]), 1);
    return config.lastLayerLn || config.objective === 'contrastive' ? layerNorm(pooled, [1]) : pooled;
  });
}

/**
 * Contrastive only: the final projection of the last block output, mean_P(x)·W + b → [N, projectionDim]
 * (REFERENCE 2; the input of the final NT-Xent loss).
 */
export function projectFeatures(
  config: LocalMixerConfig,
  params: Pick<LocalMixerParams<tf.Tensor>, 'projection'>,
  lastBlockOutput: tf.Tensor,
): tf.Tensor {
  checkBlockOutput(config, lastBlockOutput, 'projectFeatures');
  const proj = params.projection;
  if (!proj) {
    throw new Error(
      "LocalMixer projectFeatures: params have no projection; it exists only for objective 'contrastive' " +
        '(initParams with a contrastive config creates it).',
    );
  }
  return tf.tidy(() => {
    const [n, P] = lastBlockOutput.shape;
    const pooled = tf.mean(tf.reshape(lastBlockOutput, [n, P, config.channels]), 1);
    return tf.add(tf.matMul(pooled, proj.w), proj.b);
  });
}

/** The final classifier: features [N, C] → logits [N, K]. */
export function classify(
  params: Pick<LocalMixerParams<tf.Tensor>, 'classifier'>,
  features: tf.Tensor,
): tf.Tensor {
  const { w, b } = params.classifier;
  if (features.rank !== 2 || features.shape[1] !== w.shape[0]) {
    throw new Error(
      `LocalMixer classify: features have shape ${fmt(features.shape)} but the classifier expects [N, ${w.shape[0]}]; ` +
        'pass finalFeatures(config, lastBlockOutput).',
    );
  }
  return tf.tidy(() => tf.add(tf.matMul(features, w), b));
}

/** Result of {@link forward}. */
export interface ForwardResult {
  /** Block outputs [N, P, G, C′] (before the block boundaries). */
  blocks: tf.Tensor[];
  /** Final classifier logits [N, K]. */
  logits: tf.Tensor;
  /** Contrastive only: the final projection [N, projectionDim]. */
  projection?: tf.Tensor;
}

/**
 * Inference convenience: patchify → backbone → final features → classifier (plus the projection when
 * contrastive). Images [N, H, W, C], already normalised or with `normalization`. The caller owns the outputs.
 */
export function forward(
  config: LocalMixerConfig,
  params: LocalMixerParams<tf.Tensor>,
  images: tf.Tensor,
  ctx: LayerContext = exactContext(),
  normalization?: ImageNormalization,
): ForwardResult {
  checkImages(config, images, 'forward');
  const patches = patchify(images, config, normalization);
  const blocks = forwardBackbone(config, params, patches, ctx);
  patches.dispose();
  const last = blocks[blocks.length - 1];
  const features = finalFeatures(config, last);
  const logits = classify(params, features);
  features.dispose();
  const result: ForwardResult = { blocks, logits };
  if (config.objective === 'contrastive') result.projection = projectFeatures(config, params, last);
  return result;
}
