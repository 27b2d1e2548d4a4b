import * as tf from '@tensorflow/tfjs';
import type { LinearLayout } from '@fwdgrad/linear';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type ActivityRecorder,
  activityPerturbedEstimate,
  plainSites,
  replicaGroupTangents,
  replicaRoute,
  replicaUnitTangent,
  type Sites,
} from './index.js';
import { rand, values } from './testing.test-util.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** One-hot noise over all K = units of every example: sample k perturbs unit k only. */
const oneHot = (_name: string, shape: number[]) =>
  tf.tidy(() => {
    const [k, n, ...unit] = shape;
    return tf.reshape(tf.tile(tf.expandDims(tf.eye(k), 1), [1, n, 1]), [k, n, ...unit]);
  });

/**
 * One layer of each layout with local losses replicated over patches and groups, ℓ[n, p, g] depending only on
 * the units of patch p and group g of example n (as LocalMixer's block outputs feed its replicas): units
 * token [N, C, P] (group g = channels gC′…), dense [N, P, Hd] (group g = units g·Hd/G…), grouped [N, P, G, C′].
 */
const N = 2;
const P = 3;
const G = 2;
function layer(layout: LinearLayout) {
  const specs = {
    token: { x: [N, 4, P], w: [P, P], b: [P] },
    dense: { x: [N, P, 3], w: [3, 4], b: [4] },
    grouped: { x: [N, P, G, 3], w: [G, 3, 2], b: [G, 2] },
  } as const;
  const s = specs[layout];
  const x = rand([...s.x], 1);
  const params = [rand([...s.w], 2), rand([...s.b], 3, -0.3, 0.3)];
  const coef = rand([N, P, G], 4, 0.5, 1.5);
  /** ℓ[n, p, g] = coef · Σ_{units of (n, p, g)} h². */
  const replicas = (h: tf.Tensor) => {
    const byGroup =
      layout === 'token'
        ? tf.transpose(tf.reshape(h, [N, G, 4 / G, P]), [0, 3, 1, 2]) // [N, P, G, C′]
        : layout === 'dense'
          ? tf.reshape(h, [N, P, G, 2])
          : h;
    return tf.mul(coef, tf.sum(tf.square(byGroup), -1));
  };
  const forward = ([w, b]: tf.Tensor[], sites: Sites) => replicas(sites.linear('h', x, w, b, { layout }));
  return {
    x,
    params,
    coef,
    forward,
    units: layout === 'grouped' ? G * 2 * P : layout === 'dense' ? 4 * P : 4 * P,
  };
}

describe('activityPerturbedEstimate with replicated local losses (the LG-FG-A estimate)', () => {
  for (const layout of ['token', 'dense', 'grouped'] as const) {
    it(`'${layout}': one-hot noise over all units, routed by replicaRoute, gives K · estimate = the exact gradient`, () => {
      const m = layer(layout);
      const exact = tf.grads((w: tf.Tensor, b: tf.Tensor) => tf.sum(m.forward([w, b], plainSites)))(m.params);
      const before = tf.memory().numTensors;
      const estimate = activityPerturbedEstimate(
        (sites: ActivityRecorder) => {
          const losses = m.forward(m.params, sites);
          return { losses: [losses], outputs: [tf.relu(m.x)] };
        },
        { noise: oneHot, samples: m.units, route: replicaRoute(() => 0) },
      );
      expect(estimate.sites.map((s) => s.name)).toEqual(['h']);
      expect(estimate.losses[0].shape).toEqual([N, P, G]);
      expect(values(estimate.outputs[0])).toEqual(tf.tidy(() => values(tf.relu(m.x))));
      const [{ dw, db }] = estimate.sites;
      values(dw).forEach((v, i) => {
        expect(v * m.units).toBeCloseTo(values(exact[0])[i], 4);
      });
      values(db).forEach((v, i) => {
        expect(v * m.units).toBeCloseTo(values(exact[1])[i], 4);
      });
      tf.dispose([...estimate.losses, ...estimate.outputs, dw, db]);
      expect(tf.memory().numTensors).toBe(before); // everything else was disposed
      tf.dispose([m.x, m.coef, ...m.params, ...exact]);
    });
  }

  it("two blocks: replicaRoute drives each site by its own block's losses only", () => {
    const a = layer('dense');
    const b = layer('grouped'); // also 12 units per example
    // block 1's losses also depend on block 0's units (no stop-gradient here): block 0's estimate must
    // still follow block 0's losses alone
    const forward = (sites: Sites) => {
      const h0 = sites.linear('h0', a.x, a.params[0], a.params[1]);
      const l0 = tf.mul(a.coef, tf.sum(tf.square(tf.reshape(h0, [N, P, G, 2])), -1));
      const h1 = sites.linear('h1', b.x, b.params[0], b.params[1], { layout: 'grouped' });
      const l1 = tf.add(tf.mul(b.coef, tf.sum(tf.square(h1), -1)), tf.sum(h0));
      return [l0, l1];
    };
    const onlyAt = (site: string) => (name: string, shape: number[]) =>
      name === site ? oneHot(name, shape) : tf.zeros(shape);
    const block = (r: { name: string }) => (r.name === 'h0' ? 0 : 1);
    const exact0 = tf.grads((w: tf.Tensor, c: tf.Tensor) => tf.sum(a.forward([w, c], plainSites)))(a.params);
    const e = activityPerturbedEstimate((sites) => ({ losses: forward(sites) }), {
      noise: onlyAt('h0'),
      samples: a.units,
      route: replicaRoute(block),
    });
    values(e.sites[0].dw).forEach((v, i) => {
      expect(v * a.units).toBeCloseTo(values(exact0[0])[i], 4);
    });
    expect(values(e.sites[1].dw).every((v) => v === 0)).toBe(true); // h1 saw no noise
    tf.dispose([...e.losses, ...e.sites.flatMap((s) => [s.dw, s.db]), ...exact0]);
    for (const m of [a, b]) tf.dispose([m.x, m.coef, ...m.params]);
  });
});

describe('replicaUnitTangent and replicaGroupTangents', () => {
  it('map [K, N, P′, G′] tangents to each layout (token: Σ_g over channels; dense: groups on the last axis; grouped: per group)', () => {
    const t = tf.tensor4d([1, 2, 3, 4, 5, 6], [1, 1, 3, 2]); // K = N = 1, P = 3, G = 2
    expect(replicaUnitTangent('token', t, 3).shape).toEqual([1, 1, 1, 3]);
    expect(values(replicaUnitTangent('token', t, 3))).toEqual([3, 7, 11]);
    expect(replicaUnitTangent('dense', t, 3)).toBe(t);
    expect(replicaUnitTangent('grouped', t, 4).shape).toEqual([1, 1, 3, 2, 1]);
    const perExample = tf.tensor2d([[1, 2]]); // [K = 1, N = 2]
    expect(replicaUnitTangent('grouped', perExample, 4).shape).toEqual([1, 2, 1, 1, 1]);
    expect(() => replicaUnitTangent('dense', tf.zeros([1, 2, 3]), 3)).toThrow(/expected replicated losses/);
  });

  it('s_g = Σ_{n,p} t[n, p, g]; a global scalar tangent is one group, tiled over a grouped layer', () => {
    const t = tf.tensor3d([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]); // [N, P, G]
    expect(values(replicaGroupTangents('dense', t, 2, false))).toEqual([16, 20]);
    expect(values(replicaGroupTangents('grouped', tf.expandDims(t, 0), 2, true))).toEqual([16, 20]);
    expect(values(replicaGroupTangents('dense', tf.scalar(3), 1, false))).toEqual([3]);
    expect(values(replicaGroupTangents('grouped', tf.tensor1d([3, 5]), 4, true))).toEqual([
      3, 3, 3, 3, 5, 5, 5, 5,
    ]);
  });
});
