import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { variableJvp } from './index.js';
import { rand } from './testing.test-util.js';

/**
 * variableJvp on tf.layers models in training mode: one small model per layer type (issue 18's list),
 * checked against the directional derivative from tf.variableGrads and against a central difference.
 */

const L = tf.layers;
type Input = tf.Tensor | tf.Tensor[];
interface LayerCase {
  name: string;
  model: () => tf.LayersModel;
  input: () => Input;
  /** false where tfjs's own gradient is wrong (finite differences only) */
  reverse?: boolean;
}

const seq = (layers: tf.layers.Layer[]) => () => tf.sequential({ layers });
const x2 =
  (shape: number[], seed = 1) =>
  () =>
    rand([2, ...shape], seed);
const dense = (units: number, inputShape?: number[], activation?: string) =>
  L.dense({ units, inputShape, activation: activation as 'relu' | undefined });

/** A functional model merging two dense branches of one input with `merge`. */
function merged(merge: tf.layers.Layer): () => tf.LayersModel {
  return () => {
    const input = tf.input({ shape: [3] });
    const a = L.dense({ units: 4, activation: 'tanh' }).apply(input) as tf.SymbolicTensor;
    const b = L.dense({ units: 4 }).apply(input) as tf.SymbolicTensor;
    const out = L.dense({ units: 2 }).apply(merge.apply([a, b]) as tf.SymbolicTensor) as tf.SymbolicTensor;
    return tf.model({ inputs: input, outputs: out });
  };
}

const activations = [
  'relu',
  'relu6',
  'elu',
  'selu',
  'sigmoid',
  'hardSigmoid',
  'tanh',
  'softplus',
  'softsign',
  'swish',
  'gelu',
  'gelu_new',
  'mish',
  'softmax',
  'logSoftmax',
  'linear',
];

const cases: LayerCase[] = [
  // core
  { name: 'Dense (relu, fused)', model: seq([dense(5, [3], 'relu'), dense(2)]), input: x2([3]) },
  {
    name: 'Dense (softmax: bias added after the product)',
    model: seq([dense(4, [3], 'softmax')]),
    input: x2([3]),
  },
  {
    name: 'Dropout',
    model: seq([dense(6, [3], 'tanh'), L.dropout({ rate: 0.5, seed: 7 }), dense(2)]),
    input: x2([3]),
  },
  {
    name: 'Flatten, Reshape, Permute, RepeatVector, Activation',
    model: seq([
      L.reshape({ targetShape: [2, 3], inputShape: [6] }),
      L.permute({ dims: [2, 1] }),
      L.flatten(),
      dense(3),
      L.repeatVector({ n: 2 }),
      L.activation({ activation: 'tanh' }),
      L.flatten(),
      dense(2),
    ]),
    input: x2([6]),
  },
  // convolution
  {
    name: 'Conv1D',
    model: seq([L.conv1d({ filters: 3, kernelSize: 2, inputShape: [5, 2], activation: 'tanh' })]),
    input: x2([5, 2]),
  },
  {
    name: 'Conv2D (fused relu, strides, same)',
    model: seq([
      L.conv2d({
        filters: 3,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        inputShape: [5, 5, 2],
        activation: 'relu',
      }),
    ]),
    input: x2([5, 5, 2]),
  },
  {
    name: 'SeparableConv2D',
    model: seq([L.separableConv2d({ filters: 3, kernelSize: 2, depthMultiplier: 2, inputShape: [4, 4, 2] })]),
    input: x2([4, 4, 2]),
  },
  {
    name: 'DepthwiseConv2D',
    model: seq([L.depthwiseConv2d({ kernelSize: 2, depthMultiplier: 2, inputShape: [4, 4, 2] })]),
    input: x2([4, 4, 2]),
  },
  {
    name: 'Conv2DTranspose',
    model: seq([L.conv2dTranspose({ filters: 2, kernelSize: 2, strides: 2, inputShape: [3, 3, 2] })]),
    input: x2([3, 3, 2]),
  },
  {
    name: 'UpSampling2D, Cropping2D, ZeroPadding2D',
    model: seq([
      L.conv2d({ filters: 2, kernelSize: 1, inputShape: [3, 3, 2] }),
      L.upSampling2d({ size: [2, 2] }),
      L.cropping2D({
        cropping: [
          [1, 0],
          [0, 1],
        ],
      }),
      L.zeroPadding2d({ padding: 1 }),
      L.conv2d({ filters: 1, kernelSize: 2 }),
    ]),
    input: x2([3, 3, 2]),
    reverse: false, // tfjs's cpu gradient of ResizeNearestNeighbor disagrees with its forward kernel
  },
  // pooling
  {
    name: 'MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D',
    model: seq([
      L.conv2d({ filters: 3, kernelSize: 2, inputShape: [5, 5, 2] }),
      L.maxPooling2d({ poolSize: 2, strides: 1 }),
      L.averagePooling2d({ poolSize: 2 }),
      L.globalAveragePooling2d({}),
    ]),
    input: x2([5, 5, 2]),
  },
  {
    name: 'GlobalMaxPooling2D',
    model: seq([L.conv2d({ filters: 3, kernelSize: 2, inputShape: [3, 3, 2] }), L.globalMaxPooling2d({})]),
    input: x2([3, 3, 2]),
  },
  {
    name: 'MaxPooling1D, AveragePooling1D, GlobalMaxPooling1D, GlobalAveragePooling1D',
    model: () => {
      const input = tf.input({ shape: [6, 2] });
      const h = L.conv1d({ filters: 3, kernelSize: 1 }).apply(input) as tf.SymbolicTensor;
      const p = L.averagePooling1d({ poolSize: 2 }).apply(
        L.maxPooling1d({ poolSize: 2, strides: 1 }).apply(h),
      ) as tf.SymbolicTensor;
      const out = L.concatenate().apply([
        L.globalMaxPooling1d({}).apply(p) as tf.SymbolicTensor,
        L.globalAveragePooling1d({}).apply(p) as tf.SymbolicTensor,
      ]) as tf.SymbolicTensor;
      return tf.model({ inputs: input, outputs: out });
    },
    input: () => rand([2, 6, 2], 3, -10, 10),
  },
  // normalization
  {
    name: 'BatchNormalization (dense)',
    model: seq([dense(4, [3]), L.batchNormalization({}), dense(2)]),
    input: () => rand([5, 3], 4),
  },
  {
    name: 'BatchNormalization (conv, channels last)',
    model: seq([
      L.conv2d({ filters: 2, kernelSize: 2, inputShape: [3, 3, 2] }),
      L.batchNormalization({}),
      L.flatten(),
      dense(2),
    ]),
    input: x2([3, 3, 2]),
  },
  {
    name: 'LayerNormalization',
    model: seq([dense(4, [3]), L.layerNormalization({}), dense(2)]),
    input: x2([3]),
  },
  // embeddings
  {
    name: 'Embedding',
    model: seq([L.embedding({ inputDim: 6, outputDim: 3, inputLength: 4 }), L.flatten(), dense(2)]),
    input: () =>
      tf.tensor2d([
        [1, 2, 5, 1],
        [0, 4, 3, 3],
      ]),
  },
  // recurrent
  {
    name: 'SimpleRNN',
    model: seq([L.simpleRNN({ units: 3, returnSequences: true, inputShape: [3, 2] }), L.flatten()]),
    input: x2([3, 2]),
  },
  { name: 'LSTM', model: seq([L.lstm({ units: 3, inputShape: [3, 2] })]), input: x2([3, 2]) },
  { name: 'GRU', model: seq([L.gru({ units: 3, inputShape: [3, 2] })]), input: x2([3, 2]) },
  // merge
  { name: 'Add', model: merged(L.add()), input: x2([3]) },
  { name: 'Concatenate', model: merged(L.concatenate()), input: x2([3]) },
  { name: 'Multiply', model: merged(L.multiply()), input: x2([3]) },
  { name: 'Average', model: merged(L.average()), input: x2([3]) },
  { name: 'Maximum', model: merged(L.maximum()), input: x2([3]) },
  { name: 'Dot', model: merged(L.dot({ axes: 1 })), input: x2([3]) },
  // activations
  ...activations.map((activation) => ({
    name: `activation ${activation}`,
    model: seq([dense(4, [3], activation), dense(2)]),
    input: x2([3]),
  })),
  {
    name: 'LeakyReLU, PReLU, ELU, ReLU, Softmax layers',
    model: seq([
      dense(4, [3]),
      L.leakyReLU({}),
      dense(4),
      L.prelu({ alphaInitializer: 'glorotNormal' }),
      L.elu({}),
      L.reLU({ maxValue: 6 }),
      L.softmax({}),
    ]),
    input: x2([3]),
  },
];

function dot(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.sum(tf.mul(a, b)).dataSync()[0]);
}

describe('variableJvp on tf.layers models (training mode)', () => {
  afterAll(() => tf.disposeVariables());
  for (const c of cases) {
    it(`${c.name}: matches tf.variableGrads and central differences`, () => {
      const model = c.model();
      // deterministic weights (tf.layers' initializers draw unseeded): the same numbers every run
      model.trainableWeights.forEach((w, i) => {
        tf.tidy(() => {
          w.write(rand(w.shape as number[], 200 + i, -0.6, 0.6));
        });
      });
      const x = c.input();
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const out = model.apply(x, { training: true }) as tf.Tensor;
      const w = rand(out.shape, 11);
      out.dispose();
      const loss = () => tf.sum(tf.mul(model.apply(x, { training: true }) as tf.Tensor, w));
      const tangents: tf.NamedTensorMap = {};
      vars.forEach((v, i) => {
        tangents[v.name] = rand(v.shape, 40 + i);
      });
      const before = tf.memory().numTensors;
      const [value, dValue] = variableJvp(loss, tangents);
      const forward = dValue.dataSync()[0];
      expect(Number.isFinite(forward)).toBe(true);
      tf.dispose([value, dValue]);
      expect(tf.memory().numTensors).toBe(before);
      const scale = Math.max(1e-2, Math.abs(forward));
      if (c.reverse !== false) {
        const { value: v2, grads } = tf.variableGrads(loss as () => tf.Scalar, vars);
        const back = vars.reduce((acc, v) => acc + dot(grads[v.name], tangents[v.name]), 0);
        expect(Math.abs(forward - back) / scale).toBeLessThan(1e-3);
        tf.dispose([v2, ...Object.values(grads)]);
      }
      // central difference along the tangents
      const h = 1e-3;
      const saved = vars.map((v) => v.clone());
      const at = (sign: number) => {
        vars.forEach((v, i) => {
          v.assign(tf.tidy(() => tf.add(saved[i], tf.mul(sign * h, tangents[v.name]))));
        });
        return tf.tidy(() => loss().dataSync()[0]);
      };
      const fd = (at(1) - at(-1)) / (2 * h);
      vars.forEach((v, i) => {
        v.assign(saved[i]);
      });
      expect(Math.abs(fd - forward) / scale).toBeLessThan(2e-2);
      tf.dispose([...saved, w, ...Object.values(tangents), ...(Array.isArray(x) ? x : [x])]);
      model.layers.forEach((l) => {
        l.dispose();
      });
    });
  }
});

describe('variableJvp', () => {
  it('batched tangents give the K directional derivatives of K single passes', () => {
    const model = tf.sequential({
      layers: [
        L.conv2d({ filters: 2, kernelSize: 2, inputShape: [3, 3, 1], activation: 'relu' }),
        L.flatten(),
        dense(2),
      ],
    });
    const x = rand([2, 3, 3, 1], 5);
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const loss = () => tf.sum(tf.square(model.apply(x, { training: true }) as tf.Tensor));
    const k = 3;
    const batched: tf.NamedTensorMap = {};
    vars.forEach((v, i) => {
      batched[v.name] = rand([k, ...v.shape], 60 + i);
    });
    const [value, dValues] = variableJvp(loss, batched, { batched: true });
    expect(dValues.shape).toEqual([k]);
    const got = Array.from(dValues.dataSync());
    for (let j = 0; j < k; j++) {
      const single: tf.NamedTensorMap = {};
      for (const v of vars) single[v.name] = tf.squeeze(tf.slice(batched[v.name], [j], [1]), [0]);
      const [v1, d1] = variableJvp(loss, single);
      expect(d1.dataSync()[0]).toBeCloseTo(got[j], 4);
      tf.dispose([v1, d1, ...Object.values(single)]);
    }
    tf.dispose([value, dValues, x, ...Object.values(batched)]);
  });

  it('variables without a tangent are constants; unknown names and wrong shapes are errors', () => {
    const a = tf.variable(tf.tensor1d([1, 2]), true, 'vjp_a');
    const b = tf.variable(tf.tensor1d([3, 4]), true, 'vjp_b');
    const [value, d] = variableJvp(() => tf.sum(tf.mul(a, b)), { vjp_a: tf.tensor1d([1, 0]) });
    expect(value.dataSync()[0]).toBe(11);
    expect(d.dataSync()[0]).toBe(3);
    expect(() => variableJvp(() => tf.sum(a), { nope: tf.ones([2]) })).toThrow(
      /no tf.Variable named 'nope'.*variable.name/,
    );
    expect(() => variableJvp(() => tf.sum(a), { vjp_a: tf.ones([3]) })).toThrow(
      /tangent of 'vjp_a'.*shape \[2\]/,
    );
    tf.dispose([value, d, a, b]);
  });

  it('lazy tangents: drawn when a kernel reads the variable or a reshaped view, not for a perturbed site', () => {
    const w = tf.variable(rand([3, 2], 70), true, 'lazy_w');
    const b = tf.variable(rand([2], 71), true, 'lazy_b');
    const x = rand([4, 3], 72);
    const f = () => tf.sum(tf.tanh(tf.add(tf.matMul(x, w), b))); // matMul reads w through a rank-3 view
    const dw = rand([3, 2], 73);
    const db = rand([2], 74);
    const [v0, d0] = variableJvp(f, { lazy_w: dw, lazy_b: db });
    const drawn: string[] = [];
    const used = new Set<string>();
    const lazy = (v: tf.Variable) => {
      drawn.push(v.name);
      return v.name === 'lazy_w' ? dw : v.name === 'lazy_b' ? db : null;
    };
    const [v1, d1] = variableJvp(f, {}, { lazy, used });
    expect(d1.dataSync()[0]).toBeCloseTo(d0.dataSync()[0], 5);
    expect(drawn.sort()).toEqual(['lazy_b', 'lazy_w']);
    expect([...used].sort()).toEqual(['lazy_b', 'lazy_w']);
    // a perturbed site keeps its weight constant: no draw for it, only the perturbation's tangent
    drawn.length = 0;
    const u = tf.onesLike(tf.matMul(x, w));
    const [v2, d2] = variableJvp(
      f,
      {},
      {
        lazy,
        perturb: (call) => (call.kernel === tf.BatchMatMul ? { tangent: u, constants: ['b'] } : null),
      },
    );
    expect(drawn).toEqual(['lazy_b']);
    const expected = tf.tidy(() => {
      const z = tf.add(tf.matMul(x, w), b);
      return tf.sum(tf.mul(tf.sub(1, tf.square(tf.tanh(z))), tf.add(u, db))).dataSync()[0];
    });
    expect(d2.dataSync()[0]).toBeCloseTo(expected, 4);
    tf.dispose([v0, d0, v1, d1, v2, d2, u, w, b, x, dw, db]);
  });

  it('a kernel without a rule names the kernel, the layer and how to add a rule; hooks are removed', () => {
    const apply = tf.layers.Layer.prototype.apply;
    const model = tf.sequential({
      layers: [L.conv3d({ filters: 1, kernelSize: 1, inputShape: [2, 2, 2, 1], name: 'my_conv3d' })],
    });
    const x = tf.ones([1, 2, 2, 2, 1]);
    const v = model.trainableWeights[0].read() as tf.Variable;
    expect(() =>
      variableJvp(() => tf.sum(model.apply(x) as tf.Tensor), { [v.name]: tf.onesLike(v) }),
    ).toThrow(
      /no JVP rule for kernel 'Conv3D' \(in tf.layers layer 'my_conv3d'\).*registerJvpRule\('Conv3D', rule\).*customJvp/,
    );
    expect(tf.layers.Layer.prototype.apply).toBe(apply);
    x.dispose();
  });
});
