import type { Split } from './types.js';

/** One image as floats in [0, 1], HWC order. Augmentations take and return these. */
export interface FloatImage {
  data: Float32Array;
  height: number;
  width: number;
  channels: number;
}

/** A crop rectangle in pixels: top-left corner and size. */
export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** Makes a zero image of the given size. */
export function emptyImage(height: number, width: number, channels: number): FloatImage {
  return { data: new Float32Array(height * width * channels), height, width, channels };
}

/** Image `index` of a split as floats in [0, 1] (byte / 255). */
export function imageFromSplit(split: Split, index: number): FloatImage {
  if (!Number.isInteger(index) || index < 0 || index >= split.count) {
    throw new Error(
      `Image index ${index} is out of range: the split has ${split.count} images (0..${split.count - 1}).`,
    );
  }
  const [h, w, c] = split.shape;
  const size = h * w * c;
  const data = new Float32Array(size);
  const offset = index * size;
  for (let i = 0; i < size; i++) data[i] = split.images[offset + i] / 255;
  return { data, height: h, width: w, channels: c };
}

/** Converts a [0, 1] float image to bytes (rounded, clipped). */
export function imageToBytes(image: FloatImage): Uint8Array {
  const out = new Uint8Array(image.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.round(Math.min(1, Math.max(0, image.data[i])) * 255);
  return out;
}

/** Exact crop (no resampling). The box must lie inside the image. */
export function cropImage(image: FloatImage, box: CropBox): FloatImage {
  const { top, left, height, width } = box;
  if (
    top < 0 ||
    left < 0 ||
    height <= 0 ||
    width <= 0 ||
    top + height > image.height ||
    left + width > image.width ||
    ![top, left, height, width].every(Number.isInteger)
  ) {
    throw new Error(
      `Crop box top=${top} left=${left} ${height}x${width} does not fit in a ${image.height}x${image.width} image ` +
        '(integers, inside the image, positive size).',
    );
  }
  const c = image.channels;
  const out = emptyImage(height, width, c);
  for (let y = 0; y < height; y++) {
    const src = ((top + y) * image.width + left) * c;
    out.data.set(image.data.subarray(src, src + width * c), y * width * c);
  }
  return out;
}

/**
 * Bilinear resize with half-pixel centres (tf.image.resizeBilinear with halfPixelCenters, no
 * antialiasing): output pixel (y, x) samples the input at ((y + 0.5)·H_in/H_out − 0.5, …),
 * clamped at the borders.
 */
export function resizeBilinear(image: FloatImage, outHeight: number, outWidth: number): FloatImage {
  return cropAndResize(
    image,
    { top: 0, left: 0, height: image.height, width: image.width },
    outHeight,
    outWidth,
  );
}

/** Crops `box` and resizes it bilinearly (half-pixel centres) to outHeight x outWidth. */
export function cropAndResize(
  image: FloatImage,
  box: CropBox,
  outHeight: number,
  outWidth: number,
): FloatImage {
  if (!Number.isInteger(outHeight) || !Number.isInteger(outWidth) || outHeight <= 0 || outWidth <= 0) {
    throw new Error(`Resize target must be positive integers, got ${outHeight}x${outWidth}.`);
  }
  const cropped = cropImage(image, box);
  if (box.height === outHeight && box.width === outWidth) return cropped;
  const { height: h, width: w, channels: c, data } = cropped;
  const out = emptyImage(outHeight, outWidth, c);
  const sy = h / outHeight;
  const sx = w / outWidth;
  const x0s = new Int32Array(outWidth);
  const x1s = new Int32Array(outWidth);
  const wxs = new Float32Array(outWidth);
  for (let x = 0; x < outWidth; x++) {
    const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), w - 1);
    x0s[x] = Math.floor(fx);
    x1s[x] = Math.min(x0s[x] + 1, w - 1);
    wxs[x] = fx - x0s[x];
  }
  for (let y = 0; y < outHeight; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), h - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, h - 1);
    const wy = fy - y0;
    for (let x = 0; x < outWidth; x++) {
      const wx = wxs[x];
      const a = (y0 * w + x0s[x]) * c;
      const b = (y0 * w + x1s[x]) * c;
      const d = (y1 * w + x0s[x]) * c;
      const e = (y1 * w + x1s[x]) * c;
      const o = (y * outWidth + x) * c;
      for (let ch = 0; ch < c; ch++) {
        const top = data[a + ch] * (1 - wx) + data[b + ch] * wx;
        const bottom = data[d + ch] * (1 - wx) + data[e + ch] * wx;
        out.data[o + ch] = top * (1 - wy) + bottom * wy;
      }
    }
  }
  return out;
}
