import type * as tf from '@tensorflow/tfjs';

/** `[a, b, c]`, the way error messages print shapes. */
export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** True when both shapes are equal. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Throws unless `samples` (K) is an integer ≥ 1. */
export function checkSamples(where: string, samples: unknown): number {
  if (typeof samples !== 'number' || !Number.isInteger(samples) || samples < 1) {
    throw new Error(
      `${where}: samples (K, the number of noise samples averaged per estimate) must be an integer ≥ 1, ` +
        `got ${String(samples)}`,
    );
  }
  return samples;
}

/** Throws unless every entry is a float32 tf.Tensor; `what(i)` names entry i in the message. */
export function checkTensors(where: string, ts: unknown, what: (i: number) => string): tf.Tensor[] {
  if (!Array.isArray(ts)) throw new Error(`${where}: expected an array of tensors, got ${typeof ts}`);
  ts.forEach((t, i) => {
    if (t === null || typeof t !== 'object' || !('shape' in t) || !('dtype' in t)) {
      throw new Error(`${where}: ${what(i)} is not a tf.Tensor`);
    }
    if ((t as tf.Tensor).dtype !== 'float32') {
      throw new Error(
        `${where}: ${what(i)} has dtype ${(t as tf.Tensor).dtype}; only float32 can be perturbed`,
      );
    }
  });
  return ts as tf.Tensor[];
}

/** "parameter 2 'w1' (shape [4, 3])" — how errors name a parameter. */
export function describeParam(index: number, shape: readonly number[], names?: readonly string[]): string {
  const name = names?.[index];
  return `parameter ${index}${name === undefined ? '' : ` '${name}'`} (shape ${shapeString(shape)})`;
}
