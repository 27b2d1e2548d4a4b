import * as tf from '@tensorflow/tfjs';
import type { NamedTensors, ParamEntry, ParamGroup } from './params.js';

/** The optimisers of the paper's experiments (appendix 11, REFERENCE §4). */
export type OptimizerKind = 'sgd' | 'lars';

/** Optimiser hyper-parameters; defaults are the authors' (REFERENCE §1.1, §4). */
export interface OptimizerOptions {
  /** Momentum of the trace (0.9 in every experiment of appendix 11). */
  momentum?: number;
  /** Weight decay: SGD decays every weight (never biases); LARS only backbone weights. */
  weightDecay?: number;
  /** Gradient scale of the local heads (`head_lr`, 1.0). */
  headLr?: number;
  /** Gradient scale of the final classifier (`last_layer_lr`, 0.1). */
  lastLayerLr?: number;
  /**
   * Gradient scale of the contrastive final projection. REFERENCE does not single it out;
   * it is a linear head trained with its exact gradient like the local heads, so it
   * defaults to `headLr`.
   */
  projectionLr?: number;
  /** LARS trust coefficient (0.001). */
  trust?: number;
}

/** A stateful optimiser that updates {@link ParamEntry} variables in place. */
export interface Optimizer {
  readonly kind: OptimizerKind;
  /** The resolved hyper-parameters. */
  readonly options: Readonly<Required<OptimizerOptions>>;
  /**
   * One update of every entry with its gradient `grads.get(entry.name)` at learning rate `lr`.
   * Every entry needs a gradient of its shape (pass zeros to decay a parameter that got none);
   * gradients of names not in `entries` are ignored. The caller keeps ownership of `grads`.
   */
  apply(entries: readonly ParamEntry[], grads: ReadonlyMap<string, tf.Tensor>, lr: number): void;
  /**
   * The momentum traces as `momentum/<param name>` → tensor, for a checkpoint. Like
   * `namedParams`, these are the optimiser's live tensors, not copies: read them (e.g. save
   * them) before the next `apply`, and do not dispose them.
   */
  state(): NamedTensors;
  /** Replaces the momentum traces with copies of `s` (from {@link state}); the caller keeps `s`. */
  loadState(s: NamedTensors): void;
  /** Frees the momentum traces. */
  dispose(): void;
}

const STATE_PREFIX = 'momentum/';

function checkNumber(name: string, value: number, min: number): void {
  if (!Number.isFinite(value) || value < min) {
    throw new Error(`Optimizer option ${name} = ${value} is invalid; use a finite number ≥ ${min}.`);
  }
}

/**
 * Creates an SGD-with-momentum or LARS optimiser (REFERENCE §4).
 *
 * Both first scale each gradient by its group (REFERENCE §1.1: backbone × 1, local heads ×
 * `headLr`, final classifier × `lastLayerLr`, projection × `projectionLr`).
 *
 * - `sgd`: g ← g + wd·W for every weight (never biases), after the scaling (REFERENCE §1.1);
 *   t = g + momentum·t_prev; W ← W − lr·t.
 * - `lars` (optax `lars` as the authors use it): u = g + wd·W for backbone weights only;
 *   u ← u·(trust·‖W‖/‖u‖) per tensor (factor 1 when either norm is 0); t = lr·u + momentum·t_prev;
 *   W ← W − t. The trace accumulates lr-scaled steps (REFERENCE §4 order "−lr·u; momentum trace"),
 *   which differs from SGD only when the learning rate changes between steps.
 *
 * @example
 * const opt = createOptimizer('sgd', { momentum: 0.9, weightDecay: 1e-4 });
 * opt.apply(entries, grads, schedule(step));
 */
export function createOptimizer(kind: OptimizerKind, options: OptimizerOptions = {}): Optimizer {
  if (kind !== 'sgd' && kind !== 'lars') {
    throw new Error(`Unknown optimizer '${String(kind)}'; use 'sgd' or 'lars'.`);
  }
  const headLr = options.headLr ?? 1.0;
  const opts: Required<OptimizerOptions> = {
    momentum: options.momentum ?? 0.9,
    weightDecay: options.weightDecay ?? 0,
    headLr,
    lastLayerLr: options.lastLayerLr ?? 0.1,
    projectionLr: options.projectionLr ?? headLr,
    trust: options.trust ?? 0.001,
  };
  for (const [k, v] of Object.entries(opts)) checkNumber(k, v, 0);

  const scales: Record<ParamGroup, number> = {
    backbone: 1,
    head: opts.headLr,
    classifier: opts.lastLayerLr,
    projection: opts.projectionLr,
  };
  const traces = new Map<string, tf.Tensor>();

  function validate(entries: readonly ParamEntry[], grads: ReadonlyMap<string, tf.Tensor>, lr: number): void {
    if (!Number.isFinite(lr)) {
      throw new Error(`Learning rate ${lr} is not finite; check the schedule's baseLr and totalSteps.`);
    }
    for (const e of entries) {
      const g = grads.get(e.name);
      if (g === undefined) {
        throw new Error(
          `No gradient for parameter '${e.name}'; pass a gradient for every entry given to apply() ` +
            '(zeros for a parameter that received none), or leave the entry out.',
        );
      }
      if (g.isDisposed) throw new Error(`The gradient of '${e.name}' is already disposed.`);
      if (!tf.util.arraysEqual(g.shape, e.variable.shape)) {
        throw new Error(
          `Gradient of '${e.name}' has shape [${g.shape}] but the parameter has [${e.variable.shape}].`,
        );
      }
      const t = traces.get(e.name);
      if (t !== undefined && !tf.util.arraysEqual(t.shape, e.variable.shape)) {
        throw new Error(
          `Optimizer state for '${e.name}' has shape [${t.shape}] but the parameter has [${e.variable.shape}]; ` +
            'the loaded optimizer state belongs to another model configuration.',
        );
      }
    }
  }

  return {
    kind,
    options: Object.freeze({ ...opts }),

    apply(entries, grads, lr) {
      // Validate everything first so a bad call leaves every parameter untouched.
      validate(entries, grads, lr);
      const replaced: tf.Tensor[] = [];
      tf.tidy(() => {
        for (const e of entries) {
          const p = e.variable;
          let g = grads.get(e.name)!;
          const scale = scales[e.group];
          if (scale !== 1) g = tf.mul(g, scale);
          const prev = traces.get(e.name);
          let t: tf.Tensor;
          if (kind === 'sgd') {
            // REFERENCE §1.1: wd·W on every weight gradient (never biases), after the lr scaling.
            if (opts.weightDecay !== 0 && e.kind === 'weight') g = tf.add(g, tf.mul(p, opts.weightDecay));
            t = prev === undefined ? g : tf.add(g, tf.mul(prev, opts.momentum));
            p.assign(tf.sub(p, tf.mul(t, lr)));
          } else {
            // REFERENCE §4 LARS: decay masked to backbone weights.
            let u = g;
            if (opts.weightDecay !== 0 && e.kind === 'weight' && e.group === 'backbone') {
              u = tf.add(u, tf.mul(p, opts.weightDecay));
            }
            // Trust ratio per tensor; factor 1 where either norm is 0 (optax scale_by_trust_ratio).
            const pNorm = tf.norm(p);
            const uNorm = tf.norm(u);
            const zero = tf.logicalOr(tf.equal(pNorm, 0), tf.equal(uNorm, 0));
            const ratio = tf.where(zero, tf.onesLike(pNorm), tf.div(tf.mul(pNorm, opts.trust), uNorm));
            const step = tf.mul(tf.mul(u, ratio), lr);
            t = prev === undefined ? step : tf.add(step, tf.mul(prev, opts.momentum));
            p.assign(tf.sub(p, t));
          }
          // A fresh tensor for the trace: `t` may be the caller's gradient itself.
          const kept = tf.keep(tf.clone(t));
          if (prev !== undefined) replaced.push(prev);
          traces.set(e.name, kept);
        }
      });
      for (const old of replaced) old.dispose();
    },

    state() {
      const out: NamedTensors = {};
      for (const [name, t] of traces) out[STATE_PREFIX + name] = t;
      return out;
    },

    loadState(s) {
      const next = new Map<string, tf.Tensor>();
      for (const [key, t] of Object.entries(s)) {
        if (!key.startsWith(STATE_PREFIX)) {
          throw new Error(
            `Optimizer state key '${key}' is not a momentum trace ('${STATE_PREFIX}<param name>'); ` +
              'pass what state() returned.',
          );
        }
        if (t.isDisposed) throw new Error(`Optimizer state '${key}' is already disposed.`);
      }
      for (const [key, t] of Object.entries(s))
        next.set(key.slice(STATE_PREFIX.length), tf.keep(tf.clone(t)));
      for (const t of traces.values()) t.dispose();
      traces.clear();
      for (const [k, v] of next) traces.set(k, v);
    },

    dispose() {
      for (const t of traces.values()) t.dispose();
      traces.clear();
    },
  };
}
