/**
 * Augmentation pipelines: supervised (pad + crop + flip, random resized crop + flip) and the
 * BYOL-style two-view generator for contrastive learning (REFERENCE §5, paper §6 "Data
 * augmentation").
 */
import type { Random } from '@fwdgrad/random';
import {
  applyColorJitter,
  BYOL_JITTER,
  type ColorJitterParams,
  type ColorJitterStrength,
  flipHorizontal,
  gaussianBlur,
  randomPadCrop,
  randomResizedCrop,
  sampleColorJitter,
  sampleResizedCropBox,
  solarize,
  toGrayscale,
} from './augment.js';
import { type CropBox, cropAndResize, type FloatImage } from './image.js';

/** A per-image augmentation: takes a [0, 1] HWC image and a seeded generator, returns a new image. */
export type Augment = (image: FloatImage, rng: Random) => FloatImage;

/** CIFAR supervised augmentation (REFERENCE §5): optional zero pad + random crop, random horizontal flip p=0.5. */
export function padCropFlipAugment(options: { pad?: number; flip?: boolean } = {}): Augment {
  const pad = options.pad ?? 4;
  const flip = options.flip ?? true;
  return (image, rng) => {
    let out = pad > 0 ? randomPadCrop(image, rng, pad) : image;
    if (flip && rng.bernoulli(0.5)) out = flipHorizontal(out);
    return out;
  };
}

/** Random resized crop to `outputSize` (area ≥ areaLowerBound, aspect in [3/4, 4/3]) + flip p=0.5. */
export function resizedCropFlipAugment(options: {
  outputSize: [number, number];
  areaLowerBound: number;
  aspectRange?: [number, number];
  flip?: boolean;
}): Augment {
  const flip = options.flip ?? true;
  return (image, rng) => {
    let out = randomResizedCrop(image, rng, options.outputSize[0], options.outputSize[1], options);
    if (flip && rng.bernoulli(0.5)) out = flipHorizontal(out);
    return out;
  };
}

/** Random-resized-crop settings of a view. */
export interface ViewCrop {
  /** Output [height, width]. */
  outputSize: [number, number];
  /** Crop area lower bound (paper: 0.5 CIFAR M/8, 0.3 CIFAR L/8 and ImageNet supervised, 0.08 ImageNet contrastive). */
  areaLowerBound: number;
  /** Aspect ratio range, default [3/4, 4/3]. */
  aspectRange?: [number, number];
}

/** One contrastive view's pipeline: crop → flip → colour jitter → grayscale → blur → solarize. */
export interface ViewConfig {
  /** Random resized crop; null keeps the full image. */
  crop: ViewCrop | null;
  flipProbability: number;
  colorJitterProbability: number;
  jitter: ColorJitterStrength;
  grayscaleProbability: number;
  blurProbability: number;
  /** σ ~ U[lo, hi] (REFERENCE §5: [0.1, 2]). */
  blurSigmaRange: [number, number];
  solarizeProbability: number;
}

/**
 * The two BYOL view configurations (REFERENCE §5): both flip p=0.5, colour jitter p=0.8
 * (0.4, 0.4, 0.2, 0.1), grayscale p=0.2; blur p=1.0 vs 0.1; solarize p=0 vs 0.2.
 */
export function byolViewConfigs(crop: ViewCrop | null): [ViewConfig, ViewConfig] {
  const common = {
    crop,
    flipProbability: 0.5,
    colorJitterProbability: 0.8,
    jitter: { ...BYOL_JITTER },
    grayscaleProbability: 0.2,
    blurSigmaRange: [0.1, 2] as [number, number],
  };
  return [
    { ...common, blurProbability: 1.0, solarizeProbability: 0 },
    { ...common, blurProbability: 0.1, solarizeProbability: 0.2 },
  ];
}

/** The random choices of one view, drawn by {@link sampleViewParams}. */
export interface ViewParams {
  crop: CropBox | null;
  flip: boolean;
  jitter: ColorJitterParams | null;
  grayscale: boolean;
  blurSigma: number | null;
  solarize: boolean;
}

/** Draws one view's random choices for an input image of height x width. */
export function sampleViewParams(rng: Random, config: ViewConfig, height: number, width: number): ViewParams {
  const crop = config.crop === null ? null : sampleResizedCropBox(rng, height, width, config.crop);
  const flip = rng.bernoulli(config.flipProbability);
  const jitter = rng.bernoulli(config.colorJitterProbability) ? sampleColorJitter(rng, config.jitter) : null;
  const grayscale = rng.bernoulli(config.grayscaleProbability);
  const blurSigma = rng.bernoulli(config.blurProbability)
    ? rng.uniform(config.blurSigmaRange[0], config.blurSigmaRange[1])
    : null;
  const solarizeIt = rng.bernoulli(config.solarizeProbability);
  return { crop, flip, jitter, grayscale, blurSigma, solarize: solarizeIt };
}

/** Applies drawn view parameters (deterministic). */
export function applyViewParams(image: FloatImage, params: ViewParams, config: ViewConfig): FloatImage {
  let out = image;
  if (params.crop !== null && config.crop !== null) {
    out = cropAndResize(out, params.crop, config.crop.outputSize[0], config.crop.outputSize[1]);
  }
  if (params.flip) out = flipHorizontal(out);
  if (params.jitter !== null) out = applyColorJitter(out, params.jitter);
  if (params.grayscale) out = toGrayscale(out);
  // Kernel size follows the (cropped) image height: 2·⌊(H/10)/2⌋+1 (REFERENCE §5).
  if (params.blurSigma !== null) out = gaussianBlur(out, params.blurSigma);
  if (params.solarize) out = solarize(out);
  return out;
}

/** An {@link Augment} producing one view with `config`. */
export function viewAugment(config: ViewConfig): Augment {
  return (image, rng) =>
    applyViewParams(image, sampleViewParams(rng, config, image.height, image.width), config);
}

/**
 * Two BYOL views of one image, drawn in order from `rng` (view 1 then view 2) with
 * {@link byolViewConfigs}`(crop)` or the given configs.
 */
export function twoViews(
  image: FloatImage,
  rng: Random,
  configs: [ViewConfig, ViewConfig] | ViewCrop | null,
): [FloatImage, FloatImage] {
  const [c1, c2] = Array.isArray(configs) ? configs : byolViewConfigs(configs);
  return [viewAugment(c1)(image, rng), viewAugment(c2)(image, rng)];
}
