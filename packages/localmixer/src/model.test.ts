import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  classify,
  disposeParams,
  exactContext,
  finalFeatures,
  forward,
  forwardBackbone,
  headFeatures,
  initParams,
  type LayerContext,
  type LinearSite,
  type LocalMixerConfig,
  type LocalMixerParams,
  linearSites,
  type NormKind,
  type NormPlacementName,
  patchify,
  presets,
  resolveConfig,
  siteActivationShape,
  unpatchify,
} from './index.js';
import { tiny } from './testing.test-util.js';

// ---------------------------------------------------------------------------------------------------------------
// A straightforward reference written with explicit loops over plain arrays, in float64. Activations are kept as
// [N][P][channels] (no transposes: token mixing contracts the patch index directly); groups are index ranges;
// normalisation statistics are gathered by a key function instead of tensor axes.
type A3 = number[][][];

function normRef(x: A3, key: (n: number, p: number, c: number) => string): A3 {
  const stats = new Map<string, { s: number; s2: number; k: number }>();
  for (let n = 0; n < x.length; n++) {
    for (let p = 0; p < x[n].length; p++) {
      for (let c = 0; c < x[n][p].length; c++) {
        const v = x[n][p][c];
        const e = stats.get(key(n, p, c)) ?? { s: 0, s2: 0, k: 0 };
        e.s += v;
        e.s2 += v * v;
        e.k += 1;
        stats.set(key(n, p, c), e);
      }
    }
  }
  return x.map((xn, n) =>
    xn.map((xp, p) =>
      xp.map((v, c) => {
        const e = stats.get(key(n, p, c))!;
        const mu = e.s / e.k;
        return (v - mu) / Math.sqrt(e.s2 / e.k - mu * mu + 1e-5);
      }),
    ),
  );
}

/** Normalisation keys: per patch (local), per patch and group of `width` channels, per example, per unit. */
function keyFor(kind: NormKind, groupWidth?: number) {
  if (kind === 'layer') return (n: number) => `${n}`;
  if (kind === 'batch') return (_n: number, p: number, c: number) => `${p},${c}`;
  if (groupWidth === undefined) return (n: number, p: number) => `${n},${p}`;
  return (n: number, p: number, c: number) => `${n},${p},${Math.floor(c / groupWidth)}`;
}

const relu = (x: A3) => x.map((a) => a.map((b) => b.map((v) => Math.max(v, 0))));
const addRef = (x: A3, y: A3) => x.map((a, n) => a.map((b, p) => b.map((v, c) => v + y[n][p][c])));

function denseRef(x: A3, w: number[][], b: number[]): A3 {
  return x.map((xn) => xn.map((xp) => b.map((bo, o) => xp.reduce((acc, v, i) => acc + v * w[i][o], bo))));
}

function groupedRef(x: A3, w: number[][][], b: number[][]): A3 {
  const G = w.length;
  const ci = w[0].length;
  const co = w[0][0].length;
  return x.map((xn) =>
    xn.map((xp) => {
      const out: number[] = [];
      for (let g = 0; g < G; g++) {
        for (let o = 0; o < co; o++) {
          let acc = b[g][o];
          for (let i = 0; i < ci; i++) acc += xp[g * ci + i] * w[g][i][o];
          out.push(acc);
        }
      }
      return out;
    }),
  );
}

function tokenRef(x: A3, w: number[][], b: number[]): A3 {
  // y[n][q][c] = b[q] + Σ_p x[n][p][c]·w[p][q]
  return x.map((xn) =>
    b.map((bq, q) => xn[0].map((_, c) => xn.reduce((acc, xp, p) => acc + xp[c] * w[p][q], bq))),
  );
}

function referenceForward(config: LocalMixerConfig, params: LocalMixerParams<tf.Tensor>, patches: A3) {
  const { begin, middle, postLinear } = config.placement;
  const kind = config.norm;
  const C = config.channels;
  const G = config.groups;
  const hg = config.hidden / G;
  const cg = C / G;
  const arr = (t: tf.Tensor) => t.arraySync() as never;
  const W = params.backbone.map((p) => ({ w: arr(p.w), b: arr(p.b) }));
  const post = (z: A3, key: ReturnType<typeof keyFor>) => (postLinear ? normRef(z, key) : z);
  const outs: A3[] = [];
  // Block 0.
  let x = begin ? normRef(patches, keyFor(kind)) : patches;
  let h = relu(post(denseRef(x, W[0].w, W[0].b), keyFor(kind)));
  if (middle) h = normRef(h, keyFor(kind, hg));
  h = relu(post(groupedRef(h, W[1].w, W[1].b), keyFor(kind, cg)));
  outs.push(h);
  for (let k = 1; k < config.blocks; k++) {
    const [t, d, g] = [W[2 + 3 * (k - 1)], W[3 + 3 * (k - 1)], W[4 + 3 * (k - 1)]];
    const input = h;
    x = begin ? normRef(input, keyFor(kind)) : input;
    h = relu(post(tokenRef(x, t.w, t.b), keyFor(kind)));
    if (middle) h = normRef(h, keyFor(kind));
    h = relu(post(denseRef(h, d.w, d.b), keyFor(kind)));
    if (middle) h = normRef(h, keyFor(kind, hg));
    h = relu(addRef(post(groupedRef(h, g.w, g.b), keyFor(kind, cg)), input));
    outs.push(h);
  }
  return outs;
}
// ---------------------------------------------------------------------------------------------------------------

function maxAbsDiff(t: tf.Tensor, ref: A3): number {
  const [n, P] = t.shape;
  const got = tf.tidy(() => tf.reshape(t, [n, P, -1]).arraySync() as A3);
  let m = 0;
  for (let i = 0; i < got.length; i++) {
    for (let p = 0; p < got[i].length; p++) {
      for (let c = 0; c < got[i][p].length; c++) m = Math.max(m, Math.abs(got[i][p][c] - ref[i][p][c]));
    }
  }
  return m;
}

/** Random non-zero biases, so that the reference also checks where biases enter. */
function withBiases(config: LocalMixerConfig, seed: number): LocalMixerParams {
  const params = initParams(config, seed);
  params.backbone.forEach((p, i) => {
    p.b.assign(tf.tidy(() => tf.randomNormal(p.b.shape, 0, 0.5, 'float32', seed + i)));
  });
  return params;
}

describe('forwardBackbone equals a loop reference', () => {
  const kinds: NormKind[] = ['local-layer', 'layer', 'batch'];
  const placements: NormPlacementName[] = ['before+after', 'begin', 'before', 'after'];
  for (const norm of kinds) {
    for (const placement of placements) {
      it(`${norm}, ${placement}`, () => {
        const config = resolveConfig(tiny, { norm, placement });
        const params = withBiases(config, 3);
        const x = tf.randomNormal([3, 4, 16], 0, 1, 'float32', 11);
        const outs = forwardBackbone(config, params, x);
        const ref = referenceForward(config, params, x.arraySync() as A3);
        expect(outs.map((o) => o.shape)).toEqual([
          [3, 4, 2, 4],
          [3, 4, 2, 4],
          [3, 4, 2, 4],
        ]);
        // float32 against float64; batch statistics over 3 examples amplify rounding a little more.
        const tol = norm === 'batch' ? 1e-3 : 2e-4;
        for (const [k, o] of outs.entries()) expect(maxAbsDiff(o, ref[k])).toBeLessThan(tol);
        // A wrong residual, group order or norm axis would move values by O(1); make sure the outputs are not trivial.
        expect(tf.tidy(() => tf.max(outs[2]).dataSync()[0])).toBeGreaterThan(0.1);
        tf.dispose([...outs, x]);
        disposeParams(params);
      });
    }
  }

  it('headFeatures (inter LN per group) and finalFeatures (mean over P, LN over C) match the reference', () => {
    const params = withBiases(tiny, 5);
    const x = tf.randomNormal([2, 4, 16], 0, 1, 'float32', 12);
    const outs = forwardBackbone(tiny, params, x);
    const y = outs[2].arraySync() as number[][][][];
    const flat: A3 = y.map((a) => a.map((b) => b.flat()));
    const head = headFeatures(tiny, outs[2]);
    expect(maxAbsDiff(head, normRef(flat, keyFor('local-layer', 4)))).toBeLessThan(1e-4);
    const pooled: A3 = [flat.map((a) => a[0].map((_, c) => a.reduce((s, b) => s + b[c], 0) / a.length))];
    const lnPooled = normRef(pooled, (_n, p) => `${p}`)[0];
    const feats = finalFeatures(tiny, outs[2]);
    expect(maxAbsDiff(tf.reshape(feats, [1, 2, 8]), [lnPooled])).toBeLessThan(1e-4);
    const noLn = finalFeatures(resolveConfig(tiny, { lastLayerLn: false, interLn: false }), outs[2]);
    expect(maxAbsDiff(tf.reshape(noLn, [1, 2, 8]), pooled)).toBeLessThan(1e-5);
    const noInter = headFeatures(resolveConfig(tiny, { interLn: false }), outs[2]);
    expect(maxAbsDiff(noInter, flat)).toBe(0);
    params.classifier.w.assign(tf.randomNormal([8, 10], 0, 1, 'float32', 4));
    params.classifier.b.assign(tf.range(0, 10).toFloat());
    const logits = classify(params, feats);
    const w = params.classifier.w.arraySync() as number[][];
    const refLogits = lnPooled.map((f) => w[0].map((_, k) => k + f.reduce((s, v, c) => s + v * w[c][k], 0)));
    expect(maxAbsDiff(tf.reshape(logits, [1, 2, 10]), [refLogits])).toBeLessThan(1e-4);
    tf.dispose([...outs, x, head, feats, noLn, noInter, logits]);
    disposeParams(params);
  });
});

describe('LayerContext', () => {
  it('visits every site exactly once, in order, with the right layout, parameters and shapes', () => {
    const params = initParams(tiny, 1);
    const events: string[] = [];
    const base = exactContext();
    const sites = linearSites(tiny);
    expect(sites.map((s) => `${s.index}:${s.block}.${s.layer}:${s.layout}`)).toEqual([
      '0:0.0:dense',
      '1:0.1:grouped',
      '2:1.0:token',
      '3:1.1:dense',
      '4:1.2:grouped',
      '5:2.0:token',
      '6:2.1:dense',
      '7:2.2:grouped',
    ]);
    const inShape = (s: LinearSite) =>
      s.layout === 'token'
        ? [2, 8, 4]
        : s.layout === 'grouped'
          ? [2, 4, 2, 6]
          : s.block === 0
            ? [2, 4, 16]
            : [2, 4, 8];
    const ctx: LayerContext = {
      linear: (site, x, w, b) => {
        events.push(`linear ${site.index} ${site.layout}`);
        expect(site).toEqual(sites[site.index]);
        expect(x.shape).toEqual(inShape(site));
        expect(w).toBe(params.backbone[site.index].w);
        expect(b).toBe(params.backbone[site.index].b);
        return base.linear(site, x, w, b);
      },
      activate: (site, a) => {
        events.push(`activate ${site.index}`);
        expect(a.pre.shape).toEqual(inShape(site));
        expect(a.prenorm.shape).toEqual(siteActivationShape(tiny, site, 2));
        const residual = site.block > 0 && site.layer === 2;
        expect(a.residual?.shape).toEqual(residual ? [2, 4, 2, 4] : undefined);
        const out = base.activate(site, a);
        expect(out.shape).toEqual(siteActivationShape(tiny, site, 2));
        return out;
      },
      blockBoundary: (block, h) => {
        events.push(`boundary ${block}`);
        expect(h.shape).toEqual([2, 4, 2, 4]);
        return base.blockBoundary(block, h);
      },
    };
    const x = tf.randomNormal([2, 4, 16], 0, 1, 'float32', 2);
    const outs = forwardBackbone(tiny, params, x, ctx);
    const expected: string[] = [];
    for (const s of sites) {
      expected.push(`linear ${s.index} ${s.layout}`, `activate ${s.index}`);
      if (s.layer === (s.block === 0 ? 1 : 2) && s.block < tiny.blocks - 1)
        expected.push(`boundary ${s.block}`);
    }
    expect(events).toEqual(expected);
    tf.dispose([...outs, x]);
    disposeParams(params);
  });

  it('uses what the context returns at every site (no layer silently skipped)', () => {
    const params = initParams(tiny, 1);
    const x = tf.randomNormal([2, 4, 16], 0, 1, 'float32', 2);
    const base = exactContext();
    const last = (ctx: LayerContext) => tf.tidy(() => forwardBackbone(tiny, params, x, ctx)[2]);
    const clean = last(base);
    for (const site of linearSites(tiny)) {
      // Shift the pre-activation of one unit at this site: the block output must change.
      const shifted: LayerContext = {
        ...base,
        activate: (s, a) =>
          s.index === site.index
            ? base.activate(s, {
                ...a,
                normalize: (z) => tf.add(a.normalize(z), tf.oneHot(0, z.shape[z.rank - 1]).mul(5)),
              })
            : base.activate(s, a),
      };
      const out = last(shifted);
      expect(tf.tidy(() => tf.max(tf.abs(tf.sub(out, clean))).dataSync()[0])).toBeGreaterThan(1e-3);
      out.dispose();
      const scaled: LayerContext = {
        ...base,
        linear: (s, xx, w, b) =>
          s.index === site.index ? tf.mul(base.linear(s, xx, w, b), 3) : base.linear(s, xx, w, b),
      };
      // Normalisation would undo a positive scale of a linear output, so check this without any.
      const noPost = resolveConfig(tiny, { placement: { begin: false, middle: false, postLinear: false } });
      const a = tf.tidy(() => forwardBackbone(noPost, params, x, base)[2]);
      const b = tf.tidy(() => forwardBackbone(noPost, params, x, scaled)[2]);
      // relative: without normalisation the block outputs are small (weights capped at 0.1)
      const change = tf.tidy(
        () =>
          tf
            .max(tf.abs(tf.sub(a, b)))
            .div(tf.max(tf.abs(a)))
            .dataSync()[0],
      );
      expect(change).toBeGreaterThan(1e-3);
      tf.dispose([a, b]);
    }
    tf.dispose([clean, x]);
    disposeParams(params);
  });

  it('exactContext: a stop-gradient between blocks zeroes earlier blocks’ gradients of a later block’s loss', () => {
    const params = initParams(tiny, 4);
    const x = tf.randomNormal([2, 4, 16], 0, 1, 'float32', 6);
    const sites = linearSites(tiny);
    // Gradients with respect to the layers of blocks 0..block (tfjs refuses parameters a loss cannot reach).
    const gradNorms = (stop: boolean, block: number) =>
      tf.tidy(() => {
        const upstream = sites.filter((s) => s.block <= block).length;
        const flat = params.backbone.slice(0, upstream).flatMap((p) => [p.w, p.b]);
        const f = (...ts: tf.Tensor[]) => {
          const backbone = params.backbone.map((p, i) =>
            i < upstream ? { w: ts[2 * i], b: ts[2 * i + 1] } : p,
          );
          const outs = forwardBackbone(
            tiny,
            { backbone },
            x,
            exactContext({ stopGradientBetweenBlocks: stop }),
          );
          return tf.sum(tf.square(tf.sub(outs[block], 0.3)));
        };
        const grads = tf.grads(f)(flat);
        // Weight-gradient norms of each backbone layer (biases of token mixing are dead parameters, REFERENCE 2).
        return Array.from({ length: upstream }, (_, i) => tf.norm(grads[2 * i]).dataSync()[0]);
      });
    const stopped = gradNorms(true, 2);
    expect(stopped.slice(0, 5)).toEqual([0, 0, 0, 0, 0]); // blocks 0 and 1
    for (const g of stopped.slice(5)) expect(g).toBeGreaterThan(1e-4); // block 2
    const through = gradNorms(false, 2);
    for (const g of through) expect(g).toBeGreaterThan(1e-5);
    // The outputs are taken before the boundary: a block's own loss still reaches the block.
    const own = gradNorms(true, 1);
    expect(own.slice(0, 2)).toEqual([0, 0]);
    expect(own).toHaveLength(5);
    for (const g of own.slice(2)) expect(g).toBeGreaterThan(1e-4);
    x.dispose();
    disposeParams(params);
  });
});

describe('patchify', () => {
  it('cuts a known image into row-major patches flattened in (h, w, c) order, and back', () => {
    const config = resolveConfig({ imageShape: [4, 4, 2], patchesPerSide: 2, channels: 4, groups: 1 });
    const img = tf.range(0, 32).reshape([1, 4, 4, 2]); // value = (h·4 + w)·2 + c
    const patches = patchify(img, config);
    expect(patches.shape).toEqual([1, 4, 8]);
    expect(patches.arraySync()).toEqual([
      [
        [0, 1, 2, 3, 8, 9, 10, 11],
        [4, 5, 6, 7, 12, 13, 14, 15],
        [16, 17, 18, 19, 24, 25, 26, 27],
        [20, 21, 22, 23, 28, 29, 30, 31],
      ],
    ]);
    const back = unpatchify(patches, config);
    expect(back.arraySync()).toEqual(img.arraySync());
    const normed = patchify(img, config, { mean: [1, 2], std: [2, 4] });
    expect(Array.from(normed.dataSync()).slice(0, 4)).toEqual([-0.5, -0.25, 0.5, 0.25]);
    const rect = resolveConfig({ imageShape: [4, 6, 1], patchesPerSide: 2, channels: 4, groups: 1 });
    const r = tf.randomNormal([2, 4, 6, 1], 0, 1, 'float32', 1);
    const rp = patchify(r, rect);
    expect(rp.shape).toEqual([2, 4, 6]);
    expect(tf.max(tf.abs(tf.sub(unpatchify(rp, rect), r))).dataSync()[0]).toBe(0);
    tf.dispose([img, patches, back, normed, r, rp]);
  });

  it('rejects images and patches whose shape does not match the config', () => {
    const img = tf.zeros([2, 8, 8, 3]);
    expect(() => patchify(img, tiny)).toThrow(
      'images have shape [2, 8, 8, 3] but the config expects [N, 8, 8, 1] (NHWC); resize the images or set imageShape to [8, 8, 3]',
    );
    const params = initParams(tiny, 1);
    const x = tf.zeros([2, 4, 15]);
    expect(() => forwardBackbone(tiny, params, x)).toThrow(
      'input has shape [2, 4, 15] but the config expects [N, 4, 16]',
    );
    const other = initParams(resolveConfig(tiny, { channels: 4 }), 1);
    expect(() => forwardBackbone(tiny, other, tf.zeros([2, 4, 16]))).toThrow(
      'backbone layer 0 has weight [16, 4] and bias [4] but the config needs [16, 12] and [12]',
    );
    expect(() => forwardBackbone(resolveConfig(tiny, { blocks: 2 }), params, tf.zeros([2, 4, 16]))).toThrow(
      'params.backbone has 8 layers but the config (2 blocks) needs 5',
    );
    tf.dispose([img, x]);
    disposeParams(params);
    disposeParams(other);
  });
});

describe('forward', () => {
  it('runs S/1/1 on a batch of 2 without leaking tensors', () => {
    const params = initParams(presets['S/1/1'], 0);
    const images = tf.randomUniform([2, 28, 28, 1], 0, 1, 'float32', 9);
    const before = tf.memory().numTensors;
    const { blocks, logits } = forward(presets['S/1/1'], params, images);
    expect(blocks.map((b) => b.shape)).toEqual([[2, 1, 1, 256]]);
    expect(logits.shape).toEqual([2, 10]);
    expect(Array.from(logits.dataSync())).toEqual(Array(20).fill(0)); // the classifier starts at zero
    expect(Number.isFinite(tf.tidy(() => tf.sum(blocks[0]).dataSync()[0]))).toBe(true);
    tf.dispose([...blocks, logits]);
    expect(tf.memory().numTensors).toBe(before);
    images.dispose();
    disposeParams(params);
  });

  it('contrastive: projection [N, 128] and an LN readout', () => {
    const config = resolveConfig(tiny, { objective: 'contrastive', lastLayerLn: false });
    const params = initParams(config, 2);
    const images = tf.randomUniform([3, 8, 8, 1], 0, 1, 'float32', 9);
    const out = forward(config, params, images);
    expect(out.projection?.shape).toEqual([3, 128]);
    expect(out.logits.shape).toEqual([3, 10]);
    const feats = finalFeatures(config, out.blocks[2]);
    const m = tf.mean(feats, 1).dataSync();
    for (const v of m) expect(Math.abs(v)).toBeLessThan(1e-5);
    tf.dispose([...out.blocks, out.logits, out.projection!, images, feats]);
    disposeParams(params);
  });
});
