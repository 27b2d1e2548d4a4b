import * as tf from '@tensorflow/tfjs';
import { getRule, type JvpRuleContext, supportedKernels } from './rules/index.js';

/**
 * How forward mode is added under plain tfjs code.
 *
 * Every tfjs op reaches the backend through `engine.runKernelFunc` (registered kernels and
 * `tf.customGrad` ops alike). While a `jvp` runs, that method is wrapped: after each kernel
 * call, the JVP rule of that kernel (rules/, one file per kernel family, like tfjs's gradient
 * registry) maps the inputs' tangents to the outputs' tangents. Tangents live in a map keyed
 * by tensor id, one map per `jvp` level (nested `jvp` calls give higher derivatives). A
 * tangent is disposed when its primal is (the engine's `disposeTensor` is wrapped too), so
 * memory follows the primal computation instead of growing with the whole pass. Both
 * wrappers are installed only while at least one `jvp` runs and removed afterwards, so plain
 * tfjs code outside `jvp` runs the engine's own methods.
 */

interface Level {
  /** tensor id → tangent ([K, ...shape] when batched). */
  readonly tangents: Map<number, tf.Tensor>;
  /** Tangents owned by the caller (the ones passed to jvp): never disposed here. */
  readonly external: Set<tf.Tensor>;
  /** Ids of the tangents in `tangents` (to detect a tangent handed back by a rule). */
  readonly tangentIds: Set<number>;
  readonly batched: boolean;
  readonly k: number;
  /** Where activity perturbations enter (variableJvp's `perturb`), or undefined. */
  readonly perturb?: PerturbHook;
  /** variableJvp's tangents drawn when a variable is first read, and the variables already asked for. */
  readonly lazy?: LazyTangent;
  readonly lazySeen?: Set<number>;
  /** Reshaped views (tensor id) of variables not yet seeded: seeded when a kernel reads the view. */
  readonly lazyViews?: Map<number, tf.Variable>;
  /** variableJvp's seeded variables (id → name) and the names of those a kernel read (`used`). */
  readonly seeds?: { names: Map<number, string>; used: Set<string> };
}

/** A kernel call as a {@link PerturbHook} sees it. */
export interface KernelCall {
  /** The kernel's name (one of {@link LINEAR_KERNELS}). */
  kernel: string;
  inputs: Record<string, tf.Tensor>;
  attrs: Record<string, unknown>;
  /** The kernel's outputs (after its fused activation, if any). */
  outputs: tf.Tensor[];
  /** The tf.layers layer running the kernel, when there is one (innermost). */
  layer: string | undefined;
  /**
   * The inputs that are a variable, or a view of one (a Reshape/ExpandDims of a variable with no tangent
   * yet, e.g. tf.matMul's rank-3 view of a Dense kernel), by input name. Found by tensor identity, so a
   * backend whose Reshape copies (tfjs-node) is covered too. Filled in {@link variableJvp} passes with
   * lazy tangents; elsewhere only the inputs that are variables themselves.
   */
  variables: Record<string, tf.Variable>;
}

/**
 * Called for each linear kernel a {@link variableJvp} pass runs; returns a {@link Perturbation}: a tangent
 * to add to the kernel's linear part (before its fused activation), of the output's shape (`[K, ...shape]`
 * when batched), or null. The hook keeps ownership of what it returns (jvp never disposes it); tensors it
 * creates live in the op's engine scope unless it keeps them (`tf.keep`).
 */
export type PerturbHook = (call: KernelCall) => Perturbation | null;

/** What a {@link PerturbHook} puts at a linear kernel. */
export interface Perturbation {
  /** Added to the kernel's linear part; owned by the hook. */
  tangent: tf.Tensor;
  /**
   * Inputs whose tangents this kernel ignores (e.g. `['b']` or `['filter', 'bias']`: the site's own
   * parameters, whose gradient the perturbation estimates instead); a `lazy` tangent is not drawn for them.
   */
  constants?: readonly string[];
}

/**
 * variableJvp's tangent for a variable that has none in `tangents`, drawn when a kernel first reads it
 * (after `perturb` saw that kernel); null leaves it constant. Owned by the caller.
 */
export type LazyTangent = (variable: tf.Variable) => tf.Tensor | null;

/**
 * The kernels whose outputs are linear maps of their inputs by parameters (the sites of activity
 * perturbation, paper §3): matrix products and convolutions, plain or fused with a bias and activation.
 */
export const LINEAR_KERNELS: readonly string[] = [
  tf.BatchMatMul,
  tf._FusedMatMul,
  tf.Conv2D,
  tf.FusedConv2D,
  tf.DepthwiseConv2dNative,
  tf.FusedDepthwiseConv2D,
  tf.Conv2DBackpropInput,
];
const linearKernels = new Set(LINEAR_KERNELS);

type Engine = {
  runKernelFunc: (params: KernelParams) => tf.Tensor | tf.Tensor[];
  disposeTensor: (t: tf.Tensor) => void;
  keep: <T extends tf.Tensor>(t: T) => T;
  track?: <T extends tf.Tensor>(t: T) => T;
  state: { activeScope: { id: number; track: tf.Tensor[] } | null };
};

interface KernelParams {
  kernelName?: string;
  inputs: Record<string, tf.Tensor> | tf.Tensor[];
  attrs?: Record<string, unknown>;
  forwardFunc?: unknown;
}

const levels: Level[] = [];
/** Levels [0, active) see kernel calls; a rule of level i runs with active = i (JAX-style). */
let active = 0;
/**
 * How many named kernels are running now. A backend may implement a kernel with other kernels run through
 * the engine (tfjs-node's `_FusedMatMul` runs BatchMatMul, Add and the activation): those inner kernels are
 * invisible to forward mode, because the outer kernel's rule gives its outputs' tangents (seeing them too
 * would perturb the same site twice and draw a lazy tangent for an input the outer kernel keeps constant).
 * Except Identity: see hookedRunKernelFunc.
 */
let kernelDepth = 0;

function engine(): Engine {
  return tf.engine() as unknown as Engine;
}

let origRunKernelFunc: Engine['runKernelFunc'] | null = null;
let origDisposeTensor: Engine['disposeTensor'] | null = null;

/** Names of the tf.layers layers whose `apply` is running (innermost last), for error messages. */
const layerStack: string[] = [];
type LayerProto = { apply: (this: { name: string }, ...args: unknown[]) => unknown };

function currentLayer(): string | undefined {
  return layerStack.length > 0 ? layerStack[layerStack.length - 1] : undefined;
}

let origLayerApply: LayerProto['apply'] | null = null;

function layerPrototype(): LayerProto | undefined {
  return (tf.layers as unknown as { Layer?: { prototype: LayerProto } }).Layer?.prototype;
}

function install(): void {
  const proto = layerPrototype();
  if (proto !== undefined) {
    const apply = proto.apply;
    // an own property on the prototype object shadows nothing: keep the original to restore
    origLayerApply = apply;
    proto.apply = function trackedApply(this: { name: string }, ...args: unknown[]) {
      layerStack.push(this.name);
      try {
        return apply.apply(this, args);
      } finally {
        layerStack.pop();
      }
    };
  }
  const e = engine();
  origRunKernelFunc = e.runKernelFunc;
  origDisposeTensor = e.disposeTensor;
  const run = origRunKernelFunc;
  const dispose = origDisposeTensor;
  e.runKernelFunc = function hookedRunKernelFunc(this: Engine, params: KernelParams) {
    // customGrad ops (no kernelName) are differentiated through the kernels they ran.
    if (params.kernelName === undefined) return run.call(this, params);
    kernelDepth++;
    let out: ReturnType<Engine['runKernelFunc']>;
    try {
      out = run.call(this, params);
    } finally {
      kernelDepth--;
    }
    // nested Identity kernels are the tape's copies of a kernel's inputs saved for tf.grad's backward pass
    // (engine.clone inside runKernelFunc): they keep their input's tangent, so forward-over-reverse works;
    // they draw no lazy tangent (the outer kernel may keep that input constant)
    if (active > 0 && (kernelDepth === 0 || params.kernelName === tf.Identity)) {
      propagate(params, Array.isArray(out) ? out : [out], kernelDepth === 0);
    }
    return out;
  };
  e.disposeTensor = function hookedDisposeTensor(this: Engine, t: tf.Tensor) {
    dispose.call(this, t);
    for (const level of levels) {
      const tangent = level.tangents.get(t.id);
      if (tangent !== undefined) {
        level.tangents.delete(t.id);
        level.tangentIds.delete(tangent.id);
        if (!level.external.has(tangent)) tangent.dispose();
      }
    }
  };
}

function uninstall(): void {
  const proto = layerPrototype();
  if (proto !== undefined && origLayerApply !== null) proto.apply = origLayerApply;
  origLayerApply = null;
  layerStack.length = 0;
  const e = engine() as unknown as Record<string, unknown>;
  // The wrappers are own properties shadowing the prototype's methods: deleting restores them.
  delete e.runKernelFunc;
  delete e.disposeTensor;
  origRunKernelFunc = null;
  origDisposeTensor = null;
}

function isFloat(t: tf.Tensor): boolean {
  return t.dtype === 'float32';
}

function shapeOf(t: tf.Tensor, level: Level): number[] {
  return level.batched ? [level.k, ...t.shape] : t.shape;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Records `tangent` as the tangent of `primal` at `level`, taking ownership of it. */
function setTangent(level: Level, primal: tf.Tensor, tangent: tf.Tensor): void {
  let t = tangent;
  // A rule may hand back a tangent that already belongs to another tensor (identity-like
  // rules): give each primal its own handle, so disposing one never frees the other's.
  if (level.external.has(t) || level.tangentIds.has(t.id)) t = suspended(() => alias(t));
  engine().keep(t);
  const previous = level.tangents.get(primal.id);
  level.tangents.set(primal.id, t);
  level.tangentIds.add(t.id);
  if (previous !== undefined && previous !== t) {
    level.tangentIds.delete(previous.id);
    if (!level.external.has(previous)) previous.dispose();
  }
}

/**
 * A new tensor handle on the same data (a Reshape to the same shape: no copy on any backend,
 * where `clone` copies on wasm). Used wherever a tensor needs its own identity (tangent keys).
 */
function alias<T extends tf.Tensor>(x: T): T {
  return tf.reshape(x, x.shape) as T;
}

/** Runs fn with every jvp level suspended: kernels inside are invisible to forward mode. */
export function suspended<T>(fn: () => T): T {
  const saved = active;
  active = 0;
  try {
    return fn();
  } finally {
    active = saved;
  }
}

function runRule<T>(levelIndex: number, fn: () => T): T {
  const saved = active;
  active = levelIndex;
  try {
    return fn();
  } finally {
    active = saved;
  }
}

/** variableJvp's `lazy` tangent of a variable read for the first time (undefined: none). */
function seedLazily(level: Level, x: tf.Tensor): tf.Tensor | undefined {
  if (!(x instanceof tf.Variable) || level.lazySeen?.has(x.id)) return undefined;
  level.lazySeen?.add(x.id);
  const t = runRule(0, () => (level.lazy as LazyTangent)(x));
  if (t === null) return undefined;
  const expected = shapeOf(x, level);
  if (!sameShape(t.shape, expected)) {
    throw new Error(
      `variableJvp: the lazy tangent of '${x.name}' has shape [${t.shape}]; expected [${expected}]`,
    );
  }
  level.external.add(t);
  level.tangents.set(x.id, t);
  level.seeds?.names.set(x.id, x.name);
  return t;
}

/** The variable behind x if x is a variable or a lazy view of one that has no tangent yet. */
function unseededVariable(level: Level, x: tf.Tensor | undefined): tf.Variable | undefined {
  if (x == null || level.tangents.has(x.id)) return undefined;
  if (x instanceof tf.Variable) return level.lazySeen?.has(x.id) ? undefined : x;
  return level.lazyViews?.get(x.id);
}

/** The tangent of a lazy view: its variable's (drawn now if needed), reshaped. */
function seedView(level: Level, view: tf.Tensor, variable: tf.Variable): tf.Tensor | undefined {
  const vt = level.tangents.get(variable.id) ?? seedLazily(level, variable);
  if (vt === undefined) return undefined;
  level.seeds?.used.add(variable.name);
  const t = runRule(0, () => tf.reshape(vt, shapeOf(view, level)));
  setTangent(level, view, t);
  return level.tangents.get(view.id);
}

const VIEW_KERNELS = new Set<string>([tf.Reshape, tf.ExpandDims]);

/** A kernel whose output is its input's data in the same order: a Reshape, or a Transpose by the identity. */
function isView(name: string, attrs: Record<string, unknown> | undefined): boolean {
  if (VIEW_KERNELS.has(name)) return true;
  const perm = name === tf.Transpose ? attrs?.perm : undefined;
  return Array.isArray(perm) && perm.every((p, i) => p === i);
}

function propagate(params: KernelParams, outputs: tf.Tensor[], seed = true): void {
  const name = params.kernelName as string;
  for (let li = active - 1; li >= 0; li--) {
    const level = levels[li];
    const inputs = params.inputs as Record<string, tf.Tensor>;
    if (!outputs.some(isFloat)) continue;
    if (seed && level.lazy !== undefined && isView(name, params.attrs)) {
      // a reshaped variable (tf.matMul's rank-3 views, tf.conv1d's filter): its tangent is drawn only when
      // a kernel reads the view, after the perturb hook had its say on that kernel
      const v = unseededVariable(level, inputs.x ?? inputs.input);
      if (v !== undefined) {
        level.lazyViews?.set(outputs[0].id, v);
        continue;
      }
    }
    let perturbation: tf.Tensor | null = null;
    let constants: readonly string[] = [];
    if (level.perturb !== undefined && linearKernels.has(name)) {
      const variables: Record<string, tf.Variable> = {};
      for (const [key, x] of Object.entries(inputs)) {
        const v = x instanceof tf.Variable ? x : x == null ? undefined : level.lazyViews?.get(x.id);
        if (v !== undefined) variables[key] = v;
      }
      const p = runRule(0, () =>
        (level.perturb as PerturbHook)({
          kernel: name,
          inputs,
          attrs: params.attrs ?? {},
          outputs,
          layer: currentLayer(),
          variables,
        }),
      );
      if (p !== null) {
        perturbation = p.tangent;
        constants = p.constants ?? [];
        level.external.add(perturbation); // the hook's: a rule handing it back gets an alias
        if (!sameShape(perturbation.shape, shapeOf(outputs[0], level))) {
          throw new Error(
            `variableJvp: the perturbation of kernel '${name}' has shape [${perturbation.shape}]; expected ` +
              `[${shapeOf(outputs[0], level)}] (the kernel's output${level.batched ? ' with the leading K axis' : ''})`,
          );
        }
      }
    }
    let any = false;
    const tangents: Record<string, tf.Tensor | null> = {};
    for (const key of Object.keys(inputs)) {
      const x = inputs[key];
      let t = x == null || constants.includes(key) ? undefined : level.tangents.get(x.id);
      if (t === undefined && x != null && seed && level.lazy !== undefined && !constants.includes(key)) {
        const view = level.lazyViews?.get(x.id);
        t = view === undefined ? seedLazily(level, x) : seedView(level, x, view);
      }
      tangents[key] = t ?? null;
      if (t !== undefined) {
        any = true;
        const seed = level.seeds?.names.get(x.id);
        if (seed !== undefined) level.seeds?.used.add(seed);
      }
    }
    if (!any && perturbation === null) continue;
    const rule = getRule(name);
    if (rule === undefined) {
      const layerName = currentLayer();
      const layer = layerName !== undefined ? ` (in tf.layers layer '${layerName}')` : '';
      throw new Error(
        `jvp: no JVP rule for kernel '${name}'${layer}, run by an op in the function being differentiated. ` +
          `Supported kernels: ${supportedKernels().join(', ')}. ` +
          `Add one with registerJvpRule('${name}', rule), or wrap the op in customJvp(f, rule).`,
      );
    }
    const ctx: JvpRuleContext = {
      inputs: inputs as Record<string, tf.Tensor>,
      tangents,
      attrs: params.attrs ?? {},
      outputs,
      batched: level.batched,
      k: level.k,
      perturbation,
    };
    const result = runRule(
      li,
      () =>
        tf.tidy(() => toList(rule(ctx)) as unknown as tf.TensorContainer) as unknown as (tf.Tensor | null)[],
    );
    outputs.forEach((out, i) => {
      const t = result[i];
      if (t == null || !isFloat(out)) {
        t?.dispose();
        return;
      }
      const expected = shapeOf(out, level);
      if (!sameShape(t.shape, expected)) {
        t.dispose();
        throw new Error(
          `jvp: the rule of kernel '${name}' produced a tangent of shape [${t.shape}] for an output ` +
            `of shape [${out.shape}] (expected [${expected}]); this is a bug in the rule.`,
        );
      }
      setTangent(level, out, t);
    });
  }
}

function toList(r: tf.Tensor | (tf.Tensor | null)[] | null): (tf.Tensor | null)[] {
  if (r === null) return [];
  return Array.isArray(r) ? r : [r];
}

/** Options of {@link jvp}. */
export interface JvpOptions {
  /**
   * Tangents carry a leading axis of size K (`[K, ...primal.shape]`): K directional
   * derivatives from one forward pass, with batched kernels. Output tangents are
   * `[K, ...output.shape]`.
   */
  batched?: boolean;
  /**
   * K for a batched jvp whose tangents all enter through {@link withTangent} (no primals);
   * with primals it must equal their tangents' leading axis.
   */
  k?: number;
}

function describeShape(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

function validate(primals: tf.Tensor[], tangents: tf.Tensor[], batched: boolean): number {
  if (!Array.isArray(primals) || !Array.isArray(tangents)) {
    throw new Error('jvp: primals and tangents must be arrays of tensors, e.g. jvp(f, [x], [dx])');
  }
  if (primals.length !== tangents.length) {
    throw new Error(
      `jvp: got ${primals.length} primals but ${tangents.length} tangents; pass one tangent per primal`,
    );
  }
  let k = 0;
  primals.forEach((p, i) => {
    const t = tangents[i];
    if (!(p instanceof tf.Tensor) || !(t instanceof tf.Tensor)) {
      throw new Error(`jvp: primal ${i} and tangent ${i} must both be tf.Tensor`);
    }
    if (p.dtype !== 'float32') {
      throw new Error(`jvp: primal ${i} has dtype ${p.dtype}; only float32 primals can carry tangents`);
    }
    if (t.dtype !== 'float32') {
      throw new Error(`jvp: tangent ${i} has dtype ${t.dtype}; tangents must be float32 like their primals`);
    }
    if (batched) {
      if (t.rank !== p.rank + 1 || !sameShape(t.shape.slice(1), p.shape)) {
        throw new Error(
          `jvp: tangent ${i} has shape ${describeShape(t.shape)} but primal ${i} has shape ` +
            `${describeShape(p.shape)}; with batched: true a tangent is [K, ...primal shape]`,
        );
      }
      if (i === 0) k = t.shape[0];
      else if (t.shape[0] !== k) {
        throw new Error(
          `jvp: batched tangents disagree on K: tangent 0 has K = ${k}, tangent ${i} has K = ${t.shape[0]}`,
        );
      }
    } else if (!sameShape(t.shape, p.shape)) {
      throw new Error(
        `jvp: tangent ${i} has shape ${describeShape(t.shape)} but primal ${i} has shape ` +
          `${describeShape(p.shape)}; a tangent must have its primal's shape (or [K, ...shape] with batched: true)`,
      );
    }
  });
  return k;
}

/** Hands a kept tensor to the caller's scope, as if an ordinary op had returned it. */
function release(t: tf.Tensor): tf.Tensor {
  (t as unknown as { kept: boolean }).kept = false;
  const e = engine();
  const scope = e.state.activeScope;
  if (scope !== null) {
    (t as unknown as { scopeId: number }).scopeId = scope.id;
    scope.track.push(t);
  }
  return t;
}

/**
 * Forward-mode automatic differentiation, with JAX's semantics: evaluates `f(...primals)` and
 * the Jacobian-vector product of `f` at `primals` along `tangents`, in one forward pass.
 *
 * `f` is written with ordinary tfjs ops. Returns `[outputs, outputTangents]`, mirroring `f`'s
 * return (a tensor or an array of tensors). Outputs that do not depend on the primals get zero
 * tangents. The caller owns (and disposes) both. Intermediate tensors and their tangents are
 * disposed before `jvp` returns.
 *
 * @example
 * const [y, dy] = jvp((x) => tf.sum(tf.square(x)), [x], [v]); // dy = 2·x·v
 */
export function jvp<T extends tf.Tensor | tf.Tensor[]>(
  f: (...primals: tf.Tensor[]) => T,
  primals: tf.Tensor[],
  tangents: tf.Tensor[],
  options: JvpOptions = {},
): [T, T] {
  const batched = options.batched === true;
  let k = validate(primals, tangents, batched);
  if (batched && options.k !== undefined) {
    if (!Number.isInteger(options.k) || options.k < 1) {
      throw new Error(`jvp: k must be a positive integer, got ${options.k}`);
    }
    if (primals.length > 0 && options.k !== k) {
      throw new Error(`jvp: k = ${options.k} but the batched tangents have K = ${k}`);
    }
    k = options.k;
  }
  if (batched && primals.length === 0 && options.k === undefined) {
    throw new Error('jvp: a batched jvp without primals needs { k } (the number of tangent directions)');
  }
  const level: Level = { tangents: new Map(), external: new Set(), tangentIds: new Set(), batched, k };
  // Each argument gets its own tensor (sharing data), so that the same tensor passed twice
  // carries two independent tangents, as positional arguments do in JAX. The copies are made
  // before this level starts, so that they keep the tangents of enclosing jvp levels.
  const args = primals.map((p) => tf.keep(alias(p)));
  return runLevel(
    level,
    args.map((a, i) => [a, tangents[i]]),
    () => f(...args),
    args,
  );
}

/**
 * Runs `f` at a new jvp level whose `seeds` (primal, tangent) pairs carry the caller's tangents, and
 * returns f's outputs with their tangents. `args` are level-owned copies of primals, disposed at the end
 * unless returned.
 */
function runLevel<T extends tf.Tensor | tf.Tensor[]>(
  level: Level,
  seeds: [tf.Tensor, tf.Tensor][],
  f: () => T,
  args: tf.Tensor[] = [],
): [T, T] {
  if (levels.length === 0) install();
  levels.push(level);
  const savedActive = active;
  active = levels.length;
  for (const [primal, tangent] of seeds) {
    level.external.add(tangent);
    level.tangents.set(primal.id, tangent);
  }
  let out: T | undefined;
  try {
    out = tf.tidy(f);
    const outs = (Array.isArray(out) ? out : [out]) as tf.Tensor[];
    if (!outs.every((o) => o instanceof tf.Tensor)) {
      throw new Error('jvp: f must return a tf.Tensor or an array of tf.Tensor');
    }
    const outTangents = outs.map((o) => {
      const t = level.tangents.get(o.id);
      if (t === undefined) {
        return suspended(() => tf.zeros(level.batched ? [level.k, ...o.shape] : o.shape));
      }
      level.tangents.delete(o.id);
      level.tangentIds.delete(t.id);
      if (level.external.has(t)) return suspended(() => alias(t));
      return release(t);
    });
    for (const o of outs) {
      if (args.includes(o)) release(o);
    }
    return [out, (Array.isArray(out) ? outTangents : outTangents[0]) as T];
  } finally {
    levels.pop();
    active = savedActive;
    for (const t of level.tangents.values()) {
      if (!level.external.has(t)) t.dispose();
    }
    level.tangents.clear();
    const outs = out === undefined ? [] : ((Array.isArray(out) ? out : [out]) as tf.Tensor[]);
    for (const a of args) if (!outs.includes(a)) a.dispose();
    if (levels.length === 0) uninstall();
  }
}

/** Options of {@link variableJvp}. */
export interface VariableJvpOptions {
  /** Tangents carry a leading K axis (`[K, ...variable.shape]`): K directions in one pass. */
  batched?: boolean;
  /** K for a batched pass where only `perturb` adds tangents (no variable tangents). */
  k?: number;
  /** Where activity perturbations enter: called at each linear kernel (see {@link PerturbHook}). */
  perturb?: PerturbHook;
  /** Tangents of the variables not in `tangents`, drawn when first read (see {@link LazyTangent}). */
  lazy?: LazyTangent;
  /**
   * Filled with the names of the variables with a tangent that a kernel of `f` read (the others had no
   * influence on the value: `tf.variableGrads` would give them no gradient).
   */
  used?: Set<string>;
}

/**
 * The forward-mode twin of `tf.variableGrads`: evaluates `f()`, which reads `tf.Variable`s (a
 * `tf.LayersModel`'s weights, say), and its directional derivative along `tangents`, keyed by variable
 * name (`variable.name`, as in `tf.variableGrads`' `grads`). Variables without a tangent are constants.
 * Returns `[value, valueTangent]`, both owned by the caller; with `batched`, `valueTangent` is
 * `[K, ...value.shape]`.
 *
 * @example
 * const [loss, dLoss] = variableJvp(() => tf.losses.meanSquaredError(y, model.apply(x) as tf.Tensor), {
 *   [model.trainableWeights[0].read().name]: tf.randomNormal(model.trainableWeights[0].shape),
 * });
 */
export function variableJvp(
  f: () => tf.Tensor,
  tangents: tf.NamedTensorMap,
  options: VariableJvpOptions = {},
): [tf.Tensor, tf.Tensor] {
  const batched = options.batched === true;
  const registered = tf.engine().registeredVariables;
  let k = options.k ?? 0;
  const names = Object.keys(tangents);
  const seeds: [tf.Tensor, tf.Tensor][] = Object.entries(tangents).map(([name, t]) => {
    const v = registered[name];
    if (v === undefined) {
      throw new Error(
        `variableJvp: no tf.Variable named '${name}'; key tangents by variable.name (model.trainableWeights[i].read().name)`,
      );
    }
    const expected = batched ? [k || t.shape[0], ...v.shape] : v.shape;
    if (!(t instanceof tf.Tensor) || t.dtype !== 'float32' || !sameShape(t.shape, expected)) {
      throw new Error(
        `variableJvp: the tangent of '${name}' must be a float32 tensor of shape ${describeShape(expected)}` +
          `${batched ? ' ([K, ...variable shape], one K for all)' : " (the variable's)"}, got ` +
          `${t instanceof tf.Tensor ? `${t.dtype} ${describeShape(t.shape)}` : typeof t}`,
      );
    }
    if (batched) k = t.shape[0];
    return [v, t];
  });
  if (batched && k < 1 && options.k === undefined) {
    throw new Error(
      'variableJvp: a batched pass without variable tangents needs { k } (the number of directions)',
    );
  }
  const level: Level = {
    tangents: new Map(),
    external: new Set(),
    tangentIds: new Set(),
    batched,
    k: batched ? k : 0,
    perturb: options.perturb,
    lazy: options.lazy,
    lazySeen: options.lazy === undefined ? undefined : new Set(),
    lazyViews: options.lazy === undefined ? undefined : new Map(),
    seeds: { names: new Map(seeds.map(([v, _t], i) => [v.id, names[i]])), used: options.used ?? new Set() },
  };
  return runLevel(level, seeds, f);
}

/** True while a {@link jvp} is running and its kernels are being observed. */
export function jvpActive(): boolean {
  return active > 0;
}

/** True when the innermost running {@link jvp} has batched tangents; K is {@link jvpBatchSize}. */
export function jvpBatched(): boolean {
  return active > 0 && levels[active - 1].batched;
}

/** K of the innermost running batched {@link jvp} (1 when not batched or outside jvp). */
export function jvpBatchSize(): number {
  return active > 0 && levels[active - 1].batched ? levels[active - 1].k : 1;
}

/**
 * Inside {@link jvp}: the tangent currently carried by `x` at the innermost level, or `null`
 * when it has none (a zero tangent). The returned tensor belongs to jvp; clone it to keep it.
 */
export function tangentOf(x: tf.Tensor): tf.Tensor | null {
  if (active === 0) return null;
  return levels[active - 1].tangents.get(x.id) ?? null;
}

/**
 * `x + ε` where ε = 0 carries the tangent `dx`: the value of `x`, with tangent
 * `tangentOf(x) + dx`. This is how perturbations enter a forward pass (activity-perturbed
 * forward gradient: noise after a layer's normalisation, REFERENCE 1.6). `dx` has `x`'s shape
 * (`[K, ...x.shape]` in a batched jvp) and stays owned by the caller. Outside jvp it returns a
 * clone of `x`.
 */
export function withTangent<T extends tf.Tensor>(x: T, dx: tf.Tensor): T {
  const y = alias(x);
  if (active === 0) return y;
  const li = active - 1;
  const level = levels[li];
  const expected = shapeOf(x, level);
  if (!sameShape(dx.shape, expected)) {
    throw new Error(
      `withTangent: tangent shape ${describeShape(dx.shape)} does not match ${describeShape(expected)} ` +
        `(the tensor's shape${level.batched ? ', with the batched leading K axis' : ''})`,
    );
  }
  if (dx.dtype !== 'float32')
    throw new Error(`withTangent: tangent dtype ${dx.dtype}; tangents must be float32`);
  const current = level.tangents.get(y.id);
  const t = runRule(li, () => (current === undefined ? alias(dx) : tf.add(current, dx)));
  setTangent(level, y, t);
  return y;
}

/**
 * Identity on values that cuts both forward tangents and tfjs reverse-mode gradients (tfjs has
 * no such op). Used for the block boundaries of local greedy learning (REFERENCE 1.1).
 */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  return stopGradientOp(x) as T;
}

const stopGradientOp = tf.customGrad(((x: tf.Tensor) => ({
  value: suspended(() => alias(x)),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as unknown as Parameters<typeof tf.customGrad>[0]);

/** Arguments of a {@link customJvp} rule. */
export interface CustomJvpArgs {
  /** The primal inputs, as passed to the function. */
  inputs: tf.Tensor[];
  /** Their tangents; `null` for an input without one (a zero tangent). */
  tangents: (tf.Tensor | null)[];
  /** The function's output. */
  output: tf.Tensor;
  /** True when tangents carry a leading K axis; the rule must then return `[K, ...output.shape]`. */
  batched: boolean;
}

/**
 * A function with a hand-written JVP rule (like `jax.custom_jvp`). Inside {@link jvp}, `f`
 * runs with tangent tracking suspended and `rule` computes the output's tangent; outside, `f`
 * runs as is. For a custom reverse-mode gradient too, pass a `tf.customGrad` function as `f`.
 */
export function customJvp<F extends (...xs: tf.Tensor[]) => tf.Tensor>(
  f: F,
  rule: (args: CustomJvpArgs) => tf.Tensor,
): F {
  const wrapped = (...xs: tf.Tensor[]): tf.Tensor => {
    if (active === 0) return f(...xs);
    const top = active;
    const output = suspended(() => f(...xs));
    for (let li = top - 1; li >= 0; li--) {
      const level = levels[li];
      const tangents = xs.map((x) => (x instanceof tf.Tensor ? (level.tangents.get(x.id) ?? null) : null));
      if (tangents.every((t) => t === null)) continue;
      const t = runRule(li, () =>
        tf.tidy(() => rule({ inputs: xs, tangents, output, batched: level.batched })),
      );
      const expected = shapeOf(output, level);
      if (!sameShape(t.shape, expected)) {
        t.dispose();
        throw new Error(
          `customJvp: the rule returned a tangent of shape ${describeShape(t.shape)}; ` +
            `expected ${describeShape(expected)}`,
        );
      }
      setTangent(level, output, t);
    }
    return output;
  };
  return wrapped as F;
}
