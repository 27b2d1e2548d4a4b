/**
 * Image augmentations on {@link FloatImage}s (HWC floats in [0, 1], before normalisation),
 * REFERENCE §5. Each operation comes in two halves: a deterministic `apply`-style function with
 * explicit parameters (tested exactly) and a sampler that draws those parameters from an
 * {@link Random} (tested statistically). Every function returns a new image; inputs are not modified.
 */
import { type Random, shuffleInPlace } from '@fwdgrad/random';
import { type CropBox, cropAndResize, emptyImage, type FloatImage } from './image.js';

function clip01(v: number): number {
  return Math.min(Math.max(v, 0), 1);
}

function mapImage(image: FloatImage, f: (v: number) => number): FloatImage {
  const out = emptyImage(image.height, image.width, image.channels);
  for (let i = 0; i < out.data.length; i++) out.data[i] = f(image.data[i]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Geometry

/**
 * Zero-pads by `pad` pixels on every side, then crops back to the original size with the crop's
 * top-left corner at (top, left) of the padded image, each in [0, 2·pad] (REFERENCE §5: CIFAR
 * 4-pixel pad + random 32x32 crop). Padding is black (0 before normalisation).
 */
export function padAndCrop(image: FloatImage, pad: number, top: number, left: number): FloatImage {
  if (!Number.isInteger(pad) || pad < 0) throw new Error(`pad must be a non-negative integer, got ${pad}.`);
  if (
    !Number.isInteger(top) ||
    !Number.isInteger(left) ||
    top < 0 ||
    left < 0 ||
    top > 2 * pad ||
    left > 2 * pad
  ) {
    throw new Error(
      `padAndCrop offsets must be integers in [0, ${2 * pad}] for pad ${pad}, got top=${top} left=${left}.`,
    );
  }
  const { height: h, width: w, channels: c } = image;
  const out = emptyImage(h, w, c);
  for (let y = 0; y < h; y++) {
    const sy = y + top - pad;
    if (sy < 0 || sy >= h) continue;
    for (let x = 0; x < w; x++) {
      const sx = x + left - pad;
      if (sx < 0 || sx >= w) continue;
      const s = (sy * w + sx) * c;
      const o = (y * w + x) * c;
      for (let ch = 0; ch < c; ch++) out.data[o + ch] = image.data[s + ch];
    }
  }
  return out;
}

/** Pad + random crop: offsets uniform in [0, 2·pad] on each axis. */
export function randomPadCrop(image: FloatImage, rng: Random, pad = 4): FloatImage {
  const top = rng.int(2 * pad + 1);
  const left = rng.int(2 * pad + 1);
  return padAndCrop(image, pad, top, left);
}

/** Mirrors the image left–right. */
export function flipHorizontal(image: FloatImage): FloatImage {
  const { height: h, width: w, channels: c } = image;
  const out = emptyImage(h, w, c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const s = (y * w + x) * c;
      const o = (y * w + (w - 1 - x)) * c;
      for (let ch = 0; ch < c; ch++) out.data[o + ch] = image.data[s + ch];
    }
  }
  return out;
}

/** Options for the random-resized-crop box (REFERENCE §5). */
export interface ResizedCropOptions {
  /** Lower bound of the crop's area as a fraction of the image (paper: 0.08 … 0.5). */
  areaLowerBound: number;
  /** Aspect ratio (width / height) range, sampled log-uniformly. Default [3/4, 4/3]. */
  aspectRange?: [number, number];
  /** Tries before falling back to the whole image (default 10, as BYOL/torchvision). */
  maxAttempts?: number;
}

/**
 * Samples a random-resized-crop box: area ~ U[areaLowerBound, 1] · H·W, aspect ratio w/h
 * log-uniform in aspectRange (REFERENCE §5); a box that does not fit is redrawn up to
 * maxAttempts times, then the whole image (clamped to the aspect range) is used.
 */
export function sampleResizedCropBox(
  rng: Random,
  height: number,
  width: number,
  options: ResizedCropOptions,
): CropBox {
  const { areaLowerBound } = options;
  const [a0, a1] = options.aspectRange ?? [3 / 4, 4 / 3];
  if (!(areaLowerBound > 0 && areaLowerBound <= 1)) {
    throw new Error(`areaLowerBound must be in (0, 1], got ${areaLowerBound}.`);
  }
  if (!(a0 > 0 && a0 <= a1)) throw new Error(`aspectRange must satisfy 0 < min <= max, got [${a0}, ${a1}].`);
  const attempts = options.maxAttempts ?? 10;
  const area = height * width;
  const logLo = Math.log(a0);
  const logHi = Math.log(a1);
  for (let i = 0; i < attempts; i++) {
    const target = rng.uniform(areaLowerBound, 1) * area;
    const ratio = Math.exp(rng.uniform(logLo, logHi));
    const w = Math.round(Math.sqrt(target * ratio));
    const h = Math.round(Math.sqrt(target / ratio));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      return { top: rng.int(height - h + 1), left: rng.int(width - w + 1), height: h, width: w };
    }
  }
  // Fallback: central crop of the whole image, clamped to the aspect range (torchvision's rule).
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < a0) h = Math.min(height, Math.round(w / a0));
  else if (inRatio > a1) w = Math.min(width, Math.round(h * a1));
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/** Random resized crop: a box from {@link sampleResizedCropBox} resized bilinearly to outHeight x outWidth. */
export function randomResizedCrop(
  image: FloatImage,
  rng: Random,
  outHeight: number,
  outWidth: number,
  options: ResizedCropOptions,
): FloatImage {
  const box = sampleResizedCropBox(rng, image.height, image.width, options);
  return cropAndResize(image, box, outHeight, outWidth);
}

// ---------------------------------------------------------------------------------------------
// Colour

/** Adds `delta` to every value, then clips to [0, 1]. */
export function adjustBrightness(image: FloatImage, delta: number): FloatImage {
  return mapImage(image, (v) => clip01(v + delta));
}

/**
 * Contrast around each channel's mean over the image (tf.image.adjust_contrast):
 * (x − mean_c)·factor + mean_c, then clip to [0, 1].
 */
export function adjustContrast(image: FloatImage, factor: number): FloatImage {
  const { channels: c, data } = image;
  const mean = new Float64Array(c);
  for (let i = 0; i < data.length; i++) mean[i % c] += data[i];
  const n = data.length / c;
  for (let ch = 0; ch < c; ch++) mean[ch] /= n;
  const out = emptyImage(image.height, image.width, c);
  for (let i = 0; i < data.length; i++) {
    const m = mean[i % c];
    out.data[i] = clip01((data[i] - m) * factor + m);
  }
  return out;
}

/** RGB in [0, 1] to HSV with hue in [0, 1) (the tf.image convention). */
export function rgbToHsv(r: number, g: number, b: number): [number, number, number] {
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  const range = max - min;
  const s = max > 0 ? range / max : 0;
  let h = 0;
  if (range > 0) {
    if (max === r) h = (g - b) / range;
    else if (max === g) h = 2 + (b - r) / range;
    else h = 4 + (r - g) / range;
    h /= 6;
    h -= Math.floor(h);
  }
  return [h, s, max];
}

/** HSV (hue in [0, 1)) to RGB in [0, 1]. */
export function hsvToRgb(h: number, s: number, v: number): [number, number, number] {
  const h6 = (h - Math.floor(h)) * 6;
  const i = Math.floor(h6) % 6;
  const f = h6 - Math.floor(h6);
  const p = v * (1 - s);
  const q = v * (1 - s * f);
  const t = v * (1 - s * (1 - f));
  switch (i) {
    case 0:
      return [v, t, p];
    case 1:
      return [q, v, p];
    case 2:
      return [p, v, t];
    case 3:
      return [p, q, v];
    case 4:
      return [t, p, v];
    default:
      return [v, p, q];
  }
}

function mapHsv(
  image: FloatImage,
  f: (hsv: [number, number, number]) => [number, number, number],
): FloatImage {
  if (image.channels !== 3) return { ...image, data: image.data.slice() };
  const out = emptyImage(image.height, image.width, 3);
  const { data } = image;
  for (let i = 0; i < data.length; i += 3) {
    const [h, s, v] = f(rgbToHsv(data[i], data[i + 1], data[i + 2]));
    const [r, g, b] = hsvToRgb(h, s, v);
    out.data[i] = clip01(r);
    out.data[i + 1] = clip01(g);
    out.data[i + 2] = clip01(b);
  }
  return out;
}

/** Scales HSV saturation by `factor` (clipped to [0, 1]). One-channel images are returned unchanged. */
export function adjustSaturation(image: FloatImage, factor: number): FloatImage {
  return mapHsv(image, ([h, s, v]) => [h, clip01(s * factor), v]);
}

/** Rotates hue by `delta` (in turns, wrapping mod 1). One-channel images are returned unchanged. */
export function adjustHue(image: FloatImage, delta: number): FloatImage {
  return mapHsv(image, ([h, s, v]) => [h + delta - Math.floor(h + delta), s, v]);
}

/** Luma weights of the grayscale transform (REFERENCE §5). */
export const GRAYSCALE_WEIGHTS = [0.2989, 0.587, 0.114] as const;

/** Grayscale 0.2989 R + 0.5870 G + 0.1140 B, replicated to all three channels (REFERENCE §5). */
export function toGrayscale(image: FloatImage): FloatImage {
  if (image.channels !== 3) return { ...image, data: image.data.slice() };
  const out = emptyImage(image.height, image.width, 3);
  const [wr, wg, wb] = GRAYSCALE_WEIGHTS;
  for (let i = 0; i < image.data.length; i += 3) {
    const y = wr * image.data[i] + wg * image.data[i + 1] + wb * image.data[i + 2];
    out.data[i] = y;
    out.data[i + 1] = y;
    out.data[i + 2] = y;
  }
  return out;
}

/** Solarize: values ≥ threshold become 1 − value (REFERENCE §5, threshold 0.5). */
export function solarize(image: FloatImage, threshold = 0.5): FloatImage {
  return mapImage(image, (v) => (v >= threshold ? 1 - v : v));
}

/** Colour-jitter operations, applied in a random order (REFERENCE §5). */
export type JitterOp = 'brightness' | 'contrast' | 'saturation' | 'hue';

/** Strengths of colour jitter: brightness δ ~ U[−b, b], contrast ~ U[1−c, 1+c], saturation ~ U[1−s, 1+s], hue δ ~ U[−h, h]. */
export interface ColorJitterStrength {
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

/** BYOL's strengths (REFERENCE §5): 0.4, 0.4, 0.2, 0.1. */
export const BYOL_JITTER: ColorJitterStrength = { brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1 };

/** Drawn colour-jitter parameters. */
export interface ColorJitterParams {
  order: JitterOp[];
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

/** Draws a random order and the four jitter parameters. */
export function sampleColorJitter(
  rng: Random,
  strength: ColorJitterStrength = BYOL_JITTER,
): ColorJitterParams {
  const order = shuffleInPlace<JitterOp[]>(['brightness', 'contrast', 'saturation', 'hue'], rng);
  return {
    order,
    brightness: rng.uniform(-strength.brightness, strength.brightness),
    contrast: rng.uniform(1 - strength.contrast, 1 + strength.contrast),
    saturation: rng.uniform(1 - strength.saturation, 1 + strength.saturation),
    hue: rng.uniform(-strength.hue, strength.hue),
  };
}

/** Applies colour jitter in `params.order`, clipping to [0, 1] after each operation. */
export function applyColorJitter(image: FloatImage, params: ColorJitterParams): FloatImage {
  let out = image;
  for (const op of params.order) {
    if (op === 'brightness') out = adjustBrightness(out, params.brightness);
    else if (op === 'contrast') out = adjustContrast(out, params.contrast);
    else if (op === 'saturation') out = adjustSaturation(out, params.saturation);
    else out = adjustHue(out, params.hue);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Blur

/** Blur kernel size for an image of height H: 2·⌊(H/10)/2⌋ + 1 (REFERENCE §5; 3 for 32, 23 for 224). */
export function blurKernelSize(height: number): number {
  return 2 * Math.floor(height / 10 / 2) + 1;
}

/** Normalised 1-D Gaussian weights exp(−x²/2σ²), x = −r..r, r = (size−1)/2. */
export function gaussianKernel(sigma: number, size: number): Float32Array {
  if (!(sigma > 0)) throw new Error(`Gaussian blur sigma must be positive, got ${sigma}.`);
  if (!Number.isInteger(size) || size < 1 || size % 2 === 0) {
    throw new Error(`Gaussian kernel size must be a positive odd integer, got ${size}.`);
  }
  const r = (size - 1) / 2;
  const k = new Float32Array(size);
  let sum = 0;
  for (let i = 0; i < size; i++) {
    const x = i - r;
    k[i] = Math.exp((-x * x) / (2 * sigma * sigma));
    sum += k[i];
  }
  for (let i = 0; i < size; i++) k[i] /= sum;
  return k;
}

/**
 * Separable Gaussian blur (vertical then horizontal pass) with zero padding outside the image
 * ('SAME' convolution, as the BYOL reference). Kernel size defaults to {@link blurKernelSize}.
 */
export function gaussianBlur(
  image: FloatImage,
  sigma: number,
  kernelSize = blurKernelSize(image.height),
): FloatImage {
  const k = gaussianKernel(sigma, kernelSize);
  const r = (kernelSize - 1) / 2;
  const { height: h, width: w, channels: c } = image;
  const tmp = new Float32Array(image.data.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let ch = 0; ch < c; ch++) {
        let acc = 0;
        for (let i = -r; i <= r; i++) {
          const sy = y + i;
          if (sy >= 0 && sy < h) acc += k[i + r] * image.data[(sy * w + x) * c + ch];
        }
        tmp[(y * w + x) * c + ch] = acc;
      }
    }
  }
  const out = emptyImage(h, w, c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let ch = 0; ch < c; ch++) {
        let acc = 0;
        for (let i = -r; i <= r; i++) {
          const sx = x + i;
          if (sx >= 0 && sx < w) acc += k[i + r] * tmp[(y * w + sx) * c + ch];
        }
        out.data[(y * w + x) * c + ch] = acc;
      }
    }
  }
  return out;
}
