import * as tf from '@tensorflow/tfjs';
import { createRandom } from '@fwdgrad/random';
import { describe, expect, it } from 'vitest';
import {
  activityPerturbedGradient,
  allocateLabEstimates,
  allocateLabNoise,
  createLabProblem,
  drawLabNoise,
  independentWeightPerturbedGradient,
  type LabEstimator,
  type LabProblem,
  labEstimates,
  labEstimators,
  labTheory,
  measureLabPoint,
  runVarianceLab,
  type Sites,
  varianceJsonLines,
  weightPerturbedGradient,
} from './index.js';
import { values } from './testing.test-util.js';

/** The lab network as tfjs code written against Sites (the form every estimator of this package takes). */
function labTensors(problem: LabProblem, batch: number[]) {
  const { p, q } = problem;
  const x = tf.tensor2d(
    batch.flatMap((i) => Array.from(problem.x.subarray(i * p, i * p + p))),
    [batch.length, p],
  );
  const t = tf.tensor1d(batch.map((i) => problem.target[i]));
  const w1 = tf.tensor2d(Array.from(problem.w1), [p, q]);
  const b1 = tf.tensor1d(Array.from(problem.b1));
  const w2 = tf.tensor2d(Array.from(problem.w2), [q, 1]);
  const forward = ([ww1, bb1]: tf.Tensor[], sites: Sites) => {
    const h = sites.linear('hidden', x, ww1, bb1, { activation: tf.tanh });
    const y = tf.add(tf.squeeze(tf.matMul(h, w2), [1]), problem.b2);
    return tf.square(tf.sub(y, t)); // per-example ℓ_n = (y − t)²
  };
  const perExample = (ww1: tf.Tensor) =>
    tf.square(
      tf.sub(tf.add(tf.squeeze(tf.matMul(tf.tanh(tf.add(tf.matMul(x, ww1), b1)), w2), [1]), problem.b2), t),
    );
  return { x, t, w1, b1, w2, forward, perExample, dispose: () => tf.dispose([x, t, w1, b1, w2]) };
}

const close = (got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-4) => {
  expect(got.length).toBe(want.length);
  const scale = Math.max(1e-3, ...Array.from(want, Math.abs));
  Array.from(got).forEach((v, i) => {
    expect(Math.abs(v - want[i])).toBeLessThan(tol * scale);
  });
};

describe('the lab problem', () => {
  it('per-example gradients (closed form) equal tfjs autodiff; V and S are their variance and squared mean', () => {
    const problem = createLabProblem({ p: 3, q: 5, size: 40, seed: 3 });
    const all = Array.from({ length: 40 }, (_, i) => i);
    const lt = labTensors(problem, all);
    const perExample = all.map((n) =>
      values(tf.tidy(() => tf.grad((w: tf.Tensor) => tf.gather(lt.perExample(w), n))(lt.w1))),
    );
    for (const n of [0, 7, 39]) {
      const closed = Array.from(
        { length: 15 },
        (_, k) => problem.x[n * 3 + Math.floor(k / 5)] * problem.delta[n * 5 + (k % 5)],
      );
      close(closed, perExample[n]);
    }
    const mean = Array.from({ length: 15 }, (_, k) => perExample.reduce((s, g) => s + g[k], 0) / 40);
    close(problem.meanGradient, mean);
    const v = mean.reduce((s, m, k) => s + perExample.reduce((a, g) => a + (g[k] - m) ** 2, 0) / 40, 0) / 15;
    const sq = mean.reduce((s, m) => s + m * m, 0) / 15;
    expect(problem.V).toBeCloseTo(v, 4);
    expect(problem.S).toBeCloseTo(sq, 4);
    lt.dispose();
  });

  it('is deterministic for a seed and differs between seeds', () => {
    const a = createLabProblem({ p: 2, q: 3, size: 10, seed: 1 });
    const b = createLabProblem({ p: 2, q: 3, size: 10, seed: 1 });
    const c = createLabProblem({ p: 2, q: 3, size: 10, seed: 2 });
    expect(Array.from(a.x)).toEqual(Array.from(b.x));
    expect(a.V).toBe(b.V);
    expect(Array.from(a.x)).not.toEqual(Array.from(c.x));
  });
});

describe('the closed-form lab estimators equal the jvp-based estimators on the same examples and noise', () => {
  it('all five, for several samples', () => {
    const problem = createLabProblem({ p: 3, q: 5, size: 50, seed: 1 });
    const n = 4;
    const stream = createRandom(99);
    const noise = allocateLabNoise(problem, n);
    const est = allocateLabEstimates(problem);
    for (let sample = 0; sample < 3; sample++) {
      const batch = Array.from({ length: n }, () => Math.floor(stream.uniform() * problem.size));
      drawLabNoise(stream, 'gaussian', noise);
      labEstimates(problem, batch, noise, est);
      const lt = labTensors(problem, batch);
      const vShared = tf.tensor3d(Array.from(noise.weightShared), [1, 3, 5]);
      const vInd = tf.tensor4d(Array.from(noise.weightIndependent), [1, n, 3, 5]);
      const uShared = tf.tensor1d(Array.from(noise.activityShared));
      const uInd = tf.tensor3d(Array.from(noise.activityIndependent), [1, n, 5]);
      const meanLoss = (w: tf.Tensor) => tf.mean(lt.perExample(w));
      const got: Record<LabEstimator, tf.Tensor> = {
        backprop: tf.grad(meanLoss)(lt.w1),
        'weight-shared': weightPerturbedGradient(meanLoss, [lt.w1], { directions: [vShared] }).grads[0],
        'weight-independent': independentWeightPerturbedGradient(lt.perExample, [lt.w1], {
          directions: [vInd],
        }).grads[0],
        'activity-shared': activityPerturbedGradient(lt.forward, [lt.w1, lt.b1], {
          noise: (_site, shape) => tf.broadcastTo(tf.reshape(uShared, [1, 1, 5]), shape),
        }).grads[0],
        'activity-independent': activityPerturbedGradient(lt.forward, [lt.w1, lt.b1], { noise: () => uInd })
          .grads[0],
      };
      for (const e of labEstimators) close(values(got[e]), est[e]);
      lt.dispose();
      tf.disposeVariables();
    }
  });
});

describe('Table 1: the empirical variance matches the prediction within 10 %', () => {
  const points: [number, number, number][] = [
    [1, 4, 4],
    [4, 4, 4],
    [16, 4, 4],
    [64, 2, 8],
    [4, 16, 4],
    [4, 4, 16],
  ];
  for (const [N, p, q] of points) {
    it(`Gaussian noise, N = ${N}, p = ${p}, q = ${q}: all four estimators (and backprop, V/N)`, () => {
      const problem = createLabProblem({ p, q, size: 5000, seed: 0 });
      const emp = measureLabPoint(problem, { N, samples: 20000, seed: 0 });
      for (const e of labEstimators) {
        const theory = labTheory(e, { V: problem.V, S: problem.S, N, p, q });
        expect(Math.abs(emp[e] / theory - 1), `${e}: ${emp[e]} vs ${theory}`).toBeLessThan(0.1);
      }
    });
  }

  it('Rademacher noise (κ = E[v⁴] = 1) follows the same derivation with pq+κ−1, pq+κ−2', () => {
    for (const [N, p, q] of [
      [4, 4, 4],
      [8, 8, 2],
    ]) {
      const problem = createLabProblem({ p, q, size: 5000, seed: 1 });
      const emp = measureLabPoint(problem, { N, samples: 20000, seed: 1, noise: 'rademacher' });
      for (const e of labEstimators) {
        const theory = labTheory(e, { V: problem.V, S: problem.S, N, p, q, fourthMoment: 1 });
        expect(Math.abs(emp[e] / theory - 1), e).toBeLessThan(0.1);
        // …and fits better than the Gaussian formula (which it is told apart from: for the activity
        // estimators, m = q is small and the two formulas differ by more than 25 %).
        if (e !== 'backprop') {
          const gaussian = labTheory(e, { V: problem.V, S: problem.S, N, p, q });
          expect(Math.abs(emp[e] / theory - 1)).toBeLessThan(Math.abs(emp[e] / gaussian - 1));
          if (e.startsWith('activity')) expect(Math.abs(emp[e] / gaussian - 1)).toBeGreaterThan(0.2);
        }
      }
    }
  });

  it('the independent estimators’ variance falls like 1/N; shared ones level off at (m+1)·S', () => {
    const problem = createLabProblem({ p: 4, q: 4, size: 5000, seed: 0 });
    const small = measureLabPoint(problem, { N: 2, samples: 20000, seed: 0 });
    const large = measureLabPoint(problem, { N: 128, samples: 20000, seed: 0 });
    expect(small['weight-independent'] / large['weight-independent']).toBeGreaterThan(64 * 0.85);
    expect(small['activity-independent'] / large['activity-independent']).toBeGreaterThan(64 * 0.85);
    expect(large['weight-shared'] / (17 * problem.S)).toBeGreaterThan(1);
    expect(large['weight-shared'] / (17 * problem.S)).toBeLessThan(1.25);
  });

  it('the ratio weight/activity grows like the fan-in p (Table 1: a factor p fewer perturbed dimensions)', () => {
    const ps = [1, 4, 16, 64];
    const ratios = ps.map((p) => {
      const problem = createLabProblem({ p, q: 4, size: 5000, seed: 2 });
      const emp = measureLabPoint(problem, { N: 4, samples: 20000, seed: 2 });
      const th = (e: LabEstimator) => labTheory(e, { V: problem.V, S: problem.S, N: 4, p, q: 4 });
      const empirical = {
        shared: emp['weight-shared'] / emp['activity-shared'],
        independent: emp['weight-independent'] / emp['activity-independent'],
      };
      const theory = {
        shared: th('weight-shared') / th('activity-shared'),
        independent: th('weight-independent') / th('activity-independent'),
      };
      expect(Math.abs(empirical.shared / theory.shared - 1)).toBeLessThan(0.15);
      expect(Math.abs(empirical.independent / theory.independent - 1)).toBeLessThan(0.15);
      return empirical;
    });
    // Linear in p: ratio ≈ a·p + b with a ≈ q/(q+1…q+2) — each 4× in p multiplies it by ≈ 4 once p ≫ 1.
    for (const kind of ['shared', 'independent'] as const) {
      expect(ratios[0][kind]).toBeGreaterThan(0.85);
      expect(ratios[0][kind]).toBeLessThan(1.15); // p = 1: the same number of perturbed dimensions
      for (let i = 1; i < ps.length; i++) {
        expect(ratios[i][kind] / ps[i]).toBeGreaterThan(0.5);
        expect(ratios[i][kind] / ps[i]).toBeLessThan(1.1);
      }
      expect(ratios[3][kind] / ratios[2][kind]).toBeGreaterThan(3.2);
      expect(ratios[3][kind] / ratios[2][kind]).toBeLessThan(4.8);
    }
  });
});

describe('runVarianceLab', () => {
  const options = {
    batchSizes: [1, 4, 16],
    fanIns: [2, 4],
    fanOuts: [1, 4],
    samples: 300,
    dataSize: 200,
    seed: 5,
  };

  it('reports each distinct (N, p, q) once with its sweeps; backprop theory only on the batch sweep', () => {
    const progress: number[] = [];
    const rows = runVarianceLab({ ...options, onProgress: (p) => progress.push(p.done) });
    // Points: batch (1,4,4), (4,4,4), (16,4,4); fan-in (4,2,4); fan-out (4,4,1) → 5 points × 5 estimators.
    expect(rows.length).toBe(25);
    expect(progress).toEqual([1, 2, 3, 4, 5]);
    const shared = rows.filter((r) => r.N === 4 && r.p === 4 && r.q === 4);
    expect(shared.length).toBe(5);
    expect(shared[0].sweeps.sort()).toEqual(['batch', 'fan-in', 'fan-out']);
    const bp = rows.filter((r) => r.estimator === 'backprop');
    for (const r of bp) expect(r.theory === null).toBe(!r.sweeps.includes('batch'));
    for (const r of rows.filter((r) => r.estimator !== 'backprop')) expect(r.theory).toBeGreaterThan(0);
    for (const r of rows) expect(r.empirical).toBeGreaterThan(0);
    // Deterministic.
    expect(runVarianceLab(options).map((r) => r.empirical)).toEqual(rows.map((r) => r.empirical));
  });

  it('JSON lines have exactly the documented fields', () => {
    const rows = runVarianceLab(options);
    const lines = varianceJsonLines(rows);
    expect(lines.length).toBe(rows.length);
    for (const line of lines) {
      const o = JSON.parse(line);
      expect(Object.keys(o)).toEqual(['estimator', 'N', 'p', 'q', 'empirical', 'theory']);
      expect(labEstimators).toContain(o.estimator);
    }
    expect(lines.some((l) => l.includes('"theory":null'))).toBe(true);
  });

  it('rejects bad options with a clear message', () => {
    expect(() => runVarianceLab({ samples: 0 })).toThrow(/samples must be an integer ≥ 1, got 0/);
    expect(() => runVarianceLab({ batchSizes: [] })).toThrow(/batchSizes must be a non-empty array/);
    expect(() => runVarianceLab({ fanIns: [2, 0] })).toThrow(
      /every entry of fanIns must be an integer ≥ 1, got 0/,
    );
    expect(() => runVarianceLab({ noise: 'laplace' as never })).toThrow(
      /noise must be 'gaussian' or 'rademacher'/,
    );
    expect(() => measureLabPoint(createLabProblem({ p: 1, q: 1, size: 3 }), { N: 2, samples: 1 })).toThrow(
      /samples must be ≥ 2/,
    );
  });
});
