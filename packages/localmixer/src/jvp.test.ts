import * as tf from '@tensorflow/tfjs';
import { jvp } from '@fwdgrad/jvp-core';
import { describe, expect, it } from 'vitest';
import {
  disposeParams,
  exactContext,
  forwardBackbone,
  initParams,
  type LinearParams,
  type NormKind,
  resolveConfig,
} from './index.js';
import { tiny } from './testing.test-util.js';

// Forward mode through the one forward definition: for f = forwardBackbone (all block outputs) at the backbone
// parameters and the input, jvp gives J·u; tfjs reverse mode gives Jᵀ·w. They must satisfy w·(J u) = (Jᵀ w)·u.

function dot(a: tf.Tensor[], b: tf.Tensor[]): number {
  return tf.tidy(() => a.reduce((acc, t, i) => acc + tf.sum(tf.mul(t, b[i])).dataSync()[0], 0));
}

function setup(norm: NormKind, seed: number) {
  const config = resolveConfig(tiny, { norm });
  const params = initParams(config, seed);
  params.backbone.forEach((p, i) => {
    p.b.assign(tf.tidy(() => tf.randomNormal(p.b.shape, 0, 0.3, 'float32', seed + i)));
  });
  const x = tf.randomNormal([3, 4, 16], 0, 1, 'float32', seed + 100);
  const primals: tf.Tensor[] = [x, ...params.backbone.flatMap((p) => [p.w, p.b])];
  const fn =
    (stop: boolean) =>
    (...ts: tf.Tensor[]) => {
      const backbone: LinearParams[] = params.backbone.map((_, i) => ({
        w: ts[1 + 2 * i],
        b: ts[2 + 2 * i],
      }));
      return forwardBackbone(config, { backbone }, ts[0], exactContext({ stopGradientBetweenBlocks: stop }));
    };
  return { config, params, x, primals, fn };
}

describe('jvp through forwardBackbone (exactContext)', () => {
  for (const norm of ['local-layer', 'batch'] as NormKind[]) {
    for (const stop of [false, true]) {
      it(`matches tfjs reverse mode: w·(J u) = (Jᵀ w)·u (${norm}, stopGradient ${stop})`, () => {
        const { params, x, primals, fn } = setup(norm, 21);
        const f = fn(stop);
        const u = primals.map((p, i) => tf.randomNormal(p.shape, 0, 1, 'float32', 500 + i));
        const [outs, tangents] = jvp(f, primals, u);
        const w = outs.map((o, k) => tf.randomNormal(o.shape, 0, 1, 'float32', 900 + k));
        const lhs = dot(w, tangents);
        const grads = tf.grads((...ts: tf.Tensor[]) =>
          tf.addN((f(...ts) as tf.Tensor[]).map((o, k) => tf.sum(tf.mul(o, w[k])))),
        )(primals);
        const rhs = dot(grads, u);
        expect(Math.abs(lhs)).toBeGreaterThan(1);
        expect(Math.abs(lhs - rhs) / Math.abs(rhs)).toBeLessThan(1e-3);
        // Plain values are unchanged by forward mode.
        const plain = f(...primals);
        for (const [k, o] of outs.entries()) {
          expect(tf.tidy(() => tf.max(tf.abs(tf.sub(o, plain[k]))).dataSync()[0])).toBe(0);
        }
        tf.dispose([...outs, ...tangents, ...w, ...u, ...grads, ...plain, x]);
        disposeParams(params);
      });
    }
  }

  it('a stop-gradient between blocks leaves the tangents of earlier blocks out of later blocks', () => {
    const { params, x, primals, fn } = setup('local-layer', 5);
    // Tangents only on the parameters of block 0 (and the input): block 0's output moves, later blocks do not.
    const u = primals.map((p, i) =>
      i < 5 ? tf.randomNormal(p.shape, 0, 1, 'float32', 40 + i) : tf.zerosLike(p),
    );
    const [outs, tangents] = jvp(fn(true), primals, u);
    const norms = tf.tidy(() => tangents.map((t) => tf.max(tf.abs(t)).dataSync()[0]));
    expect(norms[0]).toBeGreaterThan(1e-3);
    expect(norms.slice(1)).toEqual([0, 0]);
    const [outs2, tangents2] = jvp(fn(false), primals, u);
    const through = tf.tidy(() => tangents2.map((t) => tf.max(tf.abs(t)).dataSync()[0]));
    for (const n of through) expect(n).toBeGreaterThan(1e-3);
    tf.dispose([...outs, ...tangents, ...outs2, ...tangents2, ...u, x]);
    disposeParams(params);
  });
});
