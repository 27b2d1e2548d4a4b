import { describe, expect, it } from 'vitest';
import { createRandom } from '@fwdgrad/random';
import {
  applyColorJitter,
  flipHorizontal,
  gaussianBlur,
  padAndCrop,
  solarize,
  toGrayscale,
} from './augment.js';
import { cropAndResize, type FloatImage } from './image.js';
import {
  applyViewParams,
  byolViewConfigs,
  padCropFlipAugment,
  resizedCropFlipAugment,
  sampleViewParams,
  twoViews,
  viewAugment,
} from './views.js';

function randomImage(h: number, w: number, c: number, seed: number): FloatImage {
  const rng = createRandom(seed);
  return {
    data: Float32Array.from({ length: h * w * c }, () => rng.uniform()),
    height: h,
    width: w,
    channels: c,
  };
}

describe('BYOL view probabilities (REFERENCE §5)', () => {
  const crop = { outputSize: [16, 16] as [number, number], areaLowerBound: 0.3 };
  const [v1, v2] = byolViewConfigs(crop);

  it('configures the per-view probabilities', () => {
    for (const v of [v1, v2]) {
      expect(v.flipProbability).toBe(0.5);
      expect(v.colorJitterProbability).toBe(0.8);
      expect(v.grayscaleProbability).toBe(0.2);
      expect(v.jitter).toEqual({ brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1 });
      expect(v.blurSigmaRange).toEqual([0.1, 2]);
    }
    expect([v1.blurProbability, v1.solarizeProbability]).toEqual([1, 0]);
    expect([v2.blurProbability, v2.solarizeProbability]).toEqual([0.1, 0.2]);
  });

  it('draws each operation with its probability and σ in [0.1, 2]', () => {
    const n = 5000;
    // 4.5 binomial standard errors at n = 5000 is at most 0.032.
    const tol = 0.032;
    for (const [config, expected] of [
      [v1, { flip: 0.5, jitter: 0.8, gray: 0.2, blur: 1, sol: 0 }],
      [v2, { flip: 0.5, jitter: 0.8, gray: 0.2, blur: 0.1, sol: 0.2 }],
    ] as const) {
      const rng = createRandom(100);
      const c = { flip: 0, jitter: 0, gray: 0, blur: 0, sol: 0 };
      let sigmaSum = 0;
      for (let i = 0; i < n; i++) {
        const p = sampleViewParams(rng, config, 32, 32);
        if (p.flip) c.flip++;
        if (p.jitter) c.jitter++;
        if (p.grayscale) c.gray++;
        if (p.solarize) c.sol++;
        if (p.blurSigma !== null) {
          c.blur++;
          sigmaSum += p.blurSigma;
          expect(p.blurSigma).toBeGreaterThanOrEqual(0.1);
          expect(p.blurSigma).toBeLessThan(2);
        }
        const area = (p.crop!.height * p.crop!.width) / 1024;
        expect(area).toBeGreaterThanOrEqual(0.3 * 0.9);
        expect(area).toBeLessThanOrEqual(1);
      }
      expect(Math.abs(c.flip / n - expected.flip)).toBeLessThan(tol);
      expect(Math.abs(c.jitter / n - expected.jitter)).toBeLessThan(tol);
      expect(Math.abs(c.gray / n - expected.gray)).toBeLessThan(tol);
      expect(Math.abs(c.blur / n - expected.blur)).toBeLessThan(tol);
      expect(Math.abs(c.sol / n - expected.sol)).toBeLessThan(tol);
      // σ ~ U[0.1, 2]: mean 1.05.
      expect(Math.abs(sigmaSum / c.blur - 1.05)).toBeLessThan(0.05);
    }
  });

  it('applies crop → flip → jitter → grayscale → blur → solarize exactly', () => {
    const im = randomImage(20, 20, 3, 3);
    const params = {
      crop: { top: 2, left: 3, height: 12, width: 10 },
      flip: true,
      jitter: {
        order: ['saturation', 'hue', 'brightness', 'contrast'] as any,
        brightness: 0.1,
        contrast: 0.9,
        saturation: 1.1,
        hue: 0.05,
      },
      grayscale: true,
      blurSigma: 0.7,
      solarize: true,
    };
    // 32x32 output: blur kernel 2·⌊3.2/2⌋+1 = 3.
    const [, config] = byolViewConfigs({ outputSize: [32, 32], areaLowerBound: 0.3 });
    const manual = solarize(
      gaussianBlur(
        toGrayscale(applyColorJitter(flipHorizontal(cropAndResize(im, params.crop, 32, 32)), params.jitter)),
        0.7,
        3,
      ),
    );
    expect(Array.from(applyViewParams(im, params, config).data)).toEqual(Array.from(manual.data));
  });

  it('views are deterministic per seed, differ between views and seeds, and have the output size', () => {
    const im = randomImage(24, 24, 3, 4);
    const [a1, a2] = twoViews(im, createRandom(9), crop);
    const [b1, b2] = twoViews(im, createRandom(9), crop);
    expect(Array.from(a1.data)).toEqual(Array.from(b1.data));
    expect(Array.from(a2.data)).toEqual(Array.from(b2.data));
    expect(Array.from(a1.data)).not.toEqual(Array.from(a2.data));
    expect([a1.height, a1.width, a1.channels]).toEqual([16, 16, 3]);
    const [c1] = twoViews(im, createRandom(10), crop);
    expect(Array.from(c1.data)).not.toEqual(Array.from(a1.data));
    for (const v of a1.data) expect(v >= 0 && v <= 1).toBe(true);
  });

  it('viewAugment(null crop) keeps the input size', () => {
    const [n1] = byolViewConfigs(null);
    const out = viewAugment(n1)(randomImage(8, 8, 3, 1), createRandom(0));
    expect([out.height, out.width]).toEqual([8, 8]);
  });
});

describe('supervised augmentations', () => {
  it('pad-crop-flip equals one of the 2·25 deterministic outcomes, flipped half the time', () => {
    const im = randomImage(4, 4, 1, 6);
    const aug = padCropFlipAugment({ pad: 2 });
    const rng = createRandom(8);
    let flips = 0;
    const n = 2000;
    const outcomes = new Map<string, boolean>();
    for (let t = 0; t <= 4; t++) {
      for (let l = 0; l <= 4; l++) {
        const pc = padAndCrop(im, 2, t, l);
        outcomes.set(Array.from(pc.data).join(), false);
        outcomes.set(Array.from(flipHorizontal(pc).data).join(), true);
      }
    }
    for (let i = 0; i < n; i++) {
      const key = Array.from(aug(im, rng).data).join();
      expect(outcomes.has(key)).toBe(true);
      if (outcomes.get(key)) flips++;
    }
    // With pad 2 every crop keeps image pixels, so the 50 outcomes are distinct.
    expect(outcomes.size).toBe(50);
    expect(Math.abs(flips / n - 0.5)).toBeLessThan(0.05);
  });

  it('resized-crop-flip outputs the requested size deterministically', () => {
    const im = randomImage(10, 12, 3, 2);
    const aug = resizedCropFlipAugment({ outputSize: [6, 5], areaLowerBound: 0.5 });
    const a = aug(im, createRandom(3));
    expect([a.height, a.width, a.channels]).toEqual([6, 5, 3]);
    expect(Array.from(aug(im, createRandom(3)).data)).toEqual(Array.from(a.data));
  });
});
