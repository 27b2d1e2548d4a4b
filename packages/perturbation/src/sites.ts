import * as tf from '@tensorflow/tfjs';
import {
  customJvp,
  jvpActive,
  jvpBatched,
  jvpBatchSize,
  type Linearizable,
  type Linearization,
  suspended,
  withTangent,
} from '@fwdgrad/jvp-core';
import { applyLinear, type LinearLayout } from '@fwdgrad/linear';
import type { Random } from '@fwdgrad/random';
import { checkNoiseKind, type NoiseKind, sampleNoise } from './noise.js';
import { sameShape, shapeString } from './util.js';

/** The nonlinearity after a perturbed linear layer: ReLU (default), none, or any elementwise function. */
export type Activation = 'relu' | 'none' | ((a: tf.Tensor) => tf.Tensor);

/** Options of one linear site. */
export interface SiteOptions {
  /** How the layer contracts its input. Default `'dense'`. */
  layout?: LinearLayout;
  /**
   * A parameter-free normalisation applied to the linear output (e.g. jvp-core's `layerNormFunction(-1)`).
   * If it can `linearize` itself, the activity estimate reuses its forward pass for the exact VJP.
   */
  normalize?: Linearizable;
  /** Added after the noise and before the activation (a residual connection, REFERENCE 1.6). */
  residual?: tf.Tensor;
  /** Default `'relu'`. Only `'relu'` enables the ReLU mask of the activity estimator (§3.6). */
  activation?: Activation;
}

/**
 * The hook a model's forward pass calls at each linear layer, so that one model definition serves every
 * estimator: `sites.linear(name, x, w, b, options)` returns `activation(normalize(x·w + b) [+ residual])`.
 * {@link plainSites} computes exactly that; the activity recorder also injects noise after `normalize` and
 * records what the estimate needs. Axis 0 of every site's activation is the example axis.
 */
export interface Sites {
  linear(name: string, x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor | null, options?: SiteOptions): tf.Tensor;
}

function activate(activation: Activation | undefined, a: tf.Tensor): tf.Tensor {
  if (activation === undefined || activation === 'relu') return tf.relu(a);
  if (activation === 'none') return a;
  if (typeof activation === 'function') return activation(a);
  throw new Error(
    `sites.linear: activation must be 'relu', 'none' or a function, got ${JSON.stringify(activation)}`,
  );
}

/** {@link Sites} without perturbation: plain layers (evaluation, exact gradients with tf.grads, FG-W). */
export const plainSites: Sites = {
  linear(name, x, w, b = null, options = {}) {
    return tf.tidy(() => {
      const prenorm = applyLinear(options.layout ?? 'dense', x, w, b ?? null, `sites.linear('${name}')`);
      const z = options.normalize === undefined ? prenorm : options.normalize(prenorm);
      return activate(options.activation, options.residual === undefined ? z : tf.add(z, options.residual));
    });
  },
};

/** Where activity noise comes from: a kind drawn from `random`, or a function giving each site's noise. */
export type NoiseSource = NoiseKind | ((site: string, shape: number[]) => tf.Tensor);

/** What the activity recorder keeps for one perturbed site (all tensors kept until `dispose`). */
export interface ActivityRecord {
  /** The site's name. */
  name: string;
  layout: LinearLayout;
  /** The linear's input. */
  pre: tf.Tensor;
  /** The linear's output before normalisation. */
  prenorm: tf.Tensor;
  /** The site's output: activation(normalize(prenorm) [+ residual]). */
  post: tf.Tensor;
  /** The injected noise, `[K, ...prenorm.shape]`. */
  noise: tf.Tensor;
  normalize?: Linearizable;
  /** The exact VJP of `normalize` at `prenorm`, kept from the forward pass (when `normalize` can linearise). */
  normalizeVjp?: (g: tf.Tensor) => tf.Tensor;
  /** True when the activation is ReLU (the §3.6 mask applies). */
  relu: boolean;
  /** ReLU sites: 1[post > 0], the mask the ReLU's tangent used (shared with the estimate). */
  active?: tf.Tensor;
  /** The weight and bias used at the site (when it came through `linear`). */
  weight?: tf.Tensor;
  bias?: tf.Tensor | null;
}

/** Arguments of {@link ActivityRecorder.activate}: a linear layer's output, before its normalisation. */
export interface ActivateArgs {
  layout?: LinearLayout;
  pre: tf.Tensor;
  prenorm: tf.Tensor;
  normalize?: Linearizable;
  residual?: tf.Tensor;
  activation?: Activation;
}

/**
 * Sites that inject activity noise and record each layer (REFERENCE 1.6) — to be used inside a `jvp`
 * (batched: noise `[K, ...]` with K = the jvp's batch). {@link activityPerturbedGradient} uses one; a model with
 * its own layer hook (e.g. LocalMixer's LayerContext) calls {@link ActivityRecorder.activate} after each
 * linear layer and passes the records to `activityWeightGradient` with its own loss tangents.
 */
export interface ActivityRecorder extends Sites {
  /**
   * After a linear layer: z = normalize(prenorm), z + ε with tangent u (the noise), + residual, activation.
   * Returns the activation and records pre, prenorm, post and u under `name`.
   */
  activate(name: string, args: ActivateArgs): tf.Tensor;
  /** The records, in the order the sites ran. */
  readonly records: readonly ActivityRecord[];
  /** Disposes every recorded tensor and forgets the records. */
  dispose(): void;
}

/** Options of {@link createActivityRecorder}. */
export interface ActivityRecorderOptions {
  /** Source of the noise when `noise` is a kind. */
  random?: Random;
  /** Default `'gaussian'`. A function receives the site's name and the shape `[K, ...activation]`. */
  noise?: NoiseSource;
  /** Which `linear` sites to perturb, by weight (default: all); unperturbed sites run plainly. */
  perturb?: (w: tf.Tensor, name: string) => boolean;
}

/** Creates an {@link ActivityRecorder}. Dispose it after computing the estimates. */
export function createActivityRecorder(options: ActivityRecorderOptions = {}): ActivityRecorder {
  const source = options.noise ?? 'gaussian';
  if (typeof source !== 'function') {
    checkNoiseKind('createActivityRecorder', source);
    if (options.random === undefined) {
      throw new Error('createActivityRecorder: pass a seeded random source (random = createRandom(seed))');
    }
  }
  const records: ActivityRecord[] = [];
  const linearizations: Linearization[] = [];
  const names = new Set<string>();
  // A handle of our own on the same data (Reshape aliases; clone would copy on wasm).
  const keepCopy = (t: tf.Tensor) => suspended(() => tf.keep(tf.reshape(t, t.shape)));

  const sampleFor = (name: string, shape: number[]): tf.Tensor =>
    suspended(() =>
      tf.tidy(() => {
        if (typeof source !== 'function') return sampleNoise(options.random as Random, shape, source);
        const u = source(name, shape);
        if (!(u instanceof tf.Tensor) || !sameShape(u.shape, shape)) {
          throw new Error(
            `activity noise for site '${name}': the noise function returned ` +
              `${u instanceof tf.Tensor ? `shape ${shapeString(u.shape)}` : 'no tensor'}; the site needs ` +
              `${shapeString(shape)} ([K, ...activation shape])`,
          );
        }
        return u.dtype === 'float32' ? tf.clone(u) : tf.cast(u, 'float32');
      }),
    );

  const recorder: ActivityRecorder = {
    records,
    activate(name, args) {
      if (!jvpActive()) {
        throw new Error(
          `activity site '${name}': the activity recorder works inside jvp (the noise is a tangent)`,
        );
      }
      if (names.has(name)) {
        throw new Error(`activity site '${name}' ran twice; give every perturbed layer its own name`);
      }
      names.add(name);
      // Normalise once: a linearisable normalisation also hands back its VJP at prenorm (REFERENCE 1.6
      // step 3) built from this forward pass, so the estimate does not run it again under tf.grad.
      const lin = args.normalize?.linearize?.(args.prenorm);
      const z =
        lin !== undefined
          ? lin.y
          : args.normalize === undefined
            ? args.prenorm
            : args.normalize(args.prenorm);
      if (!sameShape(z.shape, args.prenorm.shape)) {
        lin?.dispose();
        throw new Error(
          `activity site '${name}': normalize changed the shape ${shapeString(args.prenorm.shape)} to ` +
            `${shapeString(z.shape)}; it must be elementwise-shaped`,
        );
      }
      const batched = jvpBatched();
      const k = batched ? jvpBatchSize() : 1;
      const noise = tf.keep(sampleFor(name, [k, ...z.shape]));
      const relu = args.activation === undefined || args.activation === 'relu';
      let post: tf.Tensor;
      let active: tf.Tensor | undefined;
      try {
        // REFERENCE 1.6: noise after the normalisation, before the residual and the ReLU.
        const zu = withTangent(z, batched ? noise : tf.reshape(noise, z.shape));
        const a = args.residual === undefined ? zu : tf.add(zu, args.residual);
        if (relu) {
          // The ReLU with its mask computed once: its tangent is ȧ ⊙ 1[a > 0], and the estimate's
          // §3.6 mask 1[post > 0] is the same tensor.
          const mask = suspended(() => tf.keep(tf.step(a)));
          active = mask;
          post = customJvp(
            (ai: tf.Tensor) => tf.relu(ai),
            ({ tangents: [da] }) => tf.mul(da as tf.Tensor, mask),
          )(a);
        } else {
          post = activate(args.activation, a);
        }
      } catch (e) {
        tf.dispose([noise, ...(active === undefined ? [] : [active])]);
        lin?.dispose();
        throw e;
      }
      records.push({
        name,
        layout: args.layout ?? 'dense',
        pre: keepCopy(args.pre),
        prenorm: keepCopy(args.prenorm),
        post: keepCopy(post),
        noise,
        normalize: args.normalize,
        normalizeVjp: lin?.vjp,
        relu,
        active,
      });
      if (lin !== undefined) linearizations.push(lin);
      return post;
    },
    linear(name, x, w, b = null, siteOptions = {}) {
      if (options.perturb !== undefined && !options.perturb(w, name)) {
        return plainSites.linear(name, x, w, b, siteOptions);
      }
      const layout = siteOptions.layout ?? 'dense';
      const prenorm = applyLinear(layout, x, w, b ?? null, `sites.linear('${name}')`);
      const post = recorder.activate(name, { ...siteOptions, layout, pre: x, prenorm });
      const rec = records[records.length - 1];
      rec.weight = w;
      rec.bias = b ?? null;
      return post;
    },
    dispose() {
      for (const r of records)
        tf.dispose([r.pre, r.prenorm, r.post, r.noise, ...(r.active ? [r.active] : [])]);
      for (const lin of linearizations) lin.dispose();
      records.length = 0;
      linearizations.length = 0;
      names.clear();
    },
  };
  return recorder;
}
