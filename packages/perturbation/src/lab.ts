import { createRandom, type Random } from '@fwdgrad/random';
import { checkNoiseKind, type NoiseKind, noiseFourthMoment } from './noise.js';

/**
 * The variance lab (paper appendix 10, Figure 8): a network p → q (tanh) → 1 with squared error, and the
 * estimators of its first layer's weights W1 [p, q]. Everything here is plain float64 JavaScript: the
 * estimators are evaluated in closed form, which the tests check equals the jvp-based estimators of this
 * package on the same examples and noise.
 */

/** The estimators the lab compares (Table 1 plus the true mini-batch gradient). */
export type LabEstimator =
  | 'weight-shared'
  | 'weight-independent'
  | 'activity-shared'
  | 'activity-independent'
  | 'backprop';

/** In the order they are reported. */
export const labEstimators: readonly LabEstimator[] = [
  'weight-shared',
  'weight-independent',
  'activity-shared',
  'activity-independent',
  'backprop',
];

/**
 * A lab problem: a fixed data set (the population mini-batches are drawn from, with replacement) and a fixed
 * network. Arrays are row-major float64. The per-example loss is ℓ = (y − t)², the mini-batch loss its mean.
 */
export interface LabProblem {
  /** Fan-in and fan-out of the first layer. */
  p: number;
  q: number;
  /** D, the number of examples. */
  size: number;
  /** Inputs [D, p] and targets [D]. */
  x: Float64Array;
  target: Float64Array;
  /** The network: W1 [p, q], b1 [q], W2 [q] (→ 1 output), b2. */
  w1: Float64Array;
  b1: Float64Array;
  w2: Float64Array;
  b2: number;
  /** ∂ℓ_n/∂z_n per example [D, q] (z = x·W1 + b1); the per-example gradient of W1 is x_n ⊗ delta_n. */
  delta: Float64Array;
  /** The population gradient E_x[∇W1] [p, q]. */
  meanGradient: Float64Array;
  /** V: the dimension-wise average variance of the per-example gradient of W1 (over the data set). */
  V: number;
  /** S: the dimension-wise average squared entry of the population gradient. */
  S: number;
}

/** Fills `buf` with zero-mean unit-variance noise of `kind` drawn from `random`. */
function fillNoise(random: Random, buf: Float64Array, kind: NoiseKind): void {
  if (kind === 'gaussian') {
    for (let i = 0; i < buf.length; i++) buf[i] = random.standardNormal();
  } else {
    for (let i = 0; i < buf.length; i++) buf[i] = random.uniform() < 0.5 ? -1 : 1;
  }
}

/** Options of {@link createLabProblem}. */
export interface LabProblemOptions {
  p: number;
  q: number;
  /** D, examples in the data set. Default 5000. */
  size?: number;
  /** Default 0. The problem depends on (seed, p, q) only. */
  seed?: number;
}

function checkPositiveInt(where: string, name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new Error(`${where}: ${name} must be an integer ≥ 1, got ${String(v)}`);
  }
  return v;
}

/**
 * Builds a lab problem: x ~ N(0, I_p); targets from a teacher p → 4 (tanh) → 1 (A ~ N(0, 1/p), output weights
 * ±1) plus N(0, 0.1²) noise; the student W1 ~ N(0, 1/p), b1 ~ N(0, 0.25), W2 = ±1/√q, b2 = 0. The data and the
 * teacher depend on (seed, p), the student on (seed, p, q). Computes the per-example gradients
 * in closed form (backprop by hand: δ = 2(y − t)·W2 ⊙ (1 − h²)) and V, S exactly over the data set, so that
 * with mini-batches drawn with replacement the Table 1 formulas are exact expectations.
 */
export function createLabProblem(options: LabProblemOptions): LabProblem {
  const where = 'createLabProblem';
  const p = checkPositiveInt(where, 'p', options.p);
  const q = checkPositiveInt(where, 'q', options.q);
  const size = checkPositiveInt(where, 'size', options.size ?? 5000);
  const seed = options.seed ?? 0;
  // Separate streams: the data and the teacher depend on (seed, p) only, the student on (seed, p, q), so the
  // fan-out sweep varies the student alone; scales are normalised so that problems of different sizes compare.
  const dataStream = createRandom(seed).derive('lab-data', p);
  const studentStream = createRandom(seed).derive('lab-student', p, q);
  const normals = (stream: Random, n: number, scale: number) => {
    const a = new Float64Array(n);
    for (let i = 0; i < n; i++) a[i] = scale * stream.standardNormal();
    return a;
  };
  const teacherWidth = 4;
  const ta = normals(dataStream, p * teacherWidth, 1 / Math.sqrt(p));
  const tc = Float64Array.from({ length: teacherWidth }, (_, k) => (k % 2 === 0 ? 1 : -1));
  const x = normals(dataStream, size * p, 1);
  const noise = normals(dataStream, size, 0.1);
  const w1 = normals(studentStream, p * q, 1 / Math.sqrt(p));
  const b1 = normals(studentStream, q, 0.5);
  const w2 = Float64Array.from({ length: q }, () => (studentStream.uniform() < 0.5 ? -1 : 1) / Math.sqrt(q));
  const b2 = 0;
  const target = new Float64Array(size);
  const delta = new Float64Array(size * q);
  for (let n = 0; n < size; n++) {
    let t = 0;
    for (let k = 0; k < teacherWidth; k++) {
      let s = 0;
      for (let i = 0; i < p; i++) s += x[n * p + i] * ta[i * teacherWidth + k];
      t += tc[k] * Math.tanh(s);
    }
    target[n] = t + noise[n];
  }
  const h = new Float64Array(q);
  for (let n = 0; n < size; n++) {
    let y = b2;
    for (let j = 0; j < q; j++) {
      let z = b1[j];
      for (let i = 0; i < p; i++) z += x[n * p + i] * w1[i * q + j];
      h[j] = Math.tanh(z);
      y += h[j] * w2[j];
    }
    const r = 2 * (y - target[n]); // ∂ℓ/∂y
    for (let j = 0; j < q; j++) delta[n * q + j] = r * w2[j] * (1 - h[j] * h[j]);
  }
  const meanGradient = new Float64Array(p * q);
  for (let n = 0; n < size; n++) {
    for (let i = 0; i < p; i++) {
      const xi = x[n * p + i];
      for (let j = 0; j < q; j++) meanGradient[i * q + j] += xi * delta[n * q + j];
    }
  }
  for (let k = 0; k < p * q; k++) meanGradient[k] /= size;
  let v = 0;
  for (let n = 0; n < size; n++) {
    for (let i = 0; i < p; i++) {
      const xi = x[n * p + i];
      for (let j = 0; j < q; j++) {
        const d = xi * delta[n * q + j] - meanGradient[i * q + j];
        v += d * d;
      }
    }
  }
  let s = 0;
  for (let k = 0; k < p * q; k++) s += meanGradient[k] * meanGradient[k];
  return {
    p,
    q,
    size,
    x,
    target,
    w1,
    b1,
    w2,
    b2,
    delta,
    meanGradient,
    V: v / (size * p * q),
    S: s / (p * q),
  };
}

/**
 * The noise of one lab sample, drawn in this order: the shared weight direction [p·q], the per-example weight
 * directions [N·p·q], the shared activity noise [q], the per-example activity noise [N·q].
 */
export interface LabSampleNoise {
  weightShared: Float64Array;
  weightIndependent: Float64Array;
  activityShared: Float64Array;
  activityIndependent: Float64Array;
}

/** Allocates the noise buffers of a sample with N examples. */
export function allocateLabNoise(problem: LabProblem, n: number): LabSampleNoise {
  const pq = problem.p * problem.q;
  return {
    weightShared: new Float64Array(pq),
    weightIndependent: new Float64Array(n * pq),
    activityShared: new Float64Array(problem.q),
    activityIndependent: new Float64Array(n * problem.q),
  };
}

/** Fills the noise buffers from `stream`, in the documented order. */
export function drawLabNoise(stream: Random, kind: NoiseKind, noise: LabSampleNoise): void {
  fillNoise(stream, noise.weightShared, kind);
  fillNoise(stream, noise.weightIndependent, kind);
  fillNoise(stream, noise.activityShared, kind);
  fillNoise(stream, noise.activityIndependent, kind);
}

/** One estimate of ∇W1 [p·q] per estimator. */
export type LabEstimates = Record<LabEstimator, Float64Array>;

/** Allocates estimate buffers. */
export function allocateLabEstimates(problem: LabProblem): LabEstimates {
  const pq = problem.p * problem.q;
  return {
    'weight-shared': new Float64Array(pq),
    'weight-independent': new Float64Array(pq),
    'activity-shared': new Float64Array(pq),
    'activity-independent': new Float64Array(pq),
    backprop: new Float64Array(pq),
  };
}

/**
 * The five estimates of ∇W1 for the mini-batch `batch` (example indices) and the given noise, in closed form
 * (L = (1/N) Σ_n ℓ_n; per-example gradient ∇W_n = x_n ⊗ δ_n):
 * - backprop: G = (1/N) Σ_n x_n ⊗ δ_n;
 * - weight shared (eq. 2): (G·v) v;
 * - weight independent: (1/N) Σ_n (∇W_n·v_n) v_n, with ∇W_n·v_n = x_nᵀ v_n δ_n;
 * - activity shared (eq. 3): (1/N) Σ_n x_n ⊗ (δ_n·u) u;
 * - activity independent: (1/N) Σ_n x_n ⊗ (δ_n·u_n) u_n.
 * Writes into `out`.
 */
export function labEstimates(
  problem: LabProblem,
  batch: ArrayLike<number>,
  noise: LabSampleNoise,
  out: LabEstimates,
): void {
  const { p, q, x, delta } = problem;
  const pq = p * q;
  const n = batch.length;
  const bp = out.backprop;
  const ws = out['weight-shared'];
  const wi = out['weight-independent'];
  const as = out['activity-shared'];
  const ai = out['activity-independent'];
  bp.fill(0);
  wi.fill(0);
  ai.fill(0);
  as.fill(0);
  const uS = noise.activityShared;
  // as temporarily holds Σ_n (δ_n·u) x_n in its first p entries.
  const sx = new Float64Array(p);
  for (let m = 0; m < n; m++) {
    const xo = batch[m] * p;
    const dO = batch[m] * q;
    const vo = m * pq;
    const uo = m * q;
    let aW = 0;
    for (let i = 0; i < p; i++) {
      const xi = x[xo + i];
      let row = 0;
      for (let j = 0; j < q; j++) {
        const d = delta[dO + j];
        bp[i * q + j] += xi * d;
        row += noise.weightIndependent[vo + i * q + j] * d;
      }
      aW += xi * row;
    }
    for (let k = 0; k < pq; k++) wi[k] += aW * noise.weightIndependent[vo + k];
    let aS = 0;
    let aI = 0;
    for (let j = 0; j < q; j++) {
      aS += delta[dO + j] * uS[j];
      aI += delta[dO + j] * noise.activityIndependent[uo + j];
    }
    for (let i = 0; i < p; i++) {
      const xi = x[xo + i];
      sx[i] += aS * xi;
      const c = aI * xi;
      for (let j = 0; j < q; j++) ai[i * q + j] += c * noise.activityIndependent[uo + j];
    }
  }
  let aG = 0;
  for (let k = 0; k < pq; k++) {
    bp[k] /= n;
    wi[k] /= n;
    ai[k] /= n;
    aG += bp[k] * noise.weightShared[k];
  }
  for (let k = 0; k < pq; k++) ws[k] = aG * noise.weightShared[k];
  for (let i = 0; i < p; i++) {
    for (let j = 0; j < q; j++) as[i * q + j] = (sx[i] / n) * uS[j];
  }
}

/** Table 1's prediction of an estimator's dimension-wise average variance (null for backprop outside the batch sweep). */
export interface LabTheoryInput {
  V: number;
  S: number;
  N: number;
  p: number;
  q: number;
  /** E[v⁴] of the noise: 3 for Gaussian (Table 1), 1 for Rademacher. Default 3. */
  fourthMoment?: number;
}

/**
 * Table 1 (appendix 9): weight shared (pq+2)/N·V + (pq+1)·S; weight independent (pq+2)/N·V + (pq+1)/N·S;
 * activity the same with q in place of pq; backprop V/N (eq. 25). For noise with fourth moment κ the same
 * derivation gives m+κ−1 and m+κ−2 in place of m+2 and m+1 (m = pq or q).
 */
export function labTheory(estimator: LabEstimator, input: LabTheoryInput): number {
  const { V, S, N, p, q } = input;
  const kappa = input.fourthMoment ?? 3;
  if (estimator === 'backprop') return V / N;
  const m = estimator.startsWith('weight') ? p * q : q;
  const shared = estimator.endsWith('shared');
  return ((m + kappa - 1) / N) * V + (m + kappa - 2) * (shared ? 1 : 1 / N) * S;
}

/** Options of {@link measureLabPoint}. */
export interface LabPointOptions {
  /** N, the mini-batch size. */
  N: number;
  /** Estimates drawn (each with a fresh mini-batch and fresh noise). Default 5000. */
  samples?: number;
  /** Default 'gaussian'. */
  noise?: NoiseKind;
  /** Default 0. The draws depend on (seed, N, p, q). */
  seed?: number;
}

/**
 * Draws `samples` estimates of each estimator at batch size N and returns their empirical dimension-wise
 * average variance (unbiased, over the samples; each sample draws N examples with replacement and new noise).
 */
export function measureLabPoint(problem: LabProblem, options: LabPointOptions): Record<LabEstimator, number> {
  const where = 'measureLabPoint';
  const n = checkPositiveInt(where, 'N', options.N);
  const samples = checkPositiveInt(where, 'samples', options.samples ?? 5000);
  if (samples < 2) throw new Error(`${where}: samples must be ≥ 2 to measure a variance, got ${samples}`);
  const kind = options.noise ?? 'gaussian';
  checkNoiseKind(where, kind);
  const { p, q, size, meanGradient } = problem;
  const pq = p * q;
  const stream = createRandom(options.seed ?? 0).derive('lab-point', n, p, q);
  const noise = allocateLabNoise(problem, n);
  const est = allocateLabEstimates(problem);
  const batch = new Int32Array(n);
  // Sums of (g − E g) and its square per coordinate, shifted by the known population mean for accuracy.
  const sums = labEstimators.map(() => new Float64Array(pq));
  const squares = labEstimators.map(() => new Float64Array(pq));
  for (let s = 0; s < samples; s++) {
    for (let m = 0; m < n; m++) batch[m] = Math.floor(stream.uniform() * size);
    drawLabNoise(stream, kind, noise);
    labEstimates(problem, batch, noise, est);
    labEstimators.forEach((e, ei) => {
      const g = est[e];
      const sum = sums[ei];
      const sq = squares[ei];
      for (let k = 0; k < pq; k++) {
        const d = g[k] - meanGradient[k];
        sum[k] += d;
        sq[k] += d * d;
      }
    });
  }
  const result = {} as Record<LabEstimator, number>;
  labEstimators.forEach((e, ei) => {
    let total = 0;
    for (let k = 0; k < pq; k++)
      total += (squares[ei][k] - (sums[ei][k] * sums[ei][k]) / samples) / (samples - 1);
    result[e] = total / pq;
  });
  return result;
}

/** Which sweeps of Figure 8 a lab point belongs to. */
export type LabSweep = 'batch' | 'fan-in' | 'fan-out';

/** One result line of the lab: an estimator at one (N, p, q). */
export interface VarianceRow {
  estimator: LabEstimator;
  N: number;
  p: number;
  q: number;
  /** Measured dimension-wise average variance. */
  empirical: number;
  /** Table 1's prediction; null for backprop outside the batch-size sweep (as in the paper). */
  theory: number | null;
  /** The sweeps this point belongs to (a point can be on several, e.g. N = 4, p = q = 4). */
  sweeps: LabSweep[];
  /** The problem's V and S. */
  V: number;
  S: number;
}

/** Options of {@link runVarianceLab}. */
export interface VarianceLabOptions {
  /** The batch-size sweep (p, q fixed at baseFanIn, baseFanOut). Default 1, 2, 4, …, 4096. */
  batchSizes?: number[];
  /** The fan-in sweep (N = fixedBatch, q = baseFanOut). Default 1, 2, …, 256. */
  fanIns?: number[];
  /** The fan-out sweep (N = fixedBatch, p = baseFanIn). Default 1, 2, …, 256. */
  fanOuts?: number[];
  /** N in the fan sweeps. Default 4. */
  fixedBatch?: number;
  /** p and q of the 4 → 4 → 1 network outside their sweep. Default 4 each. */
  baseFanIn?: number;
  baseFanOut?: number;
  /** Estimates per point. Default 5000. */
  samples?: number;
  /** Examples in each problem's data set (V and S are exact over it). Default 5000. */
  dataSize?: number;
  /** Default 0. */
  seed?: number;
  /** Default 'gaussian' (Table 1); 'rademacher' uses the κ = 1 variant of the formulas. */
  noise?: NoiseKind;
  /** Called after each point. */
  onProgress?: (progress: { done: number; total: number; N: number; p: number; q: number }) => void;
}

const powersOfTwo = (max: number) => Array.from({ length: Math.log2(max) + 1 }, (_, i) => 2 ** i);

function checkList(where: string, name: string, list: unknown): number[] {
  if (!Array.isArray(list) || list.length === 0)
    throw new Error(`${where}: ${name} must be a non-empty array`);
  for (const v of list) checkPositiveInt(where, `every entry of ${name}`, v);
  return list as number[];
}

/**
 * Runs the variance lab (appendix 10, Figure 8): for each point of the batch-size sweep and the fan-in and
 * fan-out sweeps, measures the empirical variance of the five estimators of W1's gradient over `samples`
 * draws and reports Table 1's prediction from the problem's V and S. Each distinct (N, p, q) is measured once.
 * Deterministic for a given seed. The default budget takes seconds to tens of seconds in Node (pure JS).
 */
export function runVarianceLab(options: VarianceLabOptions = {}): VarianceRow[] {
  const where = 'runVarianceLab';
  const batchSizes = checkList(where, 'batchSizes', options.batchSizes ?? powersOfTwo(4096));
  const fanIns = checkList(where, 'fanIns', options.fanIns ?? powersOfTwo(256));
  const fanOuts = checkList(where, 'fanOuts', options.fanOuts ?? powersOfTwo(256));
  const fixedBatch = checkPositiveInt(where, 'fixedBatch', options.fixedBatch ?? 4);
  const baseP = checkPositiveInt(where, 'baseFanIn', options.baseFanIn ?? 4);
  const baseQ = checkPositiveInt(where, 'baseFanOut', options.baseFanOut ?? 4);
  const samples = checkPositiveInt(where, 'samples', options.samples ?? 5000);
  const dataSize = checkPositiveInt(where, 'dataSize', options.dataSize ?? 5000);
  const seed = options.seed ?? 0;
  const kind = options.noise ?? 'gaussian';
  checkNoiseKind(where, kind);
  const kappa = noiseFourthMoment(kind);

  const points = new Map<string, { N: number; p: number; q: number; sweeps: LabSweep[] }>();
  const addPoint = (N: number, p: number, q: number, sweep: LabSweep) => {
    const key = `${N},${p},${q}`;
    const point = points.get(key) ?? { N, p, q, sweeps: [] };
    if (!point.sweeps.includes(sweep)) point.sweeps.push(sweep);
    points.set(key, point);
  };
  for (const N of batchSizes) addPoint(N, baseP, baseQ, 'batch');
  for (const p of fanIns) addPoint(fixedBatch, p, baseQ, 'fan-in');
  for (const q of fanOuts) addPoint(fixedBatch, baseP, q, 'fan-out');

  const problems = new Map<string, LabProblem>();
  const rows: VarianceRow[] = [];
  let done = 0;
  for (const { N, p, q, sweeps } of points.values()) {
    const pkey = `${p},${q}`;
    let problem = problems.get(pkey);
    if (problem === undefined) {
      problem = createLabProblem({ p, q, size: dataSize, seed });
      problems.set(pkey, problem);
    }
    const empirical = measureLabPoint(problem, { N, samples, noise: kind, seed });
    for (const estimator of labEstimators) {
      const theory =
        estimator === 'backprop' && !sweeps.includes('batch')
          ? null
          : labTheory(estimator, { V: problem.V, S: problem.S, N, p, q, fourthMoment: kappa });
      rows.push({
        estimator,
        N,
        p,
        q,
        empirical: empirical[estimator],
        theory,
        sweeps,
        V: problem.V,
        S: problem.S,
      });
    }
    done++;
    options.onProgress?.({ done, total: points.size, N, p, q });
  }
  return rows;
}

/** The rows as the `fwdgrad variance --json` lines: `{"estimator","N","p","q","empirical","theory"}` each. */
export function varianceJsonLines(rows: readonly VarianceRow[]): string[] {
  return rows.map((r) =>
    JSON.stringify({
      estimator: r.estimator,
      N: r.N,
      p: r.p,
      q: r.q,
      empirical: r.empirical,
      theory: r.theory,
    }),
  );
}
