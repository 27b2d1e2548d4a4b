import * as tf from '@tensorflow/tfjs';
import { type KernelCall, type Perturbation, SCALE_IN_PLACE, variableJvp } from '@fwdgrad/jvp-core';
import { linearWeightGradient } from './kernel-vjp.js';
import { checkNoiseKind, type NoiseKind, sampleNoise } from './noise.js';
import { checkSamples, sameShape } from './util.js';
import { createRandom, type Random } from '@fwdgrad/random';

/**
 * Forward gradients for any TensorFlow.js model, in tfjs's own idiom: `forwardVariableGrads(f, varList?,
 * options?)` has `tf.variableGrads`' signature and result, so `optimizer.applyGradients(grads)` and
 * `model.trainableWeights` work unchanged — but the gradient is a forward-gradient estimate from one
 * forward pass (jvp-core's `variableJvp`), with no reverse-mode tape and no saved activations.
 */

/** Options of {@link forwardVariableGrads}. */
export interface ForwardVariableGradsOptions {
  /**
   * `'activity'` (default; FG-A, paper eq. 3): noise enters at the output of every linear kernel that
   * reads a variable of `varList` (matmuls and convolutions, `jvp-core`'s `LINEAR_KERNELS`), independent
   * per example; that kernel's weight (and fused bias) gets its gradient locally from the kernel's inputs
   * and the estimated activity gradient. Variables read by no such kernel are weight-perturbed in the same
   * pass. `'weight'` (FG-W, eq. 2): every variable is perturbed, one direction shared by the batch.
   */
  perturb?: 'weight' | 'activity';
  /** K: noise samples averaged per estimate, all in one batched forward pass. Default 1. */
  samples?: number;
  /** Distribution of the noise entries: `'normal'` (the paper's; `'gaussian'` is the same) or `'rademacher'`. */
  noise?: 'normal' | NoiseKind;
  /** Seeded random source (advanced by each call). */
  random?: Random;
  /** Or a seed: the noise of this call is `createRandom(seed)`'s (vary it per step). */
  seed?: number;
}

/** tf.variableGrads' result: the loss and one gradient per variable name. */
export interface VariableGradsResult {
  value: tf.Scalar;
  grads: tf.NamedTensorMap;
}

/** The unfused kernel computing a fused kernel's linear part (whose gradient tfjs registers). */
const UNFUSED: Record<string, string> = {
  [tf._FusedMatMul]: tf.BatchMatMul,
  [tf.FusedConv2D]: tf.Conv2D,
  [tf.FusedDepthwiseConv2D]: tf.DepthwiseConv2dNative,
};
/** The input holding a linear kernel's weights (matmuls: b, then a). */
const WEIGHT_INPUTS: Record<string, string[]> = {
  [tf.BatchMatMul]: ['b', 'a'],
  [tf.Conv2D]: ['filter'],
  [tf.DepthwiseConv2dNative]: ['filter'],
  [tf.Conv2DBackpropInput]: ['filter'],
};

/** One activity-perturbation site: a linear kernel call that reads a variable. */
interface Site {
  kernel: string;
  attrs: Record<string, unknown>;
  /** Aliases (same data) of the kernel's inputs, kept until the estimate is built. */
  inputs: Record<string, tf.Tensor>;
  weightInput: string;
  /** The output's rows follow the data input's rows (see {@link activityGradient}). */
  examplesLead: boolean;
  weight: tf.Variable;
  bias: tf.Variable | null;
  /** The noise, [K, ...z.shape] (K = 1 unbatched: [...z.shape]). */
  noise: tf.Tensor;
}

let defaultRandom: Random | undefined;

/**
 * A site's estimated activity gradient ĝ_z = (1/K) Σ_k c_k u_k from its noise u ([K, ...z], or z when K = 1) and
 * the directional derivatives: per example (c = d_k[n] on example n's entries, d [K, N]) where the site's
 * output holds the N examples in order — its first axis of size ≠ 1 is a multiple of N (a Dense kernel's
 * [1, N, units], a convolution's [N, H, W, C], a time-distributed [N·T, units]), so that each example's
 * entries are one contiguous run, and the kernel's output rows follow its data input's (`examplesLead`: a
 * convolution, or a matmul whose weight is the right operand and whose left one is not transposed; in
 * z = W·xᵀ the rows are the weight's) — else the loss's D_k (total [K]) for every entry (still unbiased).
 */
function activityGradient(
  noise: tf.Tensor,
  z: number[],
  d: tf.Tensor,
  total: tf.Tensor,
  examplesLead: boolean,
): tf.Tensor {
  const [k, n] = d.shape;
  const size = z.reduce((a, b) => a * b, 1);
  let lead = 0;
  while (lead < z.length - 1 && z[lead] === 1) lead++;
  const perExample = examplesLead && n > 1 && z[lead] % n === 0;
  const groups = perExample ? n : 1;
  const coeff = tf.reshape(perExample ? d : total, [k, groups, 1]);
  const scaled = tf.mul(tf.reshape(noise, [k, groups, size / groups]), coeff);
  return tf.reshape(k > 1 ? tf.div(tf.sum(scaled, 0), k) : scaled, z);
}

/** What {@link scaleOwned} uses of tfjs's cpu backend (the storage of a tensor, by reference). */
interface CpuStorage {
  data: { get(dataId: object): { values?: unknown } | undefined };
  refCount(dataId: object): number;
  disposeData(dataId: object): boolean;
}

/**
 * `s · t` for a tensor `t` that the caller owns alone (it consumes `t`; `s` a float32 scalar). On tfjs's
 * `cpu` backend the product is written into `t`'s own storage when no other tensor shares it (backend
 * reference count 1, so no reshape or clone of `t` is alive), and `t` itself is the result: no second
 * buffer of `t`'s size. It runs jvp-core's `SCALE_IN_PLACE` kernel where the backend has one
 * (@fwdgrad/native's), else a JavaScript loop; both give float32's product, the bits of `tf.mul`. Other
 * backends, and a shared `t`: `tf.mul`. The caller must also make sure that no contiguous `slice` of `t`
 * (a view of its storage under another id) is alive.
 */
export function scaleOwned(t: tf.Tensor, s: tf.Tensor): tf.Tensor {
  if (tf.getBackend() === 'cpu' && t.dtype === 'float32' && s.dtype === 'float32' && s.size === 1) {
    const backend = tf.backend() as unknown as CpuStorage;
    const values = backend.data?.get(t.dataId)?.values;
    if (values instanceof Float32Array && backend.refCount(t.dataId) === 1) {
      const kernel = tf.getKernel(SCALE_IN_PLACE, 'cpu');
      if (kernel !== undefined) {
        // called directly, not through the engine: no new tensor, t stays the only one (the kernel's extra
        // reference is dropped at once)
        const out = kernel.kernelFunc({
          inputs: { x: t, s } as unknown as tf.NamedTensorInfoMap,
          backend: tf.backend(),
          attrs: {},
        }) as tf.TensorInfo;
        backend.disposeData(out.dataId);
      } else {
        const f = s.dataSync()[0];
        for (let i = 0; i < values.length; i++) values[i] *= f;
      }
      return t;
    }
  }
  const out = tf.mul(s, t);
  t.dispose();
  return out;
}

function trainableVariables(): tf.Variable[] {
  return Object.values(tf.engine().registeredVariables).filter((v) => v.trainable);
}

function alias(t: tf.Tensor): tf.Tensor {
  return tf.keep(tf.reshape(t, t.shape));
}

/**
 * A forward-gradient estimate of the gradient of `f()` with respect to `varList` (default: every trainable
 * variable), with `tf.variableGrads`' signature and result: `{ value, grads }` keyed by variable name, the
 * caller owns every tensor. `f` reads the variables (e.g. `model.apply(x, { training: true })` of any
 * `tf.sequential` or functional model) and returns the loss: a scalar, or per-example losses `[N]` (then
 * `value` is their mean, and with `perturb: 'activity'` each example's activity gradient uses its own
 * directional derivative, as the paper's FG-A; with a scalar every example's noise is still independent,
 * but they share the batch's directional derivative, which adds variance).
 *
 * Unbiased (E[grads] = ∇f) where examples do not interact; with per-example losses and a layer that mixes
 * examples in training (BatchNormalization) the activity estimate ignores the cross-example terms. Variables
 * that no kernel of `f` reads get no entry, as with `tf.variableGrads`. A variable read both by a site and by
 * another kernel (a reshaped view such as tf.conv1d's filter, tied weights) gets both estimates, summed
 * (still unbiased; the weight-perturbed part only adds variance where the other reader was the view).
 *
 * @example
 * const { value, grads } = forwardVariableGrads(() =>
 *   tf.losses.softmaxCrossEntropy(ys, model.apply(xs, { training: true }) as tf.Tensor), undefined,
 *   { perturb: 'activity', random });
 * optimizer.applyGradients(grads);
 */
export function forwardVariableGrads(
  f: () => tf.Tensor,
  varList?: tf.Variable[],
  options: ForwardVariableGradsOptions = {},
): VariableGradsResult {
  const where = 'forwardVariableGrads';
  if (typeof f !== 'function') throw new Error(`${where}: f must be a function returning the loss`);
  const perturb = options.perturb ?? 'activity';
  if (perturb !== 'weight' && perturb !== 'activity') {
    throw new Error(`${where}: perturb must be 'weight' or 'activity', got ${JSON.stringify(perturb)}`);
  }
  const k = checkSamples(where, options.samples ?? 1);
  const noiseKind: NoiseKind =
    options.noise === 'normal' || options.noise === undefined ? 'gaussian' : options.noise;
  checkNoiseKind(where, noiseKind);
  if (options.random === undefined && options.seed === undefined && defaultRandom === undefined) {
    defaultRandom = createRandom(0x5eed);
  }
  const random =
    options.random ?? (options.seed !== undefined ? createRandom(options.seed) : (defaultRandom as Random));
  const vars = varList ?? trainableVariables();
  vars.forEach((v, i) => {
    if (!(v instanceof tf.Variable)) {
      throw new Error(
        `${where}: varList[${i}] is not a tf.Variable (pass model.trainableWeights.map((w) => w.read()))`,
      );
    }
    if (v.dtype !== 'float32')
      throw new Error(`${where}: variable '${v.name}' has dtype ${v.dtype}; only float32 can be perturbed`);
  });
  if (vars.length === 0) throw new Error(`${where}: no trainable variables (varList is empty)`);
  const batched = k > 1;
  const draw = (shape: number[]) => sampleNoise(random, batched ? [k, ...shape] : shape, noiseKind);

  // Sites (activity mode): an input is a site's weight when it is one of the variables, or a view of one —
  // as jvp-core identifies it (`call.variables`: a Reshape of a variable, which copies on tfjs-node), or by
  // data id (a view made before the pass, sharing the variable's storage on the cpu backend).
  const byData = new Map<object, tf.Variable>();
  const inList = new Set<tf.Variable>(vars);
  if (perturb === 'activity') for (const v of vars) byData.set(v.dataId, v);
  const sites: Site[] = [];
  const siteWeights = new Set<string>();
  const variableOf = (call: KernelCall, key: string): tf.Variable | undefined => {
    const t = call.inputs[key];
    if (t === undefined) return undefined;
    const v = call.variables[key];
    return v !== undefined && inList.has(v) ? v : byData.get(t.dataId);
  };
  const perturbHook = (call: KernelCall): Perturbation | null => {
    const base = UNFUSED[call.kernel] ?? call.kernel;
    const weightInput = (WEIGHT_INPUTS[base] ?? []).find((key) => variableOf(call, key) !== undefined);
    if (weightInput === undefined) return null;
    const weight = variableOf(call, weightInput) as tf.Variable;
    const bias = call.inputs.bias !== undefined ? (variableOf(call, 'bias') ?? null) : null;
    const noise = tf.keep(draw(call.outputs[0].shape));
    const inputs: Record<string, tf.Tensor> = {};
    // a matmul site keeps only the operand that is not the weight (its weight gradient reads only that
    // and the activity gradient): an alias of the weight would be counted again by tfjs's memory tally
    const matmul = WEIGHT_INPUTS[base].length === 2;
    for (const key of matmul ? ['a', 'b'].filter((x) => x !== weightInput) : Object.keys(call.inputs)) {
      const t = call.inputs[key];
      if (t !== undefined && key !== 'bias' && key !== 'preluActivationWeights') inputs[key] = alias(t);
    }
    const examplesLead = !matmul || (weightInput === 'b' && call.attrs.transposeA !== true);
    sites.push({ kernel: base, attrs: call.attrs, inputs, weightInput, examplesLead, weight, bias, noise });
    siteWeights.add(weight.name);
    if (bias !== null) siteWeights.add(bias.name);
    return { tangent: noise, constants: bias === null ? [weightInput] : [weightInput, 'bias'] };
  };

  // Weight perturbation: every variable (FG-W), or, with activity perturbation, the variables no site
  // reads, given their direction when a kernel first reads them.
  const inVars = new Set(vars.map((v) => v.name));
  const directions: tf.NamedTensorMap = {};
  const lazy = (v: tf.Variable): tf.Tensor | null => {
    if (!inVars.has(v.name) || siteWeights.has(v.name)) return null;
    directions[v.name] = tf.keep(draw(v.shape));
    return directions[v.name];
  };
  if (perturb === 'weight') {
    // one request for every direction (gaussian): a training loop then asks the sampler for the same
    // size at every step, which a native sampler draws ahead (see @fwdgrad/random's `normals`)
    const shapes = vars.map((v) => (batched ? [k, ...v.shape] : v.shape));
    const drawn =
      noiseKind === 'gaussian'
        ? random.normals(shapes)
        : shapes.map((s) => sampleNoise(random, s, noiseKind));
    vars.forEach((v, i) => {
      directions[v.name] = drawn[i];
    });
  }
  const used = new Set<string>();
  let out: tf.Tensor | undefined;
  let dOut: tf.Tensor | undefined;
  try {
    [out, dOut] = variableJvp(f, perturb === 'weight' ? { ...directions } : {}, {
      batched,
      k: batched ? k : undefined,
      perturb: perturb === 'activity' ? perturbHook : undefined,
      lazy: perturb === 'activity' ? lazy : undefined,
      used,
    });
    const loss = out;
    const dLoss = dOut;
    if (loss.rank > 1) {
      throw new Error(
        `${where}: f must return a scalar loss or per-example losses [N], got shape [${loss.shape}]`,
      );
    }
    const n = loss.rank === 1 ? loss.shape[0] : 1;
    // per-example directional derivatives d [K, N] (of the mean's terms: ℓ_n / N), and of the loss D [K]
    const d = tf.tidy(() => tf.reshape(tf.div(dLoss, n), [k, n]));
    const total = tf.tidy(() => (n > 1 ? tf.sum(d, 1) : tf.reshape(d, [k])));
    // dLoss can be a view of a direction (f = a variable itself): gone before directions are scaled in place
    dLoss.dispose();
    dOut = undefined;
    const grads: tf.NamedTensorMap = {};
    // each estimate in its own scope, and each site's tensors freed once used: the peak stays near one
    // site's work above the gradients themselves
    const add = (name: string, g: tf.Tensor) => {
      if (name in grads) {
        const sum = tf.add(grads[name], g);
        tf.dispose([grads[name], g]);
        grads[name] = sum;
      } else grads[name] = g;
    };
    try {
      // weight-perturbed: (1/K) Σ_k D_k v_k
      const scale = batched ? null : tf.reshape(total, []);
      for (const [name, v] of Object.entries(directions)) {
        delete directions[name];
        if (!used.has(name)) {
          // read by no kernel: no gradient, as tf.variableGrads
          v.dispose();
          continue;
        }
        if (scale !== null) add(name, scaleOwned(v, scale));
        else {
          add(
            name,
            tf.tidy(() =>
              tf.div(tf.sum(tf.mul(tf.reshape(total, [k, ...v.shape.slice(1).map(() => 1)]), v), 0), k),
            ),
          );
          v.dispose();
        }
      }
      scale?.dispose();
      // activity-perturbed sites: ĝ_z = (1/K) Σ_k d_k(example of the entry) u_k, then the kernel's own VJP
      for (const s of sites) {
        const { gw, gb } = tf.tidy((): { gw: tf.Tensor; gb?: tf.Tensor } => {
          const z = batched ? s.noise.shape.slice(1) : s.noise.shape;
          const gz = activityGradient(s.noise, z, d, total, s.examplesLead);
          const raw = linearWeightGradient(s.kernel, s.inputs, s.attrs, s.weightInput, gz);
          const w = sameShape(raw.shape, s.weight.shape) ? raw : tf.reshape(raw, s.weight.shape);
          if (s.bias === null) return { gw: w };
          const axes = tf.backend_util.getReductionAxes(s.bias.shape, gz.shape);
          return { gw: w, gb: tf.reshape(axes.length > 0 ? tf.sum(gz, axes) : gz, s.bias.shape) };
        });
        tf.dispose([s.noise, ...Object.values(s.inputs)]);
        add(s.weight.name, gw);
        if (s.bias !== null && gb !== undefined) add(s.bias.name, gb);
      }
      if (Object.keys(grads).length === 0) {
        throw new Error(
          `${where}: no variable of varList influences f's value; make sure f reads the variables ` +
            '(e.g. model.apply(x, { training: true }) inside f)',
        );
      }
    } catch (err) {
      tf.dispose(Object.values(grads));
      throw err;
    } finally {
      tf.dispose([d, total]);
    }
    return { value: tf.tidy(() => (loss.rank === 1 ? tf.mean(loss) : tf.clone(loss))) as tf.Scalar, grads };
  } finally {
    tf.dispose([out, dOut].filter((t): t is tf.Tensor => t !== undefined));
    tf.dispose(Object.values(directions));
    for (const s of sites) tf.dispose([s.noise, ...Object.values(s.inputs)]);
  }
}
