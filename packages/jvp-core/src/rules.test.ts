import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  FUSED_GROUPED_MATMUL,
  FUSED_LAYER_NORM,
  FUSED_LAYER_NORM_JVP,
  jvp,
  supportedKernels,
} from './index.js';
import { checkBatched, checkJvp, rand, testBackend } from './testing.test-util.js';

beforeAll(async () => {
  await tf.setBackend(testBackend());
  registerReferenceKernels(testBackend());
});

const FUSED_KERNELS = [FUSED_LAYER_NORM, FUSED_LAYER_NORM_JVP, FUSED_GROUPED_MATMUL];

/** y and r of a layer norm over one axis, with tfjs ops (the fused kernels' contract). */
function composite(x: tf.Tensor, epsilon = 1e-5, axis = -1): [tf.Tensor, tf.Tensor] {
  const mean = tf.mean(x, axis, true);
  const r = tf.rsqrt(tf.add(tf.sub(tf.mean(tf.square(x), axis, true), tf.square(mean)), epsilon));
  return [tf.mul(tf.sub(x, mean), r), r];
}

function compositeJvp(t: tf.Tensor, y: tf.Tensor, r: tf.Tensor, axis = -1): tf.Tensor {
  const ax = axis < 0 ? axis + t.rank : axis + (t.rank - y.rank); // t may stack copies over y's shape
  const centred = tf.sub(t, tf.mean(t, ax, true));
  return tf.mul(tf.sub(centred, tf.mul(y, tf.mean(tf.mul(y, t), ax, true))), r);
}

/** The grouped product with transposes and batched matMul (the contract of FUSED_GROUPED_MATMUL). */
function compositeGrouped(a: tf.Tensor, b: tf.Tensor, mode: 'nn' | 'nt' | 'tn'): tf.Tensor {
  const ag = tf.transpose(a, [1, 0, 2]);
  if (mode === 'nn') return tf.transpose(tf.matMul(ag, b), [1, 0, 2]);
  if (mode === 'nt') return tf.transpose(tf.matMul(ag, b, false, true), [1, 0, 2]);
  return tf.matMul(ag, tf.transpose(b, [1, 0, 2]), true, false);
}

type Info = { dataId: object; shape: number[]; dtype: string };
/** What the reference kernels use of a backend (cpu, webgl and webgpu all have it). */
type Backend = {
  readSync(id: object): Float32Array;
  makeTensorInfo(s: number[], d: string, v: Float32Array): Info;
};

/** [outer, n, inner] around `axis` (default −1) of `shape`. */
function view(
  shape: number[],
  axisAttr: number | undefined,
): { axis: number; outer: number; n: number; inner: number } {
  const axis = (axisAttr ?? -1) < 0 ? (axisAttr ?? -1) + shape.length : (axisAttr as number);
  const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);
  return { axis, outer: prod(shape.slice(0, axis)), n: shape[axis], inner: prod(shape.slice(axis + 1)) };
}

/**
 * The fused layer-norm and grouped-product kernels of ops.ts / grouped.ts, in plain JavaScript on the backend
 * under test (cpu; webgl and webgpu in the browser run), unless a backend package (@fwdgrad/native, under
 * FWDGRAD_TEST_BACKEND=native) registered its own: the JVP rules are tested against either.
 */
function registerReferenceKernels(backendName: string): void {
  // tfjs-node's backend has no makeTensorInfo: there the fused cases test the composite fallback (below)
  const backend = tf.findBackend(backendName) as unknown as Partial<Backend> | null;
  if (typeof backend?.makeTensorInfo !== 'function') return;
  if (tf.getKernel(FUSED_LAYER_NORM, backendName) === undefined) {
    tf.registerKernel({
      kernelName: FUSED_LAYER_NORM,
      backendName,
      kernelFunc: (({
        inputs,
        attrs,
        backend,
      }: {
        inputs: { x: Info };
        attrs: { epsilon: number; axis?: number };
        backend: Backend;
      }) => {
        const x = backend.readSync(inputs.x.dataId);
        const { axis, outer, n, inner } = view(inputs.x.shape, attrs.axis);
        const y = new Float32Array(x.length);
        const r = new Float32Array(outer * inner);
        for (let o = 0; o < outer; o++)
          for (let i = 0; i < inner; i++) {
            const at = (j: number) => (o * n + j) * inner + i;
            let s = 0;
            let sq = 0;
            for (let j = 0; j < n; j++) {
              s += x[at(j)];
              sq += x[at(j)] * x[at(j)];
            }
            const mean = Math.fround(s / n);
            const ri = 1 / Math.sqrt(Math.fround(sq / n) - mean * mean + attrs.epsilon);
            r[o * inner + i] = ri;
            for (let j = 0; j < n; j++) y[at(j)] = (x[at(j)] - mean) * ri;
          }
        return [
          backend.makeTensorInfo(inputs.x.shape, 'float32', y),
          backend.makeTensorInfo(
            inputs.x.shape.map((d, i) => (i === axis ? 1 : d)),
            'float32',
            r,
          ),
        ];
      }) as unknown as tf.KernelFunc,
    });
  }
  if (tf.getKernel(FUSED_LAYER_NORM_JVP, backendName) === undefined) {
    tf.registerKernel({
      kernelName: FUSED_LAYER_NORM_JVP,
      backendName,
      kernelFunc: (({
        inputs,
        attrs,
        backend,
      }: {
        inputs: { t: Info; y: Info; r: Info };
        attrs: { axis?: number } | undefined;
        backend: Backend;
      }) => {
        const [t, y, r] = [inputs.t, inputs.y, inputs.r].map((i) => backend.readSync(i.dataId));
        const { outer, n, inner } = view(inputs.y.shape, attrs?.axis);
        const out = new Float32Array(t.length);
        // t stacks copies of y's shape: [k·outer, n, inner]
        for (let q = 0; q < t.length / (n * inner); q++)
          for (let i = 0; i < inner; i++) {
            const o = q % outer;
            const tAt = (j: number) => (q * n + j) * inner + i;
            const yAt = (j: number) => (o * n + j) * inner + i;
            let st = 0;
            let syt = 0;
            for (let j = 0; j < n; j++) {
              st += t[tAt(j)];
              syt += y[yAt(j)] * t[tAt(j)];
            }
            for (let j = 0; j < n; j++)
              out[tAt(j)] = (t[tAt(j)] - st / n - (y[yAt(j)] * syt) / n) * r[o * inner + i];
          }
        return backend.makeTensorInfo(inputs.t.shape, 'float32', out);
      }) as unknown as tf.KernelFunc,
    });
  }
  if (tf.getKernel(FUSED_GROUPED_MATMUL, backendName) === undefined) {
    tf.registerKernel({
      kernelName: FUSED_GROUPED_MATMUL,
      backendName,
      kernelFunc: (({
        inputs,
        attrs,
        backend,
      }: {
        inputs: { a: Info; b: Info };
        attrs: { mode: 'nn' | 'nt' | 'tn' };
        backend: Backend;
      }) => {
        const [a, b] = [inputs.a, inputs.b].map((i) => backend.readSync(i.dataId));
        const [m, g, ca] = inputs.a.shape;
        const [, b1, b2] = inputs.b.shape;
        if (attrs.mode === 'tn') {
          // out[g, i, o] = Σ_m a[m, g, i]·b[m, g, o]
          const out = new Float32Array(g * ca * b2);
          for (let h = 0; h < g; h++)
            for (let i = 0; i < ca; i++)
              for (let o = 0; o < b2; o++) {
                let s = 0;
                for (let p = 0; p < m; p++) s += a[(p * g + h) * ca + i] * b[(p * g + h) * b2 + o];
                out[(h * ca + i) * b2 + o] = s;
              }
          return backend.makeTensorInfo([g, ca, b2], 'float32', out);
        }
        // nn: out[m, g, o] = Σ_i a[m, g, i]·b[g, i, o]; nt: out[m, g, i] = Σ_o a[m, g, o]·b[g, i, o]
        const width = attrs.mode === 'nn' ? b2 : b1;
        const out = new Float32Array(m * g * width);
        for (let p = 0; p < m; p++)
          for (let h = 0; h < g; h++)
            for (let q = 0; q < width; q++) {
              let s = 0;
              for (let j = 0; j < ca; j++)
                s +=
                  a[(p * g + h) * ca + j] *
                  (attrs.mode === 'nn' ? b[(h * b1 + j) * b2 + q] : b[(h * b1 + q) * b2 + j]);
              out[(p * g + h) * width + q] = s;
            }
        return backend.makeTensorInfo([m, g, width], 'float32', out);
      }) as unknown as tf.KernelFunc,
    });
  }
}

type F = (...xs: tf.Tensor[]) => tf.Tensor;
interface Case {
  kernel: string;
  /** the test's name where one kernel has several cases (default: the kernel) */
  name?: string;
  f: F;
  shapes: number[][];
  /** primal range; keep away from kinks and poles */
  lo?: number;
  hi?: number;
  /** f written with ops that have tfjs gradients, where tfjs's own gradient is missing or wrong */
  reference?: F;
  /** false where tfjs has no gradient to compare with (finite differences only) */
  reverse?: boolean;
  /** finite-difference step (default 1e-2) */
  h?: number;
}

const away = (x: tf.Tensor) => tf.add(x, tf.mul(tf.sign(x), 0.2)); // |x| ≥ 0.2: away from relu/abs kinks

const fusedLayerNorm = (x: tf.Tensor) => {
  const [y, r] = tf.engine().runKernel(FUSED_LAYER_NORM, { x }, { epsilon: 1e-5 }) as tf.Tensor[];
  return tf.add(y, tf.mul(r, 0.5)); // both outputs' tangents count
};

const fusedLayerNormAxis1 = (x: tf.Tensor) => {
  const [y, r] = tf.engine().runKernel(FUSED_LAYER_NORM, { x }, { epsilon: 1e-5, axis: 1 }) as tf.Tensor[];
  return tf.add(y, tf.mul(r, 0.5));
};

/** The fused grouped product in `mode` (the kernel itself, whichever registered it). */
const grouped =
  (mode: 'nn' | 'nt' | 'tn'): F =>
  (a, b) =>
    tf.engine().runKernel(FUSED_GROUPED_MATMUL, { a, b }, { mode }) as tf.Tensor;

const cases: Case[] = [
  {
    kernel: FUSED_LAYER_NORM,
    name: `${FUSED_LAYER_NORM} (axis 1)`,
    f: fusedLayerNormAxis1, // a middle axis: statistics over n of [outer, n, inner]
    shapes: [[2, 5, 3]],
    reference: (x) => {
      const [y, r] = composite(x, 1e-5, 1);
      return tf.add(y, tf.mul(r, 0.5));
    },
  },
  {
    kernel: FUSED_LAYER_NORM_JVP,
    name: `${FUSED_LAYER_NORM_JVP} (axis 1)`,
    f: (t, x) => {
      const [y, r] = tf
        .engine()
        .runKernel(FUSED_LAYER_NORM, { x }, { epsilon: 1e-5, axis: 1 }) as tf.Tensor[];
      return tf.engine().runKernel(FUSED_LAYER_NORM_JVP, { t, y, r }, { axis: 1 }) as tf.Tensor;
    },
    shapes: [
      [2, 2, 5, 3],
      [2, 5, 3],
    ],
    reference: (t, x) => {
      const [y, r] = composite(x, 1e-5, 1);
      return compositeJvp(t, y, r, 1);
    },
  },
  {
    kernel: FUSED_GROUPED_MATMUL,
    name: `${FUSED_GROUPED_MATMUL} 'nn'`,
    f: grouped('nn'),
    shapes: [
      [5, 3, 2],
      [3, 2, 4],
    ],
    reference: (a, b) => compositeGrouped(a, b, 'nn'),
  },
  {
    kernel: FUSED_GROUPED_MATMUL,
    name: `${FUSED_GROUPED_MATMUL} 'nt'`,
    f: grouped('nt'),
    shapes: [
      [5, 3, 4],
      [3, 2, 4],
    ],
    reference: (a, b) => compositeGrouped(a, b, 'nt'),
  },
  {
    kernel: FUSED_GROUPED_MATMUL,
    name: `${FUSED_GROUPED_MATMUL} 'tn'`,
    f: grouped('tn'),
    shapes: [
      [5, 3, 2],
      [5, 3, 4],
    ],
    reference: (a, b) => compositeGrouped(a, b, 'tn'),
  },
  {
    kernel: FUSED_LAYER_NORM,
    f: fusedLayerNorm,
    shapes: [[3, 7]],
    reference: (x) => {
      const [y, r] = composite(x);
      return tf.add(y, tf.mul(r, 0.5));
    },
  },
  {
    kernel: FUSED_LAYER_NORM_JVP,
    // t stacks 2 copies over y's shape; y and r come from a layer norm so they are consistent
    f: (t, x) => {
      const [y, r] = tf.engine().runKernel(FUSED_LAYER_NORM, { x }, { epsilon: 1e-5 }) as tf.Tensor[];
      return tf.engine().runKernel(FUSED_LAYER_NORM_JVP, { t, y, r }) as tf.Tensor;
    },
    shapes: [
      [2, 3, 6],
      [3, 6],
    ],
    reference: (t, x) => {
      const [y, r] = composite(x);
      return compositeJvp(t, y, r);
    },
  },
  { kernel: 'Add', f: (a, b) => tf.add(a, b), shapes: [[2, 3], [3]] },
  {
    kernel: 'AddN',
    f: (a, b, c) => tf.addN([a, b, c]),
    shapes: [
      [2, 3],
      [2, 3],
      [2, 3],
    ],
  },
  { kernel: 'Sub', f: (a, b) => tf.sub(a, b), shapes: [[3], [2, 3]] },
  {
    kernel: 'Multiply',
    f: (a, b) => tf.mul(a, b),
    shapes: [
      [2, 1, 3],
      [4, 1],
    ],
  },
  { kernel: 'RealDiv', f: (a, b) => tf.div(a, b), shapes: [[2, 3], [3]], lo: 0.5, hi: 2 },
  {
    kernel: 'SquaredDifference',
    f: (a, b) => tf.squaredDifference(a, b),
    shapes: [
      [2, 3],
      [2, 3],
    ],
  },
  {
    kernel: 'Maximum',
    f: (a, b) => tf.maximum(a, tf.add(b, 0.05)),
    shapes: [[4, 3], [3]],
    // tfjs 4.22's Maximum gradient does not reduce a broadcast input
    reference: (a, b) => tf.maximum(a, tf.broadcastTo(tf.add(b, 0.05), [4, 3])),
  },
  {
    kernel: 'Minimum',
    f: (a, b) => tf.minimum(a, tf.add(b, 0.05)),
    shapes: [
      [4, 3],
      [4, 3],
    ],
  },
  {
    kernel: 'Pow',
    f: (a, b) => tf.pow(a, b),
    shapes: [
      [2, 3],
      [2, 3],
    ],
    lo: 0.5,
    hi: 2,
  },
  { kernel: 'Identity', f: (a) => tf.clone(a), shapes: [[2, 2]] },
  { kernel: 'Cast', f: (a) => tf.cast(a, 'float32'), shapes: [[3]] },
  { kernel: 'Neg', f: (a) => tf.neg(a), shapes: [[3]] },
  { kernel: 'Square', f: (a) => tf.square(a), shapes: [[2, 3]] },
  { kernel: 'Sqrt', f: (a) => tf.sqrt(a), shapes: [[2, 3]], lo: 0.5, hi: 2 },
  { kernel: 'Rsqrt', f: (a) => tf.rsqrt(a), shapes: [[2, 3]], lo: 0.5, hi: 2 },
  { kernel: 'Reciprocal', f: (a) => tf.reciprocal(a), shapes: [[2, 3]], lo: 0.5, hi: 2 },
  { kernel: 'Exp', f: (a) => tf.exp(a), shapes: [[2, 3]] },
  { kernel: 'Expm1', f: (a) => tf.expm1(a), shapes: [[2, 3]] },
  { kernel: 'Log', f: (a) => tf.log(a), shapes: [[2, 3]], lo: 0.5, hi: 2 },
  { kernel: 'Log1p', f: (a) => tf.log1p(a), shapes: [[2, 3]], lo: 0, hi: 2 },
  { kernel: 'Tanh', f: (a) => tf.tanh(a), shapes: [[2, 3]] },
  { kernel: 'Sigmoid', f: (a) => tf.sigmoid(a), shapes: [[2, 3]] },
  { kernel: 'Softplus', f: (a) => tf.softplus(a), shapes: [[2, 3]] },
  { kernel: 'Relu', f: (a) => tf.relu(away(a)), shapes: [[3, 4]] },
  { kernel: 'Relu6', f: (a) => tf.relu6(tf.mul(away(a), 4)), shapes: [[3, 4]] },
  { kernel: 'Elu', f: (a) => tf.elu(away(a)), shapes: [[3, 4]] },
  { kernel: 'LeakyRelu', f: (a) => tf.leakyRelu(away(a), 0.1), shapes: [[3, 4]] },
  { kernel: 'Abs', f: (a) => tf.abs(away(a)), shapes: [[3, 4]] },
  { kernel: 'Sin', f: (a) => tf.sin(a), shapes: [[3]] },
  { kernel: 'Cos', f: (a) => tf.cos(a), shapes: [[3]] },
  { kernel: 'Erf', f: (a) => tf.erf(a), shapes: [[3]] },
  { kernel: 'ClipByValue', f: (a) => tf.clipByValue(a, -0.5, 0.55), shapes: [[5]] },
  {
    kernel: 'Select',
    f: (a, b) =>
      tf.where(
        tf.tensor2d(
          [
            [true, false, true],
            [false, false, true],
          ],
          [2, 3],
          'bool',
        ),
        a,
        b,
      ),
    shapes: [
      [2, 3],
      [2, 3],
    ],
  },
  { kernel: 'Reshape', f: (a) => tf.reshape(a, [3, 2]), shapes: [[2, 3]] },
  { kernel: 'ExpandDims', f: (a) => tf.expandDims(a, 1), shapes: [[2, 3]] },
  { kernel: 'Transpose', f: (a) => tf.transpose(a, [2, 0, 1]), shapes: [[2, 3, 4]] },
  { kernel: 'Slice', f: (a) => tf.slice(a, [1, 0], [1, -1]), shapes: [[3, 4]] },
  // tfjs has no StridedSlice gradient: finite differences only
  {
    kernel: 'StridedSlice',
    f: (a) => tf.stridedSlice(a, [0, 1], [3, 4], [2, 2]),
    shapes: [[3, 4]],
    reverse: false,
  },
  {
    kernel: 'Concat',
    f: (a, b) => tf.concat([a, b], -1),
    shapes: [
      [2, 3],
      [2, 2],
    ],
  },
  {
    kernel: 'Pack',
    f: (a, b) => tf.stack([a, b], 1),
    shapes: [
      [2, 3],
      [2, 3],
    ],
  },
  { kernel: 'Unpack', f: (a) => tf.unstack(a, 1)[1], shapes: [[2, 3]] },
  { kernel: 'SplitV', f: (a) => tf.split(a, [1, 2], 1)[1], shapes: [[2, 3]] },
  { kernel: 'Tile', f: (a) => tf.tile(a, [2, 3]), shapes: [[2, 2]] },
  { kernel: 'BroadcastTo', f: (a) => tf.broadcastTo(a, [4, 2, 3]), shapes: [[1, 3]] },
  {
    kernel: 'PadV2',
    f: (a) =>
      tf.pad(
        a,
        [
          [1, 0],
          [0, 2],
        ],
        3,
      ),
    shapes: [[2, 2]],
  },
  { kernel: 'Reverse', f: (a) => tf.reverse(a, [1]), shapes: [[2, 3]] },
  { kernel: 'GatherV2', f: (a) => tf.gather(a, tf.tensor1d([2, 0, 2], 'int32'), 1), shapes: [[2, 3]] },
  { kernel: 'Sum', f: (a) => tf.sum(a, 1, true), shapes: [[2, 3, 2]] },
  { kernel: 'Mean', f: (a) => tf.mean(a, [0, 2]), shapes: [[2, 3, 2]] },
  { kernel: 'Max', f: (a) => tf.max(a, -1), shapes: [[3, 5]] },
  { kernel: 'Min', f: (a) => tf.min(a, 0, true), shapes: [[3, 5]] },
  { kernel: 'Softmax', f: (a) => tf.softmax(a), shapes: [[3, 5]] },
  {
    kernel: 'BatchMatMul',
    f: (a, b) => tf.matMul(a, b, true, false),
    shapes: [
      [4, 3],
      [4, 2],
    ],
  },
  {
    kernel: '_FusedMatMul',
    f: (a, b, c) => tf.fused.matMul({ a, b, bias: c }),
    shapes: [[3, 4], [4, 2], [2]],
  },
  {
    kernel: 'Einsum',
    f: (a, b) => tf.einsum('ij,jk->ik', a, b),
    shapes: [
      [2, 3],
      [3, 4],
    ],
    reference: (a, b) => tf.matMul(a, b), // tfjs has no Einsum gradient
  },
  // convolutions and pooling (NHWC), the kernels tf.layers' conv and pooling layers run
  {
    kernel: 'Conv2D',
    f: (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, [2, 1], 'same'),
    shapes: [
      [2, 5, 4, 2],
      [3, 3, 2, 3],
    ],
  },
  {
    kernel: 'Conv2D',
    name: 'Conv2D (dilated, valid)',
    f: (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'valid', 'NHWC', 2),
    shapes: [
      [1, 6, 6, 2],
      [2, 2, 2, 2],
    ],
    reverse: false, // tfjs has no gradient for dilated convolutions
  },
  ...(['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu'] as const).map((activation) => ({
    kernel: 'FusedConv2D',
    name: `FusedConv2D (${activation})`,
    f: (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) =>
      tf.fused.conv2d({
        x: x as tf.Tensor4D,
        filter: w as tf.Tensor4D,
        bias: b,
        strides: 1,
        pad: 'same',
        activation,
        leakyreluAlpha: 0.2, // tfjs's cpu kernel gives NaN without it
      }),
    shapes: [[2, 4, 4, 2], [2, 2, 2, 3], [3]],
    h: 1e-3, // kinks: keep the finite difference on one side
  })),
  {
    kernel: 'FusedConv2D',
    name: 'FusedConv2D (prelu)',
    f: (x, w, b, a) =>
      tf.fused.conv2d({
        x: x as tf.Tensor4D,
        filter: w as tf.Tensor4D,
        bias: b,
        strides: 1,
        pad: 'valid',
        activation: 'prelu',
        preluActivationWeights: a,
      }),
    shapes: [[1, 4, 4, 2], [2, 2, 2, 3], [3], [3]],
  },
  {
    kernel: 'DepthwiseConv2dNative',
    f: (x, w) => tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'),
    shapes: [
      [2, 4, 4, 2],
      [2, 2, 2, 3],
    ],
  },
  {
    kernel: 'FusedDepthwiseConv2D',
    // tfjs registers no gradient for the fused kernel: reverse mode runs the unfused ops
    f: (x, w, b) =>
      tf.fused.depthwiseConv2d({
        x: x as tf.Tensor4D,
        filter: w as tf.Tensor4D,
        bias: b,
        strides: 2,
        pad: 'same',
        activation: 'relu',
      }),
    reference: (x, w, b) =>
      tf.relu(tf.add(tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'same'), b)),
    shapes: [[2, 5, 5, 2], [3, 3, 2, 2], [4]],
  },
  {
    kernel: 'Conv2DBackpropInput',
    f: (x, w) => tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, [2, 6, 6, 2], 2, 'same'),
    shapes: [
      [2, 3, 3, 3],
      [2, 2, 2, 3],
    ],
  },
  {
    kernel: 'MaxPool',
    f: (x) => tf.maxPool(x as tf.Tensor4D, 2, 2, 'same'),
    shapes: [[2, 5, 5, 2]],
    lo: -10,
    hi: 10,
  },
  {
    kernel: 'MaxPool',
    name: 'MaxPool (explicit padding: the strided-view path)',
    f: (x) =>
      tf.maxPool(x as tf.Tensor4D, 2, 1, [
        [0, 0],
        [1, 0],
        [0, 1],
        [0, 0],
      ]),
    shapes: [[2, 4, 4, 2]],
    lo: -10,
    hi: 10,
    reverse: false, // tfjs's MaxPool gradient takes no explicit padding
  },
  {
    kernel: 'MaxPool',
    name: 'MaxPool (2x2 / 2, valid, cropped: tfjs-node takes the windows path)',
    f: (x) => tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid'),
    shapes: [[2, 5, 7, 2]],
    lo: -10,
    hi: 10,
  },
  {
    kernel: 'MaxPool',
    name: 'MaxPool (2x3 / [2, 3], same without padding: windows path on tfjs-node)',
    f: (x) => tf.maxPool(x as tf.Tensor4D, [2, 3], [2, 3], 'same'),
    shapes: [[1, 4, 6, 2]],
    lo: -10,
    hi: 10,
  },
  {
    kernel: 'MaxPool',
    name: 'MaxPool (3x3, stride 1, valid)',
    f: (x) => tf.maxPool(x as tf.Tensor4D, 3, 1, 'valid'),
    shapes: [[1, 5, 4, 2]],
    lo: -10,
    hi: 10,
  },
  { kernel: 'AvgPool', f: (x) => tf.avgPool(x as tf.Tensor4D, [2, 3], 1, 'valid'), shapes: [[2, 4, 4, 2]] },
  {
    kernel: 'AvgPool',
    name: 'AvgPool (same)',
    f: (x) => tf.avgPool(x as tf.Tensor4D, 2, 2, 'same'),
    shapes: [[2, 5, 5, 2]],
    reverse: false, // tfjs's AvgPool gradient counts the padding that its forward kernel skips
  },
  {
    kernel: 'ResizeNearestNeighbor',
    f: (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [6, 6]),
    // tfjs's ResizeNearestNeighborGrad (cpu) disagrees with its forward kernel: compare with the same
    // upsampling written as a broadcast
    reference: (x) =>
      tf.reshape(tf.mul(tf.reshape(x, [2, 3, 1, 3, 1, 2]), tf.ones([1, 1, 2, 1, 2, 1])), [2, 6, 6, 2]),
    shapes: [[2, 3, 3, 2]],
  },
  {
    kernel: 'ResizeNearestNeighbor',
    name: 'ResizeNearestNeighbor (non-integer scale)',
    f: (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [5, 4]),
    shapes: [[2, 3, 3, 2]],
    reverse: false, // tfjs's gradient disagrees with its forward kernel here
  },
  {
    kernel: 'ResizeBilinear',
    f: (x) => tf.image.resizeBilinear(x as tf.Tensor4D, [5, 4]),
    shapes: [[2, 3, 3, 2]],
  },
  {
    kernel: 'FusedBatchNorm',
    f: (x, m, v, o, s) => tf.batchNorm(x, m, tf.add(tf.square(v), 0.5), o, s, 1e-3),
    shapes: [[2, 3, 4], [4], [4], [4], [4]],
  },
  {
    kernel: 'FusedBatchNorm',
    name: 'FusedBatchNorm (full-shape moments, no scale)',
    f: (x, m, v) => tf.batchNorm(x, m, tf.add(tf.square(v), 0.5)),
    // tfjs's batchNorm gradient fails without scale
    reference: (x, m, v) => tf.mul(tf.sub(x, m), tf.rsqrt(tf.add(tf.add(tf.square(v), 0.5), 0.001))),
    shapes: [
      [3, 4],
      [3, 4],
      [3, 4],
    ],
  },
  {
    kernel: 'Prelu',
    f: (x, a) => tf.prelu(x, a),
    shapes: [[2, 3], [3]],
  },
  { kernel: 'Selu', f: (x) => tf.selu(x), shapes: [[2, 3]] },
];

const zeroKernels = ['Sign', 'Floor', 'Ceil', 'Round', 'Step', 'ZerosLike', 'OnesLike', 'Fill'];

/**
 * Cases that fail on a backend for reasons outside jvp-core, by case name: tfjs-backend-webgpu 4.22's
 * FusedBatchNorm kernel computes wrong primals for some inputs (in headless Chromium on SwiftShader,
 * `tf.batchNorm(x, zeros, v, zeros, s)` returns zeros; the results change with WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE);
 * tfjs-node 4.22's MaxPool kernel throws on explicit padding ("TF Backend supports only 'valid' and 'same'
 * padding"). They run as expected failures, so a fixed tfjs turns them red and this list must shrink.
 */
const backendBugs: Record<string, readonly string[]> = {
  webgpu: ['FusedBatchNorm'],
  tensorflow: ['MaxPool (explicit padding: the strided-view path)'],
};

describe('every JVP rule', () => {
  it('has a test case (or is a zero rule)', () => {
    const tested = new Set([...cases.map((c) => c.kernel), ...zeroKernels]);
    expect(supportedKernels().filter((k) => !tested.has(k))).toEqual([]);
  });

  for (const c of cases) {
    const broken = backendBugs[testBackend()]?.includes(c.name ?? c.kernel) === true;
    // A backend without one of jvp-core's fused kernels (and no reference kernel: tensorflow) runs the
    // composite formulation instead, as jvp-core's ops do there: the case checks that fallback's JVP.
    const fallback = FUSED_KERNELS.includes(c.kernel) && tf.getKernel(c.kernel, testBackend()) === undefined;
    const f = fallback && c.reference !== undefined ? c.reference : c.f;
    const name = `${c.name ?? c.kernel}${fallback ? ` (composite fallback: no kernel on ${testBackend()})` : ''}`;
    (broken ? it.fails : it)(
      `${name}: matches reverse mode and finite differences, unbatched and batched`,
      () => {
        const primals = c.shapes.map((s, i) => rand(s, 100 + i, c.lo ?? -1, c.hi ?? 1));
        const opts = { reference: c.reference, reverse: c.reverse, h: c.h };
        checkJvp(f, primals, { seed: 3, ...opts });
        checkJvp(f, primals, { seed: 4, ...opts });
        checkBatched(f, primals);
        tf.dispose(primals);
      },
    );
  }

  it("MaxPool's tangent at a tie is the first maximal element's (row-major), on every path", () => {
    // one 2x2 window [[1, 3], [3, 2]] (tie between (0, 1) and (1, 0)), then a 3x3 window with three 5s:
    // tfjs's own MaxPool gradient gives the first maximum the whole gradient, so must the JVP
    const x = tf.tensor4d([1, 3, 3, 2], [1, 2, 2, 1]);
    const dx = tf.tensor4d([10, 20, 30, 40], [1, 2, 2, 1]);
    const [, dy] = jvp((v: tf.Tensor) => tf.maxPool(v as tf.Tensor4D, 2, 2, 'valid'), [x], [dx]);
    expect(Array.from(dy.dataSync())).toEqual([20]);
    const x3 = tf.tensor4d([0, 1, 5, 5, 2, 0, 5, 1, 1], [1, 3, 3, 1]);
    const d3 = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3, 1]);
    const [, dy3] = jvp((v: tf.Tensor) => tf.maxPool(v as tf.Tensor4D, 3, 3, 'valid'), [x3], [d3]);
    expect(Array.from(dy3.dataSync())).toEqual([3]);
    // batched: K = 2 tangents at once, each its own first maximum's
    const dk = tf.stack([dx, tf.mul(dx, -1)]);
    const [, dyk] = jvp((v: tf.Tensor) => tf.maxPool(v as tf.Tensor4D, 2, 2, 'valid'), [x], [dk], {
      batched: true,
    });
    expect(Array.from(dyk.dataSync())).toEqual([20, -20]);
    tf.dispose([x, dx, dy, x3, d3, dy3, dk, dyk]);
  });

  it('zero rules give zero tangents', () => {
    const x = rand([4], 9);
    const f = (a: tf.Tensor) => tf.add(tf.add(tf.floor(a), tf.sign(a)), tf.add(tf.round(a), tf.zerosLike(a)));
    const [, dy] = jvp(f, [x], [tf.onesLike(x)]);
    expect(Array.from(dy.dataSync())).toEqual([0, 0, 0, 0]);
  });
});

const reductions: Record<string, (x: tf.Tensor, axis?: number[], keepDims?: boolean) => tf.Tensor> = {
  sum: tf.sum,
  mean: tf.mean,
  max: tf.max,
  logSumExp: tf.logSumExp,
};

describe('property-based: shapes, axes, transposes', () => {
  const shapeArb = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 });

  it('reductions over random axes with keepDims', () => {
    fc.assert(
      fc.property(
        shapeArb,
        fc.boolean(),
        fc.integer({ min: 0, max: 100 }),
        fc.constantFrom('sum', 'mean', 'max', 'logSumExp'),
        (shape, keep, seed, op) => {
          const rank = shape.length;
          const axes = Array.from({ length: rank }, (_, i) => i).filter((i) => (seed >> i) & 1);
          const axis = axes.length === 0 ? undefined : axes;
          const f = (a: tf.Tensor) => reductions[op](a, axis, keep);
          const x = rand(shape, seed);
          checkJvp(f, [x], { seed });
          checkBatched(f, [x], 2, seed);
          x.dispose();
        },
      ),
      { numRuns: 25, seed: 42 },
    );
  });

  it('transposes with random permutations', () => {
    fc.assert(
      fc.property(
        shapeArb.chain((shape) =>
          fc.tuple(
            fc.constant(shape),
            fc.shuffledSubarray(
              shape.map((_, i) => i),
              { minLength: shape.length, maxLength: shape.length },
            ),
          ),
        ),
        fc.integer({ min: 0, max: 100 }),
        ([shape, perm], seed) => {
          const f = (a: tf.Tensor) => tf.mul(tf.transpose(a, perm), tf.transpose(a, perm));
          const x = rand(shape, seed);
          checkJvp(f, [x], { seed });
          checkBatched(f, [x], 2, seed);
          x.dispose();
        },
      ),
      { numRuns: 25, seed: 7 },
    );
  });

  it('matMul with random batch dims and transposes, tangents on either side', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 0, maxLength: 2 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 0, max: 100 }),
        (batch, m, n, p, ta, tb, rank2b, seed) => {
          const aShape = [...batch, ...(ta ? [n, m] : [m, n])];
          const bShape = [...(rank2b ? [] : batch), ...(tb ? [p, n] : [n, p])];
          const f = (a: tf.Tensor, b: tf.Tensor) => tf.matMul(a, b, ta, tb);
          // tfjs 4.22's BatchMatMul gradient does not reduce a broadcast b: compare against an
          // explicitly broadcast b
          const reference = (a: tf.Tensor, b: tf.Tensor) =>
            tf.matMul(a, rank2b && batch.length > 0 ? tf.broadcastTo(b, [...batch, ...b.shape]) : b, ta, tb);
          const a = rand(aShape, seed);
          const b = rand(bShape, seed + 1);
          checkJvp(f, [a, b], { seed, reference });
          checkBatched(f, [a, b], 3, seed);
          tf.dispose([a, b]);
        },
      ),
      { numRuns: 30, seed: 11 },
    );
  });

  it('softmax, logSoftmax and layer-norm-like chains over a random axis', () => {
    fc.assert(
      fc.property(shapeArb, fc.integer({ min: 0, max: 100 }), (shape, seed) => {
        const axis = seed % shape.length;
        const f = (a: tf.Tensor) => {
          const mu = tf.mean(a, axis, true);
          const v = tf.sub(tf.mean(tf.square(a), axis, true), tf.square(mu));
          const ln = tf.mul(tf.sub(a, mu), tf.rsqrt(tf.add(v, 1e-2)));
          return tf.add(tf.softmax(ln, -1), tf.logSoftmax(a, -1));
        };
        const x = rand(shape, seed);
        checkJvp(f, [x], { seed, fdTol: 5e-2 });
        checkBatched(f, [x], 2, seed);
        x.dispose();
      }),
      { numRuns: 20, seed: 3 },
    );
  });
});
