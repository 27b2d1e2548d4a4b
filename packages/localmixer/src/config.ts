import type { InitScheme } from '@fwdgrad/linear';

/**
 * LocalMixer configuration: sizes, normalisation variants, presets (paper Table 2) and validation.
 * Notation follows REFERENCE 0: np = patches per side, P = np², D_in = patch pixels · image channels,
 * C = channels, Hd = hidden width of the dense channel layer, G = groups, C′ = C/G, K = classes.
 */

/**
 * Normalisation kind (paper Table 5).
 * - `'local-layer'`: layer norm within each patch (over the channels of one token) and, for grouped layers,
 *   within each group; the token-mixing output is normalised over channels per token. This is the paper's
 *   default ("Local LN", REFERENCE 2, Algorithm 2).
 * - `'layer'`: layer norm over all non-batch axes of the activation (REFERENCE 2 "LN over all non-batch axes").
 * - `'batch'`: batch norm over the batch axis (per unit), with the statistics of the current batch (no running
 *   averages; the output of one example depends on the rest of its batch).
 * None has learnable affine parameters (REFERENCE 7.8).
 */
export type NormKind = 'layer' | 'local-layer' | 'batch';

/** Where normalisation is placed, by the names of paper Table 6. */
export type NormPlacementName = 'begin' | 'before' | 'after' | 'before+after';

/** Placement flags of REFERENCE 2 (`begin_ln`, `middle_ln`, `post_linear_ln`). */
export interface NormPlacement {
  /** Normalise the block input (`begin_ln`): the patches in block 0, the [N,P,C] input of token mixing later. */
  begin: boolean;
  /** Normalise the input of the dense and grouped channel-mixing layers (`middle_ln`). */
  middle: boolean;
  /** Normalise the output of every linear layer before the ReLU (`post_linear_ln`). */
  postLinear: boolean;
}

/** Training objective: which heads exist and their widths (REFERENCE 0, 2). */
export type Objective = 'supervised' | 'contrastive';

/** A complete, validated LocalMixer configuration. Build one with {@link resolveConfig}. */
export interface LocalMixerConfig {
  /** Image shape [H, W, channels] (NHWC, like tfjs images). */
  imageShape: [number, number, number];
  /** Number of classes K of the final classifier (and of the supervised local heads). */
  numClasses: number;
  /** Number of blocks NBLK (block 0 has channel mixing only, blocks ≥ 1 are residual mixer blocks). */
  blocks: number;
  /** Patches per image side np; the image is cut into an np×np grid, P = np² tokens. */
  patchesPerSide: number;
  /** Channel width C of every block output. */
  channels: number;
  /** Hidden width Hd of the dense channel-mixing layer (REFERENCE 0; default C). */
  hidden: number;
  /** Channel groups G; grouped layers and local losses act per group. */
  groups: number;
  /** Normalisation kind (paper Table 5). */
  norm: NormKind;
  /** Placement of the normalisations inside the blocks (paper Table 6). */
  placement: NormPlacement;
  /** Per-group layer norm of each block output before its local head (`inter_ln`). */
  interLn: boolean;
  /** Layer norm of the pooled features before the final classifier (`last_layer_ln`). */
  lastLayerLn: boolean;
  /** Weight initialisation scheme. */
  init: InitScheme;
  /** Supervised: local heads [C,K]. Contrastive: local heads [C,projectionDim] and a final projection. */
  objective: Objective;
  /** Width of the contrastive projections (128 in the paper). */
  projectionDim: number;
  /**
   * Set only on a slice of a deeper network ({@link sliceConfig}): the index of this config's first block in
   * that network. Above 0 the network starts with a residual mixer block whose input is the previous block's
   * output [N, P, G, C′] (no patch embedding), and `blocks` counts the slice's blocks. Absent or 0: a whole
   * LocalMixer from patches.
   */
  firstBlock?: number;
}

/**
 * What {@link resolveConfig} accepts: any subset of the fields, where `placement` may also be given by its
 * Table 6 name (`'before+after'`, …).
 */
export type LocalMixerOptions = Partial<Omit<LocalMixerConfig, 'placement'>> & {
  placement?: NormPlacementName | NormPlacement;
};

/** Sizes derived from a configuration (REFERENCE 0 notation). */
export interface LocalMixerSizes {
  /** Tokens per image, np². */
  numPatches: number;
  /** Patch height and width in pixels. */
  patchSize: [number, number];
  /** Values per patch, D_in = ph·pw·channels. */
  patchDim: number;
  /** Channels per group, C′ = C/G. */
  groupChannels: number;
  /** Hidden channels per group, Hd/G. */
  groupHidden: number;
  /** Backbone linear layers NL = 2 + 3·(NBLK−1) (3·NBLK for a slice without block 0). */
  numLayers: number;
}

/** The flags of each Table 6 placement name. "Before linear" normalises the input of every linear layer:
 * the block input (the only input of block 0's first layer and of token mixing) and the channel-layer inputs. */
export const PLACEMENTS: Readonly<Record<NormPlacementName, Readonly<NormPlacement>>> = Object.freeze({
  begin: Object.freeze({ begin: true, middle: false, postLinear: false }),
  before: Object.freeze({ begin: true, middle: true, postLinear: false }),
  after: Object.freeze({ begin: false, middle: false, postLinear: true }),
  'before+after': Object.freeze({ begin: true, middle: true, postLinear: true }),
});

/** The defaults every preset and {@link resolveConfig} start from (REFERENCE 2/4, paper section 5). */
export const DEFAULT_CONFIG: Readonly<LocalMixerConfig> = Object.freeze({
  imageShape: Object.freeze([32, 32, 3]) as unknown as [number, number, number],
  numClasses: 10,
  blocks: 4,
  patchesPerSide: 8,
  channels: 512,
  hidden: 512,
  groups: 16,
  norm: 'local-layer',
  placement: PLACEMENTS['before+after'],
  interLn: true,
  lastLayerLn: true,
  init: 'kaiming',
  objective: 'supervised',
  projectionDim: 128,
});

/**
 * The LocalMixer models of paper Table 2, named size/patches-per-side/groups (the CLI's `--model`); the
 * trainer's experiment presets (`mnist-m116`, …) are its `PresetName`.
 */
export type ModelName = 'S/1/1' | 'M/1/16' | 'M/8/16' | 'L/8/64' | 'L/32/64';

function preset(
  o: Pick<
    LocalMixerConfig,
    'imageShape' | 'numClasses' | 'blocks' | 'patchesPerSide' | 'channels' | 'groups'
  >,
): LocalMixerConfig {
  // Frozen all the way down: a preset is a constant; resolveConfig hands out copies.
  return Object.freeze({
    ...DEFAULT_CONFIG,
    ...o,
    imageShape: Object.freeze([...o.imageShape]) as unknown as [number, number, number],
    placement: Object.freeze({ ...DEFAULT_CONFIG.placement }),
    hidden: o.channels,
  });
}

/**
 * The architectures of paper Table 2 with the input shapes of their datasets: MNIST 28×28×1 (S/1/1, M/1/16),
 * CIFAR-10 32×32×3 (M/8/16, L/8/64), ImageNet 224×224×3 with 1000 classes (L/32/64). "L" = 4 blocks × 2048
 * channels (REFERENCE 2). Hd = C. Objects are frozen; copy them through {@link resolveConfig}.
 */
export const presets: Readonly<Record<ModelName, Readonly<LocalMixerConfig>>> = Object.freeze({
  'S/1/1': preset({
    imageShape: [28, 28, 1],
    numClasses: 10,
    blocks: 1,
    patchesPerSide: 1,
    channels: 256,
    groups: 1,
  }),
  'M/1/16': preset({
    imageShape: [28, 28, 1],
    numClasses: 10,
    blocks: 1,
    patchesPerSide: 1,
    channels: 512,
    groups: 16,
  }),
  'M/8/16': preset({
    imageShape: [32, 32, 3],
    numClasses: 10,
    blocks: 4,
    patchesPerSide: 8,
    channels: 512,
    groups: 16,
  }),
  'L/8/64': preset({
    imageShape: [32, 32, 3],
    numClasses: 10,
    blocks: 4,
    patchesPerSide: 8,
    channels: 2048,
    groups: 64,
  }),
  'L/32/64': preset({
    imageShape: [224, 224, 3],
    numClasses: 1000,
    blocks: 4,
    patchesPerSide: 32,
    channels: 2048,
    groups: 64,
  }),
});

const CONFIG_KEYS = Object.keys(DEFAULT_CONFIG) as (keyof LocalMixerConfig)[];

function divisors(n: number): number[] {
  const out: number[] = [];
  for (let d = 1; d <= n; d++) if (n % d === 0) out.push(d);
  return out;
}

function commonDivisors(a: number, b: number): number[] {
  return divisors(a).filter((d) => b % d === 0);
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

function oneOf<T extends string>(name: string, value: unknown, options: readonly T[]): void {
  if (!options.includes(value as T)) {
    throw new Error(
      `LocalMixer config: ${name} ${JSON.stringify(value)} is not supported; use one of ${options
        .map((o) => `'${o}'`)
        .join(', ')}.`,
    );
  }
}

/**
 * Checks a configuration and throws one Error naming the offending value and what would fit: channels or hidden
 * width not divisible by groups (lists the group counts that divide it), patches that do not tile the image
 * (lists the patch counts per side that do), non-positive sizes, unknown kinds.
 */
export function validateConfig(config: LocalMixerConfig): void {
  const shape = config.imageShape;
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every(isPositiveInt)) {
    throw new Error(
      `LocalMixer config: imageShape ${JSON.stringify(shape)} must be [height, width, channels] of positive integers (e.g. [32, 32, 3]).`,
    );
  }
  for (const key of [
    'numClasses',
    'blocks',
    'patchesPerSide',
    'channels',
    'hidden',
    'groups',
    'projectionDim',
  ] as const) {
    if (!isPositiveInt(config[key])) {
      throw new Error(`LocalMixer config: ${key} ${JSON.stringify(config[key])} must be a positive integer.`);
    }
  }
  const [h, w] = shape;
  const np = config.patchesPerSide;
  if (h % np !== 0 || w % np !== 0) {
    throw new Error(
      `LocalMixer config: patchesPerSide ${np} does not tile a ${h}×${w} image (${h} or ${w} is not divisible by ${np}); ` +
        `patch counts per side that tile it: ${commonDivisors(h, w).join(', ')}.`,
    );
  }
  const g = config.groups;
  if (config.channels % g !== 0) {
    throw new Error(
      `LocalMixer config: channels ${config.channels} is not divisible by groups ${g}; ` +
        `groups that divide ${config.channels}: ${divisors(config.channels).join(', ')} ` +
        `(or use channels that are a multiple of ${g}).`,
    );
  }
  if (config.hidden % g !== 0) {
    throw new Error(
      `LocalMixer config: hidden ${config.hidden} is not divisible by groups ${g}; ` +
        `groups that divide ${config.hidden}: ${divisors(config.hidden).join(', ')} ` +
        `(or use a hidden width that is a multiple of ${g}).`,
    );
  }
  oneOf('norm', config.norm, ['local-layer', 'layer', 'batch']);
  oneOf('init', config.init, ['kaiming', 'lecun']);
  oneOf('objective', config.objective, ['supervised', 'contrastive']);
  const p = config.placement;
  if (
    p === null ||
    typeof p !== 'object' ||
    typeof p.begin !== 'boolean' ||
    typeof p.middle !== 'boolean' ||
    typeof p.postLinear !== 'boolean'
  ) {
    throw new Error(
      `LocalMixer config: placement ${JSON.stringify(p)} must be { begin, middle, postLinear } booleans or one of ${Object.keys(
        PLACEMENTS,
      )
        .map((n) => `'${n}'`)
        .join(', ')}.`,
    );
  }
  const first = config.firstBlock;
  if (first !== undefined && !(Number.isInteger(first) && first >= 0)) {
    throw new Error(
      `LocalMixer config: firstBlock ${JSON.stringify(first)} must be a non-negative integer (make slices with sliceConfig).`,
    );
  }
  for (const key of ['interLn', 'lastLayerLn'] as const) {
    if (typeof config[key] !== 'boolean') {
      throw new Error(`LocalMixer config: ${key} ${JSON.stringify(config[key])} must be true or false.`);
    }
  }
}

function applyOptions(base: LocalMixerConfig, options: LocalMixerOptions | undefined): LocalMixerConfig {
  if (options === undefined) return base;
  if (options === null || typeof options !== 'object') {
    throw new Error(`LocalMixer config: options must be an object, got ${JSON.stringify(options)}.`);
  }
  const out: LocalMixerConfig = { ...base, placement: { ...base.placement } };
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    if (!(CONFIG_KEYS as string[]).includes(key)) {
      throw new Error(`LocalMixer config: unknown field '${key}'; known fields: ${CONFIG_KEYS.join(', ')}.`);
    }
    if (key === 'placement') {
      if (typeof value === 'string') {
        oneOf('placement', value, Object.keys(PLACEMENTS) as NormPlacementName[]);
        out.placement = { ...PLACEMENTS[value as NormPlacementName] };
      } else {
        out.placement = { ...(value as NormPlacement) };
      }
    } else if (key === 'imageShape') {
      out.imageShape = Array.isArray(value) ? ([...value] as [number, number, number]) : (value as never);
    } else {
      (out as unknown as Record<string, unknown>)[key] = value;
    }
  }
  // Hd defaults to C (REFERENCE 0) unless given explicitly.
  if (options.channels !== undefined && options.hidden === undefined) out.hidden = out.channels;
  return out;
}

/**
 * Builds a validated configuration from a preset name (Table 2) or a partial configuration (filled from
 * {@link DEFAULT_CONFIG}), then applies `overrides`. `hidden` follows `channels` unless set. Throws for an
 * unknown preset (listing the presets), an unknown field, or anything {@link validateConfig} rejects.
 *
 * @example resolveConfig('M/8/16', { groups: 1, placement: 'after' })
 */
export function resolveConfig(
  presetOrOptions: ModelName | LocalMixerOptions = {},
  overrides?: LocalMixerOptions,
): LocalMixerConfig {
  let base: LocalMixerConfig;
  if (typeof presetOrOptions === 'string') {
    const p = (presets as Record<string, LocalMixerConfig>)[presetOrOptions];
    if (p === undefined) {
      throw new Error(
        `LocalMixer: unknown preset '${presetOrOptions}'; presets: ${Object.keys(presets)
          .map((n) => `'${n}'`)
          .join(', ')}.`,
      );
    }
    base = { ...p, imageShape: [...p.imageShape], placement: { ...p.placement } };
  } else {
    base = applyOptions(
      {
        ...DEFAULT_CONFIG,
        imageShape: [...DEFAULT_CONFIG.imageShape],
        placement: { ...DEFAULT_CONFIG.placement },
      },
      presetOrOptions,
    );
  }
  const config = applyOptions(base, overrides);
  validateConfig(config);
  return config;
}

/** Derived sizes of a (valid) configuration. */
export function configSizes(config: LocalMixerConfig): LocalMixerSizes {
  const [h, w, c] = config.imageShape;
  const np = config.patchesPerSide;
  const ph = h / np;
  const pw = w / np;
  return {
    numPatches: np * np,
    patchSize: [ph, pw],
    patchDim: ph * pw * c,
    groupChannels: config.channels / config.groups,
    groupHidden: config.hidden / config.groups,
    numLayers: startsMidway(config) ? 3 * config.blocks : 2 + 3 * (config.blocks - 1),
  };
}

/** True for a slice of a deeper network that does not contain block 0 (see {@link LocalMixerConfig.firstBlock}). */
export function startsMidway(config: LocalMixerConfig): boolean {
  return (config.firstBlock ?? 0) > 0;
}

/**
 * Blocks `first`…`first + count − 1` of `config` as a network of their own (a pipeline stage, a block
 * trained elsewhere): the same sizes with `blocks = count` and, when `first` > 0, `firstBlock` set so that
 * the slice starts with a mixer block reading the previous block's output. Its parameters are
 * {@link sliceParams} of the whole network's. Throws when the range is not inside the network.
 */
export function sliceConfig(config: LocalMixerConfig, first: number, count: number): LocalMixerConfig {
  const offset = config.firstBlock ?? 0;
  if (
    !Number.isInteger(first) ||
    !Number.isInteger(count) ||
    first < 0 ||
    count < 1 ||
    first + count > config.blocks
  ) {
    throw new Error(
      `LocalMixer sliceConfig: blocks ${first}…${first + count - 1} are not inside the network's ${config.blocks} ` +
        `blocks; choose 0 ≤ first and 1 ≤ count with first + count ≤ ${config.blocks}.`,
    );
  }
  const out: LocalMixerConfig = {
    ...config,
    imageShape: [...config.imageShape],
    placement: { ...config.placement },
  };
  out.blocks = count;
  delete out.firstBlock;
  if (offset + first > 0) out.firstBlock = offset + first;
  return out;
}
