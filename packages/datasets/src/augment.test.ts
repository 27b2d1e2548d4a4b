import { describe, expect, it } from 'vitest';
import { createRandom } from '@fwdgrad/random';
import {
  adjustBrightness,
  adjustContrast,
  adjustHue,
  adjustSaturation,
  applyColorJitter,
  blurKernelSize,
  flipHorizontal,
  gaussianBlur,
  gaussianKernel,
  hsvToRgb,
  padAndCrop,
  randomPadCrop,
  rgbToHsv,
  sampleColorJitter,
  sampleResizedCropBox,
  solarize,
  toGrayscale,
} from './augment.js';
import { cropAndResize, cropImage, type FloatImage, resizeBilinear } from './image.js';

function img(height: number, width: number, channels: number, values: number[]): FloatImage {
  expect(values.length).toBe(height * width * channels);
  return { data: Float32Array.from(values), height, width, channels };
}

function randomImage(h: number, w: number, c: number, seed: number): FloatImage {
  const rng = createRandom(seed);
  return img(
    h,
    w,
    c,
    Array.from({ length: h * w * c }, () => rng.uniform()),
  );
}

const arr = (image: FloatImage) => Array.from(image.data);

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, digits = 6) {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) expect(actual[i]).toBeCloseTo(expected[i], digits);
}

describe('crop and resize', () => {
  it('crops exactly and rejects boxes outside the image', () => {
    const im = img(3, 3, 1, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(arr(cropImage(im, { top: 1, left: 1, height: 2, width: 2 }))).toEqual([5, 6, 8, 9]);
    expect(() => cropImage(im, { top: 2, left: 0, height: 2, width: 1 })).toThrow(
      /does not fit in a 3x3 image/,
    );
  });

  it('bilinear 2x downsampling averages 2x2 blocks (half-pixel centres)', () => {
    const im = img(4, 4, 1, [0, 2, 4, 6, 2, 4, 6, 8, 10, 12, 14, 16, 12, 14, 16, 18]);
    expectClose(resizeBilinear(im, 2, 2).data, [2, 6, 12, 16]);
  });

  it('bilinear upsampling interpolates between clamped neighbours', () => {
    const im = img(1, 2, 1, [0, 1]);
    expectClose(resizeBilinear(im, 1, 4).data, [0, 0.25, 0.75, 1]);
  });

  it('same-size crop-and-resize is an exact crop; constant stays constant', () => {
    const im = randomImage(5, 5, 3, 1);
    const box = { top: 1, left: 2, height: 3, width: 2 };
    expect(arr(cropAndResize(im, box, 3, 2))).toEqual(arr(cropImage(im, box)));
    const constant = img(3, 5, 1, new Array(15).fill(0.3));
    expectClose(resizeBilinear(constant, 7, 2).data, new Array(14).fill(0.3));
  });
});

describe('pad + crop and flip', () => {
  const im = img(2, 2, 1, [1, 2, 3, 4]);
  it('pads with zeros and crops at the given offset', () => {
    expect(arr(padAndCrop(im, 1, 0, 0))).toEqual([0, 0, 0, 1]);
    expect(arr(padAndCrop(im, 1, 2, 2))).toEqual([4, 0, 0, 0]);
    expect(arr(padAndCrop(im, 1, 1, 1))).toEqual([1, 2, 3, 4]);
    expect(arr(padAndCrop(im, 1, 0, 2))).toEqual([0, 0, 2, 0]);
    expect(() => padAndCrop(im, 1, 3, 0)).toThrow(
      /offsets must be integers in \[0, 2\] for pad 1, got top=3/,
    );
  });

  it('random offsets are uniform over the (2·pad+1)² positions', () => {
    const base = img(3, 3, 1, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const patterns = new Map<string, number>();
    for (let t = 0; t <= 2; t++)
      for (let l = 0; l <= 2; l++) patterns.set(arr(padAndCrop(base, 1, t, l)).join(), 0);
    const rng = createRandom(5);
    const n = 9000;
    for (let i = 0; i < n; i++) {
      const key = arr(randomPadCrop(base, rng, 1)).join();
      patterns.set(key, (patterns.get(key) ?? 0) + 1);
    }
    expect(patterns.size).toBe(9);
    for (const c of patterns.values()) expect(Math.abs(c / n - 1 / 9)).toBeLessThan(0.015);
  });

  it('flips left-right exactly', () => {
    const rgb = img(1, 2, 3, [1, 2, 3, 4, 5, 6]);
    expect(arr(flipHorizontal(rgb))).toEqual([4, 5, 6, 1, 2, 3]);
    expect(arr(flipHorizontal(flipHorizontal(rgb)))).toEqual(arr(rgb));
  });
});

describe('random resized crop box', () => {
  it('stays in the image, within the area and aspect ranges, with uniform area below the rejection zone', () => {
    const rng = createRandom(17);
    const H = 1000;
    const W = 1000;
    let low = 0;
    let mid = 0;
    let wider = 0;
    let small = 0;
    const n = 6000;
    for (let i = 0; i < n; i++) {
      const b = sampleResizedCropBox(rng, H, W, { areaLowerBound: 0.08 });
      expect(b.top >= 0 && b.left >= 0 && b.top + b.height <= H && b.left + b.width <= W).toBe(true);
      const area = (b.height * b.width) / (H * W);
      const aspect = b.width / b.height;
      expect(area).toBeGreaterThanOrEqual(0.08 * 0.99);
      expect(area).toBeLessThanOrEqual(1);
      expect(aspect).toBeGreaterThanOrEqual(0.75 * 0.995);
      expect(aspect).toBeLessThanOrEqual((4 / 3) * 1.005);
      if (area < 0.4) low++;
      else if (area < 0.72) mid++;
      // Areas ≤ 0.75 always fit a 1000x1000 image, so there area is U[0.08, 1] restricted, aspect log-uniform.
      if (area < 0.7) {
        small++;
        if (aspect > 1) wider++;
      }
    }
    // Equal-width area bins below 0.75 are equally likely.
    expect(Math.abs(low / mid - 1)).toBeLessThan(0.1);
    expect(Math.abs(wider / small - 0.5)).toBeLessThan(0.03);
  });

  it('with area lower bound 1 returns the whole image', () => {
    const rng = createRandom(2);
    for (let i = 0; i < 50; i++) {
      expect(sampleResizedCropBox(rng, 32, 32, { areaLowerBound: 1 })).toEqual({
        top: 0,
        left: 0,
        height: 32,
        width: 32,
      });
    }
  });

  it('falls back to a central crop clamped to the aspect range', () => {
    const rng = createRandom(1);
    // A 10x100 strip: no 3/4..4/3 box of ≥ 90% area fits, so after the attempts the fallback is used.
    expect(sampleResizedCropBox(rng, 10, 100, { areaLowerBound: 0.9 })).toEqual({
      top: 0,
      left: 43,
      height: 10,
      width: 13,
    });
  });
});

describe('colour operations', () => {
  it('brightness adds and clips', () => {
    expectClose(adjustBrightness(img(1, 3, 1, [0.1, 0.5, 0.9]), 0.2).data, [0.3, 0.7, 1]);
    expectClose(adjustBrightness(img(1, 3, 1, [0.1, 0.5, 0.9]), -0.2).data, [0, 0.3, 0.7]);
  });

  it('contrast scales around each channel mean and clips', () => {
    // channel 0: [0.2, 0.4] mean 0.3; channel 1: [0.5, 0.9] mean 0.7
    const out = adjustContrast(img(1, 2, 2, [0.2, 0.5, 0.4, 0.9]), 2);
    expectClose(out.data, [0.1, 0.3, 0.5, 1]);
  });

  it('HSV round-trips and matches known colours', () => {
    expectClose(rgbToHsv(1, 0, 0), [0, 1, 1]);
    expectClose(rgbToHsv(0, 1, 0), [1 / 3, 1, 1]);
    expectClose(rgbToHsv(0.5, 0.5, 0.5), [0, 0, 0.5]);
    const rng = createRandom(4);
    for (let i = 0; i < 200; i++) {
      const rgb: [number, number, number] = [rng.uniform(), rng.uniform(), rng.uniform()];
      expectClose(hsvToRgb(...rgbToHsv(...rgb)), rgb);
    }
  });

  it('saturation and hue on known colours; one channel unchanged', () => {
    expectClose(adjustSaturation(img(1, 1, 3, [1, 0, 0]), 0.5).data, [1, 0.5, 0.5]);
    expectClose(adjustSaturation(img(1, 1, 3, [0.8, 0.2, 0.4]), 0).data, [0.8, 0.8, 0.8]);
    expectClose(adjustHue(img(1, 1, 3, [1, 0, 0]), 1 / 3).data, [0, 1, 0]);
    expectClose(adjustHue(img(1, 1, 3, [1, 0, 0]), -1 / 3).data, [0, 0, 1]);
    expect(arr(adjustHue(img(1, 2, 1, [0.1, 0.2]), 0.3))).toEqual(arr(img(1, 2, 1, [0.1, 0.2])));
  });

  it('grayscale uses 0.2989, 0.5870, 0.1140', () => {
    const y = 0.2989 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6;
    expectClose(toGrayscale(img(1, 1, 3, [0.2, 0.4, 0.6])).data, [y, y, y]);
  });

  it('solarize maps x ≥ 0.5 to 1 − x', () => {
    expectClose(solarize(img(1, 4, 1, [0.2, 0.5, 0.8, 1])).data, [0.2, 0.5, 0.2, 0]);
  });

  it('colour jitter applies its ops in the drawn order, clipping after each', () => {
    const im = randomImage(3, 3, 3, 8);
    const params = {
      order: ['hue', 'contrast', 'brightness', 'saturation'] as const,
      brightness: 0.3,
      contrast: 1.3,
      saturation: 0.9,
      hue: -0.05,
    };
    const manual = adjustSaturation(adjustBrightness(adjustContrast(adjustHue(im, -0.05), 1.3), 0.3), 0.9);
    expectClose(applyColorJitter(im, { ...params, order: [...params.order] }).data, manual.data);
    const other = applyColorJitter(im, { ...params, order: ['brightness', 'contrast', 'hue', 'saturation'] });
    expect(arr(other)).not.toEqual(arr(manual));
  });

  it('jitter parameters stay in range and all 24 orders occur', () => {
    const rng = createRandom(21);
    const orders = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const p = sampleColorJitter(rng);
      expect(Math.abs(p.brightness)).toBeLessThanOrEqual(0.4);
      expect(p.contrast).toBeGreaterThanOrEqual(0.6);
      expect(p.contrast).toBeLessThanOrEqual(1.4);
      expect(p.saturation).toBeGreaterThanOrEqual(0.8);
      expect(p.saturation).toBeLessThanOrEqual(1.2);
      expect(Math.abs(p.hue)).toBeLessThanOrEqual(0.1);
      orders.add(p.order.join());
    }
    expect(orders.size).toBe(24);
  });
});

describe('Gaussian blur', () => {
  it('kernel size follows the image height (REFERENCE §5)', () => {
    expect(blurKernelSize(32)).toBe(3);
    expect(blurKernelSize(28)).toBe(3);
    expect(blurKernelSize(224)).toBe(23);
    expect(blurKernelSize(8)).toBe(1);
  });

  it('kernel is the normalised Gaussian', () => {
    const e = Math.exp(-0.5);
    expectClose(gaussianKernel(1, 3), [e / (1 + 2 * e), 1 / (1 + 2 * e), e / (1 + 2 * e)]);
    expect(() => gaussianKernel(1, 4)).toThrow(/positive odd integer, got 4/);
  });

  it('equals a direct 2-D convolution with zero padding', () => {
    const im = randomImage(5, 6, 3, 12);
    const sigma = 1.3;
    const k = gaussianKernel(sigma, 5);
    const out = gaussianBlur(im, sigma, 5);
    const expected: number[] = [];
    for (let y = 0; y < 5; y++) {
      for (let x = 0; x < 6; x++) {
        for (let c = 0; c < 3; c++) {
          let acc = 0;
          for (let i = -2; i <= 2; i++) {
            for (let j = -2; j <= 2; j++) {
              const sy = y + i;
              const sx = x + j;
              if (sy >= 0 && sy < 5 && sx >= 0 && sx < 6)
                acc += k[i + 2] * k[j + 2] * im.data[(sy * 6 + sx) * 3 + c];
            }
          }
          expected.push(acc);
        }
      }
    }
    expectClose(out.data, expected, 5);
  });

  it('keeps a constant image constant away from the border', () => {
    const out = gaussianBlur(img(5, 5, 1, new Array(25).fill(0.6)), 2, 3);
    expect(out.data[12]).toBeCloseTo(0.6, 6);
  });
});
